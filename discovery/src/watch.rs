//! Watching other hosts, so that a host switched off is noticed within a refresh interval
//! (README "Discovery at scale"). Each slcp discovery is watched by the [`WATCHERS`]
//! discoveries that rank first for it (rendezvous hashing, as for WHO answers). A watcher that
//! misses the host's refresh asks it, from the discovery port, with a KNOWUSERS naming its
//! users (an slcp discovery answers with their JOINs); when [`ASKS`] questions go unanswered it
//! says the users' LEAVE on the LAN. Another discovery believes that LEAVE only when it has
//! itself heard nothing from that host for a refresh interval, and the host, if it is alive
//! after all, answers it by announcing its users again. Everyone else never drops a user for
//! one lost refresh: only the watchers ask, so the cost is two questions per lost refresh.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::info;
use slcp_core::codec::{self, Handle, Message, UserEntry};

use super::{MAX_ENTRIES, Out, Table};
use crate::relay::AGAIN;
use crate::relay::Heard;

/// Discoveries that watch one host.
pub const WATCHERS: usize = 2;
/// Questions a watcher asks a silent host before it says its users left.
pub const ASKS: u8 = 3;
/// Between two questions (a LAN answers within a millisecond; a busy host within this).
const ASK_GAP: Duration = Duration::from_millis(300);
/// A host announces its users again on a LEAVE said for them at most this often.
const REFUTE_GAP: Duration = Duration::from_secs(5);
/// Users named in one question that get an answer, one datagram each (R's set-up runs 2-3
/// users per host). Each answer is shorter than its entry in the question: a question with a
/// forged source gets its victim no more bytes than it took.
const ANSWERED: usize = 8;

/// What the relay keeps to watch other hosts.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Each time a speaker's discovery port was heard, oldest first, with its index in
    /// `Relay::discoveries`; an entry counts while it is the speaker's last. The front is kept
    /// current, so its deadline is the next host that can be late (a queue: a datagram costs
    /// O(1), where a sorted set cost the simulator a tenth of its time).
    heard: VecDeque<(Instant, usize)>,
    /// Hosts being asked: questions sent, when the next is due.
    asking: BTreeMap<IpAddr, (u8, Instant)>,
    /// When this host last announced its users against a LEAVE said for them.
    refuted: Option<Instant>,
}

/// How long after a refresh was due a watcher waits before it asks: refreshes go out on the
/// dot, and the hosts' intervals differ by the few users their tables may differ by (a user
/// is 1/18 s of the interval; a two-hundredth of it is five users at a thousand).
fn grace(interval: Duration) -> Duration {
    Duration::from_millis(250) + interval / 200
}

impl crate::relay::Relay {
    /// Drops the times at the front that are no speaker's last any more (bounded: past
    /// [`MAX_ENTRIES`] times four, only the last of each is kept).
    fn forget_heard(&mut self) {
        let last = |d: &indexmap::IndexMap<IpAddr, Heard>, (t, i): &(Instant, usize)| {
            d.get_index(*i).is_some_and(|(_, h)| h.at == *t)
        };
        while let Some(front) = self.watch.heard.front() {
            if last(&self.discoveries, front) {
                break;
            }
            self.watch.heard.pop_front();
        }
        if self.watch.heard.len() > 4 * MAX_ENTRIES {
            let d = &self.discoveries;
            self.watch.heard.retain(|x| last(d, x));
        }
    }
}

impl Table {
    /// A datagram came from the discovery port of `ip`, a speaker, `i` in
    /// `Relay::discoveries` (which has it already).
    pub(crate) fn watch_heard(&mut self, now: Instant, ip: IpAddr, i: usize) {
        let Some(r) = self.relay.as_mut() else { return };
        let w = &mut r.watch;
        w.heard.push_back((now, i));
        if !w.asking.is_empty() {
            w.asking.remove(&ip);
        }
        r.forget_heard();
    }

    /// Whether `src` is another host's slcp discovery (it has said a JOIN from its port).
    pub(crate) fn is_speaker(&self, src: SocketAddr) -> bool {
        self.relay.as_ref().is_some_and(|r| {
            src.port() == r.whoisport
                && !self.is_local(src.ip())
                && r.discoveries.get(&src.ip()).is_some_and(|h| h.speaks)
        })
    }

    /// `src` said a JOIN from its discovery port: an slcp discovery, to watch.
    pub(crate) fn spoke(&mut self, src: SocketAddr) {
        if self.is_local(src.ip()) {
            return;
        }
        let Some(r) = self.relay.as_mut() else { return };
        if src.port() != r.whoisport {
            return;
        }
        // Watched only while its last word is kept (`discoveries` is bounded).
        if let Some((i, _, h)) = r.discoveries.get_full_mut(&src.ip())
            && !h.speaks
        {
            h.speaks = true;
            r.watch.heard.push_back((h.at, i));
        }
    }

    /// Whether this discovery is one of the [`WATCHERS`] of `ip`: the speakers heard lately
    /// that outrank it for `ip` are fewer.
    fn watches(&self, now: Instant, ip: IpAddr) -> bool {
        self.relay.is_some() && self.outranked(now, ip, true) < WATCHERS
    }

    /// The users of `ip` in the table, learned from its discovery (they refresh).
    fn users_at(&self, ip: IpAddr) -> Vec<(Handle, u16)> {
        if !self.per_ip.contains_key(&ip) {
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|(_, e)| e.ip == ip && e.refreshed)
            .map(|(h, e)| (h.clone(), e.port))
            .collect()
    }

    /// Hosts whose refresh is overdue (asked, when we watch them), questions due, and the
    /// users of a host that answered none of them (said to have left).
    pub(crate) fn watch_tick(&mut self, now: Instant, out: &mut Out) {
        let interval = self.refresh_interval();
        let after = interval + grace(interval);
        loop {
            let Some(r) = self.relay.as_mut() else { return };
            r.forget_heard();
            let Some(&(t, i)) = r.watch.heard.front() else {
                break;
            };
            if now < t + after {
                break;
            }
            r.watch.heard.pop_front();
            let Some((&ip, _)) = r.discoveries.get_index(i) else {
                continue;
            };
            if self.per_ip.contains_key(&ip) && self.watches(now, ip) {
                info!("{ip} missed its refresh; asking it");
                if let Some(r) = self.relay.as_mut() {
                    r.watch.asking.insert(ip, (0, now));
                }
            }
        }
        let Some(r) = self.relay.as_ref() else { return };
        let due: Vec<(IpAddr, u8)> = r
            .watch
            .asking
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(ip, (n, _))| (*ip, *n))
            .collect();
        for (ip, n) in due {
            let users = self.users_at(ip);
            let Some(r) = self.relay.as_mut() else { return };
            if users.is_empty() {
                r.watch.asking.remove(&ip);
            } else if n < ASKS {
                r.watch.asking.insert(ip, (n + 1, now + ASK_GAP));
                let list: Vec<UserEntry> = users
                    .iter()
                    .map(|(h, port)| UserEntry::new(h.clone(), ip, *port))
                    .collect();
                let to = SocketAddr::new(ip, r.whoisport);
                if let Some(b) = codec::encode_knowusers_for(&list, &Default::default())
                    .into_iter()
                    .next()
                {
                    out.push((to, b));
                }
            } else {
                r.watch.asking.remove(&ip);
                info!("{ip} answered none of {ASKS} questions: its users left");
                self.stats.silent += users.len() as u64;
                for (h, _) in users {
                    self.take(&h);
                    let leave = Message::Leave { handle: h.clone() };
                    self.relay(now, &h, &leave, out);
                    self.say(now, &leave, out);
                }
            }
        }
    }

    /// A user of `ip` outlived the remote expiry (three refreshes in a row lost, or a host
    /// its watchers did not tell us about): asks its host first when it is an slcp discovery.
    /// Returns whether the user is kept until the answer (or the silence) decides.
    pub(crate) fn ask_before_drop(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.is_local(ip) {
            return false;
        }
        let Some(r) = self.relay.as_mut() else {
            return false;
        };
        if !r.discoveries.get(&ip).is_some_and(|h| h.speaks) {
            return false;
        }
        r.watch.asking.entry(ip).or_insert((0, now));
        true
    }

    /// When [`Table::watch_tick`] must run next, for a refresh `interval`.
    pub(crate) fn watch_deadline(&self, interval: Duration) -> Option<Instant> {
        let w = &self.relay.as_ref()?.watch;
        let overdue = w
            .heard
            .front()
            .map(|(t, _)| *t + interval + grace(interval));
        let asks = w.asking.values().map(|(_, t)| *t).min();
        overdue.into_iter().chain(asks).min()
    }

    /// Broadcasts `m` from the discovery port, and again [`AGAIN`] later.
    fn say(&mut self, now: Instant, m: &Message, out: &mut Out) {
        let Some(r) = self.relay.as_mut() else { return };
        if let Ok(b) = codec::encode(m) {
            for t in &r.targets {
                out.push((*t, b.clone()));
            }
            r.again.extend(AGAIN.iter().map(|a| (now + *a, b.clone())));
        }
    }

    /// A LEAVE for `h` from `src`, which does not speak for it: a watcher saying its host is
    /// silent. Believed when `src` is an slcp discovery of another host and we too have heard
    /// nothing from `h` for a refresh interval; for one of our users, answered by announcing
    /// it again. Returns whether it was taken either way.
    pub(crate) fn said_silent(
        &mut self,
        now: Instant,
        h: &Handle,
        src: SocketAddr,
        out: &mut Out,
    ) -> bool {
        let Some(r) = self.relay.as_ref() else {
            return false;
        };
        let Some(e) = self.entries.get(h).cloned() else {
            return false;
        };
        if !self.is_speaker(src) || e.ip == src.ip() {
            return false;
        }
        if self.is_local(e.ip) {
            if r.watch.refuted.is_some_and(|t| now < t + REFUTE_GAP) {
                return true;
            }
            info!("{src} says {h} left, and it is here: announcing it again");
            if let Some(r) = self.relay.as_mut() {
                r.watch.refuted = Some(now);
            }
            let join = Message::Join {
                handle: h.clone(),
                port: e.port,
            };
            self.say(now, &join, out);
            return true;
        }
        if !e.refreshed || now.duration_since(e.last_seen) < self.refresh_interval() {
            return false;
        }
        info!("{src} says {h} left, and we have not heard it for an interval either");
        self.stats.silent += 1;
        self.take(h);
        let leave = Message::Leave { handle: h.clone() };
        self.relay(now, h, &leave, out);
        true
    }

    /// A KNOWUSERS from another discovery's port that names only users of this host: a
    /// watcher asking whether they are still here. Each gets its JOIN back, or its LEAVE if it
    /// is gone (so the asker drops it rather than ask again). Returns whether it was such a
    /// question.
    pub(crate) fn asked_alive(
        &mut self,
        now: Instant,
        src: SocketAddr,
        users: &[UserEntry],
        out: &mut Out,
    ) -> bool {
        let Some(r) = self.relay.as_ref() else {
            return false;
        };
        if src.port() != r.whoisport
            || self.is_local(src.ip())
            || users.is_empty()
            || !users.iter().all(|u| self.is_local(u.ip))
        {
            return false;
        }
        if !self.who_allowed(now, src) {
            return true;
        }
        let here: Vec<Message> = users
            .iter()
            .take(ANSWERED)
            .map(|u| match self.entries.get(&u.handle) {
                Some(e) if self.locals.contains(&u.handle) => Message::Join {
                    handle: u.handle.clone(),
                    port: e.port,
                },
                _ => Message::Leave {
                    handle: u.handle.clone(),
                },
            })
            .collect();
        for m in here {
            if let Ok(b) = codec::encode(&m) {
                out.push((src, b));
            }
        }
        true
    }
}
