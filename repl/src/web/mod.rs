//! `slcp web`: the second front end. It attaches to the client over the same IPC as the REPL
//! (no second way in), serves a page on 127.0.0.1 to this user alone ([`guard`]) and relays:
//! commands from the page to the client, events from the client to every open page.

mod bridge;
mod guard;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use slcp_config::Config;
use tokio::sync::mpsc;

use crate::cli::Cli;
use crate::launcher;
use bridge::Bridge;

/// What every request handler shares.
pub struct App {
    /// The IPC connection to the client.
    bridge: Arc<Bridge>,
    /// The port the page is served on (the `Host` and `Origin` checks name it).
    port: u16,
    /// The secret in the opened address and then in the cookie.
    token: String,
    /// Folders whose files the page may show or download: received images and files (resolved
    /// at each request: the client creates them when the first file arrives).
    media_roots: Vec<PathBuf>,
    /// Where uploads wait until the client has sent them (0700, removed at exit).
    spool: PathBuf,
    /// The largest image and file the client would send.
    max_image_bytes: u64,
    max_file_bytes: u64,
}

/// Runs `slcp web`: starts what is missing, serves the page, opens the browser (or prints the
/// address with `open == false`) and serves until the client stops or Ctrl-C.
pub fn run(cli: &Cli, cfg: &Config, open: bool) -> Result<ExitCode> {
    let (client, hello) = launcher::ensure_running(cli, cfg)?;
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .context("binding a port on 127.0.0.1 for the web UI")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let token = slcp_core::ipc::new_token().context("reading random bytes for the token")?;
    let spool = make_spool()?;
    let (closed_tx, mut closed_rx) = mpsc::channel::<()>(1);
    let bridge = Bridge::start(client, hello, move || {
        let _ = closed_tx.try_send(());
    });
    let media_roots = vec![cfg.imagepath.clone(), cfg.downloadpath.clone()];
    let app = Arc::new(App {
        bridge,
        port,
        token: token.clone(),
        media_roots,
        spool: spool.clone(),
        max_image_bytes: cfg.max_image_bytes,
        max_file_bytes: cfg.max_file_bytes,
    });
    let url = format!("http://127.0.0.1:{port}/?token={token}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the web server's runtime")?;
    let outcome = rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let server = axum::serve(listener, routes::router(app));
        // The one line a script (and the tests) wait for: the page is served from now on.
        crate::ready_line(&format!("slcp web: {url}"));
        if open && let Err(e) = webbrowser::open(&url) {
            eprintln!("slcp: could not open a browser ({e}); open {url}");
        }
        tokio::select! {
            r = server => r.context("serving the web UI").map(|_| ExitCode::SUCCESS),
            _ = closed_rx.recv() => {
                eprintln!("slcp: the client stopped; the web UI ends with it");
                Ok(ExitCode::FAILURE)
            }
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::SUCCESS),
        }
    });
    let _ = std::fs::remove_dir_all(&spool);
    outcome
}

/// A private folder for uploads, in the runtime dir (0700). Folders left by a `slcp web` that
/// was killed (its process is gone) are removed first, with what they held.
fn make_spool() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let runtime = slcp_config::paths::runtime_dir();
    for e in std::fs::read_dir(&runtime).into_iter().flatten().flatten() {
        let name = e.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix("web-"));
        if let Some(pid) = pid.filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = runtime.join(format!("web-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
