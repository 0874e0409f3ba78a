//! Hosts in network namespaces joined by a bridge (repl/tests/netns/harness.sh), each with its
//! own discovery and users, default config (interface broadcast): the multi-host LAN tests and
//! the scale bench's reality check. Root required; where namespaces cannot be made the tests
//! fail loudly, unless SLCP_SKIP_NETNS=1 says to skip.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use slcp_core::ipc::{IpcClient, RuntimeInfo};

use super::*;

const S: Duration = Duration::from_secs(1);

pub fn harness() -> PathBuf {
    workspace().join("repl/tests/netns/harness.sh")
}

pub fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(harness())
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

/// Whether the LAN tests can run; panics (fails) when they cannot unless skipping was asked for.
pub fn netns_available() -> bool {
    match sh(&["check"]) {
        Ok(()) => true,
        Err(why) if std::env::var("SLCP_SKIP_NETNS").as_deref() == Ok("1") => {
            eprintln!("\n!!! SKIPPING the multi-host LAN test: {why}!!! (SLCP_SKIP_NETNS=1)\n");
            false
        }
        Err(why) => panic!(
            "the multi-host LAN tests need network namespaces: {why}run as root, or set SLCP_SKIP_NETNS=1 to skip them"
        ),
    }
}

/// Runs `f` on a thread inside namespace `ns` (sockets made there stay there).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

pub struct Host {
    pub ns: String,
    pub home: PathBuf,
    pub discovery: Option<Child>,
    pub clients: HashMap<String, Child>,
}

/// A set of namespace hosts, torn down on drop even when the test fails.
pub struct Net {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub hosts: Vec<Host>,
    pub extra: String,
    /// The heartbeat and expiry every config gets: short, for tests that wait for them; the
    /// scale bench's reality check clears it for the defaults (10 s and 35 s).
    pub timing: String,
}

impl Net {
    pub fn new(n: usize, extra: &str) -> Net {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "slcp{}n{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&["down", &name]).unwrap();
        sh(&["up", &name, &n.to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // One copy of slcp with the img plugin beside it, for every host.
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        if std::fs::hard_link(BIN, bin.join("slcp")).is_err() {
            std::fs::copy(BIN, bin.join("slcp")).unwrap();
        }
        std::fs::copy(workspace_plugin("img"), bin.join("libslcp_plugin_img.so")).unwrap();
        let mut net = Net {
            hosts: Vec::new(),
            bin: bin.join("slcp"),
            dir,
            name,
            extra: extra.into(),
            timing: "heartbeat = 0.5\nexpiry = 2".into(),
        };
        for i in 1..=n {
            net.add_host_entry(i);
        }
        net
    }

    pub fn add_host_entry(&mut self, i: usize) {
        let home = self.dir.path().join(format!("h{i}"));
        std::fs::create_dir_all(&home).unwrap();
        self.hosts.push(Host {
            ns: format!("{}-h{i}", self.name),
            home,
            discovery: None,
            clients: HashMap::new(),
        });
    }

    pub fn cmd(&self, h: usize, args: &[&str]) -> Command {
        let host = &self.hosts[h - 1];
        let home = host.home.display().to_string();
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &host.ns, "env", "-i"])
            .arg(format!(
                "PATH={}",
                std::env::var("PATH").unwrap_or_default()
            ))
            .arg(format!("HOME={home}"))
            .arg(format!("XDG_RUNTIME_DIR={home}/run"))
            .arg(format!("XDG_STATE_HOME={home}/state"))
            .arg(format!("XDG_CONFIG_HOME={home}/config"))
            .arg("SLCP_LOG=debug")
            .arg(&self.bin)
            .args(args);
        c
    }

    pub fn config(&self, h: usize, handle: &str, more: &str) -> PathBuf {
        let host = &self.hosts[h - 1];
        let p = host.home.join(format!("{handle}.toml"));
        std::fs::write(
            &p,
            format!(
                "handle = \"{handle}\"\nwhoisport = 4000\nport = [5000, 5010]\n{}\nbundled = []\nimagepath = \"{}\"\n{}\n{}\n{more}\n",
                self.timing,
                host.home.join(format!("img-{handle}")).display(),
                // Encryption is the e2e tests' subject; elsewhere messages stay plain events.
                if self.extra.contains("encryption") || more.contains("encryption") {
                    ""
                } else {
                    "encryption = \"off\""
                },
                self.extra
            ),
        )
        .unwrap();
        p
    }

    pub fn spawn_ready(&self, h: usize, args: &[&str], log: &str) -> Child {
        spawn_ready(
            self.cmd(h, args),
            &self.hosts[h - 1].home.join(log),
            &format!("slcp {args:?} on host {h}"),
        )
    }

    pub fn start_discovery(&mut self, h: usize) {
        let cfg = self.config(h, "discovery", "");
        let c = self.spawn_ready(
            h,
            &["discovery", "--config", cfg.to_str().unwrap()],
            "discovery.log",
        );
        self.hosts[h - 1].discovery = Some(c);
    }

    pub fn kill_discovery(&mut self, h: usize) {
        if let Some(mut c) = self.hosts[h - 1].discovery.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn start_client(&mut self, h: usize, handle: &str, more: &str) {
        let cfg = self.config(h, handle, more);
        let c = self.spawn_ready(
            h,
            &["client", "--config", cfg.to_str().unwrap()],
            &format!("client-{handle}.log"),
        );
        self.hosts[h - 1].clients.insert(handle.into(), c);
    }

    pub fn kill_client(&mut self, h: usize, handle: &str) {
        if let Some(mut c) = self.hosts[h - 1].clients.remove(handle) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ipc(&self, h: usize, handle: &str) -> Ipc {
        let host = &self.hosts[h - 1];
        let info = RuntimeInfo::read(&RuntimeInfo::path(&host.home.join("run/slcp"), handle))
            .unwrap()
            .expect("runtime file");
        let (c, hello) = in_ns(&host.ns, move || {
            IpcClient::attach(info.ipc_port, &info.token).unwrap()
        });
        Ipc::new(c, hello)
    }

    /// Host `h`'s discovery's status line (its counters), read from inside that host.
    pub fn discovery_status(&self, h: usize) -> serde_json::Value {
        in_ns(&self.hosts[h - 1].ns, || {
            let mut s = std::net::TcpStream::connect("127.0.0.1:4000").unwrap();
            s.set_read_timeout(Some(2 * S)).unwrap();
            let mut l = String::new();
            std::io::Read::read_to_string(&mut s, &mut l).unwrap();
            serde_json::from_str(l.trim()).unwrap()
        })
    }

    /// The number of users host `h`'s discovery has seen heartbeat (its status line).
    pub fn heartbeating(&self, h: usize) -> u64 {
        self.discovery_status(h)["heartbeating"].as_u64().unwrap()
    }

    /// The handles host `h`'s discovery lists, asked from inside that host.
    pub fn discovery_table(&self, h: usize) -> Vec<String> {
        in_ns(&self.hosts[h - 1].ns, || {
            ask_who("127.0.0.1:4000".parse().unwrap())
        })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            for (_, mut c) in h.clients.drain() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(mut c) = h.discovery.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = sh(&["down", &self.name]);
    }
}
