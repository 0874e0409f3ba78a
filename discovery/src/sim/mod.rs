//! A deterministic LAN simulator: H hosts, each with its discovery [`Table`] and M clients
//! (`slcp_core`'s `Chat`, unchanged), on one simulated broadcast segment with latency, jitter,
//! loss and crashes, in virtual time from a seed. It runs the real state machines — they are
//! pure, so a thousand of them fit in one process — and counts every datagram.
//!
//! Addresses: host `h` is `10.x.y.z` (254 hosts to each /24, .1 to .254), the broadcast
//! address is 10.255.255.255, discovery listens on [`WHOISPORT`], the clients of a host on
//! 5000, 5001, ... A host that is down receives nothing and sends no ICMP (a machine switched
//! off or unplugged, the slow case for detection).

mod metrics;
mod rng;
mod scenario;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use rng::Rng;

use slcp_core::client::chat::{Chat, Encryption, NotifyMode, Settings};
use slcp_core::codec::{Forms, Handle};

pub use crate::relay::REFRESH_RATE;
use crate::table::Table;
pub use metrics::Metrics;
pub use scenario::{Figures, HOSTS_OFF, figures};

/// The discovery port in the simulation.
pub const WHOISPORT: u16 = 4000;
/// The first client port of each host.
pub const FIRST_PORT: u16 = 5000;
const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 255, 255, 255);

/// What the simulated LAN and its clients are like.
#[derive(Debug, Clone)]
pub struct Config {
    /// Hosts.
    pub hosts: usize,
    /// Clients per host.
    pub users_per_host: usize,
    /// Seed of every random choice (start times, jitter, loss).
    pub seed: u64,
    /// One-way delay of every delivery.
    pub latency: Duration,
    /// Added to the latency, uniformly from zero to this: one draw per path (sender and
    /// receiver), so one flow is never reordered.
    pub jitter: Duration,
    /// Probability that one delivery (one receiver of one datagram) is lost.
    pub loss: f64,
    /// The clients' `heartbeat`.
    pub heartbeat: Duration,
    /// The clients' and discoveries' `expiry`.
    pub expiry: Duration,
    /// Discoveries speak for their host's clients (the bounded design, relay.rs); off is the
    /// design before it, where every client broadcasts JOIN and WHO every heartbeat.
    pub relay: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            hosts: 10,
            users_per_host: 1,
            seed: 1,
            latency: Duration::from_micros(150),
            jitter: Duration::from_micros(100),
            loss: 0.0,
            heartbeat: Duration::from_secs(10),
            expiry: Duration::from_secs(35),
            relay: true,
        }
    }
}

/// Which state machine: a host's discovery, or one of its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Node {
    Disc(usize),
    Client(usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// A datagram reaches `host` on `port`.
    Deliver {
        host: usize,
        port: u16,
        src: SocketAddr,
        /// Shared by every receiver of a broadcast.
        bytes: Rc<[u8]>,
        /// From a node of the same host (loopback, or its own broadcast): not on the wire.
        local: bool,
        /// Part of a broadcast.
        cast: bool,
    },
    /// A node's timer (ignored when the node re-armed it meanwhile).
    Timer(Node),
    /// A client starts (JOIN and WHO).
    Start(usize, usize),
    /// ICMP port unreachable reaches the node at `host`:`port` that sent to `dst`.
    Unreachable {
        host: usize,
        port: u16,
        dst: SocketAddr,
    },
}

struct Client {
    chat: Chat,
    up: bool,
    armed: Option<Duration>,
}

struct Host {
    ip: Ipv4Addr,
    up: bool,
    disc: Table,
    disc_armed: Option<Duration>,
    next_sweep: Duration,
    clients: Vec<Client>,
}

/// The simulated LAN.
pub struct Sim {
    cfg: Config,
    base: Instant,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, Ev)>>,
    hosts: Vec<Host>,
    by_ip: HashMap<Ipv4Addr, usize>,
    rng: Rng,
    /// Everything counted so far.
    pub metrics: Metrics,
    /// A hash of every delivery in order (time, host, port, source, bytes): two runs with the
    /// same trace did the same thing.
    pub trace: u64,
}

/// The address of host `h`.
pub fn host_ip(h: usize) -> Ipv4Addr {
    // 254 hosts per /24: no address ends in .0 or .255 (which read as network and broadcast
    // addresses, and are refused as a user's address).
    let (net, host) = (h / 254, h % 254 + 1);
    Ipv4Addr::new(10, (net >> 8) as u8, net as u8, host as u8)
}

/// The handle of client `m` of host `h`.
pub fn handle(h: usize, m: usize) -> String {
    format!("u{h}x{m}")
}

impl Sim {
    /// The LAN of `cfg` with every discovery running and no client started yet.
    pub fn new(cfg: Config) -> Sim {
        let base = Instant::now();
        let mut s = Sim {
            base,
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            hosts: Vec::new(),
            by_ip: HashMap::new(),
            rng: Rng::new(cfg.seed),
            metrics: Metrics::default(),
            trace: 0xcbf2_9ce4_8422_2325,
            cfg,
        };
        for _ in 0..s.cfg.hosts {
            s.add_host();
        }
        s
    }

    /// Adds a host (its discovery runs, its clients are not started); returns its index.
    pub fn add_host(&mut self) -> usize {
        let h = self.hosts.len();
        let ip = host_ip(h);
        let clients = (0..self.cfg.users_per_host)
            .map(|m| Client {
                chat: Chat::new(self.settings(h, m, ip), self.base),
                up: false,
                armed: None,
            })
            .collect();
        let mut disc = Table::new(self.cfg.expiry, vec![ip]);
        if self.cfg.relay {
            let all = SocketAddr::new(IpAddr::V4(BROADCAST), WHOISPORT);
            disc.set_relay(WHOISPORT, vec![all], IpAddr::V4(ip));
        }
        let hello = disc.start(self.base + self.now);
        self.hosts.push(Host {
            ip,
            up: true,
            disc,
            disc_armed: None,
            next_sweep: self.now + self.sweep(),
            clients,
        });
        self.by_ip.insert(ip, h);
        self.metrics.grow(self.hosts.len());
        self.send(h, WHOISPORT, hello);
        self.arm(Node::Disc(h));
        h
    }

    fn settings(&self, h: usize, m: usize, ip: Ipv4Addr) -> Settings {
        Settings {
            handle: Handle::new(&handle(h, m)).expect("a valid handle"),
            port: FIRST_PORT + m as u16,
            whoisport: WHOISPORT,
            broadcast: vec![IpAddr::V4(BROADCAST)],
            local_ips: vec![ip],
            heartbeat: self.cfg.heartbeat,
            expiry: self.cfg.expiry,
            who_wait: Duration::from_millis(300),
            backlog: 0,
            auto_away: None,
            forms: Forms::default(),
            peer_forms: BTreeMap::new(),
            image_ports: BTreeMap::new(),
            history: false,
            notify: NotifyMode::Off,
            // Sessions are per pair and not discovery's cost; they stay out of its figures.
            encryption: Encryption::Off,
            local_discovery: self.cfg.relay,
            static_peers: Vec::new(),
        }
    }

    fn sweep(&self) -> Duration {
        (self.cfg.expiry / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// Virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The hosts, up or down.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The seeded generator, for scenarios that draw their own times.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Starts client `m` of host `h` at `at` (JOIN and WHO then).
    pub fn start_client(&mut self, h: usize, m: usize, at: Duration) {
        self.push(at.max(self.now), Ev::Start(h, m));
    }

    /// Client `m` of host `h` leaves cleanly now (LEAVE, then the process ends; its host and
    /// its discovery stay up, as when a user quits slcp).
    pub fn leave(&mut self, h: usize, m: usize) {
        let c = &mut self.hosts[h].clients[m];
        c.chat.shutdown();
        self.flush(Node::Client(h, m));
        self.hosts[h].clients[m].up = false;
    }

    /// Client `m` of host `h` dies (kill -9): its port closes, so its host's kernel answers
    /// what is sent there with ICMP port unreachable.
    pub fn kill(&mut self, h: usize, m: usize) {
        self.hosts[h].clients[m].up = false;
    }

    /// Host `h` goes down without a word (power off).
    pub fn crash(&mut self, h: usize) {
        self.hosts[h].up = false;
        for c in &mut self.hosts[h].clients {
            c.up = false;
        }
    }

    /// Whether client `m` of host `h` runs.
    pub fn is_up(&self, h: usize, m: usize) -> bool {
        self.hosts[h].up && self.hosts[h].clients[m].up
    }

    /// The clients that run, as (host, index).
    pub fn running(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.hosts.iter().enumerate().flat_map(|(h, host)| {
            host.clients
                .iter()
                .enumerate()
                .filter(move |(_, c)| host.up && c.up)
                .map(move |(m, _)| (h, m))
        })
    }

    /// How many peers client (h, m) knows.
    pub fn known(&self, h: usize, m: usize) -> usize {
        self.hosts[h].clients[m].chat.peers().len()
    }

    /// Whether client (h, m) knows the handle `who`.
    pub fn knows(&self, h: usize, m: usize, who: &str) -> bool {
        Handle::new(who).is_ok_and(|w| self.hosts[h].clients[m].chat.peers().contains_key(&w))
    }

    /// Whether host `h`'s discovery lists the handle `who`.
    pub fn discovery_knows(&self, h: usize, who: &str) -> bool {
        Handle::new(who).is_ok_and(|w| self.hosts[h].disc.entries().contains_key(&w))
    }

    /// Every running client knows every other running client.
    pub fn converged(&self) -> bool {
        let n = self.running().count();
        n > 0 && self.running().all(|(h, m)| self.known(h, m) + 1 == n)
    }

    fn hash(&mut self, b: &[u8]) {
        // FNV-1a: enough to tell two traces apart.
        for x in b {
            self.trace = (self.trace ^ u64::from(*x)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Deliveries on their way (sent, not yet arrived).
    pub fn in_flight(&self) -> u64 {
        self.queue
            .iter()
            .filter(|Reverse((_, _, e))| matches!(e, Ev::Deliver { .. }))
            .count() as u64
    }

    /// Runs until `until` (virtual time since the start).
    pub fn run_to(&mut self, until: Duration) {
        if until < self.now {
            return;
        }
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until {
                break;
            }
            let Some(Reverse((at, _, ev))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            self.handle(ev);
        }
        self.now = until;
    }

    /// Runs, checking `done` every `step`, for `limit` at most; returns when it first held
    /// (time since the call), or `None`.
    pub fn run_until(
        &mut self,
        limit: Duration,
        step: Duration,
        done: impl Fn(&Sim) -> bool,
    ) -> Option<Duration> {
        let from = self.now;
        while self.now < from + limit {
            if done(self) {
                return Some(self.now - from);
            }
            let next = self.now + step;
            self.run_to(next);
        }
        done(self).then(|| self.now - from)
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.base + self.now;
        match ev {
            Ev::Start(h, m) => {
                if !self.hosts[h].up {
                    return;
                }
                let c = &mut self.hosts[h].clients[m];
                c.up = true;
                c.chat.start(now);
                self.flush(Node::Client(h, m));
            }
            Ev::Deliver {
                host,
                port,
                src,
                bytes,
                local,
                cast,
            } => {
                self.hash(&self.now.as_nanos().to_le_bytes());
                self.hash(&(host as u64).to_le_bytes());
                self.hash(&port.to_le_bytes());
                if let IpAddr::V4(ip) = src.ip() {
                    self.hash(&ip.octets());
                }
                self.hash(&src.port().to_le_bytes());
                self.hash(&bytes);
                if !self.hosts[host].up {
                    self.metrics.to_dead += 1;
                    return;
                }
                self.metrics.received(self.now, host, &bytes, local, cast);
                if port == WHOISPORT {
                    self.metrics.received_by_discovery += 1;
                    let out = self.hosts[host].disc.datagram(now, src, &bytes);
                    self.send(host, WHOISPORT, out);
                    self.arm(Node::Disc(host));
                    return;
                }
                let m = usize::from(port.wrapping_sub(FIRST_PORT));
                match self.hosts[host].clients.get_mut(m) {
                    Some(c) if c.up => {
                        c.chat.datagram(now, src, &bytes);
                        self.flush(Node::Client(host, m));
                    }
                    _ => {
                        self.metrics.no_listener += 1;
                        self.icmp(host, port, src);
                    }
                }
            }
            Ev::Unreachable { host, port, dst } => {
                if !self.hosts[host].up {
                    return;
                }
                if port == WHOISPORT {
                    let out = self.hosts[host].disc.bounced(now, dst);
                    self.send(host, WHOISPORT, out);
                    self.arm(Node::Disc(host));
                } else {
                    let m = usize::from(port.wrapping_sub(FIRST_PORT));
                    if self.hosts[host].clients.get(m).is_some_and(|c| c.up) {
                        self.hosts[host].clients[m].chat.unreachable(now, dst);
                        self.flush(Node::Client(host, m));
                    }
                }
            }
            Ev::Timer(node) => self.timer(node, now),
        }
    }

    fn timer(&mut self, node: Node, now: Instant) {
        match node {
            Node::Disc(h) => {
                let sweep = self.sweep();
                let host = &mut self.hosts[h];
                if !host.up || host.disc_armed != Some(self.now) {
                    return;
                }
                host.disc_armed = None;
                let due = host.next_sweep <= self.now
                    || host.disc.next_deadline().is_some_and(|d| d <= now);
                if due {
                    let out = host.disc.tick(now);
                    host.next_sweep = self.now + sweep;
                    self.send(h, WHOISPORT, out);
                }
                self.arm(node);
            }
            Node::Client(h, m) => {
                let host_up = self.hosts[h].up;
                let c = &mut self.hosts[h].clients[m];
                if !host_up || !c.up || c.armed != Some(self.now) {
                    return;
                }
                c.armed = None;
                c.chat.tick(now);
                self.flush(node);
            }
        }
    }

    /// The kernel of `host` answers a datagram to its closed `port` from `src` (a unicast:
    /// a broadcast to a closed port is dropped in silence).
    fn icmp(&mut self, host: usize, port: u16, src: SocketAddr) {
        let IpAddr::V4(ip) = src.ip() else { return };
        let from = if ip.is_loopback() {
            Some(host)
        } else {
            self.by_ip.get(&ip).copied()
        };
        let Some(to) = from else { return };
        let dst = SocketAddr::new(IpAddr::V4(self.hosts[host].ip), port);
        self.metrics.icmp += 1;
        let at = self.now + self.cfg.latency;
        self.push(
            at,
            Ev::Unreachable {
                host: to,
                port: src.port(),
                dst,
            },
        );
    }

    /// Sets the node's timer to its next deadline.
    fn arm(&mut self, node: Node) {
        let (at, slot) = match node {
            Node::Disc(h) => {
                let host = &self.hosts[h];
                let d = host.disc.next_deadline().map_or(host.next_sweep, |d| {
                    d.duration_since(self.base).min(host.next_sweep)
                });
                (d, host.disc_armed)
            }
            Node::Client(h, m) => {
                let c = &self.hosts[h].clients[m];
                (c.chat.next_deadline().duration_since(self.base), c.armed)
            }
        };
        let at = at.max(self.now);
        if slot == Some(at) {
            return;
        }
        match node {
            Node::Disc(h) => self.hosts[h].disc_armed = Some(at),
            Node::Client(h, m) => self.hosts[h].clients[m].armed = Some(at),
        }
        self.push(at, Ev::Timer(node));
    }

    /// Sends what a client queued and drops the rest of its outbox (prompts, history, plugins
    /// are not simulated); re-arms its timer.
    fn flush(&mut self, node: Node) {
        let Node::Client(h, m) = node else { return };
        let c = &mut self.hosts[h].clients[m];
        let out = std::mem::take(&mut c.chat.out);
        self.metrics.tcp_lines += out.tcp.len() as u64;
        let port = FIRST_PORT + m as u16;
        self.send(h, port, out.udp);
        self.arm(node);
    }

    /// Puts datagrams from `host`:`port` on the wire.
    fn send(&mut self, host: usize, port: u16, out: Vec<(SocketAddr, Vec<u8>)>) {
        let me = self.hosts[host].ip;
        for (to, bytes) in out {
            let bytes: Rc<[u8]> = bytes.into();
            let on_wire = !matches!(to.ip(), IpAddr::V4(ip) if ip.is_loopback() || ip == me);
            self.metrics.sent(self.now, host, bytes.len(), on_wire);
            let IpAddr::V4(ip) = to.ip() else {
                self.metrics.no_listener += 1;
                continue;
            };
            if ip == BROADCAST || ip == Ipv4Addr::BROADCAST {
                self.metrics.broadcasts_sent += 1;
                // Every host hears a broadcast, the sender's own host too.
                for h in 0..self.hosts.len() {
                    let src = SocketAddr::new(IpAddr::V4(me), port);
                    self.deliver(h, to.port(), src, Rc::clone(&bytes), h == host, true);
                }
            } else if ip.is_loopback() || ip == me {
                let src_ip = if ip.is_loopback() { ip } else { me };
                let src = SocketAddr::new(IpAddr::V4(src_ip), port);
                self.deliver(host, to.port(), src, bytes, true, false);
            } else if let Some(&h) = self.by_ip.get(&ip) {
                let src = SocketAddr::new(IpAddr::V4(me), port);
                self.deliver(h, to.port(), src, bytes, h == host, false);
            } else {
                self.metrics.no_listener += 1;
            }
        }
    }

    /// One receiver of one datagram; `local` ones (within a host) are never lost.
    fn deliver(
        &mut self,
        host: usize,
        port: u16,
        src: SocketAddr,
        bytes: Rc<[u8]>,
        local: bool,
        cast: bool,
    ) {
        self.metrics.deliveries += 1;
        if !local && self.cfg.loss > 0.0 && self.rng.unit() < self.cfg.loss {
            self.metrics.lost += 1;
            return;
        }
        // One path per sender and receiver, as on a switched segment: its own delay, so the
        // datagrams of one flow arrive in order while different flows interleave.
        let ip = match src.ip() {
            IpAddr::V4(v) => u64::from(u32::from(v)),
            IpAddr::V6(_) => 0,
        };
        let path = crate::mix::finalize(
            self.cfg.seed
                ^ (ip << 16 | u64::from(src.port())).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ ((host as u64) << 16 | u64::from(port)).wrapping_mul(0xbf58_476d_1ce4_e5b9),
        );
        let at = self.now + self.cfg.latency + self.cfg.jitter.mul_f64(crate::mix::unit(path));
        self.push(
            at,
            Ev::Deliver {
                host,
                port,
                src,
                bytes,
                local,
                cast,
            },
        );
    }
}
