//! What the shell tells the chat from outside the protocol: a command finished later, a
//! transfer's progress, an image saved or sent, a plugin call's outcome; and what a transfer
//! needs to know of a peer.

use std::net::SocketAddr;

use log::warn;

use crate::codec::{Forms, Handle, Message};
use crate::ipc::{Event, ServerMsg};
use crate::plugin::CallOut;

use super::{Chat, ConnId, To};

impl Chat {
    /// Ends a command whose outcome came later (an image transfer).
    pub fn finish_command(&mut self, conn: ConnId, id: u64, result: Result<Vec<String>, String>) {
        self.reply(conn, id, result);
    }

    /// Tells the prompt that started a send how far it is.
    pub fn progress(&mut self, conn: ConnId, sent: u64, size: u64) {
        if self.conns.contains(&conn) {
            self.out.ipc.push((
                To::Conn(conn),
                ServerMsg::Event {
                    event: Event::Progress { sent, size },
                    at: self.wall,
                },
            ));
        }
    }

    /// A notice for one prompt (the one a command of which it concerns).
    pub fn tell(&mut self, conn: ConnId, text: String) {
        if self.conns.contains(&conn) {
            let at = self.wall;
            self.out.ipc.push((
                To::Conn(conn),
                ServerMsg::Event {
                    event: Event::Notice { text },
                    at,
                },
            ));
        }
    }

    /// An image was saved: tell the prompts and the plugins.
    pub fn image_received(&mut self, from: String, size: u64, path: String) {
        self.record(&from, true, "image", &path, "received");
        let what = format!(
            "sent an image ({})",
            crate::client::transfer::human_bytes(size)
        );
        self.attend(&from, &from, &what);
        self.event(Event::Image { from, size, path });
    }

    /// An image this client sent arrived.
    pub fn image_sent(&mut self, to: &str, path: &str) {
        self.record(to, false, "image", path, "sent");
    }

    /// A problem the prompts should hear of (a refused image, ...).
    pub fn report(&mut self, text: String) {
        self.event(Event::Error { text });
    }

    /// Where `to` receives, if known.
    pub fn peer_addr(&self, to: &Handle) -> Option<SocketAddr> {
        self.peers.get(to).map(|p| p.addr)
    }

    /// The forms `to` uses, and where it takes images (its JOIN port unless the config says
    /// otherwise).
    pub fn image_target(&self, to: &Handle) -> Option<(SocketAddr, Forms)> {
        let p = self.peers.get(to)?;
        let port = self
            .s
            .image_ports
            .get(to.as_str())
            .copied()
            .unwrap_or(p.addr.port());
        Some((SocketAddr::new(p.addr.ip(), port), p.forms))
    }

    /// Announces an image of `size` bytes to `to` (the UDP half of SLCP's IMG), unless `to` has
    /// shown it sends images on TCP only (then it does not expect the announcement).
    pub fn announce_image(&mut self, to: &Handle, size: u64) {
        let Some(p) = self.peers.get(to) else { return };
        if p.forms.named_img || p.forms.ready_img || p.forms.tcp {
            return;
        }
        let handle = if p.forms.recipient { to } else { &self.me };
        let m = Message::Img {
            handle: handle.clone(),
            size,
            name: None,
        };
        let addr = p.addr;
        self.send_to(addr, &m);
    }

    /// What a transfer showed of the forms of the peer at `ip` named `who`.
    pub fn learn_image_forms(&mut self, who: &str, named: bool, ready: bool) {
        if let Some(p) = Handle::new(who).ok().and_then(|h| self.peers.get_mut(&h)) {
            p.forms.named_img |= named;
            p.forms.ready_img |= ready;
        }
    }

    /// Applies what a plugin call produced: its messages are sent; for a command, its lines and
    /// error are the reply; for an event, its lines become notices.
    pub fn plugin_done(&mut self, call: Option<(ConnId, u64)>, out: CallOut) {
        for (to, text) in out.sends {
            if let Err(e) = self.send_msg(&to, &text) {
                warn!("plugin message to {to} not sent: {e}");
            }
        }
        match call {
            Some(_) if out.deferred && out.error.is_none() => {}
            Some((conn, id)) => {
                let r = match out.error {
                    Some(e) => Err(e),
                    None => Ok(out.lines),
                };
                self.reply(conn, id, r);
            }
            None => {
                for text in out.lines {
                    self.event(Event::Notice { text });
                }
            }
        }
    }
}
