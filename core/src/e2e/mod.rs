//! End-to-end encryption between slcp peers (PROTOCOL.md "Encryption"): Noise sessions
//! (`Noise_XX_25519_ChaChaPoly_BLAKE2s`, the snow crate) carried in extension datagrams, with
//! explicit nonces and a replay window (datagrams are lost and reordered), and safety numbers.
//!
//! No I/O and no clock: times come in as parameters. The only impurity is the randomness of
//! the handshake's ephemeral keys, which snow draws from the operating system.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use sha2::{Digest, Sha256};
use snow::{Builder, HandshakeState, StatelessTransportState};

use crate::codec::{Handle, MAX_SEND};

pub mod keys;

/// The handshake pattern and primitives. XX: both static keys travel encrypted (nobody on the
/// LAN learns them from the handshake), and neither side needs the other's key beforehand, so
/// first contact and later contacts take the same path; the pinned key is checked when the
/// handshake ends. On a LAN its extra half round trip costs well under a millisecond.
pub const PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// A session is replaced by a fresh handshake after this long or this many messages sent.
pub const REKEY_AFTER: Duration = Duration::from_secs(3600);
/// See [`REKEY_AFTER`].
pub const REKEY_MESSAGES: u64 = 1 << 20;
/// How long a handshake may take before it is given up.
pub const HANDSHAKE_WAIT: Duration = Duration::from_secs(3);
const TAG: usize = 16;

/// A static key pair.
#[derive(Clone)]
pub struct Keys {
    /// The X25519 private key (32 bytes).
    pub private: Vec<u8>,
    /// The public key (32 bytes).
    pub public: Vec<u8>,
}

fn params() -> snow::params::NoiseParams {
    PARAMS.parse().expect("valid Noise parameters")
}

/// A fresh static key pair.
pub fn generate() -> Keys {
    let k = Builder::new(params())
        .generate_keypair()
        .expect("the OS gives randomness");
    Keys {
        private: k.private,
        public: k.public,
    }
}

/// The safety number of a public key: 30 digits in six groups of five, read aloud to compare
/// (the first 25 bytes of its SHA-256, each group from 5 bytes modulo 100 000).
pub fn fingerprint(public: &[u8]) -> String {
    let h = Sha256::digest(public);
    h[..30]
        .chunks(5)
        .map(|c| {
            let v = c.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            format!("{:05}", v % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Nonces seen lately: a 128-wide sliding window, as IPsec and WireGuard keep.
#[derive(Debug, Default)]
pub struct Replay {
    top: u64,
    bits: u128,
    any: bool,
}

impl Replay {
    /// Whether `n` is new (and remember it); a repeat or one too old is refused.
    pub fn fresh(&mut self, n: u64) -> bool {
        if !self.any || n > self.top {
            let shift = if self.any { n - self.top } else { 128 };
            self.bits = if shift >= 128 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.top = n;
            self.any = true;
            return true;
        }
        let back = self.top - n;
        if back >= 128 || self.bits & (1 << back) != 0 {
            return false;
        }
        self.bits |= 1 << back;
        true
    }
}

/// An established session with one peer.
pub struct Session {
    t: StatelessTransportState,
    next: u64,
    replay: Replay,
    /// The peer's static public key, proven by the handshake.
    pub remote: Vec<u8>,
    /// When it was established.
    pub since: Instant,
}

impl Session {
    fn new(hs: HandshakeState, now: Instant) -> Result<Session, String> {
        let remote = hs
            .get_remote_static()
            .ok_or("the handshake gave no static key")?
            .to_vec();
        let t = hs
            .into_stateless_transport_mode()
            .map_err(|e| format!("handshake: {e}"))?;
        Ok(Session {
            t,
            next: 0,
            replay: Replay::default(),
            remote,
            since: now,
        })
    }

    /// Whether it should be replaced by a fresh handshake.
    pub fn stale(&self, now: Instant) -> bool {
        now.duration_since(self.since) >= REKEY_AFTER || self.next >= REKEY_MESSAGES
    }

    /// Encrypts `plain`: its nonce and the ciphertext.
    pub fn seal(&mut self, plain: &[u8]) -> Option<(u64, Vec<u8>)> {
        let mut out = vec![0u8; plain.len() + TAG];
        let n = self.next;
        let len = self.t.write_message(n, plain, &mut out).ok()?;
        out.truncate(len);
        self.next += 1;
        Some((n, out))
    }

    /// Decrypts and authenticates; `None` for a forgery, a replay or one too old.
    pub fn open(&mut self, nonce: u64, ct: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0u8; ct.len()];
        let len = self.t.read_message(nonce, ct, &mut out).ok()?;
        // Only an authentic datagram moves the window.
        if !self.replay.fresh(nonce) {
            return None;
        }
        out.truncate(len);
        Some(out)
    }
}

/// A handshake under way.
pub struct Handshake {
    hs: HandshakeState,
    /// When it began.
    pub started: Instant,
}

fn builder(keys: &Keys) -> Result<Builder<'_>, String> {
    Builder::new(params())
        .local_private_key(&keys.private)
        .map_err(|e| e.to_string())
}

/// Begins a handshake as the initiator: the state and the first message (`-> e`).
pub fn initiate(keys: &Keys, now: Instant) -> Result<(Handshake, Vec<u8>), String> {
    let mut hs = builder(keys)?
        .build_initiator()
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256];
    let n = hs.write_message(&[], &mut buf).map_err(|e| e.to_string())?;
    buf.truncate(n);
    Ok((Handshake { hs, started: now }, buf))
}

/// Answers a first message as the responder: the state and the second message
/// (`<- e, ee, s, es`).
pub fn respond(keys: &Keys, msg1: &[u8], now: Instant) -> Result<(Handshake, Vec<u8>), String> {
    let mut hs = builder(keys)?
        .build_responder()
        .map_err(|e| e.to_string())?;
    let mut scratch = vec![0u8; 256];
    hs.read_message(msg1, &mut scratch)
        .map_err(|e| format!("bad first handshake message: {e}"))?;
    let mut buf = vec![0u8; 256];
    let n = hs.write_message(&[], &mut buf).map_err(|e| e.to_string())?;
    buf.truncate(n);
    Ok((Handshake { hs, started: now }, buf))
}

impl Handshake {
    /// The initiator reads the second message and writes the third (`-> s, se`): the session.
    pub fn finish_initiator(
        mut self,
        msg2: &[u8],
        now: Instant,
    ) -> Result<(Session, Vec<u8>), String> {
        let mut scratch = vec![0u8; 256];
        self.hs
            .read_message(msg2, &mut scratch)
            .map_err(|e| format!("bad second handshake message: {e}"))?;
        let mut buf = vec![0u8; 256];
        let n = self
            .hs
            .write_message(&[], &mut buf)
            .map_err(|e| e.to_string())?;
        buf.truncate(n);
        Ok((Session::new(self.hs, now)?, buf))
    }

    /// The responder reads the third message: the session.
    pub fn finish_responder(mut self, msg3: &[u8], now: Instant) -> Result<Session, String> {
        let mut scratch = vec![0u8; 256];
        self.hs
            .read_message(msg3, &mut scratch)
            .map_err(|e| format!("bad third handshake message: {e}"))?;
        Session::new(self.hs, now)
    }

    /// Whether it is the initiator's.
    pub fn is_initiator(&self) -> bool {
        self.hs.is_initiator()
    }
}

/// One encryption datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// `SLCPH <handle> <step> <base64>`: handshake message 1, 2 or 3.
    Handshake {
        /// The sender's claim.
        handle: Handle,
        /// 1, 2 or 3.
        step: u8,
        /// The Noise message.
        bytes: Vec<u8>,
    },
    /// `SLCPE <handle> <nonce> <base64>`: one SLCP or extension line, encrypted.
    Sealed {
        /// The sender's claim (which session to try).
        handle: Handle,
        /// The explicit nonce.
        nonce: u64,
        /// Ciphertext and tag.
        ct: Vec<u8>,
    },
}

/// Whether a datagram is an encryption datagram.
pub fn is_e2e(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SLCPH ") || bytes.starts_with(b"SLCPE ")
}

/// Decodes an encryption datagram; `None` when malformed.
pub fn decode(bytes: &[u8]) -> Option<Wire> {
    let s = std::str::from_utf8(bytes)
        .ok()?
        .trim_end_matches(['\n', '\r']);
    let mut f = s.split(' ');
    let (word, h, n, b) = (f.next()?, f.next()?, f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    let handle = Handle::new(h).ok()?;
    let data = B64.decode(b).ok()?;
    match word {
        "SLCPH" => {
            let step: u8 = n.parse().ok()?;
            (1..=3).contains(&step).then_some(Wire::Handshake {
                handle,
                step,
                bytes: data,
            })
        }
        "SLCPE" => Some(Wire::Sealed {
            handle,
            nonce: n.parse().ok()?,
            ct: data,
        }),
        _ => None,
    }
}

/// `SLCPH <me> <step> <base64>\n`.
pub fn encode_handshake(me: &Handle, step: u8, bytes: &[u8]) -> Vec<u8> {
    format!("SLCPH {me} {step} {}\n", B64.encode(bytes)).into_bytes()
}

/// `SLCPE <me> <nonce> <base64>\n`, or `None` when over 512 bytes.
pub fn encode_sealed(me: &Handle, nonce: u64, ct: &[u8]) -> Option<Vec<u8>> {
    let out = format!("SLCPE {me} {nonce} {}\n", B64.encode(ct)).into_bytes();
    (out.len() <= MAX_SEND).then_some(out)
}

/// The longest line that fits one `SLCPE` datagram from `me` at the largest nonce.
pub fn room(me: &Handle) -> usize {
    let header = "SLCPE ".len() + me.as_str().len() + 1 + 20 + 1 + 1;
    let b64 = MAX_SEND - header;
    // base64 without padding: 4 characters carry 3 bytes.
    (b64 / 4 * 3) - TAG
}

#[cfg(test)]
mod tests;
