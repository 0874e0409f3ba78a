//! Greeting the peers we learn of: our JOIN (when no discovery speaks for us), AWAY and the
//! extension hello, at most 64 a second, and spread over time by the size of the LAN so that
//! a newcomer is not greeted by every host at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;

use super::{Chat, GREETS_PER_SEC, State};

/// Peers learned in the last second up to which the LAN counts as quiet.
const QUIET_PEERS: usize = 4;

use crate::codec::{self, Message};

impl Chat {
    /// Tells a newly learned peer about us: at once without a discovery of our own; with one,
    /// at a moment spread by the size of the LAN (rate-limited either way: a flood of fake
    /// entries is not reflected to a flood of addresses).
    pub(super) fn greet(&mut self, now: Instant, addr: SocketAddr) {
        if self.state != State::Joined {
            return;
        }
        // A peer that joins a quiet LAN, on which we have run a while, is greeted at once (its
        // extensions, encryption among them, are known before anyone talks to it). In a crowd,
        // or while a floor powers up (we just started, or peers keep coming), the greeting is
        // spread.
        while self
            .learned
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.learned.pop_front();
        }
        if self.learned.len() < 64 {
            self.learned.push_back(now);
        }
        let settled = self
            .started
            .is_some_and(|t| now.duration_since(t) > Duration::from_secs(2));
        let quiet = settled && self.learned.len() <= QUIET_PEERS && self.peers.len() < 50;
        if self.s.local_discovery && !quiet {
            let mut z = u64::from(self.s.port) ^ 0x9e37_79b9_7f4a_7c15;
            for b in addr.to_string().bytes().chain(self.me.as_str().bytes()) {
                z = (z ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            let frac = (z >> 11) as f64 / (1u64 << 53) as f64;
            if self.greet_later.len() < 4096 {
                self.greet_later.push((now, frac, addr));
                let at = self.greet_at(now, frac);
                self.greet_next = Some(self.greet_next.map_or(at, |t| t.min(at)));
            }
            return;
        }
        self.greet_now(now, addr);
    }

    /// When a peer learned at `since`, with draw `frac`, is greeted: `frac` of a second per
    /// fifteen peers we know now (at most five minutes), a moment fixed by the two addresses.
    /// Every host learns of a newcomer at once and would greet it at once; and a floor powering
    /// up greets each pair once, about fifteen hellos (and their answers) a second per host,
    /// whatever the number of hosts. The spread is taken again at each look, with the peers
    /// known then (RTCP's timer reconsideration): the first hosts of a cold start are learned
    /// while the table is small, and would otherwise be greeted by everyone together.
    fn greet_at(&self, since: Instant, frac: f64) -> Instant {
        // In whole milliseconds: this runs for every waiting peer at each look.
        let spread_ms = (self.peers.len() as u64 * 1000 / 15).min(300_000);
        since + Duration::from_millis((spread_ms as f64 * frac) as u64)
    }

    /// Greets the peers whose moment came (at most [`GREETS_PER_SEC`] a second; the rest a
    /// second later).
    pub(super) fn greet_due(&mut self, now: Instant) {
        if self.greet_next.is_none_or(|t| t > now) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.greet_later)
            .into_iter()
            .partition(|(t, f, _)| self.greet_at(*t, *f) <= now);
        self.greet_later = later;
        for (_, _, addr) in due {
            // Gone meanwhile, or already introduced (we answered its hello first).
            let Some(h) = self.peers.at(addr) else {
                continue;
            };
            if self.state != State::Joined || self.peers.map()[h].hello_sent.is_some() {
                continue;
            }
            if !self.greet_now(now, addr) {
                self.greet_later
                    .push((now + Duration::from_secs(1), 0.0, addr));
            }
        }
        // While the table grows these are lower bounds: a tick at one may find nothing due
        // yet, and looks again. If it shrinks, a greeting waits at most until the moment
        // reckoned with the larger table.
        // Greetings go in batches, a twentieth of the spread apart (a second at most): a
        // crowded LAN's thousand waiting peers are not scanned a thousand times, and a small
        // one's hellos wait a few milliseconds at most.
        let batch = Duration::from_millis((self.peers.len() as u64 * 10 / 3).min(1000));
        self.greet_next = self
            .greet_later
            .iter()
            .map(|(t, f, _)| self.greet_at(*t, *f))
            .min()
            .map(|t| t.max(now + batch));
    }

    /// Greets `addr` at once if its greeting is still waiting (we are about to talk to it).
    pub(super) fn greet_before_talking(&mut self, addr: SocketAddr) {
        let Some(i) = self.greet_later.iter().position(|(_, _, a)| *a == addr) else {
            return;
        };
        self.greet_later.swap_remove(i);
        let introduced = self
            .peers
            .at(addr)
            .is_some_and(|h| self.peers.map()[h].hello_sent.is_some());
        if introduced || self.state != State::Joined {
            return;
        }
        let now = self.clock;
        if !self.greet_now(now, addr) {
            self.greet_later
                .push((now + Duration::from_secs(1), 0.0, addr));
        }
    }

    /// Our JOIN (without a discovery speaking for us), AWAY and hello to `addr`; false when
    /// this second's budget is spent.
    fn greet_now(&mut self, now: Instant, addr: SocketAddr) -> bool {
        let (since, left) = &mut self.greet_budget;
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *left = GREETS_PER_SEC;
        }
        if *left == 0 {
            debug!("greeting {addr} skipped: too many new peers this second");
            return false;
        }
        *left -= 1;
        self.stats.greeted += 1;
        let me = self.me.clone();
        let tcp = self
            .peers
            .at(addr)
            .is_some_and(|h| self.peers.map()[h].forms.tcp);
        let join = Message::Join {
            handle: me.clone(),
            port: self.s.port,
        };
        let away = self.away.then_some(Message::Away { handle: me });
        // With our discovery speaking for us, every host's discovery has told its users of us
        // already: a JOIN to each would only double the traffic of a crowded LAN.
        let join = (!self.s.local_discovery).then_some(join);
        for m in join.into_iter().chain(away) {
            if let Ok(b) = codec::encode(&m) {
                if tcp {
                    self.out.tcp.push((addr, b));
                } else {
                    self.out.udp.push((addr, b));
                }
            }
        }
        // Our extensions (SLCP.md "Extensions"): a plain peer drops it as an unknown command.
        self.hello_to(addr, tcp);
        if let Some(h) = self.peers.at(addr).cloned()
            && let Some(p) = self.peers.get_mut(&h)
        {
            p.hello_sent = Some(now);
        }
        true
    }
}
