//! Hooks, their delivery log, webhook attempts and stored Webhook/TestTrigger documents on both
//! databases: secrets only through `hook_secret`, newest deliveries first, masked rows as given.

use crate::common;

use std::collections::BTreeMap;

use assay_spec::load::ResourceKind;
use assay_store::{
    ApplyOutcome, CUT_MARKER, HookDelivery, MAX_DELIVERIES, MAX_ERROR_BYTES, MAX_EVENT_CHARS,
    NewHook, StartedExecution, WebhookAttempt,
};
use common::Env;

async fn hooks_round_trip(env: Env) {
    let store = &env.store;
    assert!(store.list_hooks().await.unwrap().is_empty());
    let new = NewHook {
        name: "github".into(),
        secret: "s3cret-value".into(),
        selector: "app=web".into(),
        events: vec!["push".into()],
        config: BTreeMap::from([("branch".into(), "{{ branch }}".into())]),
    };
    let (hook, created) = store.put_hook(&new).await.unwrap();
    assert!(created);
    assert_eq!(hook.selector, "app=web");
    assert_eq!(hook.events, ["push"]);
    // The secret is in no listing, only where a delivery is verified.
    let listed = serde_json::to_string(&store.list_hooks().await.unwrap()).unwrap();
    assert!(!listed.contains("s3cret-value"), "{listed}");
    let (_, secret) = store.hook_secret("github").await.unwrap();
    assert_eq!(secret, "s3cret-value");
    let (_, created) = store
        .put_hook(&NewHook {
            secret: "rotated".into(),
            ..new.clone()
        })
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(
        env.reopen().await.hook_secret("github").await.unwrap().1,
        "rotated"
    );
    assert!(store.get_hook("nope").await.unwrap_err().is_not_found());
    assert!(
        store
            .put_hook(&NewHook {
                secret: String::new(),
                ..new.clone()
            })
            .await
            .is_err()
    );

    for (i, outcome) in ["rejected", "started"].into_iter().enumerate() {
        store
            .record_hook_delivery(&HookDelivery {
                id: format!("d{i}"),
                hook: "github".into(),
                received_at: 1000 + i as i64,
                event: "push".into(),
                signature: if i == 0 { "invalid" } else { "valid" }.into(),
                outcome: outcome.into(),
                executions: if i == 0 {
                    vec![]
                } else {
                    vec![StartedExecution {
                        workflow: "web".into(),
                        id: "e1".into(),
                        name: "web-1".into(),
                    }]
                },
                error: (i == 0).then(|| "bad signature".to_string()),
            })
            .await
            .unwrap();
    }
    let deliveries = store.list_hook_deliveries("github", 10).await.unwrap();
    let outcomes: Vec<_> = deliveries.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes, ["started", "rejected"]);
    assert_eq!(deliveries[0].executions[0].name, "web-1");
    assert_eq!(deliveries[1].error.as_deref(), Some("bad signature"));
    assert_eq!(
        store.list_hook_deliveries("github", 1).await.unwrap().len(),
        1
    );
    assert!(store.delete_hook("github").await.unwrap());
    assert!(!store.delete_hook("github").await.unwrap());
    // The log outlives the hook.
    assert_eq!(
        store
            .list_hook_deliveries("github", 10)
            .await
            .unwrap()
            .len(),
        2
    );

    for attempt in 1..=3 {
        store
            .record_webhook_attempt(&WebhookAttempt {
                id: format!("a{attempt}"),
                webhook: "slack".into(),
                event_id: "ev".into(),
                event: "end-testworkflow-failed".into(),
                execution_id: "e1".into(),
                attempt,
                at: 2000 + attempt,
                url: "http://127.0.0.1/x".into(),
                headers: BTreeMap::from([("X-Token".into(), "*****".into())]),
                payload: "{}".into(),
                status_code: Some(if attempt < 3 { 500 } else { 200 }),
                error: None,
                delivered: attempt == 3,
            })
            .await
            .unwrap();
    }
    let attempts = store.list_webhook_attempts("slack", 100).await.unwrap();
    let seen: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.status_code, a.delivered))
        .collect();
    assert_eq!(
        seen,
        [
            (3, Some(200), true),
            (2, Some(500), false),
            (1, Some(500), false)
        ]
    );
    assert_eq!(attempts[0].headers["X-Token"], "*****");

    let yaml = "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {name: slack}\n";
    let labels = BTreeMap::from([("team".to_string(), "qa".to_string())]);
    let apply = |y: &'static str| store.apply_resource(ResourceKind::Webhook, "slack", y, &labels);
    assert_eq!(apply(yaml).await.unwrap(), ApplyOutcome::Created);
    assert_eq!(apply(yaml).await.unwrap(), ApplyOutcome::Unchanged);
    let changed =
        "apiVersion: executor.testkube.io/v1\nkind: Webhook\nmetadata: {name: slack}\nspec: {}\n";
    assert_eq!(apply(changed).await.unwrap(), ApplyOutcome::Updated);
    let got = store
        .get_resource(ResourceKind::Webhook, "slack")
        .await
        .unwrap();
    assert_eq!(
        (got.yaml.as_str(), got.labels["team"].as_str()),
        (changed, "qa")
    );
    // Kinds are separate name spaces.
    assert!(
        store
            .get_resource(ResourceKind::TestTrigger, "slack")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        store
            .list_resources(ResourceKind::Webhook)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .delete_resource(ResourceKind::Webhook, "slack")
            .await
            .unwrap()
    );
    assert!(
        store
            .list_resources(ResourceKind::Webhook)
            .await
            .unwrap()
            .is_empty()
    );
}
both!(hooks_round_trip);

fn delivery(id: String, received_at: i64, event: String, error: Option<String>) -> HookDelivery {
    HookDelivery {
        id,
        hook: "flooded".into(),
        received_at,
        event,
        signature: "invalid".into(),
        outcome: "rejected".into(),
        executions: vec![],
        error,
    }
}

/// Issue 14: whoever can reach a hook chose the size of what was stored and how many rows.
/// Each stored field is cut, and only the newest `MAX_DELIVERIES` of a hook are kept.
async fn security_hook_deliveries_are_capped(env: Env) {
    let store = &env.store;
    let huge = "é".repeat(40_000);
    let total = MAX_DELIVERIES + 5;
    for i in 0..total {
        store
            .record_hook_delivery(&delivery(
                format!("d{i:05}"),
                1000 + i,
                huge.clone(),
                Some(huge.clone()),
            ))
            .await
            .unwrap();
    }
    let kept = store
        .list_hook_deliveries("flooded", MAX_DELIVERIES)
        .await
        .unwrap();
    assert_eq!(kept.len() as i64, MAX_DELIVERIES);
    // The oldest went first.
    assert_eq!(kept.last().unwrap().id, "d00005");
    assert_eq!(kept[0].id, format!("d{:05}", total - 1));
    for d in &kept {
        assert_eq!(
            d.event.chars().count(),
            MAX_EVENT_CHARS + CUT_MARKER.chars().count()
        );
        assert!(d.event.ends_with(CUT_MARKER), "{}", d.event);
        let error = d.error.as_deref().unwrap();
        assert!(
            error.len() <= MAX_ERROR_BYTES + CUT_MARKER.len(),
            "{}",
            error.len()
        );
        assert!(error.ends_with(CUT_MARKER));
    }
    // Short fields are stored as given.
    store
        .record_hook_delivery(&delivery("short".into(), 9_999_999, "push".into(), None))
        .await
        .unwrap();
    let newest = &store.list_hook_deliveries("flooded", 1).await.unwrap()[0];
    assert_eq!(
        (newest.event.as_str(), newest.error.as_deref()),
        ("push", None)
    );
    // The table itself holds no more (the listing alone would hide extra rows): pruning
    // everything older than now counts them.
    let report = store.prune(Some(0), None).await.unwrap();
    assert_eq!(report.deliveries, MAX_DELIVERIES as u64);
}
both!(security_hook_deliveries_are_capped);

/// `prune --keep-days` clears hook deliveries and webhook attempts by the same age rule.
async fn prune_clears_old_deliveries(env: Env) {
    let store = &env.store;
    let day = 86_400_000;
    let now = assay_store::now_ms();
    for (id, at) in [("old", now - 10 * day), ("new", now - day)] {
        store
            .record_hook_delivery(&delivery(id.into(), at, "push".into(), None))
            .await
            .unwrap();
        store
            .record_webhook_attempt(&WebhookAttempt {
                id: id.into(),
                webhook: "slack".into(),
                event_id: id.into(),
                event: "end-testworkflow-failed".into(),
                execution_id: "e1".into(),
                attempt: 1,
                at,
                url: "http://127.0.0.1/x".into(),
                headers: BTreeMap::new(),
                payload: "{}".into(),
                status_code: Some(200),
                error: None,
                delivered: true,
            })
            .await
            .unwrap();
    }
    // Counting executions only keeps every delivery.
    assert_eq!(store.prune(None, Some(1)).await.unwrap().deliveries, 0);
    let report = store.prune(Some(7), None).await.unwrap();
    assert_eq!(report.deliveries, 2);
    let hooks: Vec<_> = store
        .list_hook_deliveries("flooded", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(hooks, ["new"]);
    let attempts: Vec<_> = store
        .list_webhook_attempts("slack", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(attempts, ["new"]);
}
both!(prune_clears_old_deliveries);

/// A stored TestTrigger that changes is signalled to the watchers of its kind (what
/// `assay server --kubernetes` waits on instead of rereading): at once in this process, and on
/// PostgreSQL in another store handle (another server) too.
async fn resource_changes_are_signalled(env: Env) {
    use futures::FutureExt;
    let store = &env.store;
    let yaml = "apiVersion: tests.testkube.io/v1\nkind: TestTrigger\nmetadata: {name: t}\n";
    let mut triggers = store.watch_resources(ResourceKind::TestTrigger);
    let mut webhooks = store.watch_resources(ResourceKind::Webhook);
    store
        .apply_resource(ResourceKind::TestTrigger, "t", yaml, &BTreeMap::new())
        .await
        .unwrap();
    assert!(triggers.changed().now_or_never().is_some(), "created");
    // On PostgreSQL every watcher is also signalled when the LISTEN connection is made (what
    // was sent before may be lost), so only SQLite can say what was not signalled.
    let quiet = env.backend == "sqlite";
    if quiet {
        assert!(webhooks.changed().now_or_never().is_none(), "another kind");
    }
    store
        .apply_resource(ResourceKind::TestTrigger, "t", yaml, &BTreeMap::new())
        .await
        .unwrap();
    if quiet {
        assert!(triggers.changed().now_or_never().is_none(), "unchanged");
    } else {
        let _ = triggers.changed().now_or_never();
    }
    assert!(
        store
            .delete_resource(ResourceKind::TestTrigger, "t")
            .await
            .unwrap()
    );
    assert!(triggers.changed().now_or_never().is_some(), "deleted");

    if env.backend == "postgres" {
        let other = assay_store::Store::open(env.config.clone()).await.unwrap();
        let mut remote = store.watch_resources(ResourceKind::TestTrigger);
        // The first watch opens the LISTEN connection; applying until the signal arrives
        // covers a NOTIFY sent before it listens (a lost signal is only a delay by design).
        let mut n = 0;
        loop {
            n += 1;
            other
                .apply_resource(
                    ResourceKind::TestTrigger,
                    "t",
                    &format!("{yaml}# {n}\n"),
                    &BTreeMap::new(),
                )
                .await
                .unwrap();
            if tokio::time::timeout(std::time::Duration::from_secs(2), remote.changed())
                .await
                .is_ok()
            {
                break;
            }
            assert!(n < 30, "no signal from the other handle");
        }
    }
}
both!(resource_changes_are_signalled);
