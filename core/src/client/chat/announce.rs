//! Where JOIN, WHO and presence go: to every discovery (broadcast), or to this host's slcp
//! discovery alone when it speaks for us on the LAN, and to the peers we know.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use super::Chat;
use crate::codec::{self, Message};

impl Chat {
    pub(super) fn broadcast(&mut self, m: &Message) {
        let Ok(b) = codec::encode(m) else { return };
        for ip in &self.s.broadcast {
            self.out
                .udp
                .push((SocketAddr::new(*ip, self.s.whoisport), b.clone()));
        }
    }

    /// Where this host's discovery listens, as our broadcast would have reached it: at our
    /// LAN address when we broadcast on the LAN (so that it lists us under the address other
    /// hosts reach), on loopback when we only broadcast there (one machine).
    pub(crate) fn local_discovery_addr(&self) -> SocketAddr {
        let lan = self.s.broadcast.iter().any(|b| !b.is_loopback());
        let ip = self
            .s
            .local_ips
            .iter()
            .find(|ip| lan && !ip.is_loopback())
            .copied()
            .unwrap_or(Ipv4Addr::LOCALHOST);
        SocketAddr::new(IpAddr::V4(ip), self.s.whoisport)
    }

    /// JOIN and WHO: to this host's slcp discovery when one speaks for us, else to every
    /// discovery.
    pub(super) fn tell_discovery(&mut self, m: &Message) {
        if self.s.local_discovery {
            let to = self.local_discovery_addr();
            self.send_to(to, m);
            for ip in self.s.static_peers.clone() {
                self.send_to(SocketAddr::new(ip, self.s.whoisport), m);
            }
        } else {
            self.broadcast(m);
        }
    }

    /// WHO to every discovery (or to ours, which knows everyone); a new round of answers begins.
    pub(super) fn ask_who(&mut self, now: Instant) {
        self.tell_discovery(&Message::Who);
        self.last_who = Some(now);
    }

    /// Broadcast, and unicast to every known peer (over TCP to those without UDP).
    pub(super) fn announce(&mut self, m: &Message) {
        self.broadcast(m);
        self.unicast_peers(m);
    }

    /// To every known peer (over TCP to those without UDP).
    pub(super) fn unicast_peers(&mut self, m: &Message) {
        let Ok(b) = codec::encode(m) else { return };
        for p in self.peers.map().values() {
            if p.forms.tcp {
                self.out.tcp.push((p.addr, b.clone()));
            } else {
                self.out.udp.push((p.addr, b.clone()));
            }
        }
    }
}
