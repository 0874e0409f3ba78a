//! Image transfers over TCP, inside the client's event loop.
//!
//! Sending: connect without blocking, write the `IMG <handle> <size>` header line, stream the file
//! in chunks, shut down the write side, then wait for the receiver to close: a normal close means
//! it kept the image, a reset means it refused or aborted it. Receiving: read the header, check
//! the sender and the size, let the plugins decide, write to a hidden temporary file in
//! `imagepath`, and give it its final name (never overwriting) only when every byte is there.
//!
//! Readiness is edge-triggered, and a turn moves at most `TURN_BUDGET` bytes, so a transfer that
//! could go on forever is put back in the ready queue instead: messages keep flowing while a large
//! image moves.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::codec::{self, Handle, Message};
use slcp_plugin_api::names::default_name;

use super::chat::ConnId;

/// Transfer tokens start here; lower tokens belong to the client's sockets and IPC connections.
pub const TOKEN_BASE: usize = 1 << 40;
/// Bytes moved per read or write call.
const CHUNK: usize = 256 * 1024;
/// Bytes one transfer may move before the loop turns to other work.
const TURN_BUDGET: u64 = 2 * 1024 * 1024;
/// The longest header line accepted.
const MAX_HEADER: usize = 600;
/// How often the sender's prompt hears of progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// What a transfer led to; the shell turns it into replies and events.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A send is under way.
    Progress {
        /// The command that started it.
        reply: (ConnId, u64),
        /// Bytes written.
        sent: u64,
        /// Of.
        size: u64,
    },
    /// A send finished.
    Sent {
        /// The command that started it.
        reply: (ConnId, u64),
        /// What to tell the user.
        line: String,
    },
    /// A send failed.
    SendFailed {
        /// The command that started it.
        reply: (ConnId, u64),
        /// Why, in one line.
        error: String,
    },
    /// An image was saved.
    Received {
        /// Sender.
        from: String,
        /// Size.
        size: u64,
        /// Where.
        path: PathBuf,
    },
    /// A receive was refused or aborted; nothing was left in `imagepath`.
    RecvFailed {
        /// Why, in one line.
        error: String,
    },
    /// SLCP lines arrived on a TCP connection (a peer that speaks SLCP over TCP).
    Lines {
        /// The connection's source.
        from: SocketAddr,
        /// One or more complete lines (the last may lack its terminator at the end of a stream).
        bytes: Vec<u8>,
    },
    /// A connection to a peer was accepted (true) or refused (false).
    Reached {
        /// The peer.
        addr: SocketAddr,
        /// Whether it accepted.
        ok: bool,
    },
    /// What a received image showed of its sender's forms.
    Forms {
        /// The sender.
        from: String,
        /// `IMG <handle> <name> <size> ` header.
        named: bool,
        /// `IMG <name> <size>` header answered with READY.
        ready: bool,
    },
}

/// How an image goes to one peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendForm {
    /// The reference implementation's `IMG <handle> <file name> <size> ` header (no newline).
    pub named: bool,
    /// `IMG <file name> <size>\n`, then wait for the receiver's `READY`.
    pub ready: bool,
    /// The addressee's handle in the header's handle field.
    pub recipient: bool,
}

/// What the receiving side asks the rest of the client.
pub trait Policy {
    /// The sender of an image whose header names `named`, coming from `ip`; an error when the
    /// sender is not a known peer.
    fn sender(&mut self, named: &Handle, ip: IpAddr) -> Result<String, String>;
    /// Whether `h` is anybody's handle (a header naming no one carries a file name instead).
    fn knows(&mut self, h: &Handle) -> bool;
    /// Whether to receive it (the plugins decide).
    fn offer(&mut self, from: &str, size: u64) -> Result<(), String>;
    /// Its file name (the plugins decide).
    fn name(&mut self, from: &str, size: u64, head: &[u8]) -> Result<String, String>;
}

struct Send {
    /// SLCP lines for a peer without UDP: no file, no verdict to wait for.
    lines: bool,
    /// Waiting for the receiver's `READY` before the bytes.
    wait_ready: bool,
    ready_buf: Vec<u8>,
    to: String,
    addr: SocketAddr,
    file_name: String,
    stream: TcpStream,
    file: Option<File>,
    size: u64,
    /// Bytes of the file handed to the socket.
    sent: u64,
    header: Vec<u8>,
    header_off: usize,
    buf: Vec<u8>,
    buf_off: usize,
    connected: bool,
    /// Everything written; waiting for the receiver's close.
    done_writing: bool,
    started: Instant,
    last_io: Instant,
    last_progress: Instant,
    reply: (ConnId, u64),
}

struct Body {
    from: String,
    size: u64,
    received: u64,
    file: File,
    tmp: PathBuf,
    head: Vec<u8>,
}

struct Recv {
    stream: TcpStream,
    peer: SocketAddr,
    header: Vec<u8>,
    body: Option<Body>,
    /// Not an image: SLCP lines (`MSG ...`, `KNOWUSERS ...`) on the TCP port.
    lines: bool,
    /// We answered a handshake header with READY.
    readied: bool,
    last_io: Instant,
}

struct Announcement {
    src: SocketAddr,
    handle: String,
    size: u64,
    at: Instant,
}

/// Announcements kept per source address, and in all.
const MAX_ANNOUNCED_PER_SOURCE: usize = 8;
const MAX_ANNOUNCED: usize = 1024;
/// Incoming connections at once, and from one address.
const MAX_RECVS: usize = 64;
const MAX_RECVS_PER_IP: usize = 8;
/// The longest SLCP line accepted on the TCP port.
const MAX_TCP_LINE: usize = 64 * 1024;

/// Every transfer of one client.
pub struct Transfers {
    next_id: u64,
    sends: HashMap<u64, Send>,
    recvs: HashMap<u64, Recv>,
    ready: VecDeque<u64>,
    queued: HashSet<u64>,
    /// UDP announcements by source ip (bounded, looked up by address).
    announced: HashMap<IpAddr, VecDeque<Announcement>>,
    announced_total: usize,
    timeout: Duration,
    /// How long a send waits for the receiver's close after the last byte.
    grace: Duration,
    imagepath: PathBuf,
    max_bytes: u64,
    buf: Vec<u8>,
}

fn token(id: u64) -> Token {
    Token(TOKEN_BASE + id as usize)
}

/// `n` bytes for people: `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The reason of an I/O error, with the cases a user can act on spelled out.
fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(28) => "disk full".into(),
        Some(13) => "permission denied".into(),
        _ => e.to_string(),
    }
}

impl Transfers {
    /// No transfers yet; received images go to `imagepath`.
    pub fn new(
        imagepath: PathBuf,
        max_bytes: u64,
        timeout: Duration,
        grace: Duration,
    ) -> Transfers {
        Transfers {
            next_id: 0,
            sends: HashMap::new(),
            recvs: HashMap::new(),
            ready: VecDeque::new(),
            queued: HashSet::new(),
            announced: HashMap::new(),
            announced_total: 0,
            timeout,
            grace,
            imagepath,
            max_bytes,
            buf: vec![0; CHUNK],
        }
    }

    /// Whether a token is a transfer's.
    pub fn owns(t: Token) -> bool {
        t.0 >= TOKEN_BASE
    }

    /// Transfers in flight (sending, receiving).
    pub fn counts(&self) -> (usize, usize) {
        (self.sends.len(), self.recvs.len())
    }

    /// Whether some transfer has work left from its last turn.
    pub fn busy(&self) -> bool {
        !self.ready.is_empty()
    }

    fn mark_ready(&mut self, id: u64) {
        if self.queued.insert(id) {
            self.ready.push_back(id);
        }
    }

    /// A readiness event for a transfer's token.
    pub fn readiness(&mut self, t: Token) {
        self.mark_ready((t.0 - TOKEN_BASE) as u64);
    }

    /// Remembers a UDP `IMG` announcement, so the TCP transfer (or the UDP datagram) that
    /// follows is expected. Bounded per source and in all; the oldest give way.
    pub fn announce(&mut self, src: SocketAddr, handle: &str, size: u64, now: Instant) {
        let timeout = self.timeout;
        if self.announced_total >= MAX_ANNOUNCED {
            let before: usize = self.announced.values().map(VecDeque::len).sum();
            self.announced.retain(|_, q| {
                q.retain(|a| now.duration_since(a.at) <= timeout);
                !q.is_empty()
            });
            self.announced_total = self.announced.values().map(VecDeque::len).sum();
            if self.announced_total >= MAX_ANNOUNCED {
                debug!("announcement from {src} dropped: {before} pending");
                return;
            }
        }
        let q = self.announced.entry(src.ip()).or_default();
        q.retain(|a| now.duration_since(a.at) <= timeout);
        if q.len() >= MAX_ANNOUNCED_PER_SOURCE {
            q.pop_front();
        } else {
            self.announced_total += 1;
        }
        q.push_back(Announcement {
            src,
            handle: handle.to_owned(),
            size,
            at: now,
        });
    }

    fn take_announcement(
        &mut self,
        ip: IpAddr,
        f: impl Fn(&Announcement) -> bool,
    ) -> Option<Announcement> {
        let q = self.announced.get_mut(&ip)?;
        let i = q.iter().position(f)?;
        let a = q.remove(i);
        if q.is_empty() {
            self.announced.remove(&ip);
        }
        self.announced_total = self.announced_total.saturating_sub(1);
        a
    }

    /// Whether a datagram of `len` bytes from `src` may be an announced image.
    pub fn expects_udp_image(&self, src: SocketAddr, len: usize) -> bool {
        self.announced
            .get(&src.ip())
            .is_some_and(|q| q.iter().any(|a| a.src == src && a.size == len as u64))
    }

    /// An image sent as one UDP datagram right after its announcement: the announcement from
    /// that exact address with exactly this size makes it one; `None` when it is not.
    pub fn udp_image(
        &mut self,
        src: SocketAddr,
        bytes: &[u8],
        policy: &mut dyn Policy,
        now: Instant,
    ) -> Option<Outcome> {
        let timeout = self.timeout;
        let a = self.take_announcement(src.ip(), |a| {
            a.src == src && a.size == bytes.len() as u64 && now.duration_since(a.at) <= timeout
        })?;
        let size = bytes.len() as u64;
        let from = a.handle;
        let r = (|| -> Result<PathBuf, String> {
            if size > self.max_bytes {
                return Err(format!(
                    "{from} offered {size} bytes, over the limit of {} bytes (max_image_bytes)",
                    self.max_bytes
                ));
            }
            policy.offer(&from, size)?;
            let (tmp, mut file) = self.open_tmp(u64::MAX - self.next_id)?;
            self.next_id += 1;
            let written = file.write_all(bytes).and_then(|_| file.sync_data());
            drop(file);
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!(
                    "writing to {}: {}",
                    self.imagepath.display(),
                    io_reason(&e)
                ));
            }
            let head = &bytes[..bytes.len().min(16)];
            let name = policy
                .name(&from, size, head)
                .ok()
                .filter(|n| is_safe_name(n))
                .unwrap_or_else(|| default_name(&from, head, SystemTime::now()));
            place(&tmp, &self.imagepath, &name).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("saving: {}", io_reason(&e))
            })
        })();
        Some(match r {
            Ok(path) => {
                info!(
                    "saved {size} bytes from {from} (one UDP datagram) as {}",
                    path.display()
                );
                Outcome::Received { from, size, path }
            }
            Err(why) => {
                let error = format!("image from {from} ({src}) not received: {why}");
                warn!("{error}");
                Outcome::RecvFailed { error }
            }
        })
    }

    /// Starts sending `path` (`size` bytes) to `addr`, announced as from `me`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_send(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        me: &Handle,
        to: &str,
        path: &Path,
        size: u64,
        form: SendForm,
        reply: (ConnId, u64),
        now: Instant,
    ) -> Result<(), String> {
        let file = File::open(path)
            .map_err(|e| format!("cannot open {}: {}", path.display(), io_reason(&e)))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        // A file name on the wire is one field: no blanks, no control characters.
        let wire_name: String = file_name
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let handle = if form.recipient {
            Handle::new(to).map_err(|e| e.to_string())?
        } else {
            me.clone()
        };
        let header = if form.ready {
            format!("IMG {wire_name} {size}\n").into_bytes()
        } else if form.named {
            // The reference implementation reads up to the fourth space: no newline.
            format!("IMG {handle} {wire_name} {size} ").into_bytes()
        } else {
            codec::encode(&Message::Img {
                handle,
                size,
                name: None,
            })
            .map_err(|e| e.to_string())?
        };
        let stream = self.connect(registry, addr, to)?;
        let id = self.next_id - 1;
        info!(
            "sending {} ({size} bytes) to {to} at {addr}",
            path.display()
        );
        self.sends.insert(
            id,
            Send {
                lines: false,
                wait_ready: form.ready,
                ready_buf: Vec::new(),
                to: to.to_owned(),
                addr,
                file_name,
                stream,
                file: Some(file),
                size,
                sent: 0,
                header,
                header_off: 0,
                buf: Vec::new(),
                buf_off: 0,
                connected: false,
                done_writing: false,
                started: now,
                last_io: now,
                last_progress: now,
                reply,
            },
        );
        Ok(())
    }

    fn connect(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        to: &str,
    ) -> Result<TcpStream, String> {
        let mut stream = TcpStream::connect(addr)
            .map_err(|e| format!("cannot connect to {to} at {addr}: {e}"))?;
        let id = self.next_id;
        self.next_id += 1;
        registry
            .register(
                &mut stream,
                token(id),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("cannot watch the connection to {to}: {e}"))?;
        Ok(stream)
    }

    /// Sends SLCP lines to a peer without UDP, on a connection of their own.
    pub fn send_lines(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        bytes: Vec<u8>,
        now: Instant,
    ) {
        let stream = match self.connect(registry, addr, &addr.to_string()) {
            Ok(s) => s,
            Err(e) => return warn!("{e}"),
        };
        let id = self.next_id - 1;
        self.sends.insert(
            id,
            Send {
                lines: true,
                wait_ready: false,
                ready_buf: Vec::new(),
                to: addr.to_string(),
                addr,
                file_name: String::new(),
                stream,
                file: None,
                size: 0,
                sent: 0,
                header: bytes,
                header_off: 0,
                buf: Vec::new(),
                buf_off: 0,
                connected: false,
                done_writing: false,
                started: now,
                last_io: now,
                last_progress: now,
                reply: (0, 0),
            },
        );
    }

    /// Accepts every pending connection on the image port.
    pub fn accept(&mut self, listener: &mut TcpListener, registry: &Registry, now: Instant) {
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let from_ip = self
                        .recvs
                        .values()
                        .filter(|r| r.peer.ip() == peer.ip())
                        .count();
                    if self.recvs.len() >= MAX_RECVS || from_ip >= MAX_RECVS_PER_IP {
                        // Too many at once: refused with a reset, before any byte is read.
                        debug!("connection from {peer} refused: {from_ip} open from it");
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        continue;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    if let Err(e) = registry.register(&mut stream, token(id), Interest::READABLE) {
                        warn!("image connection from {peer}: {e}");
                        continue;
                    }
                    debug!("image connection {id} from {peer}");
                    self.recvs.insert(
                        id,
                        Recv {
                            stream,
                            peer,
                            header: Vec::new(),
                            body: None,
                            lines: false,
                            readied: false,
                            last_io: now,
                        },
                    );
                    // Data may already be waiting; edge-triggered readiness would not repeat it.
                    self.mark_ready(id);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("image accept: {e}");
                    return;
                }
            }
        }
    }

    /// Runs one turn of every transfer that is ready; returns what finished or progressed.
    pub fn run(
        &mut self,
        registry: &Registry,
        policy: &mut dyn Policy,
        now: Instant,
    ) -> Vec<Outcome> {
        let mut out = Vec::new();
        let n = self.ready.len();
        for _ in 0..n {
            let Some(id) = self.ready.pop_front() else {
                break;
            };
            self.queued.remove(&id);
            let again = if self.sends.contains_key(&id) {
                self.send_turn(id, registry, now, &mut out)
            } else if self.recvs.contains_key(&id) {
                self.recv_turn(id, registry, policy, now, &mut out)
            } else {
                false
            };
            if again {
                self.mark_ready(id);
            }
        }
        out
    }

    /// When [`Transfers::tick`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let sends = self.sends.values().map(|s| s.last_io + self.wait_of(s));
        let recvs = self.recvs.values().map(|r| r.last_io + self.timeout);
        sends.chain(recvs).min()
    }

    fn wait_of(&self, s: &Send) -> Duration {
        if s.done_writing {
            self.grace
        } else {
            self.timeout
        }
    }

    /// Aborts transfers that stalled longer than the timeout.
    pub fn tick(&mut self, registry: &Registry, now: Instant) -> Vec<Outcome> {
        let mut out = Vec::new();
        let stalled: Vec<u64> = self
            .sends
            .iter()
            .filter(|(_, s)| now.duration_since(s.last_io) >= self.wait_of(s))
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            let s = &self.sends[&id];
            if s.done_writing {
                // Every byte went out; the receiver just never closed. Not our failure.
                let line = self.sent_line(id, now) + " (the receiver did not confirm)";
                let reply = s.reply;
                self.close_send(id, registry);
                out.push(Outcome::Sent { reply, line });
            } else {
                let why = format!(
                    "stalled for {:?} after {} of {} bytes",
                    self.timeout, s.sent, s.size
                );
                out.push(self.fail_send(id, registry, why));
            }
        }
        let stalled: Vec<u64> = self
            .recvs
            .iter()
            .filter(|(_, r)| now.duration_since(r.last_io) >= self.timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            if self.recvs[&id].lines {
                // A peer that keeps its connection open: what it sent so far counts.
                self.close_lines(id, registry, &mut out);
                continue;
            }
            let why = match &self.recvs[&id].body {
                Some(b) => format!("stalled after {} of {} bytes", b.received, b.size),
                None => "no IMG header arrived".into(),
            };
            out.push(self.abort_recv(id, registry, &why));
        }
        out
    }

    /// Ends a connection that carried SLCP lines: a last unterminated line still counts.
    fn close_lines(&mut self, id: u64, registry: &Registry, out: &mut Vec<Outcome>) {
        if let Some(mut r) = self.recvs.remove(&id) {
            let _ = registry.deregister(&mut r.stream);
            if !r.header.is_empty() {
                out.push(Outcome::Lines {
                    from: r.peer,
                    bytes: r.header,
                });
            }
        }
    }

    fn sent_line(&self, id: u64, now: Instant) -> String {
        let s = &self.sends[&id];
        let secs = now.duration_since(s.started).as_secs_f64().max(1e-6);
        format!(
            "sent {} to {}: {} in {:.2} s ({}/s)",
            s.file_name,
            s.to,
            human_bytes(s.size),
            secs,
            human_bytes((s.size as f64 / secs) as u64)
        )
    }

    fn close_send(&mut self, id: u64, registry: &Registry) {
        if let Some(mut s) = self.sends.remove(&id) {
            let _ = registry.deregister(&mut s.stream);
        }
    }

    fn fail_send(&mut self, id: u64, registry: &Registry, why: String) -> Outcome {
        let s = &self.sends[&id];
        if s.lines {
            let addr = s.addr;
            warn!("lines to {addr} over TCP not sent: {why}");
            self.close_send(id, registry);
            return Outcome::Reached { addr, ok: true };
        }
        let reply = s.reply;
        let error = format!("image {} to {} failed: {why}", s.file_name, s.to);
        warn!("{error}");
        self.close_send(id, registry);
        Outcome::SendFailed { reply, error }
    }

    /// One turn of a send; `true` when it stopped for the budget, not for the socket.
    fn send_turn(
        &mut self,
        id: u64,
        registry: &Registry,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let s = self.sends.get_mut(&id).expect("send");
        if !s.connected {
            match s.stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    let refused = e.kind() == io::ErrorKind::ConnectionRefused;
                    if refused {
                        out.push(Outcome::Reached {
                            addr: s.addr,
                            ok: false,
                        });
                    }
                    let why = if refused {
                        format!(
                            "{} accepts no TCP connection at {} (connection refused): its client is not running, or it cannot receive images",
                            s.to, s.addr
                        )
                    } else {
                        format!("cannot connect: {e}")
                    };
                    out.push(self.fail_send(id, registry, why));
                    return false;
                }
                Ok(None) => {}
            }
            match s.stream.peer_addr() {
                Ok(_) => {
                    s.connected = true;
                    out.push(Outcome::Reached {
                        addr: s.addr,
                        ok: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                Err(e) => {
                    out.push(self.fail_send(id, registry, format!("cannot connect: {e}")));
                    return false;
                }
            }
        }
        if s.done_writing {
            // Waiting for the receiver's verdict: EOF is yes, a reset is no.
            let mut b = [0u8; 64];
            loop {
                match s.stream.read(&mut b) {
                    Ok(0) => {
                        let line = self.sent_line(id, now);
                        let reply = self.sends[&id].reply;
                        info!("{line}");
                        self.close_send(id, registry);
                        out.push(Outcome::Sent { reply, line });
                        return false;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        let why =
                            format!("{} refused or aborted the image after receiving it", s.to);
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                }
            }
        }
        if s.wait_ready && s.header_off == s.header.len() {
            // The receiver writes READY when it wants the bytes.
            let mut b = [0u8; 64];
            loop {
                match s.stream.read(&mut b) {
                    Ok(0) => {
                        let why = format!("{} closed the connection instead of READY", s.to);
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                    Ok(n) => {
                        s.ready_buf.extend_from_slice(&b[..n]);
                        if s.ready_buf
                            .windows(5)
                            .any(|w| w.eq_ignore_ascii_case(b"READY"))
                        {
                            s.wait_ready = false;
                            s.last_io = now;
                            break;
                        }
                        if s.ready_buf.len() > 256 {
                            let why = format!("{} answered something other than READY", s.to);
                            out.push(self.fail_send(id, registry, why));
                            return false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        out.push(self.fail_send(id, registry, format!("waiting for READY: {e}")));
                        return false;
                    }
                }
            }
        }
        let mut moved = 0u64;
        loop {
            if moved >= TURN_BUDGET {
                return true;
            }
            if s.wait_ready && s.header_off == s.header.len() {
                return true;
            }
            let res = if s.header_off < s.header.len() {
                s.stream.write(&s.header[s.header_off..]).inspect(|n| {
                    s.header_off += n;
                })
            } else if s.buf_off < s.buf.len() {
                s.stream.write(&s.buf[s.buf_off..]).inspect(|n| {
                    s.buf_off += n;
                    s.sent += *n as u64;
                })
            } else if s.lines {
                // Lines need no verdict: done once written.
                let _ = s.stream.shutdown(Shutdown::Write);
                debug!("sent lines to {} over TCP", s.addr);
                self.close_send(id, registry);
                return false;
            } else if s.sent < s.size {
                let want = CHUNK.min((s.size - s.sent) as usize);
                s.buf.resize(want, 0);
                let Some(file) = s.file.as_mut() else {
                    return false;
                };
                match file.read(&mut s.buf) {
                    Ok(0) => {
                        let why = format!("the file shrank to {} bytes while being sent", s.sent);
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                    Ok(n) => {
                        s.buf.truncate(n);
                        s.buf_off = 0;
                        continue;
                    }
                    Err(e) => {
                        let why = format!("reading the file: {}", io_reason(&e));
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                }
            } else {
                let _ = s.stream.shutdown(Shutdown::Write);
                s.done_writing = true;
                s.last_io = now;
                // The verdict may already be there.
                return true;
            };
            match res {
                Ok(0) => {
                    out.push(self.fail_send(id, registry, "the connection closed".into()));
                    return false;
                }
                Ok(n) => {
                    moved += n as u64;
                    s.last_io = now;
                    if now.duration_since(s.last_progress) >= PROGRESS_EVERY {
                        s.last_progress = now;
                        out.push(Outcome::Progress {
                            reply: s.reply,
                            sent: s.sent,
                            size: s.size,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => format!(
                            "{} closed the connection early, after {} of {} bytes (refused, or out of space?)",
                            s.to, s.sent, s.size
                        ),
                        _ => format!("sending: {e}"),
                    };
                    out.push(self.fail_send(id, registry, why));
                    return false;
                }
            }
        }
    }

    fn abort_recv(&mut self, id: u64, registry: &Registry, why: &str) -> Outcome {
        let Some(mut r) = self.recvs.remove(&id) else {
            return Outcome::RecvFailed { error: why.into() };
        };
        let who = match &r.body {
            Some(b) => format!("{} ({})", b.from, r.peer),
            None => r.peer.to_string(),
        };
        if let Some(b) = r.body.take() {
            drop(b.file);
            if let Err(e) = std::fs::remove_file(&b.tmp) {
                warn!("removing {}: {e}", b.tmp.display());
            }
        }
        // A reset, not a close: that is how the sender learns the image was not kept.
        let _ = socket2::SockRef::from(&r.stream).set_linger(Some(Duration::ZERO));
        let _ = registry.deregister(&mut r.stream);
        let error = format!("image from {who} not received: {why}");
        warn!("{error}");
        Outcome::RecvFailed { error }
    }

    /// One turn of a receive; `true` when it stopped for the budget, not for the socket.
    fn recv_turn(
        &mut self,
        id: u64,
        registry: &Registry,
        policy: &mut dyn Policy,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let mut moved = 0u64;
        loop {
            if moved >= TURN_BUDGET {
                return true;
            }
            let r = self.recvs.get_mut(&id).expect("recv");
            let n = match r.stream.read(&mut self.buf) {
                Ok(0) => {
                    let lines =
                        r.lines || (r.body.is_none() && !r.header.is_empty() && !is_img(&r.header));
                    if lines {
                        self.close_lines(id, registry, out);
                        return false;
                    }
                    let why = match &r.body {
                        Some(b) => format!(
                            "the connection closed after {} of {} bytes",
                            b.received, b.size
                        ),
                        None if r.header.is_empty() => {
                            "the connection closed before a header".into()
                        }
                        None => "the connection closed inside the header".into(),
                    };
                    out.push(self.abort_recv(id, registry, &why));
                    return false;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.push(self.abort_recv(id, registry, &format!("receiving: {e}")));
                    return false;
                }
            };
            moved += n as u64;
            r.last_io = now;
            if r.body.is_some() {
                let data = std::mem::take(&mut self.buf);
                let go_on = self.body_data(id, &data[..n], registry, policy, out);
                self.buf = data;
                if !go_on {
                    return false;
                }
                continue;
            }
            r.header.extend_from_slice(&self.buf[..n]);
            if !r.lines && (r.header.len() >= 4 || r.header.contains(&b'\n')) && !is_img(&r.header)
            {
                if !is_text(&r.header) {
                    out.push(self.abort_recv(
                        id,
                        registry,
                        "no IMG header (garbage on the image port)",
                    ));
                    return false;
                }
                // Not an image: a peer that speaks SLCP over TCP.
                r.lines = true;
            }
            if r.lines {
                if let Some(end) = r.header.iter().rposition(|b| *b == b'\n') {
                    let bytes: Vec<u8> = r.header.drain(..=end).collect();
                    out.push(Outcome::Lines {
                        from: r.peer,
                        bytes,
                    });
                }
                if r.header.len() > MAX_TCP_LINE {
                    out.push(self.abort_recv(id, registry, "a line over 64 KiB on the TCP port"));
                    return false;
                }
                continue;
            }
            let Some(end) = header_end(&r.header) else {
                if r.header.len() > MAX_HEADER {
                    out.push(self.abort_recv(
                        id,
                        registry,
                        "no IMG header (garbage on the image port)",
                    ));
                    return false;
                }
                continue;
            };
            let mut header = std::mem::take(&mut r.header);
            let rest = header.split_off(end);
            let peer = r.peer;
            match self.open_body(id, &header, peer, policy) {
                Ok((b, handshake, named)) => {
                    out.push(Outcome::Forms {
                        from: b.from.clone(),
                        named,
                        ready: handshake,
                    });
                    let r = self.recvs.get_mut(&id).expect("recv");
                    r.body = Some(b);
                    if handshake && rest.is_empty() {
                        // It waits for our word before it sends the bytes.
                        let _ = r.stream.write_all(b"READY\n");
                        r.readied = true;
                    }
                }
                Err(why) => {
                    out.push(self.abort_recv(id, registry, &why));
                    return false;
                }
            }
            if !self.body_data(id, &rest, registry, policy, out) {
                return false;
            }
        }
    }

    /// Writes image bytes that arrived; false when the receive ended (saved or aborted).
    fn body_data(
        &mut self,
        id: u64,
        data: &[u8],
        registry: &Registry,
        policy: &mut dyn Policy,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let r = self.recvs.get_mut(&id).expect("recv");
        let b = r.body.as_mut().expect("body");
        if data.len() as u64 > b.size - b.received {
            let why = format!("more than the {} bytes announced", b.size);
            out.push(self.abort_recv(id, registry, &why));
            return false;
        }
        if b.head.len() < 16 {
            let k = (16 - b.head.len()).min(data.len());
            b.head.extend_from_slice(&data[..k]);
        }
        if let Err(e) = b.file.write_all(data) {
            let why = format!("writing to {}: {}", self.imagepath.display(), io_reason(&e));
            out.push(self.abort_recv(id, registry, &why));
            return false;
        }
        b.received += data.len() as u64;
        if b.received == b.size {
            out.push(self.finish_recv(id, registry, policy));
            return false;
        }
        true
    }

    /// Checks a header and opens the temporary file; also says whether the header was the
    /// handshake form (answered with READY) and whether it carried a file name.
    fn open_body(
        &mut self,
        id: u64,
        header: &[u8],
        peer: SocketAddr,
        policy: &mut dyn Policy,
    ) -> Result<(Body, bool, bool), String> {
        let line = std::str::from_utf8(header)
            .map_err(|_| "the header is not UTF-8".to_string())?
            .trim_end_matches(['\n', '\r', ' ']);
        let (named, size, file_name) = match codec::decode_line(line) {
            Ok(Message::Img { handle, size, name }) => (handle, size, name),
            Ok(other) => {
                return Err(format!(
                    "a {} line where an IMG header belongs",
                    other.word()
                ));
            }
            Err(e) => return Err(format!("bad IMG header: {e}")),
        };
        // `IMG <file name> <size>` (a handshake sender): the field names no handle anyone has.
        let known = policy.knows(&named);
        let handshake = !known && file_name.is_none() && looks_like_file_name(named.as_str());
        let from = match policy.sender(&named, peer.ip()) {
            Ok(f) => f,
            // A UDP announcement from that address, of that size, by a holder of its handle.
            Err(e) => self
                .take_announcement(peer.ip(), |a| a.size == size)
                .map(|a| a.handle)
                .ok_or(e)?,
        };
        if size > self.max_bytes {
            return Err(format!(
                "{from} offered {size} bytes, over the limit of {} bytes (max_image_bytes)",
                self.max_bytes
            ));
        }
        policy.offer(&from, size)?;
        let (tmp, file) = self.open_tmp(id)?;
        info!("receiving {size} bytes from {from} ({peer})");
        let b = Body {
            from,
            size,
            received: 0,
            file,
            tmp,
            head: Vec::new(),
        };
        Ok((b, handshake, file_name.is_some()))
    }

    /// A new hidden temporary file in `imagepath`, renamed into place only when complete.
    fn open_tmp(&self, id: u64) -> Result<(PathBuf, File), String> {
        let unwritable = |e: io::Error| {
            format!(
                "imagepath {} is not writable: {}",
                self.imagepath.display(),
                io_reason(&e)
            )
        };
        std::fs::create_dir_all(&self.imagepath).map_err(unwritable)?;
        let tmp = self
            .imagepath
            .join(format!(".slcp-incoming-{}-{id}.part", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(unwritable)?;
        Ok((tmp, file))
    }

    fn finish_recv(&mut self, id: u64, registry: &Registry, policy: &mut dyn Policy) -> Outcome {
        let b = self
            .recvs
            .get(&id)
            .and_then(|r| r.body.as_ref())
            .expect("body");
        let name = policy
            .name(&b.from, b.size, &b.head)
            .ok()
            .filter(|n| is_safe_name(n))
            .unwrap_or_else(|| default_name(&b.from, &b.head, SystemTime::now()));
        match place(&b.tmp, &self.imagepath, &name) {
            Ok(path) => {
                let mut r = self.recvs.remove(&id).expect("recv");
                let _ = registry.deregister(&mut r.stream);
                let b = r.body.expect("body");
                info!(
                    "saved {} bytes from {} as {}",
                    b.size,
                    b.from,
                    path.display()
                );
                // Dropping the stream closes it normally: the sender's sign that we kept it.
                Outcome::Received {
                    from: b.from,
                    size: b.size,
                    path,
                }
            }
            Err(e) => self.abort_recv(id, registry, &format!("saving: {}", io_reason(&e))),
        }
    }

    /// Starts the turn of a freshly connected send (tests and the shell call it after
    /// registering, since the first WRITABLE may have fired before).
    pub fn kick(&mut self) {
        let ids: Vec<u64> = self.sends.keys().copied().collect();
        for id in ids {
            self.mark_ready(id);
        }
    }
}

/// Whether the handle field of an IMG header holds a file name (`small.png`) rather than a
/// handle: the READY handshake form, `IMG <file name> <size>`.
pub fn looks_like_file_name(s: &str) -> bool {
    s.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && (1..=5).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// Whether bytes can be SLCP lines: UTF-8 (a character may be cut at the end) without NUL or
/// other control characters but tab and line breaks.
fn is_text(b: &[u8]) -> bool {
    let valid = match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Whether a TCP stream begins like an image header (`IMG `, any case).
fn is_img(b: &[u8]) -> bool {
    b.len() >= 4 && b[..3].eq_ignore_ascii_case(b"IMG") && (b[3] == b' ' || b[3] == b'\t')
}

/// Where an image header ends: after its newline, or after the fourth space of the reference
/// implementation's `IMG <handle> <file name> <size> ` (no newline; the bytes follow at once).
fn header_end(b: &[u8]) -> Option<usize> {
    let nl = b.iter().position(|c| *c == b'\n');
    let mut spaces = b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b' ')
        .map(|(i, _)| i);
    if let Some(fourth) = spaces.nth(3)
        && nl.is_none_or(|n| fourth < n)
    {
        let fields: Vec<&[u8]> = b[..fourth].split(|c| *c == b' ').collect();
        let digits = |f: &[u8]| !f.is_empty() && f.iter().all(u8::is_ascii_digit);
        if fields.len() == 4 && digits(fields[3]) && !fields[2].is_empty() {
            return Some(fourth + 1);
        }
    }
    nl.map(|n| n + 1)
}

/// Whether a plugin's file name can be used: one plain component, not hidden.
fn is_safe_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 200
        && !n.starts_with('.')
        && !n.contains(['/', '\\', '\0'])
        && !n.chars().any(char::is_control)
}

/// Gives `tmp` its final name in `dir`: `name`, or `name-1`, `name-2`... before the extension;
/// never replaces an existing file (a hard link fails if the name exists).
fn place(tmp: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    for i in 0..1000 {
        let candidate = if i == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}-{i}{ext}"))
        };
        match std::fs::hard_link(tmp, &candidate) {
            Ok(()) => {
                std::fs::remove_file(tmp)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "1000 files of that name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_never_overwrite() {
        assert!(!is_safe_name("../x") && !is_safe_name(".hidden") && !is_safe_name(""));
        assert!(is_safe_name("bob-20261124-131015.png"));
        let dir = tempfile_dir();
        let mk = |n: &str| {
            let p = dir.join(n);
            std::fs::write(&p, n).unwrap();
            p
        };
        let first = place(&mk(".t1"), &dir, "a.png").unwrap();
        let second = place(&mk(".t2"), &dir, "a.png").unwrap();
        assert_eq!(first, dir.join("a.png"));
        assert_eq!(second, dir.join("a-1.png"));
        assert_eq!(std::fs::read_to_string(&first).unwrap(), ".t1");
        assert!(!dir.join(".t1").exists() && !dir.join(".t2").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "slcp-place-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(200 << 20), "200.0 MiB");
    }
}
