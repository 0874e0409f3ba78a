//! slcp-discovery: the per-host discovery daemon — who is on the LAN, from JOIN/LEAVE/AWAY/BACK,
//! told to whoever asks WHO.
//!
//! [`Table`] is the logic (no I/O, `now` passed in); [`run`] is the mio loop around it. The daemon
//! also listens on TCP `127.0.0.1:<whoisport>`: binding it is the one-per-host lock, and a
//! connection there gets one JSON line of counters (what `slcp` uses to see that discovery runs).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slcp_core::codec::{self, Handle, Message, UserEntry};
use slcp_core::net;

/// One user in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The source address of their datagrams.
    pub ip: IpAddr,
    /// Their SLCP port.
    pub port: u16,
    /// Whether they said AWAY.
    pub away: bool,
    last_seen: Instant,
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
}

/// The discovery table.
#[derive(Debug)]
pub struct Table {
    entries: BTreeMap<Handle, Entry>,
    expiry: Duration,
    local_ips: Vec<Ipv4Addr>,
    /// Counters.
    pub stats: Stats,
}

impl Table {
    /// An empty table whose entries live `expiry` without a refresh; `local_ips` are this host's
    /// addresses (a client seen from loopback and from the LAN is one client).
    pub fn new(expiry: Duration, local_ips: Vec<Ipv4Addr>) -> Table {
        Table {
            entries: BTreeMap::new(),
            expiry,
            local_ips,
            stats: Stats::default(),
        }
    }

    /// The users, by handle.
    pub fn entries(&self) -> &BTreeMap<Handle, Entry> {
        &self.entries
    }

    fn same_client(&self, e: &Entry, ip: IpAddr, port: u16) -> bool {
        e.port == port
            && (e.ip == ip
                || (net::is_local(e.ip, &self.local_ips) && net::is_local(ip, &self.local_ips)))
    }

    fn same_host(&self, e: &Entry, ip: IpAddr) -> bool {
        e.ip == ip || (net::is_local(e.ip, &self.local_ips) && net::is_local(ip, &self.local_ips))
    }

    /// Takes one datagram from `src`; returns the datagrams to send back to `src`.
    pub fn datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) -> Vec<Vec<u8>> {
        self.stats.datagrams += 1;
        let mut out = Vec::new();
        for r in codec::decode_datagram(bytes) {
            match r {
                Ok(m) => out.extend(self.message(now, src, m)),
                Err(e) => {
                    self.stats.malformed += 1;
                    debug!("dropped a malformed datagram from {src}: {e}");
                }
            }
        }
        out
    }

    fn message(&mut self, now: Instant, src: SocketAddr, m: Message) -> Vec<Vec<u8>> {
        let ip = src.ip();
        match m {
            Message::Join { handle, port } => {
                if ip.is_unspecified() {
                    return Vec::new();
                }
                let held = self.entries.get(&handle).map(|e| {
                    (
                        now.duration_since(e.last_seen) <= self.expiry,
                        self.same_client(e, ip, port),
                    )
                });
                match held {
                    Some((true, false)) => {
                        self.stats.clashes += 1;
                        let e = &self.entries[&handle];
                        info!(
                            "JOIN {handle} from {ip}:{port} refused: held by {}:{}",
                            e.ip, e.port
                        );
                    }
                    Some((_, true)) => {
                        let e = self.entries.get_mut(&handle).expect("held");
                        e.last_seen = now;
                        // The LAN address is the one other hosts can reach; keep it over loopback.
                        if e.ip.is_loopback() && !ip.is_loopback() {
                            e.ip = ip;
                        }
                    }
                    _ => {
                        info!("{handle} joined from {ip}:{port}");
                        let entry = Entry {
                            ip,
                            port,
                            away: false,
                            last_seen: now,
                        };
                        self.entries.insert(handle, entry);
                    }
                }
                Vec::new()
            }
            Message::Leave { handle } => {
                if self
                    .entries
                    .get(&handle)
                    .is_some_and(|e| self.same_host(e, ip))
                {
                    info!("{handle} left");
                    self.entries.remove(&handle);
                }
                Vec::new()
            }
            Message::Away { handle } | Message::Back { handle }
                if !self.entries.contains_key(&handle) =>
            {
                Vec::new()
            }
            Message::Away { handle } => self.presence(now, &handle, ip, true),
            Message::Back { handle } => self.presence(now, &handle, ip, false),
            Message::Who => {
                self.stats.who += 1;
                let list: Vec<UserEntry> = self
                    .entries
                    .iter()
                    .filter(|(_, e)| now.duration_since(e.last_seen) <= self.expiry)
                    .map(|(h, e)| UserEntry {
                        handle: h.clone(),
                        ip: e.ip,
                        port: e.port,
                    })
                    .collect();
                codec::encode_knowusers(&list)
            }
            other => {
                debug!("ignored {} from {src}: not for discovery", other.word());
                Vec::new()
            }
        }
    }

    fn presence(&mut self, now: Instant, handle: &Handle, ip: IpAddr, away: bool) -> Vec<Vec<u8>> {
        let same = self
            .entries
            .get(handle)
            .is_some_and(|e| self.same_host(e, ip));
        if let Some(e) = self.entries.get_mut(handle).filter(|_| same) {
            e.away = away;
            e.last_seen = now;
        }
        Vec::new()
    }

    /// Drops the entries not refreshed for longer than the expiry; returns their handles.
    pub fn expire(&mut self, now: Instant) -> Vec<Handle> {
        let expiry = self.expiry;
        let gone: Vec<Handle> = self
            .entries
            .iter()
            .filter(|(_, e)| now.duration_since(e.last_seen) > expiry)
            .map(|(h, _)| h.clone())
            .collect();
        for h in &gone {
            info!("{h} expired");
            self.entries.remove(h);
        }
        gone
    }
}

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// The UDP port to listen on.
    pub whoisport: u16,
    /// Entry lifetime without refresh.
    pub expiry: Duration,
    /// Run even if another discovery holds the port on this host.
    pub share: bool,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Another discovery runs on this host.
    #[error(
        "a discovery service already runs on this host (TCP 127.0.0.1:{0} is taken); stop it first, or pass --share to run beside it"
    )]
    AlreadyRunning(u16),
    /// The OS refused something.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DiscoveryError {
    let what = what.into();
    move |source| DiscoveryError::Io { what, source }
}

const UDP: Token = Token(0);
const STATUS: Token = Token(1);
const SIGNALS: Token = Token(2);

/// Runs the daemon until SIGINT or SIGTERM; `ready` is called once it listens.
pub fn run(opts: Options, ready: impl FnOnce()) -> Result<(), DiscoveryError> {
    let lock = match net::bind_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST), opts.whoisport) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && !opts.share => {
            return Err(DiscoveryError::AlreadyRunning(opts.whoisport));
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => None,
        Err(e) => {
            return Err(io_err(format!("binding TCP 127.0.0.1:{}", opts.whoisport))(
                e,
            ));
        }
    };
    let udp = net::bind_udp(opts.whoisport, true)
        .map_err(io_err(format!("binding UDP port {}", opts.whoisport)))?;
    let poll = Poll::new().map_err(io_err("creating the poll"))?;
    let mut udp = UdpSocket::from_std(udp);
    let mut status = lock.map(TcpListener::from_std);
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(io_err("installing signal handlers"))?;
    let reg = poll.registry();
    reg.register(&mut udp, UDP, Interest::READABLE)
        .and_then(|_| reg.register(&mut signals, SIGNALS, Interest::READABLE))
        .map_err(io_err("registering sockets"))?;
    if let Some(s) = status.as_mut() {
        reg.register(s, STATUS, Interest::READABLE)
            .map_err(io_err("registering the status port"))?;
    }
    let mut poll = poll;
    let mut table = Table::new(opts.expiry, net::local_addresses());
    info!("discovery listening on UDP port {}", opts.whoisport);
    ready();

    let sweep = (opts.expiry / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut next_sweep = Instant::now() + sweep;
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65_536];
    loop {
        let timeout = next_sweep.saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err("polling")(e));
        }
        for ev in events.iter() {
            match ev.token() {
                UDP => loop {
                    match udp.recv_from(&mut buf) {
                        Ok((n, src)) => {
                            for reply in table.datagram(Instant::now(), src, &buf[..n]) {
                                if let Err(e) = udp.send_to(&reply, src) {
                                    debug!("reply to {src}: {e}");
                                }
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => debug!("UDP receive: {e}"),
                    }
                },
                STATUS => {
                    if let Some(s) = status.as_mut() {
                        answer_status(s, &table);
                    }
                }
                SIGNALS => {
                    info!("discovery stopped by signal");
                    return Ok(());
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            table.expire(now);
            next_sweep = now + sweep;
        }
    }
}

/// The status line a connection to TCP 127.0.0.1:whoisport receives.
pub fn status_line(table: &Table) -> String {
    format!(
        "{{\"service\":\"slcp-discovery\",\"pid\":{},\"users\":{},\"datagrams\":{},\"malformed\":{},\"who\":{},\"clashes\":{}}}\n",
        std::process::id(),
        table.entries.len(),
        table.stats.datagrams,
        table.stats.malformed,
        table.stats.who,
        table.stats.clashes
    )
}

fn answer_status(listener: &mut TcpListener, table: &Table) {
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                // A short line into an empty socket buffer: one non-blocking write suffices.
                if let Err(e) = s.write_all(status_line(table).as_bytes()) {
                    warn!("status answer: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                warn!("status accept: {e}");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
