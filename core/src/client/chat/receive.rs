//! What the client does with what arrives: datagrams and TCP lines from peers, answers of
//! discoveries, bounced datagrams and refused connections.
//!
//! Who sent something is decided from the source address (see [`super::super::peers`]), never
//! from the handle a payload names; a name that does not match its source is shown as what it is.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::parts::Took;
use super::senders::Sender;
use super::{Chat, State};
use crate::client::peers::{Claim, Peer};
use crate::codec::{self, Form, Handle, Message, UserEntry};
use crate::ipc::Event;
use crate::net;
use crate::plugin::PluginEvent;
use crate::render::render;

/// How a line reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UDP datagram.
    Udp,
    /// A line on a TCP connection to our port.
    Tcp,
}

/// Entries of one KNOWUSERS looked at, at most (the rest of a huge list is dropped).
const MAX_ENTRIES: usize = 1024;
/// Rounds a peer's own discovery may omit it before it counts as gone (one lost answer is not
/// enough).
const MISSED_ROUNDS: u8 = 2;

impl Chat {
    /// Handles one received datagram.
    pub fn datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams += 1;
        self.lines(now, src, bytes, Transport::Udp);
    }

    /// Handles SLCP lines that arrived on a TCP connection from `src`.
    pub fn tcp_lines(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) {
        self.lines(now, src, bytes, Transport::Tcp);
    }

    fn lines(&mut self, now: Instant, src: SocketAddr, bytes: &[u8], via: Transport) {
        self.clock = now;
        let terminated = bytes.ends_with(b"\n");
        if crate::e2e::is_e2e(bytes) {
            match crate::e2e::decode(bytes) {
                Some(w) => self.e2e_datagram(now, src, w, via, terminated),
                None => {
                    self.stats.malformed += 1;
                    debug!("dropped a malformed encryption datagram from {src}");
                }
            }
            return;
        }
        if crate::ext::is_ext(bytes) {
            match crate::ext::decode(bytes) {
                Some(m) => self.ext_message(now, src, m, via, terminated),
                None => {
                    self.stats.malformed += 1;
                    debug!("dropped a malformed extension message from {src}");
                }
            }
            return;
        }
        for r in codec::decode_datagram_forms(bytes) {
            match r {
                Ok((m, form)) => self.message(now, src, m, form, via, terminated),
                Err(e) => {
                    self.stats.malformed += 1;
                    debug!("dropped a malformed line from {src}: {e}");
                }
            }
        }
    }

    /// A datagram we sent to `addr` bounced (ICMP port unreachable): nobody listens there on UDP.
    pub fn unreachable(&mut self, now: Instant, addr: SocketAddr) {
        if self.s.local_discovery && addr == self.local_discovery_addr() {
            // Our discovery is gone: every discovery hears us again, as without one.
            warn!("this host's discovery at {addr} is gone; broadcasting JOIN and WHO again");
            self.s.local_discovery = false;
            if self.state == State::Joined {
                let join = Message::Join {
                    handle: self.me.clone(),
                    port: self.s.port,
                };
                self.broadcast(&join);
                self.ask_who(now);
            }
            return;
        }
        for w in self.peers.probe_bounced(addr) {
            info!(
                "{} at {} is gone; {} takes it over",
                w.handle, w.old, w.addr
            );
            self.take_over(now, &w.handle, w.addr);
        }
        let Some(h) = self.peers.at(addr).cloned() else {
            return;
        };
        let p = self.peers.get_mut(&h).expect("peer");
        if p.own_port {
            // It used to receive there: it is gone.
            self.gone(&h, "its port is closed");
        } else if !p.forms.tcp {
            // It never showed a UDP socket: one that takes everything over TCP.
            info!("{h} has no UDP socket at {addr}; sending to it over TCP");
            p.forms.tcp = true;
            if let Some(b) = p.last_msg.take() {
                self.out.tcp.push((p.addr, b));
            }
        }
    }

    /// A TCP connection to `addr` was refused.
    pub fn tcp_refused(&mut self, addr: SocketAddr) {
        let Some(h) = self.peers.at(addr).cloned() else {
            return;
        };
        let p = &self.peers.map()[&h];
        if p.tcp_ok || p.forms.tcp {
            self.gone(&h, "it refuses connections where it used to accept them");
        }
    }

    /// A TCP connection to `addr` was accepted.
    pub fn tcp_accepted(&mut self, addr: SocketAddr) {
        if let Some(h) = self.peers.at(addr).cloned()
            && let Some(p) = self.peers.get_mut(&h)
        {
            p.tcp_ok = true;
        }
    }

    fn gone(&mut self, h: &Handle, why: &str) {
        info!("{h} is gone: {why}");
        self.e2e_forget(h);
        if self.peers.remove(h).is_some() {
            self.event(Event::Leave {
                handle: h.to_string(),
            });
        }
    }

    /// Whether `src` is a discovery service on this host (its relays are believed).
    fn local_discovery(&self, src: SocketAddr) -> bool {
        src.port() == self.s.whoisport && net::is_local(src.ip(), &self.s.local_ips)
    }

    fn message(
        &mut self,
        now: Instant,
        src: SocketAddr,
        m: Message,
        form: Form,
        via: Transport,
        terminated: bool,
    ) {
        match m {
            Message::KnowUsers(entries) => self.knowusers(now, src, entries, form, via),
            Message::Join { handle, port } => {
                if handle == self.me {
                    self.stats.refused += 1;
                    return debug!("JOIN for our handle from {src} ignored");
                }
                let addr = SocketAddr::new(src.ip(), port);
                if self.claim(now, &handle, addr) {
                    self.seen(now, &handle, src, via, terminated);
                }
                self.flush_pending_msgs(now);
            }
            Message::Leave { handle } => {
                // Our discovery speaks of the user it listed, not of one that took the handle
                // over since (a claim it never saw).
                let listed = self
                    .peers
                    .get(&handle)
                    .is_some_and(|p| p.listed == Some(p.addr));
                if (self.local_discovery(src) && listed) || self.peers.speaks_for(&handle, src) {
                    self.gone(&handle, "it left");
                } else if self.peers.get(&handle).is_some() {
                    self.stats.refused += 1;
                    info!("LEAVE {handle} from {src} refused: not its address");
                }
            }
            Message::Away { handle } | Message::Back { handle } if handle == self.me => {}
            Message::Away { handle } => self.presence(now, &handle, src, true),
            Message::Back { handle } => self.presence(now, &handle, src, false),
            Message::Msg { handle, text } => {
                self.stats.messages_in += 1;
                match self.plain_sender(&handle, src) {
                    Sender::Peer(h) => {
                        self.seen(now, &h, src, via, terminated);
                        let p = self.peers.get_mut(&h).expect("peer");
                        p.forms.learn(&form);
                        if via == Transport::Udp {
                            p.forms.recipient = handle == self.me;
                        }
                        // A part of a long text waits for the others.
                        if let Some((k, n, rest)) = codec::part_of(&text) {
                            let mut flushed = Vec::new();
                            let took = self.parts.add(now, &h, k, n, rest, &mut flushed);
                            for (f, t) in flushed {
                                self.deliver(f.to_string(), t, "received");
                            }
                            if let Took::Whole(whole) = took {
                                self.deliver(h.to_string(), whole, "received");
                            }
                            return;
                        }
                        self.deliver(h.to_string(), text, "received");
                    }
                    Sender::Unverified(s) => {
                        self.stats.refused += 1;
                        self.deliver(s, text, "unverified");
                    }
                }
            }
            Message::Img { handle, size, .. } => match self.plain_sender(&handle, src) {
                Sender::Peer(h) => {
                    self.seen(now, &h, src, via, terminated);
                    debug!("{h} announced an image of {size} bytes");
                    self.out.img_announced.push((src, h.to_string(), size));
                    self.out.plugin_events.push(PluginEvent::ImageAnnounced {
                        from: h.to_string(),
                        size,
                    });
                }
                Sender::Unverified(s) => {
                    // An announcement vouches for nothing unless its source holds the handle.
                    self.stats.refused += 1;
                    debug!("image announcement from {s} ignored");
                }
            },
            Message::Who => {
                // A peer polling WHO shows it is alive.
                if let Some(h) = self.peers.at(src).cloned() {
                    self.seen(now, &h, src, via, terminated);
                }
            }
        }
    }

    /// A message for the prompts, the plugins and the history.
    pub(super) fn deliver(&mut self, from: String, text: String, outcome: &str) {
        self.record(&from, true, "text", &text, outcome);
        self.attend(&from, &from, &text);
        self.event(Event::Message { from, text });
    }

    /// A sign of life from `h` at `src`; what it showed of its forms.
    pub(super) fn seen(
        &mut self,
        now: Instant,
        h: &Handle,
        src: SocketAddr,
        via: Transport,
        term: bool,
    ) {
        let Some(p) = self.peers.get_mut(h) else {
            return;
        };
        p.last_seen = now;
        match via {
            Transport::Udp => {
                p.udp_seen = true;
                p.forms.no_newline = !term;
                if src.port() == p.addr.port() {
                    // It has a UDP socket at its port after all.
                    p.own_port = true;
                    p.forms.tcp = false;
                }
            }
            Transport::Tcp => {
                if !p.own_port && !p.forms.tcp {
                    info!("{h} reaches us over TCP only; answering it over TCP");
                    p.forms.tcp = true;
                }
            }
        }
    }

    fn presence(&mut self, now: Instant, handle: &Handle, src: SocketAddr, away: bool) {
        if self.peers.speaks_for(handle, src) {
            if let Some(p) = self.peers.get_mut(handle) {
                p.direct_presence = true;
            }
        } else if self.local_discovery(src) {
            // A relay: for a peer that tells us itself it would only repeat (perhaps late, after
            // the next change).
            if self.peers.get(handle).is_some_and(|p| p.direct_presence) {
                return;
            }
        } else {
            if self.peers.get(handle).is_some() {
                self.stats.refused += 1;
                info!("presence of {handle} from {src} refused: not its address");
            }
            return;
        }
        self.set_peer_away(now, handle, away);
    }

    fn set_peer_away(&mut self, now: Instant, handle: &Handle, away: bool) {
        let Some(p) = self.peers.get_mut(handle) else {
            return;
        };
        p.last_seen = now;
        if p.away != away {
            p.away = away;
            let handle = handle.to_string();
            self.event(if away {
                Event::Away { handle }
            } else {
                Event::Back { handle }
            });
        }
    }

    /// A KNOWUSERS answer. Believed from this host's discovery (it relays), from another
    /// host's discovery (its port is whoisport) soon after our WHO, and over TCP soon after our
    /// WHO (some implementations answer that way); otherwise only the entries at the sender's
    /// own address count, as a JOIN would.
    fn knowusers(
        &mut self,
        now: Instant,
        src: SocketAddr,
        entries: Vec<UserEntry>,
        form: Form,
        via: Transport,
    ) {
        let asked = self
            .last_who
            .is_some_and(|t| now.duration_since(t) <= self.s.who_wait.max(Duration::from_secs(1)));
        let believed = self.local_discovery(src)
            || (asked && (src.port() == self.s.whoisport || via == Transport::Tcp));
        if believed {
            self.knowusers_heard += 1;
            self.answered.insert(src.ip());
        }
        let src_local = net::is_local(src.ip(), &self.s.local_ips);
        // A source that writes away flags (`[AFK]`) says "here" by leaving the flag out; from
        // the others, no flag says nothing.
        if believed && entries.iter().any(|e| e.away) && self.flag_writers.len() < 256 {
            self.flag_writers.insert(src.ip());
        }
        let flags = self.flag_writers.contains(&src.ip());
        for mut e in entries.into_iter().take(MAX_ENTRIES) {
            // A loopback address in a list from another host means that host.
            if e.ip.is_loopback() && !src_local {
                e.ip = src.ip();
            }
            let at_source = self.peers.same_host(e.ip, src.ip());
            if !believed && !at_source {
                self.stats.refused += 1;
                continue;
            }
            let addr = SocketAddr::new(e.ip, e.port);
            if e.handle == self.me {
                if believed {
                    self.own_entry(addr);
                }
                continue;
            }
            let round = self.round;
            // A peer listed again where it is (every list repeats them all): one lookup.
            let mut at = self
                .peers
                .index_of(&e.handle)
                .filter(|&i| self.peers.by_index(i).addr == addr);
            if at.is_none() {
                if !self.claim(now, &e.handle, addr) {
                    continue;
                }
                at = self.peers.index_of(&e.handle);
            }
            let Some(i) = at else { continue };
            let p = self.peers.by_index_mut(i);
            if at_source || !p.home_seen {
                p.last_seen = now;
            }
            if believed {
                p.listed = Some(p.addr);
            }
            p.forms.learn(&form);
            if believed && at_source {
                p.home_round = round;
                p.home_missed = 0;
                p.home_seen = true;
            }
            if believed && e.away != p.away && (e.away || flags) {
                self.set_peer_away(now, &e.handle, e.away);
            }
        }
        self.flush_pending_msgs(now);
    }

    /// A discovery lists our own handle at `addr`.
    fn own_entry(&mut self, addr: SocketAddr) {
        let mine = addr.port() == self.s.port && net::is_local(addr.ip(), &self.s.local_ips);
        if mine {
            self.confirmed = true;
            if let State::Clashed(_) = self.state {
                // The other holder is gone and the discovery took our JOIN.
                self.state = State::Joined;
            }
            return;
        }
        if self.state == State::Joined && !self.confirmed {
            // Our JOIN lost: somebody held the handle before us.
            self.state = State::Clashed(addr);
            warn!("{} is held by {addr}", self.me);
            self.event(Event::Clash {
                handle: self.me.to_string(),
                addr: addr.to_string(),
            });
        } else if self.state == State::Joined {
            // We hold it; somebody's claim does not push us out.
            self.stats.refused += 1;
            info!("{} also claimed by {addr}; we hold it", self.me);
        }
    }

    /// Takes in a claim that `handle` is at `addr`; true when `handle` is (still) a peer there.
    pub(super) fn claim(&mut self, now: Instant, handle: &Handle, addr: SocketAddr) -> bool {
        // The common case first, in one lookup: a peer listed again where it is (every list
        // repeats them all, each heartbeat).
        if let Some(p) = self.peers.get(handle)
            && p.addr == addr
        {
            return true;
        }
        // A peer already held passed this test when it came (and HANDLE refuses a new handle
        // that looks like a peer's): skeletons are costly, and every KNOWUSERS repeats them all.
        if self.peers.get(handle).is_none() && handle.confusable_with(&self.me) {
            self.stats.refused += 1;
            info!(
                "{} at {addr} refused: it looks like our handle",
                render(handle.as_str())
            );
            return false;
        }
        match self.peers.claim(now, handle, addr) {
            Claim::New => {
                let forms = self.configured_forms(handle, addr.ip());
                self.peers
                    .insert(handle.clone(), Peer::new(addr, now, forms));
                self.greet(now, addr);
                self.event(Event::Join {
                    handle: handle.to_string(),
                    addr: addr.to_string(),
                });
                true
            }
            Claim::Refresh => {
                let p = self.peers.get(handle).expect("peer");
                // The LAN address is the one other hosts can reach; keep it over loopback.
                if p.addr.ip().is_loopback() && !addr.ip().is_loopback() {
                    self.peers.set_addr(handle, addr);
                }
                true
            }
            Claim::Rename { from } => {
                self.e2e_forget(&from);
                let p = self.peers.remove(&from).expect("peer");
                info!("{from} at {} is now {handle}", p.addr);
                self.peers.insert(handle.clone(), p);
                self.event(Event::Rename {
                    from: from.to_string(),
                    to: handle.to_string(),
                });
                true
            }
            Claim::Move { old } => {
                self.take_over(now, handle, addr);
                debug!("{handle} moved from {old}");
                true
            }
            Claim::Probe { old } => {
                // The probe is our JOIN: harmless to a live holder, bounced by a dead port.
                debug!("{handle} claimed at {addr}; probing the holder at {old}");
                self.send_to(
                    old,
                    &Message::Join {
                        handle: self.me.clone(),
                        port: self.s.port,
                    },
                );
                false
            }
            Claim::Refused(why) => {
                self.stats.refused += 1;
                debug!("{handle} at {addr} refused: {why}");
                false
            }
        }
    }

    /// `handle` is now the client at `addr` (its old address is proven gone, or it restarted
    /// on its host); the old port is never used again.
    fn take_over(&mut self, now: Instant, handle: &Handle, addr: SocketAddr) {
        // Another client (or the same one restarted): its session, if any, is not this one's.
        self.e2e_forget(handle);
        // The same client on a new port: what it showed of its forms still holds, but not
        // what it showed of its sockets.
        let old = self.peers.get(handle);
        let mut forms = old.map_or_else(|| self.configured_forms(handle, addr.ip()), |p| p.forms);
        forms.tcp = false;
        let away = old.is_some_and(|p| p.away);
        let mut p = Peer::new(addr, now, forms);
        p.away = away;
        self.peers.insert(handle.clone(), p);
        self.greet(now, addr);
        self.event(Event::Join {
            handle: handle.to_string(),
            addr: addr.to_string(),
        });
    }

    /// The forms the config sets for `handle` or its address, over the default.
    fn configured_forms(&self, handle: &Handle, ip: IpAddr) -> codec::Forms {
        let mut f = self.s.forms;
        for key in [handle.to_string(), ip.to_string()] {
            if let Some(x) = self.s.peer_forms.get(&key) {
                f = f.or(*x);
            }
        }
        f
    }

    /// Ends a WHO round: a peer whose own host's discovery answered twice in a row without
    /// listing it is gone (that discovery saw it leave or expire).
    pub(super) fn close_round(&mut self) {
        let answered = std::mem::take(&mut self.answered);
        let round = self.round;
        let mut gone = Vec::new();
        for (h, p) in self.peers.map().iter() {
            let home = answered
                .iter()
                .any(|d| self.peers.same_host(*d, p.addr.ip()));
            if home && p.home_round > 0 && p.home_round != round {
                gone.push(h.clone());
            }
        }
        for h in gone {
            let p = self.peers.get_mut(&h).expect("peer");
            p.home_missed += 1;
            if p.home_missed >= MISSED_ROUNDS {
                self.gone(&h, "its discovery no longer lists it");
            }
        }
        self.round += 1;
    }

    /// Sends the MSGs that waited for their addressee, now that the addressee is known.
    pub(super) fn flush_pending_msgs(&mut self, now: Instant) {
        let ready: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                matches!(&p.kind, super::Pending::Msg { to, .. } if self.peers.get(to).is_some())
            })
            .map(|(k, _)| *k)
            .collect();
        for pid in ready {
            if let Some(p) = self.pending.remove(&pid) {
                self.finish_pending(now, p);
            }
        }
    }
}
