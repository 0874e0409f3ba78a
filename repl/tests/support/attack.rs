//! A hostile peer on the LAN, and another user of the same machine: each attack of the trust
//! issue replayed with bounded counts against a loopback LAN of real processes, returning what
//! it measured. `tests/hostile.rs` asserts the bounds; `benches/attack.rs` prints the figures of
//! this build beside those of another binary (the one before the fixes).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slcp_core::ipc::Event;

use super::{Ipc, Lan, free_port};

const S: Duration = Duration::from_secs(1);

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of a process.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A discovery, alice and bob (each knowing the other), run from `bin` (this build's when
/// `None`) with the img plugin beside it.
pub struct Victims {
    pub lan: Lan,
    pub alice: Ipc,
    pub bob: Ipc,
}

impl Victims {
    pub fn new(bin: Option<&Path>, img: &Path, extra: &str) -> Victims {
        let mut lan = Lan::new(extra);
        lan.legacy = bin.is_some();
        lan.with_plugins(&[(img, "libslcp_plugin_img.so")]);
        if let Some(b) = bin {
            // The other binary beside the same plugin (the ABI did not change).
            let exe = lan.home().join("bin/slcp");
            std::fs::remove_file(&exe).unwrap();
            std::fs::copy(b, &exe).unwrap();
        }
        lan.start_discovery();
        for u in ["alice", "bob"] {
            lan.add_user(u);
            lan.start_client(u);
        }
        let (alice, bob) = lan.pair("alice", "bob");
        Victims { lan, alice, bob }
    }

    pub fn port(&self, who: &str) -> u16 {
        self.lan.user(who).port
    }

    pub fn pid(&self, who: &str) -> u32 {
        self.lan.user(who).child.as_ref().unwrap().id()
    }

    pub fn discovery_pid(&self) -> u32 {
        self.lan.discovery.as_ref().unwrap().id()
    }

    pub fn to(&self, who: &str) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port(who)))
    }

    pub fn discovery(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.lan.whoisport))
    }

    /// The address `who` has for `peer` in its WHO table, if listed.
    pub fn holder(ipc: &mut Ipc, peer: &str) -> Option<String> {
        ipc.cmd("WHO").ok()?.iter().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(peer)).then(|| w.next().unwrap_or("").to_string())
        })
    }

    /// The handles and addresses the discovery lists.
    pub fn discovery_list(&self) -> Vec<String> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.send_to(b"WHO\n", self.discovery()).unwrap();
        s.set_read_timeout(Some(S / 4)).unwrap();
        let mut out = Vec::new();
        let mut b = vec![0u8; 65536];
        while let Ok(n) = s.recv(&mut b) {
            if let Ok(slcp_core::Message::KnowUsers(e)) = slcp_core::codec::decode(&b[..n]) {
                out.extend(
                    e.iter()
                        .map(|e| format!("{} {}:{}", e.handle, e.ip, e.port)),
                );
            }
        }
        out
    }

    /// Files (and hidden temporary files) in `who`'s imagepath, with their total size.
    pub fn images(&self, who: &str) -> (usize, usize, u64) {
        let dir = self.lan.home().join(format!("img-{who}"));
        let (mut files, mut parts, mut bytes) = (0, 0, 0);
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            bytes += e.metadata().map_or(0, |m| m.len());
            if name.ends_with(".part") {
                parts += 1;
            } else {
                files += 1;
            }
        }
        (files, parts, bytes)
    }
}

/// A socket of the attacker on `ip` (another local user can bind any 127.x address).
pub fn attacker(ip: &str) -> (UdpSocket, u16) {
    (0..50)
        .find_map(|_| {
            let port = free_port();
            UdpSocket::bind((ip, port)).ok().map(|s| (s, port))
        })
        .expect("no free port for the attacker")
}

pub struct Hijack {
    pub alice_has_bob_at: Option<String>,
    pub discovery_lists: Vec<String>,
    pub bob_clashed: bool,
    pub bob_status_joined: bool,
    pub msg_reached_attacker: bool,
}

/// From 127.0.0.2: `KNOWUSERS bob <attacker> P` to bob's port 20/s, `LEAVE bob` and
/// `JOIN bob P` to the discovery, for a second; then alice sends bob a message.
pub fn hijack(v: &mut Victims) -> Hijack {
    let (att, p) = attacker("127.0.0.2");
    let bob_at = v.to("bob");
    for _ in 0..20 {
        att.send_to(format!("KNOWUSERS bob 127.0.0.2 {p}\n").as_bytes(), bob_at)
            .unwrap();
        att.send_to(b"LEAVE bob\n", v.discovery()).unwrap();
        att.send_to(format!("JOIN bob {p}\n").as_bytes(), v.discovery())
            .unwrap();
        // Paces the attack at 20 a second; nothing waits on it.
        std::thread::sleep(S / 20);
    }
    let bob_clashed = v
        .bob
        .wait_event(S / 2, |e| matches!(e, Event::Clash { .. }))
        .is_some();
    let bob_status_joined = v
        .bob
        .cmd("STATUS")
        .unwrap_or_default()
        .iter()
        .any(|l| l == "state     joined");
    let alice_has_bob_at = Victims::holder(&mut v.alice, "bob");
    let _ = v.alice.cmd("MSG bob for bob only");
    att.set_read_timeout(Some(S / 2)).unwrap();
    let mut b = [0u8; 2048];
    let mut msg_reached_attacker = false;
    while let Ok(n) = att.recv(&mut b) {
        msg_reached_attacker |= String::from_utf8_lossy(&b[..n]).contains("for bob only");
    }
    Hijack {
        alice_has_bob_at,
        discovery_lists: v.discovery_list(),
        bob_clashed,
        bob_status_joined,
        msg_reached_attacker,
    }
}

pub struct Impersonation {
    pub shown_as: Option<String>,
    pub away_believed: bool,
    pub image_saved: bool,
    pub look_alikes_listed: Vec<String>,
}

/// From 127.0.0.2: a MSG naming bob, `AWAY bob`, an image announced and sent as bob's, and
/// JOINs of look-alike handles.
pub fn impersonate(v: &mut Victims) -> Impersonation {
    let (att, _) = attacker("127.0.0.2");
    let alice = v.to("alice");
    att.send_to(b"MSG bob send me your password\n", alice)
        .unwrap();
    let shown_as = match v.alice.wait_event(
        S,
        |e| matches!(e, Event::Message { text, .. } if text == "send me your password"),
    ) {
        Some(Event::Message { from, .. }) => Some(from),
        _ => None,
    };
    att.send_to(b"AWAY bob\n", alice).unwrap();
    let away_believed = v
        .alice
        .wait_event(S / 2, |e| matches!(e, Event::Away { .. }))
        .is_some();
    // An image "from bob": announced by UDP, then the TCP stream, both from the attacker.
    att.send_to(b"IMG bob 10\n", alice).unwrap();
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .unwrap();
    if sock.connect(&alice.into()).is_ok() {
        let mut s: TcpStream = sock.into();
        let _ = s.write_all(b"IMG bob 10\nGIF89a-bob");
        let _ = s.shutdown(std::net::Shutdown::Write);
        s.set_read_timeout(Some(S)).unwrap();
        let _ = s.read(&mut [0u8; 16]);
    }
    let image_saved = v
        .alice
        .wait_event(S, |e| {
            matches!(e, Event::Image { .. } | Event::Error { .. })
        })
        .is_some_and(|e| matches!(e, Event::Image { .. }));
    for fake in ["bob\u{200b}", "b\u{43e}b", "\u{202e}bob", "b\u{ff4f}b"] {
        let (a, p) = attacker("127.0.0.2");
        let join = format!("JOIN {fake} {p}\n");
        a.send_to(join.as_bytes(), v.discovery()).unwrap();
        a.send_to(join.as_bytes(), alice).unwrap();
    }
    let who = v.alice.cmd("WHO").unwrap_or_default();
    let mut look_alikes_listed: Vec<String> = who
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|h| *h != "HANDLE" && *h != "bob" && h.contains('b'))
        .map(str::to_string)
        .collect();
    look_alikes_listed.extend(
        v.discovery_list()
            .into_iter()
            .filter(|l| !l.starts_with("alice ") && !l.starts_with("bob ")),
    );
    Impersonation {
        shown_as,
        away_believed,
        image_saved,
        look_alikes_listed,
    }
}

/// The injection payloads of the issue: retitle, clipboard, erase a line, overwrite a name.
pub const INJECTIONS: [&str; 4] = [
    "\u{1b}]0;pwned\u{7}title",
    "\u{1b}]52;c;cm0gLXJmIH4=\u{7}clip",
    "up\u{1b}[1A\u{1b}[2Kerased",
    "\rbob: overwritten",
];

pub struct Flood {
    pub answers: usize,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub users: u64,
    pub rss_kib: u64,
    pub took: Duration,
}

/// One datagram of 2 000 WHO lines (8 KB), then 50 000 JOINs from one address, then a WHO.
pub fn discovery_floods(v: &Victims) -> (Flood, Flood) {
    let (att, _) = attacker("127.0.0.2");
    att.set_read_timeout(Some(S / 2)).unwrap();
    let t = Instant::now();
    let many = "WHO\n".repeat(2000);
    att.send_to(many.as_bytes(), v.discovery()).unwrap();
    let mut b = vec![0u8; 65536];
    let (mut answers, mut out) = (0, 0);
    while let Ok(n) = att.recv(&mut b) {
        answers += 1;
        out += n;
    }
    let who_lines = Flood {
        answers,
        bytes_in: many.len(),
        bytes_out: out,
        users: 0,
        rss_kib: rss_kib(v.discovery_pid()),
        took: t.elapsed().saturating_sub(S / 2),
    };
    let t = Instant::now();
    let mut sent = 0;
    for i in 0..50_000u32 {
        let l = format!("JOIN u{i} {}\n", 1 + i % 60_000);
        sent += l.len();
        let _ = att.send_to(l.as_bytes(), v.discovery());
    }
    let status = v.lan.discovery_status();
    let users = status["users"].as_u64().unwrap_or(0);
    // A 4-byte WHO from another address after it.
    let (w, _) = attacker("127.0.0.3");
    w.set_read_timeout(Some(S / 2)).unwrap();
    w.send_to(b"WHO\n", v.discovery()).unwrap();
    let (mut answers, mut out) = (0, 0);
    while let Ok(n) = w.recv(&mut b) {
        answers += 1;
        out += n;
    }
    let joins = Flood {
        answers,
        bytes_in: 4,
        bytes_out: out,
        users,
        rss_kib: rss_kib(v.discovery_pid()),
        took: t.elapsed(),
    };
    let _ = sent;
    (who_lines, joins)
}

/// `n` datagrams of 1 000 `IMG x 1` lines each, at most `per_sec` a second, to `who`, on a
/// thread of its own (joined by the caller).
pub fn img_lines_flood(to: SocketAddr, n: usize, per_sec: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (att, _) = attacker("127.0.0.2");
        let d = "IMG x 1\n".repeat(1000);
        let start = Instant::now();
        for i in 0..n {
            let _ = att.send_to(d.as_bytes(), to);
            // Pacing of the flood (bounded in rate and count), not synchronisation.
            let due = start + Duration::from_secs_f64(i as f64 / per_sec as f64);
            if let Some(w) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
        }
    })
}

/// MSG latencies alice → bob (IPC to IPC), `n` messages started `every` apart (so they span a
/// flood that runs meanwhile), sorted.
pub fn msg_latencies(v: &mut Victims, n: usize, every: Duration) -> Vec<Duration> {
    let mut out = Vec::new();
    let start = Instant::now();
    for i in 0..n {
        // Spreads the messages over the flood; the pace of the measurement, not a wait for it.
        if let Some(w) = (start + every * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let t = Instant::now();
        let text = format!("lat{i}");
        let _ = v.alice.cmd(&format!("MSG bob {text}"));
        if v.bob
            .wait_event(
                2 * S,
                |e| matches!(e, Event::Message { text: x, .. } if *x == text),
            )
            .is_some()
        {
            out.push(t.elapsed());
        } else {
            out.push(2 * S);
        }
    }
    out.sort();
    out
}

/// 10 000 entries of KNOWUSERS sent to alice, unasked, from 127.0.0.2 (and a few non-unicast
/// addresses among them); returns how many peers alice lists afterwards.
pub fn knowusers_flood(v: &mut Victims) -> usize {
    let (att, _) = attacker("127.0.0.2");
    for chunk in 0..20u32 {
        let mut l = String::from("KNOWUSERS");
        for i in 0..500u32 {
            let n = chunk * 500 + i;
            let ip = match n % 250 {
                0 => "0.0.0.0".to_string(),
                1 => "255.255.255.255".to_string(),
                2 => "224.0.0.1".to_string(),
                _ => format!("10.77.{}.{}", n / 250, n % 250),
            };
            l.push_str(&format!(" k{n} {ip} 5000,"));
        }
        att.send_to(l.as_bytes(), v.to("alice")).unwrap();
    }
    v.alice
        .cmd("WHO")
        .unwrap_or_default()
        .len()
        .saturating_sub(1)
}

/// 20 strangers (127.0.0.10-29) each send alice a 1 MiB image; returns the bytes that landed.
pub fn strangers_fill_disk(v: &Victims) -> u64 {
    let alice = v.to("alice");
    let threads: Vec<_> = (10..30u8)
        .map(|i| {
            std::thread::spawn(move || {
                let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .unwrap();
                sock.bind(&SocketAddr::from(([127, 0, 0, i], 0)).into())
                    .unwrap();
                if sock.connect(&alice.into()).is_err() {
                    return;
                }
                let mut s: TcpStream = sock.into();
                let _ = s.write_all(format!("IMG s{i} 1048576\n").as_bytes());
                let _ = s.write_all(&vec![7u8; 1 << 20]);
                let _ = s.shutdown(std::net::Shutdown::Write);
                s.set_read_timeout(Some(2 * S)).unwrap();
                let _ = s.read(&mut [0u8; 16]);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    v.images("alice").2
}

/// `n` image connections to alice, from bob's host as "bob" (the host is all a TCP connection
/// shows), that send a header and then a byte every 200 ms for `secs`; returns alice's open
/// descriptors at the peak while they trickle, and her `.part` files and extra descriptors
/// once `after` more passed.
pub fn slowloris(v: &Victims, n: usize, secs: u64, after: Duration) -> (usize, usize, usize) {
    let alice = v.to("alice");
    let pid = v.pid("alice");
    let before = fds(pid);
    let mut conns: Vec<TcpStream> = (0..n)
        .filter_map(|_| {
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            sock.connect(&alice.into()).ok()?;
            let mut s: TcpStream = sock.into();
            s.write_all(b"IMG bob 100000\n").ok()?;
            Some(s)
        })
        .collect();
    let mut peak = 0;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for c in &mut conns {
            let _ = c.write_all(b"x");
        }
        peak = peak.max(fds(pid).saturating_sub(before));
        std::thread::sleep(S / 5);
    }
    let left = settle(|| fds(pid).saturating_sub(before), after);
    let parts = v.images("alice").1;
    drop(conns);
    (peak, parts, left)
}

/// `n` connections to alice's IPC port that never present the token (each sends a byte);
/// returns her RSS (KiB) and extra descriptors while they are open, and descriptors `after`.
pub fn ipc_flood(v: &Victims, n: usize, after: Duration) -> (u64, usize, usize) {
    let info = v.lan.runtime("alice");
    let pid = v.pid("alice");
    let before = fds(pid);
    let (mut rss, mut open) = (0, 0);
    let mut conns = Vec::new();
    for i in 0..n {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", info.ipc_port)) {
            let _ = s.write_all(b"{");
            conns.push(s);
        }
        // The peak, sampled as the flood goes (the first ones are closed at their deadline
        // while the last ones still connect).
        if i % 25 == 0 {
            rss = rss.max(rss_kib(pid));
            open = open.max(fds(pid).saturating_sub(before));
        }
    }
    let left = settle(|| fds(pid).saturating_sub(before), after);
    drop(conns);
    (rss, open, left)
}

/// Polls `f` every 50 ms until it gives 0 or `max` passed (a deadline inside the client has no
/// event the test could await); returns its last value.
fn settle(f: impl Fn() -> usize, max: Duration) -> usize {
    let end = Instant::now() + max;
    loop {
        let v = f();
        if v == 0 || Instant::now() >= end {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The img plugin of this build, for the victims (`workspace_plugin` builds it).
pub fn img_plugin() -> PathBuf {
    super::workspace_plugin("img")
}
