//! Change signals: "execution X has new log lines" and "execution X has a new state", so that a
//! follower reads the store when something was written instead of polling it.
//!
//! Every write a follower shows goes through [`Store`]: a log writer's flush, a step result, a
//! status. After the write is done, the store bumps the execution's signal in this process
//! ([`Store::watch`] waits on it). On PostgreSQL the same signal reaches every other process on
//! the database through `NOTIFY assay_live`: one task per store sends them, batched (what
//! arrives while a NOTIFY is under way goes in the next one, at most one NOTIFY per
//! [`RELAY_GAP`]), and the first watch of a process opens one connection that `LISTEN`s.
//!
//! Stored `TestTrigger`s and `Webhook`s have a signal of their own per kind
//! ([`Store::watch_resources`]), on the same way: `assay server --kubernetes` reads its triggers
//! again when it fires.
//!
//! A signal carries no data, only "look again": the watcher reads the store, so what it shows
//! was stored first, and a lost signal only delays (watchers also look now and then on their
//! own). NOTIFYs sent while the listening connection was down are lost, so once it is
//! (re)established every watcher of this process is signalled.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{Notify, mpsc, watch};

use crate::Store;

/// The PostgreSQL channel of the signals (notifications stay within one database).
pub const CHANNEL: &str = "assay_live";

/// Signals that arrive within this time after a NOTIFY go out together in the next one.
const RELAY_GAP: Duration = Duration::from_millis(5);

/// Longest NOTIFY payload we send (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7000;

/// How long the listener waits before connecting again after an error.
const RECONNECT: Duration = Duration::from_secs(1);

/// What changed since a watcher last looked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// New log lines may be stored.
    pub logs: bool,
    /// The status, a step result or another field of the execution may have changed.
    pub state: bool,
}

impl Changes {
    /// Both kinds: look at everything.
    pub const ALL: Changes = Changes {
        logs: true,
        state: true,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Logs,
    State,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Logs => 'l',
            Kind::State => 's',
        }
    }
}

/// How many times each kind was signalled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Versions {
    logs: u64,
    state: u64,
}

type Slot = watch::Sender<Versions>;

/// The signals of one store handle (shared by its clones).
pub(crate) struct Live {
    /// Executions watched in this process.
    watched: Mutex<HashMap<String, Weak<Slot>>>,
    /// PostgreSQL only: the way to the other processes.
    relay: Option<Relay>,
}

struct Relay {
    /// Names this store handle in its payloads, so that it ignores its own NOTIFYs.
    instance: String,
    url: String,
    location: String,
    out: mpsc::UnboundedSender<(Kind, String)>,
    listener: OnceLock<()>,
    /// Ends the listener when the store goes.
    stop: Arc<Notify>,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(relay) = &self.relay {
            relay.stop.notify_one();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Live {
    pub(crate) fn local() -> Live {
        Live {
            watched: Mutex::new(HashMap::new()),
            relay: None,
        }
    }

    /// Signals relayed through PostgreSQL at `url` (`location` names it in logs, password
    /// masked); starts the task that sends them.
    pub(crate) fn postgres(pool: AnyPool, url: String, location: String) -> Live {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let (out, rx) = mpsc::unbounded_channel();
        tokio::spawn(send_notifies(pool, instance.clone(), rx));
        Live {
            watched: Mutex::new(HashMap::new()),
            relay: Some(Relay {
                instance,
                url,
                location,
                out,
                listener: OnceLock::new(),
                stop: Arc::new(Notify::new()),
            }),
        }
    }

    /// Signal a change of execution `id`, here and (on PostgreSQL) in every other process.
    pub(crate) fn signal(&self, id: &str, kind: Kind) {
        self.signal_here(id, kind);
        if let Some(relay) = &self.relay {
            let _ = relay.out.send((kind, id.to_string()));
        }
    }

    /// Signal the watchers of this process only.
    fn signal_here(&self, id: &str, kind: Kind) {
        let slot = {
            let mut watched = lock(&self.watched);
            match watched.get(id).map(Weak::upgrade) {
                Some(Some(slot)) => slot,
                Some(None) => {
                    watched.remove(id);
                    return;
                }
                None => return,
            }
        };
        slot.send_modify(|v| match kind {
            Kind::Logs => v.logs += 1,
            Kind::State => v.state += 1,
        });
    }

    /// Signal every watcher of this process (signals may have been lost).
    fn signal_all_here(&self) {
        let slots: Vec<Arc<Slot>> = lock(&self.watched)
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for slot in slots {
            slot.send_modify(|v| {
                v.logs += 1;
                v.state += 1;
            });
        }
    }

    fn watch(self: &Arc<Self>, id: &str) -> Watch {
        if let Some(relay) = &self.relay {
            relay.listener.get_or_init(|| {
                tokio::spawn(listen(
                    Arc::downgrade(self),
                    relay.url.clone(),
                    relay.location.clone(),
                    relay.instance.clone(),
                    relay.stop.clone(),
                ));
            });
        }
        let slot = {
            let mut watched = lock(&self.watched);
            match watched.get(id).and_then(Weak::upgrade) {
                Some(slot) => slot,
                None => {
                    let slot = Arc::new(watch::channel(Versions::default()).0);
                    watched.insert(id.to_string(), Arc::downgrade(&slot));
                    slot
                }
            }
        };
        let mut rx = slot.subscribe();
        let seen = *rx.borrow_and_update();
        Watch {
            rx,
            seen,
            _slot: slot,
        }
    }
}

/// Waits for changes of one execution ([`Store::watch`]).
pub struct Watch {
    rx: watch::Receiver<Versions>,
    seen: Versions,
    /// Keeps the execution watched.
    _slot: Arc<Slot>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch").field("seen", &self.seen).finish()
    }
}

impl Watch {
    /// What changed since the last call (or since the watch began), waiting until something
    /// does. Read the store after this returns: a change signalled while reading makes the
    /// next call return at once, so nothing written is missed.
    pub async fn changed(&mut self) -> Changes {
        loop {
            if let Some(changes) = self.take_changes() {
                return changes;
            }
            // The sender lives as long as this watch holds it: never closed.
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// What changed since the last look, without waiting: `None` when nothing did. Like
    /// [`Watch::changed`], read the store after this says something changed.
    pub fn take_changes(&mut self) -> Option<Changes> {
        let now = *self.rx.borrow_and_update();
        if now == self.seen {
            return None;
        }
        let changes = Changes {
            logs: now.logs != self.seen.logs,
            state: now.state != self.seen.state,
        };
        self.seen = now;
        Some(changes)
    }
}

impl Store {
    /// Watch execution `id` for changes written through any store handle of this process, or
    /// on PostgreSQL of any process on the database. Signals only say "look again"; writers in
    /// other processes on SQLite send none, so a follower should still look now and then.
    pub fn watch(&self, id: &str) -> Watch {
        self.inner.live.watch(id)
    }

    pub(crate) fn signal(&self, id: &str, kind: Kind) {
        self.inner.live.signal(id, kind);
    }

    /// Watch the stored documents of `kind` (`TestTrigger`, `Webhook`): a signal after each
    /// one is created, changed or deleted through any store handle of this process, or on
    /// PostgreSQL of any process on the database (SQLite writers in other processes send none).
    pub fn watch_resources(&self, kind: assay_spec::load::ResourceKind) -> Watch {
        self.inner.live.watch(&resources_key(kind))
    }

    pub(crate) fn signal_resources(&self, kind: assay_spec::load::ResourceKind) {
        self.signal(&resources_key(kind), Kind::State);
    }

    pub(crate) fn live(&self) -> &Arc<Live> {
        &self.inner.live
    }
}

/// The signal of the documents of one kind: not an execution id (those are UUIDs), and no
/// space (payloads are space-separated).
fn resources_key(kind: assay_spec::load::ResourceKind) -> String {
    format!("resources/{}", kind.as_str())
}

/// The payloads of one batch: `INSTANCE` then `l<id>`/`s<id>` entries, space-separated.
fn payloads(instance: &str, pending: &BTreeSet<(Kind, String)>) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = instance.to_string();
    for (kind, id) in pending {
        if current.len() + id.len() + 2 > MAX_PAYLOAD && current.len() > instance.len() {
            out.push(std::mem::replace(&mut current, instance.to_string()));
        }
        current.push(' ');
        current.push(kind.letter());
        current.push_str(id);
    }
    if current.len() > instance.len() {
        out.push(current);
    }
    out
}

/// The entries of a payload from another store handle; `None` for our own or a foreign one.
fn parse_payload<'a>(instance: &str, payload: &'a str) -> Option<Vec<(Kind, &'a str)>> {
    let mut parts = payload.split(' ');
    let from = parts.next()?;
    if from == instance {
        return None;
    }
    Some(
        parts
            .filter_map(|entry| {
                let kind = match entry.as_bytes().first()? {
                    b'l' => Kind::Logs,
                    b's' => Kind::State,
                    _ => return None,
                };
                Some((kind, &entry[1..]))
            })
            .collect(),
    )
}

/// Send the signals of this process to the others, batched; ends with the store.
async fn send_notifies(
    pool: AnyPool,
    instance: String,
    mut rx: mpsc::UnboundedReceiver<(Kind, String)>,
) {
    while let Some(first) = rx.recv().await {
        let mut pending = BTreeSet::new();
        pending.insert(first);
        while let Ok(next) = rx.try_recv() {
            pending.insert(next);
        }
        for payload in payloads(&instance, &pending) {
            // A lost signal only delays a follower on another server (it looks again on its
            // own): the write it announces is stored already, so an error is not the writer's.
            let _ = sqlx::query("SELECT 1 FROM pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(&pool)
                .await;
        }
        tokio::time::sleep(RELAY_GAP).await;
    }
}

/// `LISTEN` for the signals of other processes and pass them to this process's watchers.
async fn listen(
    live: Weak<Live>,
    url: String,
    location: String,
    instance: String,
    stop: Arc<Notify>,
) {
    loop {
        let connected = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = stop.notified() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(database = %location, error = %e, "cannot listen for live changes; followers look every few seconds");
                    tokio::select! {
                        _ = stop.notified() => return,
                        _ = tokio::time::sleep(RECONNECT) => continue,
                    }
                }
            },
        };
        // What was signalled before now is lost: every watcher looks again.
        match live.upgrade() {
            Some(live) => live.signal_all_here(),
            None => return,
        }
        loop {
            let received = tokio::select! {
                _ = stop.notified() => return,
                received = listener.try_recv() => received,
            };
            let Some(live) = live.upgrade() else { return };
            match received {
                Ok(Some(notification)) => {
                    if let Some(entries) = parse_payload(&instance, notification.payload()) {
                        for (kind, id) in entries {
                            live.signal_here(id, kind);
                        }
                    }
                }
                // The connection was lost and made again (listening again): some signals
                // may be lost.
                Ok(None) => live.signal_all_here(),
                Err(e) => {
                    tracing::warn!(database = %location, error = %e, "lost the connection that listens for live changes");
                    live.signal_all_here();
                    break;
                }
            }
        }
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(RECONNECT) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_split() {
        let mut pending = BTreeSet::new();
        for i in 0..400 {
            pending.insert((Kind::Logs, format!("0190-{i:032}")));
        }
        pending.insert((Kind::State, "x".to_string()));
        let sent = payloads("me", &pending);
        assert!(sent.len() > 1);
        let mut got = BTreeSet::new();
        for p in &sent {
            assert!(p.len() <= MAX_PAYLOAD);
            assert_eq!(parse_payload("me", p), None, "our own");
            for (kind, id) in parse_payload("other", p).unwrap() {
                got.insert((kind, id.to_string()));
            }
        }
        assert_eq!(got, pending);
    }
}
