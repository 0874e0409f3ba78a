//! Test support: an isolated "LAN" on loopback with its own HOME, ports chosen at run time, real
//! `slcp` processes, and IPC connections to them. Everything is killed when the `Lan` drops.

#![allow(dead_code)]

pub mod attack;
pub mod bench;
pub mod browser;
pub mod capture;
pub mod fake;
pub mod ipc;
pub mod netns;
pub mod tmux;

// Not every test uses both.
#[allow(unused_imports)]
pub use fake::FakePeer;
#[allow(unused_imports)]
pub use ipc::Ipc;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use slcp_core::ipc::{IpcClient, RuntimeInfo, ServerMsg};

pub const BIN: &str = env!("CARGO_BIN_EXE_slcp");

/// A port free for UDP and TCP on every address right now, never handed out before by this
/// process, and where it can be, outside the kernel's ephemeral range: a port the kernel picks by
/// itself (a `bind(0)`, a connect's source port, another test's IPC listener) can then never take
/// it between this call and the moment the test binds it.
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive ports, each as [`free_port`] gives them.
pub fn free_ports(n: u16) -> u16 {
    struct Ports {
        given: std::collections::HashSet<u16>,
        cursor: u32,
    }
    static PORTS: std::sync::Mutex<Option<Ports>> = std::sync::Mutex::new(None);
    let is_free = |p: u16| {
        UdpSocket::bind(("0.0.0.0", p)).is_ok()
            && TcpListener::bind(("0.0.0.0", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
    };
    let range = fixed_port_range();
    let mut guard = PORTS.lock().unwrap();
    let st = guard.get_or_insert_with(|| Ports {
        given: Default::default(),
        // Test binaries run one after another; starting each at its own place spreads them.
        cursor: (u64::from(std::process::id()) * 7919 % 50_000) as u32,
    });
    for _ in 0..100_000 {
        let p = match range {
            Some((low, high)) => {
                st.cursor = (st.cursor + 1) % (high - low);
                (low + st.cursor) as u16
            }
            // The ephemeral range covers nearly every port: take the kernel's pick.
            None => UdpSocket::bind("0.0.0.0:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
        };
        let Some(last) = p.checked_add(n - 1) else {
            continue;
        };
        if range.is_some_and(|(_, high)| u32::from(last) >= high) {
            continue;
        }
        if (p..=last).all(|q| !st.given.contains(&q) && is_free(q)) {
            st.given.extend(p..=last);
            return p;
        }
    }
    panic!("no {n} free ports in a row");
}

/// At least 2000 ports outside the kernel's ephemeral range (ip_local_port_range): below it
/// from 10000, or above it.
fn fixed_port_range() -> Option<(u32, u32)> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut r = range.split_whitespace().map(|w| w.parse::<u32>().ok());
    let (lo, hi) = (r.next()??, r.next()??);
    if lo >= 12000 {
        Some((10000, lo))
    } else if hi <= 63000 {
        Some((hi + 1, 65536))
    } else {
        None
    }
}

/// Spawns `cmd` with its stderr in `log` and waits (10 s at most) for its ready line on stdout.
pub fn spawn_ready(mut cmd: Command, log: &Path, what: &str) -> Child {
    let log = std::fs::File::create(log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    assert!(
        line_within(out, Duration::from_secs(10)).is_some(),
        "{what} did not get ready"
    );
    child
}

/// Reads one line from `r` within `t`.
pub fn line_within<R: Read + Send + 'static>(r: R, t: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut l = String::new();
        let _ = BufReader::new(r).read_line(&mut l);
        let _ = tx.send(l);
    });
    rx.recv_timeout(t).ok().filter(|l| !l.is_empty())
}

pub struct User {
    pub handle: String,
    pub port: u16,
    pub config: PathBuf,
    pub child: Option<Child>,
}

pub struct Lan {
    /// The slcp executable this LAN runs (a copy with chosen plugins beside it, or the build's).
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub whoisport: u16,
    pub discovery: Option<Child>,
    pub users: Vec<User>,
    /// Extra config lines for every user.
    pub extra: String,
    /// Processes started by the launcher (detached); killed on drop.
    pub detached: Vec<u32>,
    /// Write no config key the binary before the built-in plugins did not know (for running an
    /// older slcp).
    pub legacy: bool,
    /// The session bus the processes see (DBUS_SESSION_BUS_ADDRESS), for notifications.
    pub bus: Option<String>,
}

impl Lan {
    pub fn new(extra: &str) -> Lan {
        Lan {
            bin: PathBuf::from(BIN),
            dir: tempfile::tempdir().unwrap(),
            whoisport: free_port(),
            discovery: None,
            users: Vec::new(),
            extra: extra.to_string(),
            detached: Vec::new(),
            legacy: false,
            bus: None,
        }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a copy of slcp in `<home>/bin` with exactly these plugin files beside it (the
    /// executable's folder is on the plugin search path).
    pub fn with_plugins(&mut self, plugins: &[(&Path, &str)]) {
        let bin = self.home().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let exe = bin.join("slcp");
        // A hard link, not a copy: a file being written is "text file busy" for exec if another
        // test thread forks meanwhile (the child holds the write descriptor until its exec).
        if std::fs::hard_link(BIN, &exe).is_err() {
            std::fs::copy(BIN, &exe).unwrap();
        }
        for (from, name) in plugins {
            std::fs::copy(from, bin.join(name)).unwrap();
        }
        self.bin = exe;
    }

    /// A command with this LAN's isolated environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        let h = self.home();
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("USER", "tester")
            .env("XDG_RUNTIME_DIR", h.join("run"))
            .env("XDG_STATE_HOME", h.join("state"))
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env("XDG_DATA_HOME", h.join("data"));
        if let Some(bus) = &self.bus {
            c.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        c
    }

    /// Writes a config for `handle` with its own port; returns its path.
    pub fn add_user(&mut self, handle: &str) -> PathBuf {
        let port = free_port();
        let config = self.home().join(format!("{handle}.toml"));
        std::fs::write(
            &config,
            format!(
                "handle = \"{handle}\"\nwhoisport = {}\nport = {port}\ninterfaces = false\nbroadcast = [\"127.255.255.255\"]\nimagepath = \"{}\"\n{}{}{}{}\n",
                self.whoisport,
                self.home().join(format!("img-{handle}")).display(),
                // Files go to `<home>/dl-<handle>` (a key the binary before FILE did not know).
                if self.legacy {
                    String::new()
                } else {
                    format!(
                        "downloadpath = \"{}\"\n",
                        self.home().join(format!("dl-{handle}")).display()
                    )
                },
                // The tests load real plugin files; the built-in ones have a test of their own.
                if self.legacy { "" } else { "bundled = []\n" },
                // Encryption is the e2e tests' subject; elsewhere messages stay plain events.
                if self.legacy || self.extra.contains("encryption") {
                    ""
                } else {
                    "encryption = \"off\"\n"
                },
                self.extra
            ),
        )
        .unwrap();
        self.users.push(User {
            handle: handle.into(),
            port,
            config: config.clone(),
            child: None,
        });
        config
    }

    /// A LAN of alice, bob and carol, all started, with `extra` in their configs.
    pub fn three_users(extra: &str) -> Lan {
        let mut lan = Lan::new(extra);
        lan.start_all(&["alice", "bob", "carol"]);
        lan
    }

    /// Starts a discovery and a client for each of `users`.
    pub fn start_all(&mut self, users: &[&str]) {
        self.start_discovery();
        for u in users {
            self.add_user(u);
            self.start_client(u);
        }
    }

    /// Sets `key = value` (TOML) in `handle`'s config file, with the product's own line editor.
    pub fn set_key(&self, handle: &str, key: &str, value: &str) {
        slcp_config::save_key(&self.user(handle).config, key, value).unwrap();
    }

    pub fn user(&self, handle: &str) -> &User {
        self.users.iter().find(|u| u.handle == handle).unwrap()
    }

    fn spawn_ready(&self, args: &[&str], log: &str) -> Child {
        let mut cmd = self.cmd();
        cmd.env("SLCP_LOG", "debug").args(args);
        spawn_ready(cmd, &self.home().join(log), &format!("slcp {args:?}"))
    }

    /// Starts this LAN's discovery (a config of its own for the port and expiry).
    pub fn start_discovery(&mut self) {
        let cfg = self.home().join("discovery.toml");
        std::fs::write(
            &cfg,
            format!(
                "whoisport = {}\ninterfaces = false\n{}\n",
                self.whoisport, self.extra
            ),
        )
        .unwrap();
        let c = self.spawn_ready(
            &["discovery", "--config", cfg.to_str().unwrap()],
            "discovery.log",
        );
        self.discovery = Some(c);
    }

    pub fn kill_discovery(&mut self) {
        if let Some(mut c) = self.discovery.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the client of `handle` in the foreground (as `slcp client`).
    pub fn start_client(&mut self, handle: &str) {
        let cfg = self.user(handle).config.clone();
        let c = self.spawn_ready(
            &["client", "--config", cfg.to_str().unwrap()],
            &format!("client-{handle}.log"),
        );
        self.users
            .iter_mut()
            .find(|u| u.handle == handle)
            .unwrap()
            .child = Some(c);
    }

    pub fn kill_client(&mut self, handle: &str, signal: &str) {
        let u = self.users.iter_mut().find(|u| u.handle == handle).unwrap();
        if let Some(mut c) = u.child.take() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub fn runtime(&self, handle: &str) -> RuntimeInfo {
        RuntimeInfo::read(&RuntimeInfo::path(&self.home().join("run/slcp"), handle))
            .unwrap()
            .expect("runtime file")
    }

    /// An IPC connection to the client of `handle`.
    pub fn ipc(&self, handle: &str) -> Ipc {
        let info = self.runtime(handle);
        let (c, hello) = IpcClient::attach(info.ipc_port, &info.token).unwrap();
        let ServerMsg::Hello { peers, .. } = &hello else {
            panic!("{hello:?}")
        };
        Ipc {
            c,
            peers: peers.clone(),
            events: Vec::new(),
        }
    }

    /// IPC connections to the clients of `x` and `y`, once each knows the other (2 s at most).
    pub fn pair(&self, x: &str, y: &str) -> (Ipc, Ipc) {
        let (mut a, mut b) = (self.ipc(x), self.ipc(y));
        let t = Duration::from_secs(2);
        assert!(
            a.wait_peers(&[y], t) && b.wait_peers(&[x], t),
            "{x} and {y} did not see each other"
        );
        (a, b)
    }

    /// [`Lan::run_script`] on a thread of its own, for scripts that run side by side.
    pub fn script_thread(
        &self,
        args: &[&str],
        stdin: &str,
        t: Duration,
    ) -> std::thread::JoinHandle<Output> {
        let mut cmd = self.cmd();
        cmd.args(args);
        let stdin = stdin.to_string();
        std::thread::spawn(move || run_with_input(cmd, &stdin, t))
    }

    /// Runs `slcp <args>` with `stdin` piped in, within `t`.
    pub fn run_script(&self, args: &[&str], stdin: &str, t: Duration) -> Output {
        let mut cmd = self.cmd();
        cmd.args(args);
        run_with_input(cmd, stdin, t)
    }

    /// The counters the discovery reports on its status port.
    pub fn discovery_status(&self) -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.whoisport)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut l = String::new();
        s.read_to_string(&mut l).unwrap();
        serde_json::from_str(l.trim()).unwrap()
    }

    /// Sends WHO to the discovery and collects the handles of its KNOWUSERS answers.
    pub fn who(&self) -> Vec<String> {
        ask_who(SocketAddr::from(([127, 0, 0, 1], self.whoisport)))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.home().join(name)).unwrap_or_default()
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for u in &mut self.users {
            if let Some(mut c) = u.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.kill_discovery();
        for pid in &self.detached {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Runs `cmd` with `stdin` piped in; kills it and fails the test after `t`.
pub fn run_with_input(mut cmd: Command, stdin: &str, t: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sin = child.stdin.take().unwrap();
    let input = stdin.to_string();
    std::thread::spawn(move || {
        let _ = sin.write_all(input.as_bytes());
    });
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(t) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{cmd:?} did not finish within {t:?}");
        }
    }
}

/// Runs cargo (the one running the tests) with `args`; panics with its output on failure.
pub fn cargo(args: &[&str], dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        text(&out.stderr)
    );
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `target/`, where the test binary's slcp lives.
pub fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

/// The workspace plugins as real `.so` files, built once per test binary into a target dir of
/// their own (`cargo test` does not build cdylibs).
pub fn workspace_plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let t = target_dir().join("test-plugins");
        cargo(
            &[
                "build",
                "--offline",
                "-p",
                "slcp-plugin-autoreply-so",
                "-p",
                "slcp-plugin-dice-so",
                "-p",
                "slcp-plugin-img-so",
                "--target-dir",
                t.to_str().unwrap(),
            ],
            &workspace(),
        );
        t.join("debug")
    });
    dir.join(format!("libslcp_plugin_{name}_so.so"))
}

/// The fixture plugin (outside the workspace), built once: the normal build, or the one that
/// declares a wrong ABI version.
pub fn fixture(wrong_abi: bool) -> PathBuf {
    static NORMAL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static WRONG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let (slot, sub, extra): (_, _, &[&str]) = if wrong_abi {
        (&WRONG, "fixture-wrong-abi", &["--features", "wrong-abi"])
    } else {
        (&NORMAL, "fixture", &[])
    };
    slot.get_or_init(|| {
        let t = target_dir().join(sub);
        let manifest = workspace().join("plugins/fixture/Cargo.toml");
        let mut args = vec![
            "build",
            "--offline",
            "--manifest-path",
            manifest.to_str().unwrap(),
            "--target-dir",
            t.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cargo(&args, &workspace());
        t.join("debug/libslcp_plugin_fixture.so")
    })
    .clone()
}

/// Sends WHO to `addr` and collects the handles of every KNOWUSERS answer (200 ms quiet ends it).
pub fn ask_who(addr: SocketAddr) -> Vec<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(b"WHO\n", addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.recv(&mut buf) {
        if let Ok(slcp_core::Message::KnowUsers(e)) = slcp_core::codec::decode(&buf[..n]) {
            out.extend(e.into_iter().map(|e| e.handle.to_string()));
        }
    }
    out.sort();
    out
}

/// A file of `n` pseudo-random bytes starting with `magic`.
/// Every entry of `dir` (none if it does not exist), hidden ones included.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn make_file(dir: &Path, name: &str, magic: &[u8], n: usize) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    let m = magic.len().min(n);
    f.write_all(&magic[..m]).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
    let mut left = n - m;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let k = left.min(8);
        f.write_all(&b[..k]).unwrap();
        left -= k;
    }
    f.flush().unwrap();
    p
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Sends raw bytes to a UDP port on loopback.
pub fn send_raw(port: u16, bytes: &[u8]) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(bytes, SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
}
