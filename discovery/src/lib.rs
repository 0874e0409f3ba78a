//! slcp-discovery: the per-host discovery daemon — who is on the LAN, from JOIN/LEAVE/AWAY/BACK,
//! told to whoever asks WHO.
//!
//! [`Table`] is the logic (no I/O, `now` passed in); [`run`] is the mio loop around it. The daemon
//! also listens on TCP `127.0.0.1:<whoisport>`: binding it is the one-per-host lock, and a
//! connection there gets one JSON line of counters (what `slcp` uses to see that discovery runs).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slcp_core::codec::Forms;
use slcp_core::net;

mod mix;
mod relay;
pub mod sim;
mod table;
pub use table::{Entry, MAX_ENTRIES, MAX_PER_SOURCE, Stats, Table, WHO_PER_SEC};

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// The UDP port to listen on.
    pub whoisport: u16,
    /// Entry lifetime without refresh.
    pub expiry: Duration,
    /// Run even if another discovery holds the port on this host.
    pub share: bool,
    /// Where this host's clients broadcast: the discovery announces and refreshes them there
    /// (README "Discovery at scale"); empty leaves that to the clients.
    pub broadcast: Vec<IpAddr>,
    /// Forms of hosts set in the config (e.g. which read `KNOWNUSERS`).
    pub host_forms: HashMap<IpAddr, Forms>,
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Another discovery runs on this host.
    #[error(
        "a discovery service already runs on this host (TCP 127.0.0.1:{0} is taken); stop it first, or pass --share to run beside it"
    )]
    AlreadyRunning(u16),
    /// Another program (not a discovery) holds the UDP port.
    #[error(
        "UDP port {0} is taken by another program (no slcp discovery holds it); stop that program (`ss -ulpn sport = :{0}` shows which), or pick another whoisport for every host of the LAN"
    )]
    UdpTaken(u16),
    /// The OS refused something.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        cause: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DiscoveryError {
    let what = what.into();
    move |cause| DiscoveryError::Io { what, cause }
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
    let udp = net::bind_udp(opts.whoisport, true).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            DiscoveryError::UdpTaken(opts.whoisport)
        } else {
            io_err(format!("binding UDP port {}", opts.whoisport))(e)
        }
    })?;
    if let Err(e) = net::enable_bounces(&udp) {
        warn!("closed ports of users will go unnoticed: {e}");
    }
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
    let local = net::local_addresses();
    let mut table = Table::new(opts.expiry, local.clone());
    table.set_host_forms(opts.host_forms.clone());
    // The discovery with the status port is the one clients find (and rely on); a second one
    // beside it (--share) only listens: one voice per host.
    if status.is_some() && !opts.broadcast.is_empty() {
        let targets = opts
            .broadcast
            .iter()
            .map(|ip| SocketAddr::new(*ip, opts.whoisport))
            .collect();
        table.set_relay(opts.whoisport, targets, relay::lan_address(&local));
    }
    info!("discovery listening on UDP port {}", opts.whoisport);
    ready();
    send_all(&udp, table.start(Instant::now()));

    let sweep = (opts.expiry / 10).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut next_sweep = Instant::now() + sweep;
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; 65_536];
    loop {
        let deadline = table
            .next_deadline()
            .map_or(next_sweep, |d| d.min(next_sweep));
        let timeout = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err("polling")(e));
        }
        for ev in events.iter() {
            match ev.token() {
                UDP => {
                    if ev.is_error() {
                        for addr in net::read_bounces(&udp) {
                            send_all(&udp, table.bounced(Instant::now(), addr));
                        }
                    }
                    loop {
                        match udp.recv_from(&mut buf) {
                            Ok((n, src)) => {
                                send_all(&udp, table.datagram(Instant::now(), src, &buf[..n]))
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) => debug!("UDP receive: {e}"),
                        }
                    }
                }
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
        if now >= next_sweep || table.next_deadline().is_some_and(|d| now >= d) {
            send_all(&udp, table.tick(now));
            next_sweep = now + sweep;
        }
    }
}

fn send_all(udp: &UdpSocket, out: Vec<(SocketAddr, Vec<u8>)>) {
    for (to, b) in out {
        if let Err(e) = udp.send_to(&b, to) {
            debug!("send to {to}: {e}");
        }
    }
}

/// The status line a connection to TCP 127.0.0.1:whoisport receives.
pub fn status_line(table: &Table) -> String {
    format!(
        "{{\"service\":\"slcp-discovery\",\"pid\":{},\"users\":{},\"heartbeating\":{},\"datagrams\":{},\"malformed\":{},\"who\":{},\"clashes\":{},\"relayed\":{},\"refused\":{},\"silent\":{}}}\n",
        std::process::id(),
        table.entries().len(),
        table.entries().values().filter(|e| e.refreshed).count(),
        table.stats.datagrams,
        table.stats.malformed,
        table.stats.who,
        table.stats.clashes,
        table.stats.relayed,
        table.stats.refused,
        table.stats.silent
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
