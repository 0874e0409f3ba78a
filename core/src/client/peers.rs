//! The peer table: who holds which handle, and the rules that decide when a claim may move it.
//!
//! Identity comes from addresses: a handle belongs to the client at one address (ip and the port
//! it receives on). Tolerant about forms, strict about who:
//! - a JOIN or listing for a held handle at another address never moves it while the holder is
//!   alive; the holder's old address is probed first (a datagram that bounces with "port
//!   unreachable" proves it is gone), except on the holder's own host when the holder sends from
//!   ephemeral ports (then the host is the unit, since the port cannot be);
//! - a new handle at exactly the address another handle used is that client renamed;
//! - a peer that has shown it sends from its own port speaks (LEAVE, AWAY, BACK) only from it.
//!
//! Pure: no I/O, no clock; every call takes `now`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use crate::codec::{Forms, Handle};
use crate::ext::Exts;
use crate::net;

/// Most peers one client keeps; claims beyond it are dropped (a LAN of strangers cannot grow
/// the table without bound).
pub const MAX_PEERS: usize = 4096;
/// How long a claim waits for the probe of the holder's old address.
pub const PROBE_WAIT: Duration = Duration::from_millis(400);

/// A peer as this client knows it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Where it receives. Changed only through [`Peers::set_addr`] (or a remove and an
    /// insert) while it is in the table: the table's index by address relies on it.
    pub addr: SocketAddr,
    /// Whether it said AWAY (or a discovery lists it away).
    pub away: bool,
    /// The forms it uses on the wire (learned, or from the config).
    pub forms: Forms,
    /// The last sign of life: a datagram or line from it, or a discovery listing it.
    pub last_seen: Instant,
    /// Its datagrams came from the port it receives on: it has a UDP socket there, and only
    /// that socket speaks for it.
    pub own_port: bool,
    /// A TCP connection to it was accepted once.
    pub tcp_ok: bool,
    /// It reached us over UDP at least once.
    pub udp_seen: bool,
    /// The round of WHO in which its own host's discovery last listed it.
    pub home_round: u64,
    /// Rounds its own host's discovery answered without listing it.
    pub home_missed: u8,
    /// Its own host's discovery listed it once: from then on only that discovery's listings
    /// (and its own datagrams) show it is alive, since other discoveries keep a user that
    /// never heartbeats for as long as nothing proves it gone.
    pub home_seen: bool,
    /// The last MSG datagram sent to it, sent again over TCP if the datagram bounces.
    pub last_msg: Option<Vec<u8>>,
    /// It tells us its AWAY/BACK itself: a discovery's relay of them (which may arrive after
    /// the next one) is not needed.
    pub direct_presence: bool,
    /// The address a discovery listed for it last. A LEAVE this host's discovery relays is
    /// about the user it listed: it is believed only while the peer is still there.
    pub listed: Option<SocketAddr>,
    /// The extensions it announced in its `SLCPX` hello (`None`: no hello heard, a plain SLCP
    /// peer as far as we know).
    pub exts: Option<Exts>,
    /// When we last sent it our hello: a hello from it soon after is its answer (not
    /// answered again, so two slcp clients never ping-pong); a later one is a restarted
    /// client introducing itself, and gets ours.
    pub hello_sent: Option<Instant>,
}

impl Peer {
    /// A peer first seen at `addr`.
    pub fn new(addr: SocketAddr, now: Instant, forms: Forms) -> Peer {
        Peer {
            addr,
            away: false,
            forms,
            last_seen: now,
            own_port: false,
            tcp_ok: false,
            udp_seen: false,
            home_round: 0,
            home_missed: 0,
            listed: None,
            home_seen: false,
            last_msg: None,
            direct_presence: false,
            exts: None,
            hello_sent: None,
        }
    }
}

/// What a claim (a JOIN, or a discovery's entry) for a handle leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A handle nobody held: a new peer.
    New,
    /// The holder, again.
    Refresh,
    /// The client at `from`'s address now goes by the claimed handle.
    Rename {
        /// Its old handle.
        from: Handle,
    },
    /// The holder moved (restarted on another port of its host).
    Move {
        /// Where it was.
        old: SocketAddr,
    },
    /// The holder may be alive: probe its address, and decide when the probe bounced or timed
    /// out.
    Probe {
        /// The holder's address.
        old: SocketAddr,
    },
    /// Refused: the table is full, or the address cannot be a peer's.
    Refused(&'static str),
}

/// A claim that waits for the probe of the holder's address.
#[derive(Debug, Clone)]
pub struct PendingClaim {
    /// The handle.
    pub handle: Handle,
    /// The address the claim names.
    pub addr: SocketAddr,
    /// The holder's address, being probed.
    pub old: SocketAddr,
    /// When the holder counts as alive.
    pub deadline: Instant,
}

/// The table.
#[derive(Debug, Default)]
pub struct Peers {
    map: IndexMap<Handle, Peer>,
    /// The skeleton of every handle held, to refuse look-alikes in O(1).
    skeletons: HashMap<String, Handle>,
    /// The handles by the address they receive on: every datagram is matched to its sender by
    /// address, and a scan of the whole table per datagram costs O(peers) on a large LAN.
    by_addr: HashMap<SocketAddr, Vec<Handle>>,
    /// This host's addresses.
    pub local_ips: Vec<Ipv4Addr>,
    /// Claims waiting for a probe, at most one per handle.
    pub pending: Vec<PendingClaim>,
}

/// Whether `ip` may be a peer's address: unicast, not unspecified, not broadcast or multicast.
pub fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast())
                && v4.octets()[3] != 255
                && v4.octets()[0] != 0
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

impl Peers {
    /// An empty table for a host with these addresses.
    pub fn new(local_ips: Vec<Ipv4Addr>) -> Peers {
        Peers {
            local_ips,
            ..Peers::default()
        }
    }

    /// The peers, by handle, in the order they were learned.
    pub fn map(&self) -> &IndexMap<Handle, Peer> {
        &self.map
    }

    /// One peer.
    pub fn get(&self, h: &Handle) -> Option<&Peer> {
        self.map.get(h)
    }

    /// Where peer `h` sits in the table, to reach it again without a second lookup.
    pub fn index_of(&self, h: &Handle) -> Option<usize> {
        self.map.get_index_of(h)
    }

    /// The peer at `i` (from [`Peers::index_of`], valid until the table changes).
    pub fn by_index(&self, i: usize) -> &Peer {
        &self.map[i]
    }

    /// The peer at `i`, to change (from [`Peers::index_of`], valid until the table changes).
    pub fn by_index_mut(&mut self, i: usize) -> &mut Peer {
        &mut self.map[i]
    }

    /// One peer, to change.
    pub fn get_mut(&mut self, h: &Handle) -> Option<&mut Peer> {
        self.map.get_mut(h)
    }

    /// Forgets a peer; returns it.
    pub fn remove(&mut self, h: &Handle) -> Option<Peer> {
        self.pending.retain(|p| p.handle != *h);
        self.skeletons.remove(&h.skeleton());
        // shift_remove keeps the order of the others (swap_remove would move the last).
        let p = self.map.shift_remove(h)?;
        self.unindex(h, p.addr);
        Some(p)
    }

    fn unindex(&mut self, h: &Handle, addr: SocketAddr) {
        if let Some(v) = self.by_addr.get_mut(&addr) {
            v.retain(|x| x != h);
            if v.is_empty() {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Moves peer `h` to `addr`.
    pub fn set_addr(&mut self, h: &Handle, addr: SocketAddr) {
        let Some(p) = self.map.get_mut(h) else { return };
        let old = std::mem::replace(&mut p.addr, addr);
        self.unindex(h, old);
        self.by_addr.entry(addr).or_default().push(h.clone());
    }

    /// Adds a peer.
    pub fn insert(&mut self, h: Handle, p: Peer) {
        self.skeletons.insert(h.skeleton(), h.clone());
        if let Some(old) = self.map.get(&h) {
            self.unindex(&h, old.addr);
        }
        self.by_addr.entry(p.addr).or_default().push(h.clone());
        self.map.insert(h, p);
    }

    /// A held handle a human could take `h` for, if any.
    pub fn look_alike(&self, h: &Handle) -> Option<&Handle> {
        // A held handle has no look-alike held (insertion refuses them): each KNOWUSERS
        // repeats the known peers, and their skeletons (UTS 39) are costly to compute again.
        if self.map.contains_key(h) {
            return None;
        }
        self.skeletons.get(&h.skeleton()).filter(|o| *o != h)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether `a` and `b` are addresses of one host (loopback and this host's own addresses
    /// are all this host).
    pub fn same_host(&self, a: IpAddr, b: IpAddr) -> bool {
        a == b || (net::is_local(a, &self.local_ips) && net::is_local(b, &self.local_ips))
    }

    /// Whether `a` and `b` are one client's address.
    pub fn same_client(&self, a: SocketAddr, b: SocketAddr) -> bool {
        a.port() == b.port() && self.same_host(a.ip(), b.ip())
    }

    /// The peer whose receiving address is `src` (ip and port).
    pub fn at(&self, src: SocketAddr) -> Option<&Handle> {
        // Every address `same_client` takes for `src`: itself, and when it is this host's,
        // each other address of this host. The least handle, as a scan in order would find.
        let mut at: Vec<IpAddr> = vec![src.ip()];
        if net::is_local(src.ip(), &self.local_ips) {
            at.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
            at.push(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST));
            at.extend(self.local_ips.iter().map(|&ip| IpAddr::V4(ip)));
        }
        at.iter()
            .filter_map(|&ip| self.by_addr.get(&SocketAddr::new(ip, src.port())))
            .flatten()
            .filter(|h| {
                self.map
                    .get(*h)
                    .is_some_and(|p| self.same_client(p.addr, src))
            })
            .min()
    }

    /// The peers on `ip`'s host.
    pub fn on_host(&self, ip: IpAddr) -> Vec<&Handle> {
        self.map
            .iter()
            .filter(|(_, p)| self.same_host(p.addr.ip(), ip))
            .map(|(h, _)| h)
            .collect()
    }

    /// Whether a datagram from `src` speaks for `h`: from its host, and from its own port when it
    /// has shown it sends from there.
    pub fn speaks_for(&self, h: &Handle, src: SocketAddr) -> bool {
        self.map.get(h).is_some_and(|p| {
            self.same_host(p.addr.ip(), src.ip()) && (!p.own_port || p.addr.port() == src.port())
        })
    }

    /// Decides what a claim that `handle` receives at `addr` leads to (nothing is changed here
    /// except a probe being recorded).
    pub fn claim(&mut self, now: Instant, handle: &Handle, addr: SocketAddr) -> Claim {
        if !is_unicast(addr.ip()) {
            return Claim::Refused("not a unicast address");
        }
        let Some(p) = self.map.get(handle) else {
            if self.look_alike(handle).is_some() {
                return Claim::Refused("it looks like a handle that is held");
            }
            if let Some(from) = self.at(addr).cloned() {
                return Claim::Rename { from };
            }
            if self.map.len() >= MAX_PEERS {
                return Claim::Refused("the peer table is full");
            }
            return Claim::New;
        };
        if self.same_client(p.addr, addr) {
            return Claim::Refresh;
        }
        let old = p.addr;
        if !p.own_port {
            // It sends from ephemeral ports (or has no UDP socket), so a probe would prove
            // nothing: on its own host the host is what identifies it; from elsewhere the claim
            // waits until the holder leaves.
            return if self.same_host(old.ip(), addr.ip()) {
                Claim::Move { old }
            } else {
                Claim::Refused("the handle is held on another host")
            };
        }
        if let Some(w) = self.pending.iter().find(|w| w.handle == *handle) {
            // One probe at a time per handle; a second claim meanwhile is refused.
            return if w.addr == addr {
                Claim::Refused("a probe of the holder is under way")
            } else {
                Claim::Refused("the handle is held")
            };
        }
        self.pending.push(PendingClaim {
            handle: handle.clone(),
            addr,
            old,
            deadline: now + PROBE_WAIT,
        });
        Claim::Probe { old }
    }

    /// The claims whose probe bounced at `addr`: the holder is gone, the claimant takes over.
    pub fn probe_bounced(&mut self, addr: SocketAddr) -> Vec<PendingClaim> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|w| w.old == addr);
        self.pending = keep;
        gone
    }

    /// The claims whose probe went unanswered by `now`: the holder is alive, they are refused.
    pub fn probes_expired(&mut self, now: Instant) -> Vec<PendingClaim> {
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.pending = keep;
        done
    }

    /// The earliest probe deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|w| w.deadline).min()
    }
}
