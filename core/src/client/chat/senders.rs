//! Who sent something: decided by the source address (the exact address first, then the host,
//! for several users on one host and senders from ephemeral ports), never by the handle a
//! payload names. For messages, images and files.

use std::net::{IpAddr, SocketAddr};

use super::Chat;
use crate::client::peers::Peer;
use crate::client::transfer::looks_like_file_name;
use crate::codec::Handle;
use crate::render::render;

/// Who sent a MSG or IMG.
pub(super) enum Sender {
    /// A known peer at its own address.
    Peer(Handle),
    /// Nobody we can vouch for: shown as `?name@address`.
    Unverified(String),
}

impl Chat {
    /// The sender of a line that came in the clear: as [`Chat::sender`], but a handle whose key
    /// is pinned speaks only through its session, so in the clear it is not who it claims.
    pub(super) fn plain_sender(&self, named: &Handle, src: SocketAddr) -> Sender {
        match self.sender(named, src) {
            Sender::Peer(h) if self.guarded(&h) => Sender::Unverified(format!("?{h}@{src}")),
            s => s,
        }
    }

    /// Who sent a MSG or IMG naming `named` from `src`. The exact address decides first (the
    /// client at that address), then the host: several users may share a host, and some
    /// implementations send from ephemeral ports.
    pub(super) fn sender(&self, named: &Handle, src: SocketAddr) -> Sender {
        let exact = self.peers.at(src);
        if *named == self.me {
            // Some implementations put the addressee in the handle field.
            if let Some(h) = exact {
                return Sender::Peer(h.clone());
            }
            return match self.peers.on_host(src.ip()).as_slice() {
                [h] => Sender::Peer((*h).clone()),
                _ => Sender::Unverified(format!("?{named}@{src}")),
            };
        }
        match exact {
            Some(h) if h == named => Sender::Peer(h.clone()),
            // Another client's exact address naming someone else: not who it claims.
            Some(_) => Sender::Unverified(format!("?{named}@{src}")),
            // From its host; from its own port if it has shown it sends from there.
            None if self.peers.speaks_for(named, src) => Sender::Peer(named.clone()),
            None => Sender::Unverified(format!("?{named}@{src}")),
        }
    }

    /// The sender of an image whose header names `named` and that comes from `ip`: the peer of
    /// that name when it is at that address (several users may share a host). When the header
    /// names us (a tolerated form) or a file name (the READY handshake form), the one peer at
    /// exactly that IP address; an unknown name is refused.
    pub fn image_sender(&self, named: &Handle, ip: IpAddr) -> Result<String, String> {
        if *named != self.me {
            if let Some(p) = self.peers.get(named) {
                return if self.peers.same_host(p.addr.ip(), ip) {
                    Ok(named.to_string())
                } else {
                    Err(format!("{named} is known at {}, not at {ip}", p.addr))
                };
            }
            if !looks_like_file_name(named.as_str()) {
                return Err(format!("{named} at {ip} is not a known peer"));
            }
        }
        let at: Vec<(&Handle, &Peer)> = self
            .peers
            .map()
            .iter()
            .filter(|(_, p)| p.addr.ip() == ip)
            .collect();
        match at.as_slice() {
            [(h, _)] => Ok(h.to_string()),
            [] => Err(format!("nobody known at {ip}")),
            several => {
                // The one that showed it sends images this way.
                let named_img: Vec<_> = several
                    .iter()
                    .filter(|(_, p)| p.forms.ready_img || p.forms.named_img)
                    .collect();
                match named_img.as_slice() {
                    [(h, _)] => Ok(h.to_string()),
                    _ => Err(format!("several peers at {ip}; cannot tell who sent it")),
                }
            }
        }
    }

    /// The sender of a FILE whose header names `named` and comes from `ip`: that peer, if it
    /// is at that host; a stranger's file is refused.
    pub fn file_sender(&self, named: &Handle, ip: IpAddr) -> Result<String, String> {
        match self.peers.get(named) {
            Some(p) if self.peers.same_host(p.addr.ip(), ip) => Ok(named.to_string()),
            Some(p) => Err(format!("{named} is known at {}, not at {ip}", p.addr)),
            None => Err(format!(
                "{} at {ip} is not a known peer (files are taken from people in the chat only)",
                render(named.as_str())
            )),
        }
    }
}
