//! Fake SLCP peers: small programs on raw sockets that behave like the other implementations of
//! SLCP.md's "Dialects seen in the wild", one [`Dialect`] each, for the dialect matrix.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::free_port;

/// How a fake sends images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImgForm {
    /// SLCP.md: `IMG <h> <size>` by UDP, then the same header and the bytes on TCP.
    Slcp,
    /// The reference implementation: `IMG <h> <name> <size> ` and the bytes on TCP only.
    Named,
    /// `IMG <name> <size>\n`, wait for `READY`, then the bytes.
    Ready,
    /// `IMG <h> <size>` by UDP, then the image as one UDP datagram.
    Udp,
}

/// One implementation's behaviour.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub name: &'static str,
    /// Ends what it sends with `\n`.
    pub newline: bool,
    /// Polls WHO from its port every `poll` instead of re-sending JOIN (the reference).
    pub poll_who: bool,
    /// Puts the addressee in MSG's handle field, and shows only MSGs naming itself.
    pub recipient: bool,
    /// Quotes every text it sends, strips the quotes of what it receives.
    pub quote: bool,
    /// Shows received text verbatim, quotes and escapes included.
    pub literal: bool,
    /// Has a UDP socket at its port (else it sends JOIN from a throw-away socket and the rest
    /// over TCP).
    pub udp: bool,
    /// Over TCP it writes `<handle>: <text>`, no command word, no terminator.
    pub colon: bool,
    /// Sends its datagrams from throw-away sockets.
    pub ephemeral: bool,
    /// While away, answers every MSG with `(Autoreply): ...`.
    pub auto_all: bool,
    pub img: ImgForm,
    /// As a receiver, reads every byte and never closes.
    pub never_close: bool,
    /// Has a TCP listener.
    pub tcp: bool,
    /// Takes images on a TCP port of its own, not its JOIN port (the reference's table).
    pub img_port_apart: bool,
}

impl Dialect {
    /// SLCP.md's forms, with no heartbeat.
    pub fn plain(name: &'static str) -> Dialect {
        Dialect {
            name,
            newline: true,
            poll_who: false,
            recipient: false,
            quote: false,
            literal: false,
            udp: true,
            colon: false,
            ephemeral: false,
            auto_all: false,
            img: ImgForm::Slcp,
            never_close: false,
            tcp: true,
            img_port_apart: false,
        }
    }
}

/// What a fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    /// A MSG as the fake's user sees it (`None`: the fake drops it, e.g. not naming itself).
    Msg {
        field: String,
        shown: Option<String>,
    },
    /// Any other line.
    Line(String),
    /// A whole image.
    Image(Vec<u8>),
}

struct Shared {
    handle: Mutex<String>,
    away: AtomicBool,
    stop: AtomicBool,
    /// Connections it keeps open (a receiver that never closes).
    held: Mutex<Vec<TcpStream>>,
}

/// A running fake peer on loopback.
pub struct Fake {
    pub d: Dialect,
    pub port: u16,
    pub img_port: u16,
    whoisport: u16,
    slcp: SocketAddr,
    slcp_handle: String,
    udp: Option<Arc<UdpSocket>>,
    sh: Arc<Shared>,
    rx: mpsc::Receiver<Got>,
    tx: mpsc::Sender<Got>,
}

const AUTO: &str = "(Autoreply): Ich bin gerade nicht da";

fn bind_pair(udp: bool, tcp: bool) -> (u16, Option<UdpSocket>, Option<TcpListener>) {
    (0..100)
        .find_map(|_| {
            let port = free_port();
            let u = if udp {
                Some(UdpSocket::bind(("127.0.0.1", port)).ok()?)
            } else {
                None
            };
            let t = if tcp {
                Some(TcpListener::bind(("127.0.0.1", port)).ok()?)
            } else {
                None
            };
            Some((port, u, t))
        })
        .expect("no port for a fake peer")
}

impl Fake {
    /// Starts a fake named `handle` and JOINs (once, to the discovery only).
    pub fn start(
        d: Dialect,
        handle: &str,
        whoisport: u16,
        slcp_handle: &str,
        slcp_port: u16,
    ) -> Fake {
        let (tx, rx) = mpsc::channel();
        let sh = Arc::new(Shared {
            handle: Mutex::new(handle.into()),
            away: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
        });
        let mut f = Fake {
            d,
            port: 0,
            img_port: 0,
            whoisport,
            slcp: SocketAddr::from(([127, 0, 0, 1], slcp_port)),
            slcp_handle: slcp_handle.into(),
            udp: None,
            sh,
            rx,
            tx,
        };
        f.bind();
        f.join();
        f
    }

    fn bind(&mut self) {
        let d = &self.d;
        let (port, udp, tcp) = bind_pair(d.udp, d.tcp && !d.img_port_apart);
        self.port = port;
        self.img_port = port;
        let mut listeners = Vec::new();
        if let Some(t) = tcp {
            listeners.push(t);
        }
        if d.tcp && d.img_port_apart {
            let (p, _, t) = bind_pair(false, true);
            self.img_port = p;
            listeners.push(t.unwrap());
        }
        self.udp = udp.map(Arc::new);
        if let Some(u) = &self.udp {
            u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let (u, sh, tx, d, slcp) = (
                u.clone(),
                self.sh.clone(),
                self.tx.clone(),
                self.d.clone(),
                self.slcp,
            );
            std::thread::spawn(move || udp_reader(u, sh, tx, d, slcp));
        }
        for l in listeners {
            l.set_nonblocking(true).unwrap();
            let (sh, tx, d) = (self.sh.clone(), self.tx.clone(), self.d.clone());
            std::thread::spawn(move || acceptor(l, sh, tx, d));
        }
        if self.d.poll_who {
            let (u, sh, w) = (self.udp.clone().unwrap(), self.sh.clone(), self.whoisport);
            std::thread::spawn(move || {
                while !sh.stop.load(Ordering::Relaxed) {
                    let _ = u.send_to(b"WHO", ("127.0.0.1", w));
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
        }
    }

    pub fn handle(&self) -> String {
        self.sh.handle.lock().unwrap().clone()
    }

    fn line(&self, s: &str) -> Vec<u8> {
        let mut b = s.as_bytes().to_vec();
        if self.d.newline {
            b.push(b'\n');
        }
        b
    }

    /// Sends a datagram from its port (or a throw-away socket).
    fn send_udp(&self, bytes: &[u8], to: SocketAddr) {
        match (&self.udp, self.d.ephemeral) {
            (Some(u), false) => {
                u.send_to(bytes, to).unwrap();
            }
            _ => {
                UdpSocket::bind("127.0.0.1:0")
                    .unwrap()
                    .send_to(bytes, to)
                    .unwrap();
            }
        }
    }

    fn discovery(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.whoisport))
    }

    /// JOIN to the discovery only, as the implementations that never unicast presence.
    pub fn join(&self) {
        let l = self.line(&format!("JOIN {} {}", self.handle(), self.port));
        self.send_udp(&l, self.discovery());
    }

    pub fn leave(&self) {
        let l = self.line(&format!("LEAVE {}", self.handle()));
        self.send_udp(&l, self.discovery());
    }

    pub fn set_away(&self, away: bool) {
        self.sh.away.store(away, Ordering::Relaxed);
        let w = if away { "AWAY" } else { "BACK" };
        let l = self.line(&format!("{w} {}", self.handle()));
        self.send_udp(&l, self.discovery());
    }

    /// Sends `text` to the slcp user the way this implementation does.
    pub fn msg(&self, text: &str) {
        let field = if self.d.recipient {
            self.slcp_handle.clone()
        } else {
            self.handle()
        };
        let body = if self.d.quote {
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        } else {
            text.to_string()
        };
        if self.d.udp {
            let l = self.line(&format!("MSG {field} {body}"));
            self.send_udp(&l, self.slcp);
        } else {
            let l = if self.d.colon {
                format!("{field}: {body}").into_bytes()
            } else {
                format!("MSG {field} {body}\n").into_bytes()
            };
            let mut s = TcpStream::connect(self.slcp).unwrap();
            s.write_all(&l).unwrap();
        }
    }

    /// Sends an image named `name` the way this implementation does; returns when the
    /// receiver closed (or reset) the connection.
    pub fn send_image(&self, bytes: &[u8], name: &str) -> Result<(), String> {
        let h = self.handle();
        let n = bytes.len();
        match self.d.img {
            ImgForm::Udp => {
                let l = self.line(&format!("IMG {h} {n}"));
                self.send_udp(&l, self.slcp);
                self.send_udp(bytes, self.slcp);
                return Ok(());
            }
            // A client without UDP sends the TCP part only.
            ImgForm::Slcp if self.d.udp => {
                let l = self.line(&format!("IMG {h} {n}"));
                self.send_udp(&l, self.slcp);
            }
            _ => {}
        }
        let mut s = TcpStream::connect(self.slcp).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match self.d.img {
            ImgForm::Named => s.write_all(format!("IMG {h} {name} {n} ").as_bytes()),
            ImgForm::Ready => {
                s.write_all(format!("IMG {name} {n}\n").as_bytes()).unwrap();
                let mut b = [0u8; 16];
                let k = s.read(&mut b).map_err(|e| format!("no READY: {e}"))?;
                if !b[..k].starts_with(b"READY") {
                    return Err(format!("no READY: {:?}", &b[..k]));
                }
                Ok(())
            }
            _ => s.write_all(format!("IMG {h} {n}\n").as_bytes()),
        }
        .map_err(|e| e.to_string())?;
        s.write_all(bytes).map_err(|e| e.to_string())?;
        s.shutdown(std::net::Shutdown::Write).ok();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .map(|_| ())
            .map_err(|e| format!("refused: {e}"))
    }

    /// The fake restarts on a new port (same handle, same host): its old sockets are closed.
    pub fn restart_on_new_port(&mut self) {
        self.sh.stop.store(true, Ordering::Relaxed);
        self.udp = None;
        // The reader threads notice within 50 ms and drop their sockets.
        let t = Instant::now();
        while Arc::strong_count(&self.sh) > 1 && t.elapsed() < Duration::from_secs(2) {
            std::thread::yield_now();
        }
        self.sh.held.lock().unwrap().clear();
        let handle = self.handle();
        self.sh = Arc::new(Shared {
            handle: Mutex::new(handle),
            away: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
        });
        self.bind();
        self.join();
    }

    /// Renames itself by a bare JOIN of the new handle from the same address.
    pub fn rename(&self, new: &str) {
        *self.sh.handle.lock().unwrap() = new.into();
        self.join();
    }

    /// Waits (at most `t`) for something satisfying `f`; what else arrives is kept.
    pub fn wait(&self, t: Duration, f: impl Fn(&Got) -> bool) -> Option<Got> {
        let deadline = Instant::now() + t;
        let mut other = Vec::new();
        let found = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(g) if f(&g) => break Some(g),
                Ok(g) => other.push(g),
                Err(_) => break None,
            }
        };
        for g in other {
            let _ = self.tx.send(g);
        }
        found
    }

    /// Everything received so far.
    pub fn drain(&self) -> Vec<Got> {
        self.rx.try_iter().collect()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.sh.stop.store(true, Ordering::Relaxed);
    }
}

/// What the fake's user would see of a MSG's text.
fn shown(d: &Dialect, me: &str, field: &str, raw: &str) -> Option<String> {
    if d.recipient && field != me {
        return None;
    }
    if d.literal || !(raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"')) {
        return Some(raw.to_string());
    }
    let inner = &raw[1..raw.len() - 1];
    Some(
        inner
            .replace("\\\"", "\"")
            .replace("\\n", "\n")
            .replace("\\\\", "\\"),
    )
}

fn on_line(line: &str, sh: &Shared, tx: &mpsc::Sender<Got>, d: &Dialect, reply: &dyn Fn(&str)) {
    let line = line.trim_end_matches('\r');
    if line.is_empty() {
        return;
    }
    if let Some(rest) = line.strip_prefix("MSG ") {
        let (field, raw) = rest.split_once(' ').unwrap_or((rest, ""));
        let me = sh.handle.lock().unwrap().clone();
        let _ = tx.send(Got::Msg {
            field: field.into(),
            shown: shown(d, &me, field, raw),
        });
        if d.auto_all && sh.away.load(Ordering::Relaxed) {
            reply(AUTO);
        }
    } else {
        let _ = tx.send(Got::Line(line.into()));
    }
}

fn udp_reader(
    u: Arc<UdpSocket>,
    sh: Arc<Shared>,
    tx: mpsc::Sender<Got>,
    d: Dialect,
    slcp: SocketAddr,
) {
    let mut b = vec![0u8; 65536];
    while !sh.stop.load(Ordering::Relaxed) {
        let Ok((n, _)) = u.recv_from(&mut b) else {
            continue;
        };
        let text = String::from_utf8_lossy(&b[..n]).into_owned();
        for l in text.split('\n') {
            let me = sh.handle.lock().unwrap().clone();
            let reply = |t: &str| {
                let mut l = format!("MSG {me} {t}");
                if d.newline {
                    l.push('\n');
                }
                let _ = u.send_to(l.as_bytes(), slcp);
            };
            on_line(l, &sh, &tx, &d, &reply);
        }
    }
}

fn acceptor(l: TcpListener, sh: Arc<Shared>, tx: mpsc::Sender<Got>, d: Dialect) {
    while !sh.stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                let (sh, tx, d) = (sh.clone(), tx.clone(), d.clone());
                std::thread::spawn(move || connection(s, sh, tx, d));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// One TCP connection to the fake: an image (any of the header forms) or SLCP lines.
fn connection(mut s: TcpStream, sh: Arc<Shared>, tx: mpsc::Sender<Got>, d: Dialect) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 65536];
    // The header: up to a newline, or the reference's four spaces.
    let end = loop {
        let Ok(n) = s.read(&mut b) else { return };
        if n == 0 {
            break buf.len();
        }
        buf.extend_from_slice(&b[..n]);
        let nl = buf.iter().position(|c| *c == b'\n');
        let spaces: Vec<usize> = buf
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == b' ')
            .map(|(i, _)| i)
            .collect();
        // The reference's header (four spaces, no newline) ends before the bytes, which may
        // hold newlines of their own.
        if buf.starts_with(b"IMG ") && spaces.len() >= 4 && nl.is_none_or(|n| spaces[3] < n) {
            let f: Vec<&[u8]> = buf[..spaces[3]].split(|c| *c == b' ').collect();
            if f.len() == 4 && f[3].iter().all(u8::is_ascii_digit) {
                break spaces[3] + 1;
            }
        }
        if let Some(i) = nl {
            break i + 1;
        }
    };
    let header = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    let mut rest = buf[end..].to_vec();
    let f: Vec<&str> = header.split(' ').collect();
    if f.first() != Some(&"IMG") {
        // SLCP lines over TCP.
        let mut all = buf.clone();
        while let Ok(n) = s.read(&mut b) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&b[..n]);
        }
        let text = String::from_utf8_lossy(&all).into_owned();
        for l in text.split('\n') {
            on_line(l, &sh, &tx, &d, &|_| {});
        }
        return;
    }
    let size: usize = f.last().and_then(|x| x.parse().ok()).unwrap_or(0);
    if f.len() == 3 && f[1].contains('.') {
        // The handshake form: it waits for our word.
        s.write_all(b"READY\n").unwrap();
    }
    while rest.len() < size {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => rest.extend_from_slice(&b[..n]),
        }
    }
    let _ = tx.send(Got::Image(rest));
    if d.never_close {
        sh.held.lock().unwrap().push(s);
    }
}

/// A peer played by this test: a UDP socket and a TCP listener on one port, joined to a client.
pub struct FakePeer {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl FakePeer {
    pub fn join(handle: &str, client_port: u16) -> FakePeer {
        // Bind both at once; a port taken since free_port looked is passed over, not fatal.
        let (port, udp, tcp) = (0..100)
            .find_map(|_| {
                let port = free_port();
                let udp = UdpSocket::bind(("127.0.0.1", port)).ok()?;
                let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some((port, udp, tcp))
            })
            .expect("no port pair for a fake peer in 100 tries");
        udp.send_to(
            format!("JOIN {handle} {port}\n").as_bytes(),
            ("127.0.0.1", client_port),
        )
        .unwrap();
        FakePeer { udp, tcp }
    }

    /// The next datagram but JOIN and the slcp hello (which a plain peer drops).
    pub fn recv_udp(&self, t: Duration) -> Option<String> {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = self.recv_udp_all(left)?;
            if !d.starts_with("SLCPX ") {
                return Some(d);
            }
        }
    }

    /// The next datagram but JOIN.
    pub fn recv_udp_all(&self, t: Duration) -> Option<String> {
        if t.is_zero() {
            return None;
        }
        self.udp.set_read_timeout(Some(t)).unwrap();
        let mut b = [0u8; 2048];
        let deadline = Instant::now() + t;
        while Instant::now() < deadline {
            if let Ok(n) = self.udp.recv(&mut b) {
                let s = String::from_utf8_lossy(&b[..n]).into_owned();
                if !s.starts_with("JOIN") {
                    return Some(s);
                }
            }
        }
        None
    }

    /// The client's TCP connection, waited for at most `t` (std's accept has no timeout, so a
    /// helper thread accepts on a clone of the listener; it dies with the test on a timeout).
    pub fn accept(&self, t: Duration) -> TcpStream {
        let l = self.tcp.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(l.accept().map(|(c, _)| c)));
        rx.recv_timeout(t)
            .unwrap_or_else(|_| panic!("the client did not connect within {t:?}"))
            .unwrap()
    }
}
