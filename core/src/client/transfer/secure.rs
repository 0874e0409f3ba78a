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
    raw_in: Vec<u8>,
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
                raw_in: Vec::new(),
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
                raw_in: rest.to_vec(),
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
        if self.noise.is_none() {
            return s.read(buf);
        }
        loop {
            let n = self.noise.as_mut().expect("noise");
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
            let took = self.take_frames()?;
            // A responder's message 2 goes out as soon as message 1 is in.
            if self.noise.as_ref().is_some_and(|n| !n.out.is_empty()) {
                let _ = self.flush(s)?;
            }
            if took {
                continue;
            }
            let n = self.noise.as_mut().expect("noise");
            if n.eof {
                return if n.raw_in.is_empty() {
                    Ok(0)
                } else {
                    Err(bad("the stream ended inside an encrypted frame"))
                };
            }
            let mut tmp = [0u8; 64 * 1024];
            match s.read(&mut tmp) {
                Ok(0) => n.eof = true,
                Ok(k) => n.raw_in.extend_from_slice(&tmp[..k]),
                Err(e) => return Err(e),
            }
        }
    }

    /// Handles the complete frames that arrived; true when some did.
    fn take_frames(&mut self) -> io::Result<bool> {
        let n = self.noise.as_mut().expect("noise");
        let mut any = false;
        loop {
            if n.raw_in.len() < 2 {
                return Ok(any);
            }
            let len = usize::from(u16::from_be_bytes([n.raw_in[0], n.raw_in[1]]));
            if n.raw_in.len() < 2 + len {
                return Ok(any);
            }
            let msg: Vec<u8> = n.raw_in.drain(..2 + len).skip(2).collect();
            any = true;
            let state = n
                .state
                .take()
                .ok_or_else(|| bad("the connection failed before"))?;
            n.state = Some(match state {
                State::Responder(mut hs) => {
                    let mut scratch = vec![0u8; 256];
                    hs.read_message(&msg, &mut scratch).map_err(|e| {
                        bad(format!("the sender's key is not the pinned one ({e})"))
                    })?;
                    let mut m2 = vec![0u8; 256];
                    let k = hs
                        .write_message(&[], &mut m2)
                        .map_err(|e| bad(e.to_string()))?;
                    frame(&mut n.out, &m2[..k]);
                    State::Transport(Box::new(
                        hs.into_transport_mode().map_err(|e| bad(e.to_string()))?,
                    ))
                }
                State::Initiator(mut hs) => {
                    let mut scratch = vec![0u8; 256];
                    hs.read_message(&msg, &mut scratch).map_err(|e| {
                        bad(format!("the receiver's key is not the pinned one ({e})"))
                    })?;
                    State::Transport(Box::new(
                        hs.into_transport_mode().map_err(|e| bad(e.to_string()))?,
                    ))
                }
                State::Transport(mut t) => {
                    // Opened straight into the plaintext buffer.
                    let at = n.plain_in.len();
                    n.plain_in.resize(at + msg.len(), 0);
                    let k = t
                        .read_message(&msg, &mut n.plain_in[at..])
                        .map_err(|_| bad("a frame that does not authenticate"))?;
                    n.plain_in.truncate(at + k);
                    State::Transport(t)
                }
            });
        }
    }

    /// The initiator: reads until the handshake is done. `Ok(true)` when it is.
    pub fn handshake(&mut self, s: &mut TcpStream) -> io::Result<bool> {
        if !self.flush(s)? {
            return Ok(false);
        }
        while !self.ready() {
            self.take_frames()?;
            if self.ready() {
                break;
            }
            let n = self.noise.as_mut().expect("noise");
            let mut tmp = [0u8; 1024];
            match s.read(&mut tmp) {
                Ok(0) => {
                    return Err(bad(
                        "the receiver closed the connection during the handshake",
                    ));
                }
                Ok(k) => n.raw_in.extend_from_slice(&tmp[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
