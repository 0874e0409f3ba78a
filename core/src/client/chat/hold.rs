//! Messages that wait for a peer's answer to our hello: a peer greeted a moment ago (in a crowd
//! or our first seconds the greeting is spread, and goes out just before our first words) has
//! not yet said whether it encrypts, and a message routed now would go in the clear to a peer
//! that could have read it sealed.

use std::time::{Duration, Instant};

use super::{Chat, ConnId, Encryption};
use crate::codec::Handle;

/// How long a message waits for the answer to our hello: a LAN's round trip is well under a
/// millisecond, so a peer that has not answered by then is a plain SLCP peer (or gone).
pub(super) const HELLO_WAIT: Duration = Duration::from_millis(500);
/// Messages waiting at most, all peers together.
const MAX_WAITING: usize = 256;

/// A message waiting for its peer's answer to our hello.
#[derive(Debug)]
pub(super) struct Held {
    until: Instant,
    to: Handle,
    text: String,
    /// The prompt's MSG command, answered when the message goes.
    reply: Option<(ConnId, u64)>,
}

impl Chat {
    /// Greets `to` if it still waits for our hello (it learns we are slcp before it reads
    /// us), then says whether a message to it must wait for the answer.
    pub(super) fn must_wait_for_hello(&mut self, to: &Handle) -> bool {
        if let Some(addr) = self.peers.get(to).map(|p| p.addr) {
            self.greet_before_talking(addr);
        }
        self.awaits_hello(to)
    }

    /// Whether a message to `to` must wait for its hello's answer: we encrypt, its
    /// extensions are unknown, and we greeted it less than [`HELLO_WAIT`] ago.
    fn awaits_hello(&self, to: &Handle) -> bool {
        if self.s.encryption == Encryption::Off || self.secure.keys.is_none() {
            return false;
        }
        self.peers.get(to).is_some_and(|p| {
            p.exts.is_none()
                && p.hello_sent
                    .is_some_and(|t| self.clock.duration_since(t) < HELLO_WAIT)
        })
    }

    /// Keeps `text` for `to` until its hello is answered or the wait is over. With `reply`,
    /// that prompt's MSG command is answered then, with what became of it (and the message
    /// goes in the history); without, a failure is reported.
    pub(super) fn hold_for_hello(
        &mut self,
        to: &Handle,
        text: &str,
        reply: Option<(ConnId, u64)>,
    ) -> Result<(), String> {
        if self.awaiting_hello.len() >= MAX_WAITING {
            return Err(format!(
                "{MAX_WAITING} messages already wait for new peers to answer our greeting; try again in a second"
            ));
        }
        let until = self
            .peers
            .get(to)
            .and_then(|p| p.hello_sent)
            .map_or(self.clock, |t| t + HELLO_WAIT);
        self.awaiting_hello.push(Held {
            until,
            to: to.clone(),
            text: text.to_owned(),
            reply,
        });
        Ok(())
    }

    /// Sends what waited for `who` (it answered our hello), or with `None` what waited long
    /// enough: each is routed again, now that the peer's extensions are known (or it is
    /// known not to answer).
    pub(super) fn release_held_messages(&mut self, now: Instant, who: Option<&Handle>) {
        if self.awaiting_hello.is_empty() {
            return;
        }
        let (go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_hello)
            .into_iter()
            .partition(|h| match who {
                Some(w) => h.to == *w,
                None => h.until <= now,
            });
        self.awaiting_hello = keep;
        for Held {
            to, text, reply, ..
        } in go
        {
            match reply {
                Some((conn, id)) => {
                    let r = self.send_msg(&to, &text).map(|_| Vec::new());
                    self.reply(conn, id, r);
                }
                None => {
                    if let Err(e) = self.send_msg_unrecorded(&to, &text) {
                        self.report(format!("message to {to} not sent: {e}"));
                    }
                }
            }
        }
    }

    /// When the next held message's wait is over.
    pub(super) fn held_deadline(&self) -> Option<Instant> {
        self.awaiting_hello.iter().map(|h| h.until).min()
    }
}
