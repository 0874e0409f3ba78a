//! The discovery table: who is on the LAN, from the JOIN/LEAVE/AWAY/BACK this host hears, told
//! to whoever asks WHO and relayed to this host's own clients.
//!
//! Pure: every call takes `now` and returns the datagrams to send; the daemon's loop does the
//! I/O. The identity rules are the client's (see `slcp_core::client::peers`): a handle belongs
//! to the address that holds it, a claim from elsewhere waits for a probe of the holder, and a
//! holder that sends from its own port speaks only from it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use log::{debug, info};
use slcp_core::client::peers::is_unicast;
use slcp_core::codec::{self, Forms, Handle, Message, UserEntry};
use slcp_core::net;
use slcp_core::render::render;

/// Users kept at most, and from one source address.
pub const MAX_ENTRIES: usize = 4096;
/// Users one address may hold (R's set-up runs 2-3 per host; a host of 64 is generous).
pub const MAX_PER_SOURCE: usize = 64;
/// WHO answered per source address per second.
pub const WHO_PER_SEC: u32 = 10;
/// How long a claim waits for the probe of the holder.
const PROBE_WAIT: Duration = Duration::from_millis(400);
/// A refresh counts as a heartbeat only this long after the JOIN (one JOIN broadcast to two
/// addresses arrives twice, within microseconds).
const HEARTBEAT_MIN: Duration = Duration::from_millis(200);

/// One user in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The source address of their datagrams.
    pub ip: IpAddr,
    /// Their SLCP port.
    pub port: u16,
    /// Whether they said AWAY.
    pub away: bool,
    /// Their datagrams come from that port: only that socket speaks for them.
    pub own_port: bool,
    /// They refreshed their entry (a second JOIN, a WHO poll), or their host's slcp discovery
    /// announced them (it refreshes them): they heartbeat, so they expire when they stop. An
    /// entry never refreshed stays until it leaves or its port is closed.
    pub refreshed: bool,
    pub(crate) joined: Instant,
    pub(crate) last_seen: Instant,
}

/// Counters, reported on the status port.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams: u64,
    /// Lines dropped as malformed.
    pub malformed: u64,
    /// WHO answered.
    pub who: u64,
    /// JOINs refused because another address holds the handle.
    pub clashes: u64,
    /// Presence relayed to this host's clients.
    pub relayed: u64,
    /// Claims, presence and WHO refused (not the holder, over a bound or a rate).
    pub refused: u64,
    /// WHO from other hosts left to the discoveries chosen for them (relay).
    pub suppressed: u64,
    /// Users dropped because their host went silent (watch.rs).
    pub silent: u64,
}

struct PendingClaim {
    handle: Handle,
    entry: Entry,
    old: SocketAddr,
    deadline: Instant,
}

/// The discovery table.
pub struct Table {
    entries: IndexMap<Handle, Entry>,
    /// The skeleton of every handle held, to refuse look-alikes in O(1).
    skeletons: HashMap<String, Handle>,
    /// Handles by address (this host's addresses as one, see [`Table::key`]), entries by
    /// source address, and this host's users: indexes kept by `put` and `take`.
    by_addr: HashMap<SocketAddr, Vec<Handle>>,
    per_ip: HashMap<IpAddr, usize>,
    pub(crate) locals: std::collections::BTreeSet<Handle>,
    pub(crate) expiry: Duration,
    /// No entry expires before this (a lower bound).
    expire_at: Option<Instant>,
    /// Bumped whenever what a list shows changes (who, where, away).
    generation: u64,
    /// The last list encoded: its generation, its forms, its datagrams.
    answer_cache: std::cell::RefCell<Option<CachedAnswer>>,
    pub(crate) local_ips: Vec<Ipv4Addr>,
    /// Forms learned by exact address (a client that sends no terminator reads like the
    /// reference implementation; several implementations may share a host), and set in the
    /// config by host.
    forms: HashMap<SocketAddr, Forms>,
    configured: HashMap<IpAddr, Forms>,
    pending: Vec<PendingClaim>,
    /// WHO answers per source this second.
    who_budget: HashMap<IpAddr, (Instant, u32)>,
    next_probe_round: Option<Instant>,
    /// Set when this discovery speaks for its host's clients on the LAN (relay.rs).
    pub(crate) relay: Option<crate::relay::Relay>,
    /// Counters.
    pub stats: Stats,
}

pub(crate) type Out = Vec<(SocketAddr, Vec<u8>)>;

/// A list as encoded for a WHO: the table's generation then, the forms, the datagrams.
type CachedAnswer = (u64, Forms, Vec<Vec<u8>>);

impl Table {
    /// An empty table whose refreshed entries live `expiry` without a refresh; `local_ips` are
    /// this host's addresses (a client seen from loopback and from the LAN is one client).
    pub fn new(expiry: Duration, local_ips: Vec<Ipv4Addr>) -> Table {
        Table {
            entries: IndexMap::new(),
            skeletons: HashMap::new(),
            by_addr: HashMap::new(),
            per_ip: HashMap::new(),
            locals: std::collections::BTreeSet::new(),
            expiry,
            expire_at: None,
            generation: 0,
            answer_cache: std::cell::RefCell::new(None),
            local_ips,
            forms: HashMap::new(),
            configured: HashMap::new(),
            pending: Vec::new(),
            who_budget: HashMap::new(),
            next_probe_round: None,
            relay: None,
            stats: Stats::default(),
        }
    }

    /// Forms set in the config for hosts (what spelling of KNOWUSERS they read, ...).
    pub fn set_host_forms(&mut self, forms: HashMap<IpAddr, Forms>) {
        self.configured = forms;
    }

    fn put(&mut self, h: Handle, e: Entry) -> Option<Entry> {
        // A listed handle's skeleton is there already (an NFC and UTS 39 pass per refresh
        // would be a measurable share of a thousand hosts' work).
        if !self.entries.contains_key(&h) {
            self.skeletons.insert(h.skeleton(), h.clone());
        }
        let (port, ip) = (e.port, e.ip);
        self.generation += 1;
        let old = self.entries.insert(h.clone(), e);
        if let Some(o) = &old {
            self.unindex(&h, o.port, o.ip);
        }
        let key = self.key(ip, port);
        self.by_addr.entry(key).or_default().push(h.clone());
        *self.per_ip.entry(ip).or_default() += 1;
        if self.is_local(ip) {
            self.locals.insert(h);
        }
        old
    }

    fn take(&mut self, h: &Handle) -> Option<Entry> {
        self.skeletons.remove(&h.skeleton());
        self.generation += 1;
        let old = self.entries.shift_remove(h);
        if let Some(o) = &old {
            self.unindex(h, o.port, o.ip);
        }
        old
    }

    fn unindex(&mut self, h: &Handle, port: u16, ip: IpAddr) {
        let key = self.key(ip, port);
        if let Some(v) = self.by_addr.get_mut(&key) {
            v.retain(|x| x != h);
            if v.is_empty() {
                self.by_addr.remove(&key);
            }
        }
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        self.locals.remove(h);
    }

    /// `ip`:`port` as the index holds it: every address of this host is one (`same_host`),
    /// written as loopback. This host's addresses are fixed for the table's life.
    fn key(&self, ip: IpAddr, port: u16) -> SocketAddr {
        if net::is_local(ip, &self.local_ips) {
            SocketAddr::from((Ipv4Addr::LOCALHOST, port))
        } else {
            SocketAddr::new(ip, port)
        }
    }

    /// The handles whose entries are the client at `ip`:`port` (`same_client`): usually one,
    /// where every client of a LAN may use the same port.
    fn at_addr(&self, ip: IpAddr, port: u16) -> Vec<Handle> {
        let key = self.key(ip, port);
        self.by_addr.get(&key).cloned().unwrap_or_default()
    }

    /// The users, by handle.
    pub fn entries(&self) -> &IndexMap<Handle, Entry> {
        &self.entries
    }

    fn same_host(&self, a: IpAddr, b: IpAddr) -> bool {
        a == b || (net::is_local(a, &self.local_ips) && net::is_local(b, &self.local_ips))
    }

    fn same_client(&self, e: &Entry, ip: IpAddr, port: u16) -> bool {
        e.port == port && self.same_host(e.ip, ip)
    }

    /// Whether `src` speaks for `e`: from its host, and from its own port if it sends from it.
    fn speaks_for(&self, e: &Entry, src: SocketAddr) -> bool {
        self.same_host(e.ip, src.ip()) && (!e.own_port || src.port() == e.port)
    }

    fn alive(&self, e: &Entry, now: Instant) -> bool {
        let expiry = if self.is_local(e.ip) {
            self.expiry
        } else {
            self.remote_expiry()
        };
        !e.refreshed || now.duration_since(e.last_seen) <= expiry
    }

    /// An entry learned from another discovery's list (it refreshes like any other).
    pub(crate) fn insert_heard(
        &mut self,
        now: Instant,
        h: Handle,
        ip: IpAddr,
        port: u16,
        away: bool,
    ) {
        let e = Entry {
            ip,
            port,
            away,
            own_port: false,
            refreshed: true,
            joined: now,
            last_seen: now,
        };
        self.put(h, e);
    }

    /// The forms the client at `addr` reads.
    pub(crate) fn forms_of(&self, addr: SocketAddr) -> Forms {
        let learned = self.forms.get(&addr).copied().unwrap_or_default();
        self.configured
            .get(&addr.ip())
            .map_or(learned, |c| learned.or(*c))
    }

    fn learn(&mut self, src: SocketAddr, f: impl FnOnce(&mut Forms)) {
        if self.forms.len() >= MAX_ENTRIES && !self.forms.contains_key(&src) {
            // Bounded: forget what was learned rather than grow.
            self.forms.clear();
        }
        f(self.forms.entry(src).or_default());
    }

    /// Takes one datagram from `src`; returns the datagrams to send (answers and relays).
    pub fn datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) -> Out {
        self.stats.datagrams += 1;
        if self.own_echo(src) {
            // Our own announcement, back through the broadcast: a local user is alive only by
            // its own datagrams.
            return Vec::new();
        }
        self.heard(now, src);
        if !bytes.ends_with(b"\n") && !bytes.is_empty() {
            // The reference implementation: no terminator, and it keeps only the last
            // KNOWUSERS datagram it reads.
            self.learn(src, |f| {
                f.no_newline = true;
                f.one_datagram = true;
            });
        }
        let mut out = Vec::new();
        let mut who = false;
        for r in codec::decode_datagram_forms(bytes) {
            match r {
                Ok((Message::Who, _)) => who = true,
                Ok((m, form)) => {
                    if form.knownusers {
                        self.learn(src, |f| f.knownusers = true);
                    }
                    self.message(now, src, m, &mut out)
                }
                Err(e) => {
                    self.stats.malformed += 1;
                    debug!("dropped a malformed datagram from {src}: {e}");
                }
            }
        }
        if who {
            // One answer per datagram, however many WHO lines it holds.
            self.who(now, src, &mut out);
        }
        out
    }

    fn touch(&mut self, now: Instant, src: SocketAddr) {
        let local = self.local_ips.clone();
        for h in self.at_addr(src.ip(), src.port()) {
            if self.entries.get(&h).is_some_and(|e| !self.alive(e, now)) {
                self.generation += 1;
            }
            let Some(e) = self.entries.get_mut(&h) else {
                continue;
            };
            let same = e.ip == src.ip()
                || (net::is_local(e.ip, &local) && net::is_local(src.ip(), &local));
            if same {
                e.last_seen = now;
                e.own_port = true;
                if now.duration_since(e.joined) >= HEARTBEAT_MIN {
                    e.refreshed = true;
                }
            }
        }
    }

    fn who(&mut self, now: Instant, src: SocketAddr, out: &mut Out) {
        // A WHO poll from a user's own address shows it is alive.
        self.touch(now, src);
        if !self.answers(now, src) {
            self.stats.suppressed += 1;
            return;
        }
        if !self.who_allowed(now, src) {
            return;
        }
        self.stats.who += 1;
        let forms = self.forms_of(src);
        let answer = self.answer(now, forms);
        // A stranger (no user of its host is listed, and it is not this host) gets the first
        // datagram only: a 4-byte WHO with a forged source must not make us a 300 000x
        // amplifier.
        let known = net::is_local(src.ip(), &self.local_ips)
            || self
                .entries
                .values()
                .any(|e| self.same_host(e.ip, src.ip()));
        let n = if known { answer.len() } else { 1 };
        if n < answer.len() {
            self.stats.refused += 1;
        }
        for d in answer.into_iter().take(n) {
            out.push((src, d));
        }
    }

    /// Whether `src` may have one more answer this second ([`WHO_PER_SEC`]).
    pub(crate) fn who_allowed(&mut self, now: Instant, src: SocketAddr) -> bool {
        let (since, n) = self.who_budget.entry(src.ip()).or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *n = 0;
        }
        if *n >= WHO_PER_SEC {
            self.stats.refused += 1;
            return false;
        }
        *n += 1;
        if self.who_budget.len() > MAX_ENTRIES {
            self.who_budget
                .retain(|_, (t, _)| now.duration_since(*t) < Duration::from_secs(1));
        }
        true
    }

    fn message(&mut self, now: Instant, src: SocketAddr, m: Message, out: &mut Out) {
        let ip = src.ip();
        match m {
            Message::Join { handle, port } => {
                self.spoke(src);
                self.join(now, src, handle, port, out)
            }
            Message::Leave { handle } => {
                let ok = self.entries.get(&handle).map(|e| self.speaks_for(e, src));
                match ok {
                    Some(true) => {
                        info!("{handle} left");
                        if let Some(e) = self.take(&handle) {
                            self.gone_local(now, &handle, e.ip, true, out);
                        }
                        self.relay(
                            now,
                            &handle,
                            &Message::Leave {
                                handle: handle.clone(),
                            },
                            out,
                        );
                    }
                    Some(false) if self.said_silent(now, &handle, src, out) => {}
                    Some(false) => {
                        self.stats.refused += 1;
                        info!("LEAVE {handle} from {src} refused: not its address");
                    }
                    None => {}
                }
            }
            Message::KnowUsers(list) => self.take_list(now, src, list, out),
            Message::Away { handle } => self.presence(now, &handle, src, true, out),
            Message::Back { handle } => self.presence(now, &handle, src, false, out),
            other => debug!("ignored {} from {ip}: not for discovery", other.word()),
        }
    }

    fn join(&mut self, now: Instant, src: SocketAddr, handle: Handle, port: u16, out: &mut Out) {
        let ip = src.ip();
        if !is_unicast(ip) {
            self.stats.refused += 1;
            return;
        }
        let entry = Entry {
            ip,
            port,
            away: false,
            own_port: src.port() == port,
            // Announced by its host's discovery, which refreshes it (and its watchers notice
            // when that host goes silent, even before its first refresh).
            refreshed: self.is_speaker(src),
            joined: now,
            last_seen: now,
        };
        let announce = Message::KnowUsers(vec![UserEntry::new(handle.clone(), ip, port)]);
        let held = self.entries.get(&handle).cloned();
        match held {
            Some(e) if self.same_client(&e, ip, port) => {
                // One that outlived its expiry (kept while its host is asked, watch.rs) is
                // back in the lists.
                if !self.alive(&e, now) {
                    self.generation += 1;
                }
                let e = self.entries.get_mut(&handle).expect("held");
                e.last_seen = now;
                e.own_port |= src.port() == port;
                if now.duration_since(e.joined) >= HEARTBEAT_MIN {
                    e.refreshed = true;
                }
                // The LAN address is the one other hosts can reach; keep it over loopback.
                if e.ip.is_loopback() && !ip.is_loopback() {
                    let moved = e.clone();
                    self.put(handle.clone(), Entry { ip, ..moved });
                }
            }
            Some(e) if !self.alive(&e, now) => {
                info!("{handle} joined from {ip}:{port} (the old entry had expired)");
                self.put(handle.clone(), entry);
                self.relay(now, &handle, &announce, out);
                self.queue_announce(now, &handle, ip);
            }
            Some(e) if !e.own_port => {
                if self.same_host(e.ip, ip) {
                    // Restarted on another port of its host (it sends from ephemeral ports, so
                    // the host identifies it).
                    info!("{handle} moved from {}:{} to {ip}:{port}", e.ip, e.port);
                    self.put(handle.clone(), entry);
                    self.relay(now, &handle, &announce, out);
                    self.queue_announce(now, &handle, ip);
                } else {
                    self.stats.clashes += 1;
                    info!(
                        "JOIN {handle} from {ip}:{port} refused: held by {}:{}",
                        e.ip, e.port
                    );
                }
            }
            Some(e) => {
                if self.pending.iter().any(|p| p.handle == handle) || self.pending.len() > 64 {
                    self.stats.clashes += 1;
                    return;
                }
                // The holder may be gone (restarted on a new port): probe its port. The probe is
                // the list it would get for a WHO, harmless if it is alive.
                let old = SocketAddr::new(e.ip, e.port);
                debug!("{handle} claimed from {ip}:{port}; probing the holder at {old}");
                self.pending.push(PendingClaim {
                    handle: handle.clone(),
                    entry,
                    old,
                    deadline: now + PROBE_WAIT,
                });
                if let Some(b) = self.answer_first(now, self.forms_of(old)) {
                    out.push((old, b));
                }
            }
            None => {
                let rename = self.at_addr(ip, port).into_iter().find(|h| {
                    self.entries
                        .get(h)
                        .is_some_and(|e| self.same_client(e, ip, port))
                });
                let look_alike = self
                    .skeletons
                    .get(&handle.skeleton())
                    .filter(|o| **o != handle && Some(*o) != rename.as_ref());
                if let Some(other) = look_alike {
                    // A handle a human could take for one that is held.
                    self.stats.refused += 1;
                    let other = render(other.as_str());
                    return info!("JOIN from {ip}:{port} refused: it looks like {other}");
                }
                if let Some(old) = rename {
                    // A bare JOIN of a new handle from the address of an old one: a rename.
                    info!("{old} at {ip}:{port} is now {handle}");
                    self.take(&old);
                } else if self.entries.len() >= MAX_ENTRIES
                    || self.per_ip.get(&ip).copied().unwrap_or(0) >= MAX_PER_SOURCE
                {
                    self.stats.refused += 1;
                    return debug!("JOIN {handle} from {ip} refused: table full for it");
                }
                info!("{handle} joined from {ip}:{port}");
                self.put(handle.clone(), entry);
                self.relay(now, &handle, &announce, out);
                self.queue_announce(now, &handle, ip);
            }
        }
    }

    fn presence(&mut self, now: Instant, h: &Handle, src: SocketAddr, away: bool, out: &mut Out) {
        let Some(e) = self.entries.get(h) else {
            return;
        };
        if !self.speaks_for(e, src) {
            self.stats.refused += 1;
            return info!("presence of {h} from {src} refused: not its address");
        }
        self.generation += 1;
        let e = self.entries.get_mut(h).expect("entry");
        e.away = away;
        e.last_seen = now;
        let m = if away {
            Message::Away { handle: h.clone() }
        } else {
            Message::Back { handle: h.clone() }
        };
        self.relay(now, h, &m, out);
    }
}

#[path = "lists.rs"]
mod lists;

#[path = "expiry.rs"]
mod expiry;

#[path = "watch.rs"]
pub(crate) mod watch;

#[cfg(test)]
#[path = "watch_tests.rs"]
mod watch_tests;

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
