//! An encrypted transfer between slcp peers with pinned keys (PROTOCOL.md "Encryption"): the
//! connection opens with `SLCPT <handle>\n` and a `Noise_KK_25519_AESGCM_BLAKE2s` handshake
//! (both static keys are known: the pinned ones, so only their holders complete it), then every
//! byte of the ordinary transfer travels in Noise transport messages of at most 64 KiB, each
//! behind its 2-byte length. A plain connection passes through untouched.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use snow::{Builder, HandshakeState, TransportState};

/// The pattern: KK, since both sides already know (have pinned) the other's static key. AES-GCM
/// rather than ChaChaPoly for bulk data: with the AES and carry-less multiply instructions of
/// today's CPUs (detected at run time) it is several times faster, and a file is bulk.
pub const TCP_PARAMS: &str = "Noise_KK_25519_AESGCM_BLAKE2s";
/// The largest Noise message.
const MAX_FRAME: usize = 65_535;
const TAG: usize = 16;
/// The most plaintext in one frame.
pub const MAX_PLAIN: usize = MAX_FRAME - TAG;

/// Our private key and the peer's pinned public key.
#[derive(Clone)]
pub struct TcpKeys {
    /// Ours.
    pub private: Vec<u8>,
    /// Theirs, as pinned.
    pub remote: Vec<u8>,
}

enum State {
    /// The initiator wrote message 1 and waits for message 2.
    Initiator(Box<HandshakeState>),
    /// The responder waits for message 1.
    Responder(Box<HandshakeState>),
    Transport(Box<TransportState>),
}

/// The encryption of one connection, or none.
#[derive(Default)]
pub struct Wire {
    noise: Option<Noise>,
}

struct Noise {
    /// `None` only after a failure (the connection is then given up).
    state: Option<State>,
    /// Bytes read from the socket: frames from `raw_head` to `raw_tail`.
    raw: Vec<u8>,
    raw_head: usize,
    raw_tail: usize,
    /// Plaintext that did not fit the caller's buffer.
    plain_in: Vec<u8>,
    plain_off: usize,
    out: Vec<u8>,
    out_off: usize,
    eof: bool,
}

fn builder(k: &TcpKeys) -> Result<Builder<'_>, String> {
    Builder::new(TCP_PARAMS.parse().expect("valid Noise parameters"))
        .local_private_key(&k.private)
        .and_then(|b| b.remote_public_key(&k.remote))
        .map_err(|e| e.to_string())
}

/// The receive buffer: room for two whole frames and a read.
const RAW_CAP: usize = 4 * 65_537;

/// What one frame gave.
enum Opened {
    /// Plaintext of this length, straight into the caller's buffer.
    Into(usize),
    /// A handshake step, or plaintext kept for later.
    Kept,
}

impl Noise {
    /// Reads from the socket into the receive buffer (moving a partial frame to its start
    /// first when the room at its end runs short).
    fn fill(&mut self, s: &mut TcpStream) -> io::Result<usize> {
        if self.raw_head == self.raw_tail {
            self.raw_head = 0;
            self.raw_tail = 0;
        } else if self.raw.len() - self.raw_tail < 65_537 {
            self.raw.copy_within(self.raw_head..self.raw_tail, 0);
            self.raw_tail -= self.raw_head;
            self.raw_head = 0;
        }
        let k = s.read(&mut self.raw[self.raw_tail..])?;
        self.raw_tail += k;
        Ok(k)
    }

    /// Handles the next complete frame, if one is in: a handshake step, or plaintext opened
    /// into `buf` when it fits (else kept).
    fn next_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<Opened>> {
        let have = self.raw_tail - self.raw_head;
        if have < 2 {
            return Ok(None);
        }
        let h = self.raw_head;
        let len = usize::from(u16::from_be_bytes([self.raw[h], self.raw[h + 1]]));
        if have < 2 + len {
            return Ok(None);
        }
        self.raw_head += 2 + len;
        let msg = &self.raw[h + 2..h + 2 + len];
        let state = self
            .state
            .take()
            .ok_or_else(|| bad("the connection failed before"))?;
        let (next, opened) = match state {
            State::Responder(mut hs) => {
                let mut scratch = [0u8; 256];
                hs.read_message(msg, &mut scratch)
                    .map_err(|e| bad(format!("the sender's key is not the pinned one ({e})")))?;
                let mut m2 = [0u8; 256];
                let k = hs
                    .write_message(&[], &mut m2)
                    .map_err(|e| bad(e.to_string()))?;
                frame(&mut self.out, &m2[..k]);
                let t = hs.into_transport_mode().map_err(|e| bad(e.to_string()))?;
                (State::Transport(Box::new(t)), Opened::Kept)
            }
            State::Initiator(mut hs) => {
                let mut scratch = [0u8; 256];
                hs.read_message(msg, &mut scratch)
                    .map_err(|e| bad(format!("the receiver's key is not the pinned one ({e})")))?;
                let t = hs.into_transport_mode().map_err(|e| bad(e.to_string()))?;
                (State::Transport(Box::new(t)), Opened::Kept)
            }
            State::Transport(mut t) => {
                let opened = if buf.len() >= len {
                    let k = t
                        .read_message(msg, buf)
                        .map_err(|_| bad("a frame that does not authenticate"))?;
                    Opened::Into(k)
                } else {
                    let at = self.plain_in.len();
                    self.plain_in.resize(at + len, 0);
                    let k = t
                        .read_message(msg, &mut self.plain_in[at..])
                        .map_err(|_| bad("a frame that does not authenticate"))?;
                    self.plain_in.truncate(at + k);
                    Opened::Kept
                };
                (State::Transport(t), opened)
            }
        };
        self.state = Some(next);
        Ok(Some(opened))
    }
}

fn frame(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
}

fn bad(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

impl Wire {
    /// The sender's side: `SLCPT <me>` and message 1 wait in the output.
    pub fn initiator(me: &str, k: &TcpKeys) -> Result<Wire, String> {
        let mut hs = builder(k)?.build_initiator().map_err(|e| e.to_string())?;
        let mut m1 = vec![0u8; 256];
        let n = hs.write_message(&[], &mut m1).map_err(|e| e.to_string())?;
        let mut out = format!("SLCPT {me}\n").into_bytes();
        frame(&mut out, &m1[..n]);
        Ok(Wire {
            noise: Some(Noise {
                state: Some(State::Initiator(Box::new(hs))),
                raw: vec![0; RAW_CAP],
                raw_head: 0,
                raw_tail: 0,
                plain_in: Vec::new(),
                plain_off: 0,
                out,
                out_off: 0,
                eof: false,
            }),
        })
    }

    /// The receiver's side, after the `SLCPT` line: `rest` is what followed it.
    pub fn responder(k: &TcpKeys, rest: &[u8]) -> Result<Wire, String> {
        let hs = builder(k)?.build_responder().map_err(|e| e.to_string())?;
        Ok(Wire {
            noise: Some(Noise {
                state: Some(State::Responder(Box::new(hs))),
                raw: {
                    let mut r = vec![0; RAW_CAP.max(rest.len() + 65_537)];
                    r[..rest.len()].copy_from_slice(rest);
                    r
                },
                raw_head: 0,
                raw_tail: rest.len(),
                plain_in: Vec::new(),
                plain_off: 0,
                out: Vec::new(),
                out_off: 0,
                eof: false,
            }),
        })
    }

    /// Whether this connection is encrypted.
    pub fn is_secure(&self) -> bool {
        self.noise.is_some()
    }

    /// Whether the handshake is done (always, for a plain connection).
    pub fn ready(&self) -> bool {
        self.noise
            .as_ref()
            .is_none_or(|n| matches!(n.state, Some(State::Transport(_))))
    }

    /// Writes what waits in the output; `Ok(true)` when nothing is left.
    pub fn flush(&mut self, s: &mut TcpStream) -> io::Result<bool> {
        let Some(n) = self.noise.as_mut() else {
            return Ok(true);
        };
        while n.out_off < n.out.len() {
            match s.write(&n.out[n.out_off..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => n.out_off += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        n.out.clear();
        n.out_off = 0;
        Ok(true)
    }

    /// Writes `data` (at most one frame of it): the number of plaintext bytes taken. They may
    /// still wait in the output; [`Wire::flush`] before a shutdown.
    pub fn write(&mut self, s: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
        if self.noise.is_none() {
            return s.write(data);
        }
        if !self.flush(s)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.noise.as_mut().expect("noise");
        let Some(State::Transport(t)) = &mut n.state else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let take = data.len().min(MAX_PLAIN);
        // Sealed straight into the output, behind its length.
        let at = n.out.len();
        n.out.resize(at + 2 + take + TAG, 0);
        let len = t
            .write_message(&data[..take], &mut n.out[at + 2..])
            .map_err(|e| bad(e.to_string()))?;
        n.out.truncate(at + 2 + len);
        n.out[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        // Written now if the socket takes it; the rest on the next call or flush.
        let _ = self.flush(s)?;
        Ok(take)
    }

    /// Reads plaintext; drives the handshake first. `Ok(0)` at the end of the stream.
    pub fn read(&mut self, s: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(n) = self.noise.as_mut() else {
                return s.read(buf);
            };
            if n.plain_off < n.plain_in.len() {
                let k = buf.len().min(n.plain_in.len() - n.plain_off);
                buf[..k].copy_from_slice(&n.plain_in[n.plain_off..n.plain_off + k]);
                n.plain_off += k;
                if n.plain_off == n.plain_in.len() {
                    n.plain_in.clear();
                    n.plain_off = 0;
                }
                return Ok(k);
            }
            match n.next_frame(buf)? {
                Some(Opened::Into(k)) if k > 0 => return Ok(k),
                Some(_) => {
                    // A responder's message 2 goes out as soon as message 1 is in.
                    if !n.out.is_empty() {
                        let _ = self.flush(s)?;
                    }
                    continue;
                }
                None => {}
            }
            if n.eof {
                return if n.raw_tail == n.raw_head {
                    Ok(0)
                } else {
                    Err(bad("the stream ended inside an encrypted frame"))
                };
            }
            if n.fill(s)? == 0 {
                n.eof = true;
            }
        }
    }

    /// The initiator: reads until the handshake is done. `Ok(true)` when it is.
    pub fn handshake(&mut self, s: &mut TcpStream) -> io::Result<bool> {
        if !self.flush(s)? {
            return Ok(false);
        }
        while !self.ready() {
            let n = self.noise.as_mut().expect("noise");
            if n.next_frame(&mut [])?.is_some() {
                continue;
            }
            match n.fill(s) {
                Ok(0) => {
                    return Err(bad(
                        "the receiver closed the connection during the handshake",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
