//! Starting the parts: finds this host's discovery and this user's client, starts them detached
//! when they are not running, and attaches to the client.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use slcp_config::{Config, paths};
use slcp_core::ipc::{AttachError, IpcClient, RuntimeInfo, ServerMsg};

use crate::cli::Cli;

/// How long a part may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What the discovery service on `127.0.0.1:whoisport` says about itself, if one runs.
pub fn discovery_status(whoisport: u16) -> Result<Option<serde_json::Value>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], whoisport));
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    let _ = (&mut s).take(4096).read_to_string(&mut line);
    match serde_json::from_str::<serde_json::Value>(line.trim()) {
        Ok(v) if v["service"] == "slcp-discovery" => Ok(Some(v)),
        _ => bail!(
            "TCP 127.0.0.1:{whoisport} is taken by something that is not slcp discovery; choose another `whoisport`"
        ),
    }
}

/// The runtime file of the client for this config.
pub fn runtime_file(cfg: &Config) -> PathBuf {
    RuntimeInfo::path(&paths::runtime_dir(), cfg.handle.as_str())
}

/// Attaches to the running client for this config; `Ok(None)` when none runs.
pub fn attach(cfg: &Config) -> Result<Option<(IpcClient, ServerMsg)>> {
    let file = runtime_file(cfg);
    let Some(info) =
        RuntimeInfo::read(&file).with_context(|| format!("reading {}", file.display()))?
    else {
        return Ok(None);
    };
    // A person at a terminal gets a recap of recent conversations on attach; a script does not.
    use std::io::IsTerminal;
    let person = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    match IpcClient::attach_as(info.ipc_port, &info.token, person) {
        Ok(x) => Ok(Some(x)),
        Err(AttachError::Connect { .. }) => {
            // The client died without cleaning up: the file is stale.
            log::info!("removing stale {}", file.display());
            let _ = std::fs::remove_file(&file);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes sure discovery and the client run, then attaches.
pub fn ensure_running(cli: &Cli, cfg: &Config) -> Result<(IpcClient, ServerMsg)> {
    if discovery_status(cfg.whoisport)?.is_none() {
        let log = log_file("discovery.log")?;
        match spawn(cli, "discovery", &log) {
            Ok(_) => {}
            // Another launcher may have started one at the same moment; that is fine.
            Err(_) if discovery_status(cfg.whoisport)?.is_some() => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(x) = attach(cfg)? {
        return Ok(x);
    }
    let log = log_file(&format!("client-{}.log", cfg.handle))?;
    spawn(cli, "client", &log)?;
    attach(cfg)?.context("the client started but its runtime file is missing")
}

fn log_file(name: &str) -> Result<PathBuf> {
    let dir = paths::state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join(name))
}

/// Starts `slcp <part>` detached (own process group, stdin closed, stderr to `log`) with the
/// same config flags as this process, and waits for its ready line.
fn spawn(cli: &Cli, part: &str, log: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("finding the slcp executable")?;
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.arg(part)
        .args(cli.config_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        // Its own process group: Ctrl-C at the prompt must not stop the background parts.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting slcp {part}"))?;
    let out = child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = BufReader::new(out).read_line(&mut line).map(|_| line);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(line)) if !line.is_empty() => {
            log::info!("started slcp {part}: {}", line.trim());
            Ok(())
        }
        Ok(_) => {
            let _ = child.wait();
            bail!(
                "slcp {part} failed to start: {}",
                last_line(log).unwrap_or_else(|| format!("see {}", log.display()))
            )
        }
        Err(_) => {
            let _ = child.kill();
            bail!(
                "slcp {part} did not get ready within {START_TIMEOUT:?}; see {}",
                log.display()
            )
        }
    }
}

/// The last non-empty line of a log, with the `slcp: ` prefix of error lines removed.
fn last_line(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let l = text.lines().rev().find(|l| !l.trim().is_empty())?;
    Some(l.strip_prefix("slcp: ").unwrap_or(l).to_string())
}
