//! WAIT: a script waits for an event that happens after the command before it started (or for
//! a handle to be known), with a timeout; Ctrl-C cancels it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Session;

impl Session {
    /// `WAIT <kind> [handle] [seconds]`: returns once a matching event arrived (consuming it and
    /// every event before it), or fails after the timeout.
    pub(super) fn wait(&self, args: &str) -> Result<(), String> {
        const KINDS: [&str; 8] = [
            "message", "join", "leave", "away", "back", "peer", "image", "error",
        ];
        let usage =
            "usage: WAIT <message|image|join|leave|away|back|peer|error> [handle] [seconds]";
        let mut words: Vec<&str> = args.split_whitespace().collect();
        let kind = words.first().map(|k| k.to_ascii_lowercase()).ok_or(usage)?;
        if !KINDS.contains(&kind.as_str()) {
            return Err(format!("WAIT: unknown event {kind:?}; {usage}"));
        }
        words.remove(0);
        let mut secs = 10.0;
        if let Some(last) = words.last()
            && let Ok(v) = last.parse::<f64>()
        {
            if !(0.0..=3600.0).contains(&v) {
                return Err(format!("WAIT: {v} is not a timeout (0-3600 seconds)"));
            }
            secs = v;
            words.pop();
        }
        let handle = match words.as_slice() {
            [] => None,
            [h] => Some(h.to_string()),
            _ => return Err(usage.into()),
        };
        if kind == "peer" && handle.is_none() {
            return Err("WAIT peer needs a handle: WAIT peer <handle> [seconds]".into());
        }
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let mut q = self.shared.events.lock().unwrap();
        loop {
            if self.shared.interrupted.swap(false, Ordering::Relaxed) {
                return Err("WAIT cancelled".into());
            }
            if kind == "peer" {
                let h = handle.as_deref().unwrap_or_default();
                if self.shared.peers.lock().unwrap().contains(h) {
                    return Ok(());
                }
            } else if let Some(i) = q.iter().position(|(e, at)| {
                *at >= self.mark
                    && e.kind() == kind
                    && handle.as_deref().is_none_or(|h| e.handle() == Some(h))
            }) {
                q.drain(..=i);
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let who = handle.map(|h| format!(" for {h}")).unwrap_or_default();
                return Err(format!("WAIT: no {kind} event{who} within {secs}s"));
            }
            q = self
                .shared
                .arrived
                .wait_timeout(q, left.min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }
}
