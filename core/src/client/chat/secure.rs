//! End-to-end encryption in the chat: sessions with slcp peers that announced `e2e`, started
//! when the hello shows it (the smaller handle initiates), messages sealed into `SLCPE`
//! datagrams, keys pinned at first use, and the rules that make a pinned key beat an address:
//! a handle whose key is pinned is believed only through a session with that key, and is sent
//! nothing in the clear.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info, warn};

use super::receive::Transport;
use super::senders::Sender;
use super::{Chat, ConnId};
use crate::codec::{self, Forms, Handle, Message};
use crate::e2e::keys::Pin;
use crate::e2e::{self, HANDSHAKE_WAIT, Handshake, Keys, Session, Wire};
use crate::ext::{self, Ext, To};
use crate::ipc::{Event, Privacy};

/// Lines waiting for a session, per peer.
const MAX_QUEUED: usize = 64;
/// A peer's first handshake messages are answered at most this often.
const ANSWER_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Whether to encrypt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Encryption {
    /// Encrypt with every slcp peer that can; plain SLCP peers get plain SLCP.
    #[default]
    Prefer,
    /// Encrypt, or refuse to send.
    Require,
    /// Never encrypt.
    Off,
}

impl Encryption {
    /// `prefer`, `require` or `off`.
    pub fn parse(s: &str) -> Option<Encryption> {
        Some(match s {
            "prefer" => Encryption::Prefer,
            "require" => Encryption::Require,
            "off" => Encryption::Off,
            _ => return None,
        })
    }

    /// The config value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Encryption::Prefer => "prefer",
            Encryption::Require => "require",
            Encryption::Off => "off",
        }
    }
}

/// A line waiting for a session, and the command that sent it (told if it cannot go).
type Queued = (Vec<u8>, Option<(ConnId, u64)>);

/// One peer's encryption state.
#[derive(Default)]
pub(super) struct PeerSec {
    hs: Option<Handshake>,
    pub(super) session: Option<Session>,
    /// The session a re-key replaced: datagrams sealed with it just before still open.
    prev: Option<Session>,
    /// When we last answered a first handshake message from it.
    answered: Option<Instant>,
    /// Lines (plaintext SLCP lines) waiting for the session, with the prompt to tell when they
    /// cannot go.
    queue: VecDeque<Queued>,
}

/// The encryption state of a client.
#[derive(Default)]
pub struct Secure {
    pub(super) keys: Option<Keys>,
    pub(super) pins: BTreeMap<String, Pin>,
    pub(super) peers: HashMap<Handle, PeerSec>,
    /// Handshakes and datagrams that failed to authenticate.
    pub refused: u64,
}

/// How a line goes to a peer.
pub(super) enum Route {
    /// In the clear.
    Plain,
    /// Through the session.
    Sealed,
    /// After the handshake under way.
    Wait,
    /// Not at all, and why.
    Refuse(String),
}

impl Chat {
    /// Our key pair and the pinned keys (the shell reads them from disk).
    pub fn set_keys(&mut self, keys: Keys, pins: BTreeMap<String, Pin>) {
        self.secure.keys = Some(keys);
        self.secure.pins = pins;
    }

    /// The pinned keys, for the shell to save when `out.pins_changed`.
    pub fn pins(&self) -> &BTreeMap<String, Pin> {
        &self.secure.pins
    }

    /// Whether a handle is guarded by a pinned key: in the clear it is not believed.
    pub(super) fn guarded(&self, h: &Handle) -> bool {
        self.s.encryption != Encryption::Off && self.secure.pins.contains_key(h.as_str())
    }

    /// How a line to `to` must go.
    pub(super) fn route(&mut self, to: &Handle) -> Route {
        if self.s.encryption == Encryption::Off || self.secure.keys.is_none() {
            return Route::Plain;
        }
        let pin = self.secure.pins.get(to.as_str()).map(|p| p.key.clone());
        if let Some(s) = self.secure.peers.get(to).and_then(|p| p.session.as_ref()) {
            if pin.as_ref().is_some_and(|k| *k != s.remote) {
                return Route::Refuse(format!(
                    "{to}'s key changed since it was pinned; compare safety numbers (FINGERPRINT {to}) and TRUST {to} if they match"
                ));
            }
            let rekeying = self.secure.peers.get(to).is_some_and(|p| p.hs.is_some());
            if s.stale(self.clock) && !rekeying {
                self.start_handshake(to);
            }
            return Route::Sealed;
        }
        let speaks = self
            .peers
            .get(to)
            .is_some_and(|p| p.exts.is_some_and(|e| e.e2e));
        if speaks || pin.is_some() {
            return Route::Wait;
        }
        if self.s.encryption == Encryption::Require {
            return Route::Refuse(format!(
                "{to}'s client does not encrypt (a plain SLCP client); encryption = \"require\" sends nothing in the clear"
            ));
        }
        Route::Plain
    }

    /// Sends `line` (one SLCP or extension line) through `to`'s session.
    pub(super) fn seal_to(&mut self, to: &Handle, line: &[u8]) -> Result<(), String> {
        let me = self.me.clone();
        let Some(addr_tcp) = self.peers.get(to).map(|p| (p.addr, p.forms.tcp)) else {
            return Err(format!("{to} left"));
        };
        let s = self
            .secure
            .peers
            .get_mut(to)
            .and_then(|p| p.session.as_mut())
            .ok_or_else(|| format!("no session with {to}"))?;
        let (nonce, ct) = s.seal(line).ok_or("encryption failed")?;
        let d = e2e::encode_sealed(&me, nonce, &ct).ok_or("too long to encrypt in one datagram")?;
        self.push_to(addr_tcp, d);
        Ok(())
    }

    fn push_to(&mut self, (addr, tcp): (SocketAddr, bool), d: Vec<u8>) {
        if tcp {
            self.out.tcp.push((addr, d));
        } else {
            self.out.udp.push((addr, d));
        }
    }

    /// The inner lines of a text to `to`: `MSG <me> <part>` lines that each fit a sealed datagram.
    pub(super) fn sealed_lines(&self, text: &str) -> Option<Vec<Vec<u8>>> {
        let room = e2e::room(&self.me);
        let f = Forms::default();
        let me = &self.me;
        match codec::encode_msg_within(me, me, text, &f, room) {
            Some(b) => Some(vec![b]),
            None => codec::split_text_within(me, me, text, &f, room).map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| codec::encode_msg_within(me, me, p, &f, room))
                    .collect()
            }),
        }
    }

    /// Queues `lines` for `to` until its session is up (a handshake is started if none runs).
    pub(super) fn queue_for(
        &mut self,
        to: &Handle,
        lines: Vec<Vec<u8>>,
        reply: Option<(ConnId, u64)>,
    ) {
        let p = self.secure.peers.entry(to.clone()).or_default();
        for l in lines {
            if p.queue.len() >= MAX_QUEUED {
                p.queue.pop_front();
            }
            p.queue.push_back((l, reply));
        }
        if p.hs.is_none() {
            self.start_handshake(to);
        }
    }

    /// Begins a handshake with `to` as the initiator.
    pub(super) fn start_handshake(&mut self, to: &Handle) {
        let Some(keys) = self.secure.keys.as_ref() else {
            return;
        };
        let Some(addr_tcp) = self.peers.get(to).map(|p| (p.addr, p.forms.tcp)) else {
            return;
        };
        if self.secure.peers.len() >= crate::client::peers::MAX_PEERS
            && !self.secure.peers.contains_key(to)
        {
            return;
        }
        match e2e::initiate(keys, self.clock) {
            Ok((hs, m1)) => {
                self.secure.peers.entry(to.clone()).or_default().hs = Some(hs);
                let d = e2e::encode_handshake(&self.me, 1, &m1);
                self.push_to(addr_tcp, d);
                debug!("handshake with {to} begun");
            }
            Err(e) => warn!("cannot begin a handshake with {to}: {e}"),
        }
    }

    /// A hello showed that `h` speaks e2e: the smaller handle begins, so both do not.
    pub(super) fn e2e_hello(&mut self, h: &Handle) {
        let idle = self
            .secure
            .peers
            .get(h)
            .is_none_or(|p| p.hs.is_none() && p.session.is_none());
        if self.s.encryption != Encryption::Off && idle && self.me < *h {
            self.start_handshake(h);
        }
    }

    /// An encryption datagram from `src`.
    pub(super) fn e2e_datagram(
        &mut self,
        now: Instant,
        src: SocketAddr,
        w: Wire,
        via: Transport,
        term: bool,
    ) {
        if self.s.encryption == Encryption::Off || self.secure.keys.is_none() {
            return;
        }
        match w {
            Wire::Handshake {
                handle,
                step,
                bytes,
            } => {
                // Who answers is decided by address; what it is, by its key (checked below).
                let h = match self.sender(&handle, src) {
                    Sender::Peer(h) => h,
                    Sender::Unverified(_) => {
                        self.secure.refused += 1;
                        return debug!("handshake from {src} ignored: it does not hold {handle}");
                    }
                };
                self.seen(now, &h, src, via, term);
                if let Err(e) = self.handshake_step(&h, step, &bytes) {
                    self.secure.refused += 1;
                    info!("handshake with {h}: {e}");
                }
            }
            Wire::Sealed { handle, nonce, ct } => {
                let opened = self.secure.peers.get_mut(&handle).and_then(|p| {
                    let now_key = p.session.as_mut().and_then(|s| s.open(nonce, &ct));
                    now_key.or_else(|| p.prev.as_mut().and_then(|s| s.open(nonce, &ct)))
                });
                let Some(plain) = opened else {
                    self.secure.refused += 1;
                    self.stats.malformed += 1;
                    return debug!("a sealed datagram from {src} did not open");
                };
                if self
                    .peers
                    .get(&handle)
                    .is_some_and(|p| p.addr.ip() == src.ip())
                {
                    self.seen(now, &handle, src, via, term);
                }
                self.opened(now, &handle, &plain);
            }
        }
    }

    fn handshake_step(&mut self, h: &Handle, step: u8, bytes: &[u8]) -> Result<(), String> {
        let keys = self.secure.keys.clone().ok_or("no key")?;
        let addr_tcp = self
            .peers
            .get(h)
            .map(|p| (p.addr, p.forms.tcp))
            .ok_or("not a peer")?;
        let now = self.clock;
        let p = self.secure.peers.entry(h.clone()).or_default();
        match step {
            1 => {
                if p.hs.as_ref().is_some_and(Handshake::is_initiator) && self.me < *h {
                    // Both began: ours goes on, theirs is dropped (they answer ours).
                    return Ok(());
                }
                // Each answer costs three Diffie-Hellman operations: a flood of first messages
                // (from a peer's address, or one spoofing it) gets a few answers a second.
                if p.answered
                    .is_some_and(|t| now.duration_since(t) < ANSWER_EVERY)
                {
                    return Err("a first handshake message too soon after the last; dropped".into());
                }
                p.answered = Some(now);
                let (hs, m2) = e2e::respond(&keys, bytes, now)?;
                p.hs = Some(hs);
                let d = e2e::encode_handshake(&self.me, 2, &m2);
                self.push_to(addr_tcp, d);
                Ok(())
            }
            2 => {
                let hs =
                    p.hs.take()
                        .filter(Handshake::is_initiator)
                        .ok_or("a second message without our first")?;
                let (s, m3) = hs.finish_initiator(bytes, now)?;
                let d = e2e::encode_handshake(&self.me, 3, &m3);
                self.push_to(addr_tcp, d);
                self.established(h, s);
                Ok(())
            }
            _ => {
                let hs =
                    p.hs.take()
                        .filter(|hs| !hs.is_initiator())
                        .ok_or("a third message without our second")?;
                let s = hs.finish_responder(bytes, now)?;
                self.established(h, s);
                Ok(())
            }
        }
    }

    /// A session with `h` is up: its key checked against the pin (or pinned), the queue sent.
    fn established(&mut self, h: &Handle, s: Session) {
        let fp = e2e::fingerprint(&s.remote);
        match self.secure.pins.get(h.as_str()) {
            None => {
                self.secure.pins.insert(
                    h.to_string(),
                    Pin {
                        key: s.remote.clone(),
                        verified: false,
                    },
                );
                self.out.pins_changed = true;
                info!("{h}'s key pinned: {fp}");
            }
            Some(p) if p.key == s.remote => {}
            Some(p) => {
                let old = e2e::fingerprint(&p.key);
                warn!("{h}'s key changed: pinned {old}, now {fp}");
                self.event(Event::Error {
                    text: format!(
                        "WARNING: {h}'s key has CHANGED (pinned {old}, now {fp}). Somebody may be impersonating {h}: its messages are marked unverified and nothing is sent to it. Compare safety numbers with {h} (FINGERPRINT {h}) and TRUST {h} if they match"
                    ),
                });
            }
        }
        let p = self.secure.peers.entry(h.clone()).or_default();
        p.prev = p.session.replace(s);
        let queue: Vec<_> = p.queue.drain(..).collect();
        for (line, reply) in queue {
            if let Route::Refuse(why) = self.route(h) {
                self.not_sent(h, reply, &why);
                continue;
            }
            if let Err(e) = self.seal_to(h, &line) {
                self.not_sent(h, reply, &e);
            }
        }
    }

    fn not_sent(&mut self, h: &Handle, reply: Option<(ConnId, u64)>, why: &str) {
        let text = format!("message to {h} not sent: {why}");
        warn!("{text}");
        match reply {
            Some((conn, _)) if self.conns.contains(&conn) => self.tell(conn, text),
            _ => self.event(Event::Error { text }),
        }
    }

    /// A line that came out of `h`'s session.
    fn opened(&mut self, now: Instant, h: &Handle, plain: &[u8]) {
        let pinned = self.secure.pins.get(h.as_str());
        let remote = self
            .secure
            .peers
            .get(h)
            .and_then(|p| p.session.as_ref())
            .map(|s| s.remote.clone());
        let privacy = match (pinned, remote) {
            (Some(p), Some(r)) if p.key == r && p.verified => Privacy::Verified,
            (Some(p), Some(r)) if p.key == r => Privacy::Encrypted,
            _ => Privacy::Unverified,
        };
        if ext::is_ext(plain) {
            match ext::decode(plain) {
                Some(Ext::Group { handle, to, text }) if handle == *h => {
                    self.stats.messages_in += 1;
                    if let (To::Named(name, m), true) = (&to, privacy != Privacy::Unverified) {
                        self.heard_group(name, h, m);
                    }
                    self.deliver_group(h.to_string(), &to, text, privacy);
                }
                _ => self.stats.malformed += 1,
            }
            return;
        }
        match codec::decode_line(String::from_utf8_lossy(plain).trim_end_matches('\n')) {
            Ok(Message::Msg { handle, text }) if handle == *h => {
                self.stats.messages_in += 1;
                if let Some((k, n, rest)) = codec::part_of(&text) {
                    let mut flushed = Vec::new();
                    let took = self.parts.add(now, h, k, n, rest, &mut flushed);
                    for (f, t) in flushed {
                        self.deliver_private(f.to_string(), t, privacy);
                    }
                    if let super::parts::Took::Whole(whole) = took {
                        self.deliver_private(h.to_string(), whole, privacy);
                    }
                    return;
                }
                self.deliver_private(h.to_string(), text, privacy);
            }
            _ => self.stats.malformed += 1,
        }
    }

    fn deliver_private(&mut self, from: String, text: String, privacy: Privacy) {
        self.record(&from, true, "text", &text, privacy.as_str());
        self.attend(&from, &from, &text);
        self.event(Event::Private {
            from,
            text,
            privacy,
        });
    }

    /// Handshakes that took too long are given up; what waited for them goes in the clear where
    /// that is allowed, or is reported as not sent.
    pub(super) fn e2e_tick(&mut self, now: Instant) {
        let late: Vec<Handle> = self
            .secure
            .peers
            .iter()
            .filter(|(_, p)| {
                p.hs.as_ref()
                    .is_some_and(|h| now.duration_since(h.started) >= HANDSHAKE_WAIT)
            })
            .map(|(h, _)| h.clone())
            .collect();
        for h in late {
            let Some(p) = self.secure.peers.get_mut(&h) else {
                continue;
            };
            p.hs = None;
            if p.session.is_some() {
                continue;
            }
            let queue: Vec<_> = p.queue.drain(..).collect();
            for (line, reply) in queue {
                if self.guarded(&h) || self.s.encryption == Encryption::Require {
                    let why = format!(
                        "no encrypted session with {h} (it did not complete a handshake within {HANDSHAKE_WAIT:?}){}",
                        if self.guarded(&h) {
                            ", and its key is pinned: nothing goes to it in the clear"
                        } else {
                            ""
                        }
                    );
                    self.not_sent(&h, reply, &why);
                } else if let Some(addr_tcp) = self.peers.get(&h).map(|p| (p.addr, p.forms.tcp)) {
                    info!("no session with {h}: sending in the clear");
                    self.push_to(addr_tcp, line);
                }
            }
        }
    }

    /// When [`Chat::e2e_tick`] must run next.
    pub(super) fn e2e_deadline(&self) -> Option<Instant> {
        self.secure
            .peers
            .values()
            .filter_map(|p| p.hs.as_ref().map(|h| h.started + HANDSHAKE_WAIT))
            .min()
    }

    /// A peer is gone (or became another client): its session goes.
    pub(super) fn e2e_forget(&mut self, h: &Handle) {
        self.secure.peers.remove(h);
    }
}
