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

/// What a client accepts of incoming transfers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest image.
    pub max_bytes: u64,
    /// How long a transfer may stall (and a header may take).
    pub timeout: Duration,
    /// How long a send waits for the receiver's close after the last byte.
    pub grace: Duration,
    /// Bytes per second a receive must average once it has run `timeout`.
    pub min_rate: u64,
    /// Bytes accepted from one sender per hour.
    pub quota_sender: u64,
    /// Bytes accepted from everyone per hour.
    pub quota_total: u64,
    /// Bytes per second one send may use (0: no limit).
    pub max_send_rate: u64,
}

/// Where received files go, and the largest taken.
#[derive(Debug, Clone)]
pub struct FileLimits {
    /// `downloadpath`.
    pub dir: PathBuf,
    /// `max_file_bytes`.
    pub max_bytes: u64,
}

/// Transfer tokens start here; lower tokens belong to the client's sockets and IPC connections.
pub const TOKEN_BASE: usize = 1 << 40;
/// Bytes moved per read or write call.
const CHUNK: usize = 256 * 1024;
/// Bytes one transfer may move before the loop turns to other work.
const TURN_BUDGET: u64 = 2 * 1024 * 1024;
/// The longest header line accepted.
const MAX_HEADER: usize = 600;
/// After this long without progress a send's prompt hears that it stalls.
const STALL_NOTICE: Duration = Duration::from_secs(5);
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
    /// A send has not moved for a while: the prompt that started it hears so (once).
    Stalling {
        /// The command that started it.
        reply: (ConnId, u64),
        /// What to tell the user.
        line: String,
    },
    /// A send finished.
    Sent {
        /// The command that started it.
        reply: (ConnId, u64),
        /// What to tell the user.
        line: String,
        /// To whom.
        to: String,
        /// The file sent.
        path: String,
    },
    /// A send failed.
    SendFailed {
        /// The command that started it.
        reply: (ConnId, u64),
        /// Why, in one line.
        error: String,
    },
    /// A file (FILE) was saved under its own name made safe.
    FileReceived {
        /// Sender.
        from: String,
        /// Size.
        size: u64,
        /// Where.
        path: PathBuf,
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
    /// The sender of a FILE whose header names `named`, coming from `ip`: a known peer at
    /// that host, or an error (a stranger's file is refused).
    fn file_sender(&mut self, named: &Handle, ip: IpAddr) -> Result<String, String>;
    /// The keys for an encrypted transfer from `named` (ours, and the one pinned for it);
    /// `None` when there is no pinned key to check it against.
    fn tcp_keys(&mut self, named: &Handle) -> Option<TcpKeys>;
}

struct Send {
    /// The file, as the user named it.
    path: String,
    /// SLCP lines for a peer without UDP: no file, no verdict to wait for.
    lines: bool,
    /// Waiting for the receiver's `READY` before the bytes.
    wait_ready: bool,
    /// A FILE: waiting for the receiver's `FILEOK <offset>` (or `FILENO <reason>`).
    wait_file: bool,
    /// A FILE rather than an image.
    is_file: bool,
    /// Bytes the receiver had already (a resumed FILE).
    resumed: u64,
    /// Over `max_send_rate`: resumes at this instant.
    throttled: Option<Instant>,
    /// The connection's encryption (none for a plain peer).
    wire: secure::Wire,
    /// An encrypted send waits for its handshake before the header.
    wait_hs: bool,
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
    /// The prompt heard that this send stalls.
    told_stall: bool,
    reply: (ConnId, u64),
}

impl Send {
    /// A send of `header` alone to `to` at `addr`: SLCP lines for a peer without UDP. An image
    /// send sets its file, name, size and reply on top of this.
    fn new(to: String, addr: SocketAddr, stream: TcpStream, header: Vec<u8>, now: Instant) -> Send {
        Send {
            path: String::new(),
            lines: true,
            wait_ready: false,
            wait_file: false,
            is_file: false,
            resumed: 0,
            throttled: None,
            wire: secure::Wire::default(),
            wait_hs: false,
            ready_buf: Vec::new(),
            to,
            addr,
            file_name: String::new(),
            stream,
            file: None,
            size: 0,
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
            told_stall: false,
            reply: (0, 0),
        }
    }
}

struct Body {
    started: Instant,
    from: String,
    size: u64,
    received: u64,
    /// Bytes a FILE had from an earlier attempt.
    resumed: u64,
    file: File,
    tmp: PathBuf,
    head: Vec<u8>,
    /// A FILE: the name it gets (made safe); `None` for an image.
    file_name: Option<String>,
    /// A FILE that breaks off keeps its partial file for resuming (not when the sender sent
    /// more than it announced: that partial is no part of anything).
    keep_partial: bool,
}

struct Recv {
    accepted: Instant,
    stream: TcpStream,
    peer: SocketAddr,
    header: Vec<u8>,
    body: Option<Body>,
    /// Not an image: SLCP lines (`MSG ...`, `KNOWUSERS ...`) on the TCP port.
    lines: bool,
    /// We answered a handshake header with READY.
    readied: bool,
    /// The connection's encryption (none for a plain peer).
    wire: secure::Wire,
    /// The peer its Noise handshake proved it is (an encrypted transfer).
    auth: Option<String>,
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
const MAX_RECVS_PER_IP: usize = 16;
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
    /// Bytes per second a receive must average once it has run `timeout`.
    min_rate: u64,
    /// Bytes accepted per sender and in all, per hour.
    quota: Quota,
    imagepath: PathBuf,
    max_bytes: u64,
    files: FileLimits,
    max_rate: u64,
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

/// `12.0 MiB of 200.0 MiB, 6%`: how far a transfer got, for people.
pub fn progress_of(done: u64, size: u64) -> String {
    let pct = (done * 100).checked_div(size).unwrap_or(100);
    format!("{} of {}, {pct}%", human_bytes(done), human_bytes(size))
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
    pub fn new(imagepath: PathBuf, limits: Limits, files: FileLimits) -> Transfers {
        remove_leftovers(&imagepath);
        file::remove_stale_partials(&files.dir);
        let Limits {
            max_bytes,
            timeout,
            grace,
            min_rate,
            quota_sender,
            quota_total,
            max_send_rate,
        } = limits;
        Transfers {
            min_rate,
            quota: Quota::new(quota_sender, quota_total),
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
            files,
            max_rate: max_send_rate,
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
                            accepted: now,
                            stream,
                            peer,
                            header: Vec::new(),
                            body: None,
                            lines: false,
                            readied: false,
                            wire: secure::Wire::default(),
                            auth: None,
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

    /// Starts the turn of a freshly connected send (tests and the shell call it after
    /// registering, since the first WRITABLE may have fired before).
    pub fn kick(&mut self) {
        let ids: Vec<u64> = self.sends.keys().copied().collect();
        for id in ids {
            self.mark_ready(id);
        }
    }
}

mod file;
mod folder;
mod names;
mod quota;
mod recv;
mod secure;
mod send;
mod timers;
pub use secure::TcpKeys;

pub use file::file_id;
use file::is_file;
pub use folder::check_imagepath;
use folder::remove_leftovers;
pub use names::looks_like_file_name;
use names::{header_end, is_img, is_safe_name, is_text, place};
use quota::Quota;

#[cfg(test)]
mod tests;
