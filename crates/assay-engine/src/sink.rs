//! The engine's side of the event channel.

use tokio::sync::mpsc;

use crate::event::Event;

/// Sends events; waits when the channel is full (back-pressure). A receiver that went away is
/// not an error: the run goes on and its outcome is still returned.
#[derive(Debug, Clone)]
pub(crate) struct EventSink {
    tx: mpsc::Sender<Event>,
}

impl EventSink {
    pub(crate) fn new(tx: mpsc::Sender<Event>) -> Self {
        EventSink { tx }
    }

    pub(crate) async fn send(&self, event: Event) {
        let _ = self.tx.send(event).await;
    }
}
