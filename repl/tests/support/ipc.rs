//! An IPC connection to a test's client, with the events it has seen and waits for what must
//! come (bounded).

use std::time::{Duration, Instant};

use slcp_core::ipc::{Event, IpcClient, ServerMsg};

/// An IPC connection with the events it has seen.
pub struct Ipc {
    pub c: IpcClient,
    pub peers: Vec<String>,
    pub events: Vec<Event>,
}

impl Ipc {
    /// Wraps an attached client and its hello.
    pub fn new(c: IpcClient, hello: ServerMsg) -> Ipc {
        let ServerMsg::Hello { peers, .. } = &hello else {
            panic!("{hello:?}")
        };
        Ipc {
            peers: peers.clone(),
            c,
            events: Vec::new(),
        }
    }

    /// Runs a command; returns its lines or its error.
    pub fn cmd(&mut self, line: &str) -> Result<Vec<String>, String> {
        let id = self.c.send(line).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no reply to {line:?}");
            self.c.set_timeout(Some(left)).unwrap();
            match self.c.recv().unwrap().expect("client closed") {
                ServerMsg::Reply {
                    id: got,
                    lines,
                    error,
                } if got == id => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(lines),
                    };
                }
                ServerMsg::Event { event, .. } => self.events.push(event),
                _ => {}
            }
        }
    }

    /// Waits until an event satisfying `f` arrives (or has arrived), within `t`.
    pub fn wait_event(&mut self, t: Duration, f: impl Fn(&Event) -> bool) -> Option<Event> {
        if let Some(i) = self.events.iter().position(&f) {
            return Some(self.events.remove(i));
        }
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.c.set_timeout(Some(left)).unwrap();
            match self.c.recv() {
                Ok(Some(ServerMsg::Event { event, .. })) => {
                    if f(&event) {
                        return Some(event);
                    }
                    self.events.push(event);
                }
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(_) => return None,
            }
        }
    }

    /// Asserts that `want` arrives (or has arrived) within `t`.
    pub fn expect_event(&mut self, t: Duration, want: Event) {
        let got = self.wait_event(t, |e| *e == want);
        assert!(
            got.is_some(),
            "{want:?} did not arrive within {t:?}; other events: {:?}",
            self.events
        );
    }

    /// Waits until `WHO -v` shows `who` with `needle` in its row (`slcpx:` once its extension
    /// hello came, `encrypted` once a session is up), within `t`.
    pub fn wait_who(&mut self, who: &str, needle: &str, t: Duration) {
        let deadline = Instant::now() + t;
        loop {
            let rows = self.cmd("WHO -v").unwrap_or_default();
            if rows
                .iter()
                .any(|r| r.starts_with(&format!("{who} ")) && r.contains(needle))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "WHO never showed {who} with {needle:?}: {rows:?}"
            );
        }
    }

    /// Waits until every handle of `want` is known (from the hello or join events), within `t`.
    pub fn wait_peers(&mut self, want: &[&str], t: Duration) -> bool {
        let deadline = Instant::now() + t;
        loop {
            for e in self.events.drain(..).collect::<Vec<_>>() {
                if let Event::Join { handle, .. } = &e {
                    self.peers.push(handle.clone());
                }
            }
            if want.iter().all(|w| self.peers.iter().any(|p| p == w)) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Some(Event::Join { handle, .. }) =
                self.wait_event(left, |e| matches!(e, Event::Join { .. }))
            {
                self.peers.push(handle);
            }
        }
    }
}
