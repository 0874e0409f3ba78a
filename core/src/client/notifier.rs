//! Desktop notifications on a thread of their own (a D-Bus call can take a while; the event
//! loop never waits for one), through the freedesktop notification service (notify-rust).

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use log::{debug, warn};

use super::chat::Notification;
use crate::render::render;

/// Notifications waiting for the worker at most (more are dropped: they would be stale).
const QUEUE: usize = 16;

/// The handle the loop keeps.
pub struct Notifier {
    tx: SyncSender<Notification>,
    failed: Arc<Mutex<Option<(String, String)>>>,
    reported: bool,
}

/// `s` as notification text: foreign characters made visible, and the markup some servers
/// read in a body (`<b>`, `&amp;`) shown as the characters they are.
fn plain(s: &str) -> String {
    render(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn work(rx: Receiver<Notification>, failed: Arc<Mutex<Option<(String, String)>>>, wake: impl Fn()) {
    for n in rx {
        let r = notify_rust::Notification::new()
            .appname("slcp")
            .summary(&plain(&n.summary))
            .body(&plain(&n.body))
            .timeout(notify_rust::Timeout::Milliseconds(6000))
            .show();
        match r {
            Ok(_) => debug!("notified: {}", n.summary),
            Err(e) => {
                if let Ok(mut f) = failed.lock() {
                    *f = Some((e.to_string(), n.from.clone()));
                }
                wake();
                // No service: the chat rings the bell from now on; nothing more comes here.
                return;
            }
        }
    }
}

impl Notifier {
    /// Starts the worker; `wake` wakes the event loop when the service turns out missing.
    pub fn start(wake: impl Fn() + Send + 'static) -> Notifier {
        let (tx, rx) = sync_channel(QUEUE);
        let failed = Arc::new(Mutex::new(None));
        let f = failed.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || work(rx, f, wake))
        {
            warn!("no desktop notifications: {e}");
        }
        Notifier {
            tx,
            failed,
            reported: false,
        }
    }

    /// Queues a notification (dropped when the worker is far behind).
    pub fn send(&self, n: Notification) {
        match self.tx.try_send(n) {
            Ok(()) => {}
            Err(TrySendError::Full(n)) => debug!("notification dropped: {}", n.summary),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Why the service is missing, and whose notification failed; once.
    pub fn failure(&mut self) -> Option<(String, String)> {
        if self.reported {
            return None;
        }
        let f = self.failed.lock().ok()?.take();
        self.reported = f.is_some();
        f
    }
}
