//! The client process: one thread, one `mio::Poll`, the imperative shell around [`chat::Chat`].
//!
//! Fixed tokens for the UDP socket, the IPC listener and the signal pipe; IPC connections get
//! never-reused ids. Reads and accepts run until `WouldBlock`, writes are queued and flushed on
//! WRITABLE, and the poll timeout is the earliest deadline the chat logic has.

pub mod chat;
pub mod history;
mod ipc_conns;
mod jobs;
mod notifier;
mod policy;
mod shell;
use policy::with_env;
use shell::Shell;
pub mod peers;
pub mod transfer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::codec::{Forms, Handle};
use crate::ipc::{self, RuntimeInfo};
use crate::net;
use crate::plugin::PluginHost;
use chat::{Chat, Settings};
pub use chat::{Encryption, NotifyMode};
use notifier::Notifier;
use transfer::Transfers;

const UDP: Token = Token(0);
const IPC: Token = Token(1);
const SIGNALS: Token = Token(2);
const IMAGES: Token = Token(3);
const WAKE: Token = Token(4);
const FIRST_CONN: usize = 16;
/// A REPL that lets this much output pile up unread is dropped rather than grow memory.
const MAX_PENDING_OUTPUT: usize = 16 << 20;

/// Saves `key = value` (TOML syntax) in the config file; the error is one line.
pub type Persist = Box<dyn FnMut(&str, &str) -> Result<(), String>>;

/// What the plugins get: where to find them, the config they may read, and how a config key
/// they set is saved.
pub struct PluginSetup {
    /// Folders searched for `*.so` plugins, in order.
    pub dirs: Vec<PathBuf>,
    /// Plugins linked into the binary, registered before the folders are searched.
    pub bundled: Vec<crate::plugin::Bundled>,
    /// Config values by key (strings plain, other values in TOML syntax).
    pub config: BTreeMap<String, String>,
    /// Saves `key = value` (TOML syntax) in the config file; the error is one line.
    pub persist: Persist,
}

/// What `slcp client` needs to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The handle to join with.
    pub handle: Handle,
    /// The port range to take a port from.
    pub ports: (u16, u16),
    /// Every host's discovery port.
    pub whoisport: u16,
    /// Configured broadcast addresses (and static peers).
    pub broadcast: Vec<IpAddr>,
    /// The static peers among them (`peers`): hosts our broadcasts do not reach.
    pub peers: Vec<IpAddr>,
    /// Also broadcast on every up IPv4 interface.
    pub interfaces: bool,
    /// Only this interface (empty: all).
    pub interface: String,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Peer expiry.
    pub expiry: Duration,
    /// How long WHO waits.
    pub who_wait: Duration,
    /// Messages kept while no REPL is attached.
    pub backlog: usize,
    /// Go away after this long without a command.
    pub auto_away: Option<Duration>,
    /// Where the runtime file (IPC port and token) goes.
    pub runtime_file: PathBuf,
    /// Where received images are saved.
    pub imagepath: PathBuf,
    /// The largest image received.
    pub max_image_bytes: u64,
    /// How long a transfer may stall.
    pub transfer_timeout: Duration,
    /// How long a send waits for the receiver's close after the last byte.
    pub confirm_grace: Duration,
    /// Bytes per second a receive must average once it has run `transfer_timeout`.
    pub min_transfer_rate: u64,
    /// Bytes received from one sender per hour, at most.
    pub quota_per_sender: u64,
    /// Bytes received from everyone per hour, at most.
    pub quota_total: u64,
    /// Forms for peers that have shown none.
    pub forms: Forms,
    /// Forms set for a handle or an IP address.
    pub peer_forms: BTreeMap<String, Forms>,
    /// Image ports by handle, where a peer takes images elsewhere than its JOIN port.
    pub image_ports: BTreeMap<String, u16>,
    /// The history database (None: no history).
    pub history: Option<PathBuf>,
    /// Days of history kept (0: all).
    pub history_days: u32,
    /// How the user hears that something arrived.
    pub notify: NotifyMode,
    /// Where received files go.
    pub downloadpath: PathBuf,
    /// The largest file received.
    pub max_file_bytes: u64,
    /// Bytes per second a send may use at most (0: no limit).
    pub max_send_rate: u64,
    /// Whether to encrypt with slcp peers.
    pub encryption: Encryption,
    /// This user's key file and known peers (`None`: no encryption).
    pub keys: Option<(PathBuf, PathBuf)>,
}

/// Why the client could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No port of the range could be bound.
    #[error(transparent)]
    Bind(#[from] net::BindError),
    /// Anything else from the OS.
    #[error("{what}: {cause}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        cause: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClientError {
    let what = what.into();
    move |cause| ClientError::Io { what, cause }
}

/// Runs the client until QUIT, SIGINT or SIGTERM; `ready` is called once it listens and the
/// runtime file is written.
pub fn run(
    opts: Options,
    mut setup: PluginSetup,
    ready: impl FnOnce(&RuntimeInfo),
) -> Result<(), ClientError> {
    let (port, udp_std, image_std) = net::bind_port_pair(opts.ports.0, opts.ports.1)?;
    let ipc_std = net::bind_tcp(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        .map_err(io_err("binding the IPC port on 127.0.0.1"))?;
    let ipc_port = ipc_std
        .local_addr()
        .map_err(io_err("reading the IPC port"))?
        .port();
    let info = RuntimeInfo {
        pid: std::process::id(),
        ipc_port,
        port,
        token: ipc::new_token().map_err(io_err("reading /dev/urandom for the IPC token"))?,
    };
    info.write(&opts.runtime_file)
        .map_err(io_err(format!("writing {}", opts.runtime_file.display())))?;
    // Whatever happens from here, the runtime file must not outlive us.
    let mut runtime_file = RemoveOnDrop(opts.runtime_file.clone());

    let poll = Poll::new().map_err(io_err("creating the poll"))?;
    if let Err(e) = net::enable_bounces(&udp_std) {
        warn!("bounced datagrams will go unnoticed: {e}");
    }
    let mut udp = UdpSocket::from_std(udp_std);
    let mut ipc_listener = TcpListener::from_std(ipc_std);
    let mut image_listener = TcpListener::from_std(image_std);
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).map_err(io_err("installing signal handlers"))?;
    let reg = poll.registry();
    reg.register(&mut udp, UDP, Interest::READABLE)
        .and_then(|_| reg.register(&mut ipc_listener, IPC, Interest::READABLE))
        .and_then(|_| reg.register(&mut signals, SIGNALS, Interest::READABLE))
        .and_then(|_| reg.register(&mut image_listener, IMAGES, Interest::READABLE))
        .map_err(io_err("registering sockets"))?;

    let broadcast = net::broadcast_targets(&opts.broadcast, opts.interfaces, &opts.interface);
    info!(
        "{} on UDP/TCP port {port}, IPC 127.0.0.1:{ipc_port}, broadcast to {broadcast:?}:{}",
        opts.handle, opts.whoisport
    );
    let settings = Settings {
        handle: opts.handle.clone(),
        port,
        whoisport: opts.whoisport,
        broadcast,
        local_ips: net::local_addresses(),
        heartbeat: opts.heartbeat,
        expiry: opts.expiry,
        who_wait: opts.who_wait,
        backlog: opts.backlog,
        auto_away: opts.auto_away,
        forms: opts.forms,
        peer_forms: opts.peer_forms.clone(),
        image_ports: opts.image_ports.clone(),
        history: false,
        notify: opts.notify,
        encryption: opts.encryption,
        local_discovery: net::slcp_discovery_runs(opts.whoisport),
        static_peers: opts.peers.clone(),
    };
    // A history that cannot be opened is reported, and the chat goes on without it.
    let mut history_off = None;
    let store = opts.history.as_ref().and_then(|p| {
        history::open(p, opts.history_days)
            .inspect_err(|e| {
                warn!("no history: {e}");
                history_off = Some(e.clone());
            })
            .ok()
    });
    let settings = Settings {
        history: store.is_some(),
        ..settings
    };
    let now = Instant::now();
    let mut chat = Chat::new(settings, now);
    let mut current_handle = chat.handle().clone();
    chat.set_wall(history::now_ms());
    if let Some(e) = history_off {
        chat.report(format!("the history is off: {e}"));
    }
    let pins_file = match (&opts.keys, opts.encryption) {
        (Some((key, pins)), e) if e != Encryption::Off => {
            match crate::e2e::keys::load_or_create(key) {
                Ok(k) => {
                    info!(
                        "key {} ({})",
                        key.display(),
                        crate::e2e::fingerprint(&k.public)
                    );
                    chat.set_keys(k, crate::e2e::keys::load_pins(pins));
                    Some(pins.clone())
                }
                Err(e) => {
                    warn!("no encryption: {e}");
                    chat.report(format!("encryption is unavailable: {e}"));
                    None
                }
            }
        }
        _ => None,
    };
    if let Some(s) = store.as_ref() {
        match s.groups() {
            Ok(g) => chat.set_groups(g),
            Err(e) => chat.report(format!("the saved groups could not be read: {e}")),
        }
    }
    // Said now, not when the first image arrives (and is refused for it).
    if let Err(e) = transfer::check_imagepath(&opts.imagepath) {
        warn!("{e}");
        chat.report(e);
    }
    let dirs = std::mem::take(&mut setup.dirs);
    let bundled = std::mem::take(&mut setup.bundled);
    let plugins = with_env(&chat, &mut setup, |env| {
        PluginHost::start(&dirs, &bundled, env)
    });
    chat.set_plugins(plugins.commands(), plugins.report());
    chat.start(now);

    // The history's answers, and a missing notification service, come back through the
    // poll's waker (one per poll).
    let waker =
        Arc::new(mio::Waker::new(poll.registry(), WAKE).map_err(io_err("creating the waker"))?);
    let worker = store.map(|s| {
        let waker = waker.clone();
        history::Worker::start(s, move || {
            let _ = waker.wake();
        })
    });
    let notifier = matches!(opts.notify, NotifyMode::Desktop | NotifyMode::Both).then(|| {
        let waker = waker.clone();
        Notifier::start(move || {
            let _ = waker.wake();
        })
    });
    let mut shell = Shell {
        poll,
        udp,
        udp_queue: VecDeque::new(),
        udp_writable: false,
        conns: HashMap::new(),
        next_conn: FIRST_CONN,
        plugins,
        setup,
        history: worker,
        pins_file,
        notifier,
        transfers: Transfers::new(
            opts.imagepath.clone(),
            transfer::Limits {
                max_bytes: opts.max_image_bytes,
                timeout: opts.transfer_timeout,
                grace: opts.confirm_grace,
                min_rate: opts.min_transfer_rate,
                quota_sender: opts.quota_per_sender,
                quota_total: opts.quota_total,
                max_send_rate: opts.max_send_rate,
            },
            transfer::FileLimits {
                dir: opts.downloadpath.clone(),
                max_bytes: opts.max_file_bytes,
            },
        ),
        jobs: jobs::Jobs::default(),
    };
    shell.flush(&mut chat);
    ready(&info);

    // Interfaces come and go (a laptop joins Wi-Fi, a link goes down): look again now and then.
    let mut next_net_check = Instant::now() + opts.heartbeat;
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 65_536];
    let mut quit = false;
    while !quit {
        let mut deadline = chat.next_deadline();
        if let Some(t) = shell.transfers.next_deadline() {
            deadline = deadline.min(t);
        }
        if let Some(t) = shell.auth_deadline() {
            deadline = deadline.min(t);
        }
        // Work left over from a transfer's turn: look at the sockets, but do not wait.
        let timeout = if shell.transfers.busy() {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        if let Err(e) = shell.poll.poll(&mut events, Some(timeout)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err("polling")(e));
        }
        chat.set_wall(history::now_ms());
        for ev in events.iter() {
            match ev.token() {
                UDP => {
                    if ev.is_error() {
                        let now = Instant::now();
                        for addr in net::read_bounces(&shell.udp) {
                            chat.unreachable(now, addr);
                        }
                    }
                    if ev.is_readable() {
                        shell.read_udp(&mut chat, &mut buf);
                    }
                    if ev.is_writable() {
                        shell.udp_writable = false;
                    }
                }
                IPC => shell.accept(&mut ipc_listener),
                WAKE => {
                    if let Some(h) = shell.history.as_ref() {
                        h.collect(&mut chat);
                    }
                    shell.resume_conns(&mut chat, &info.token);
                    if let Some((why, from)) = shell.notifier.as_mut().and_then(Notifier::failure) {
                        chat.desktop_unavailable(&why, &from);
                    }
                }
                IMAGES => shell.transfers.accept(
                    &mut image_listener,
                    shell.poll.registry(),
                    Instant::now(),
                ),
                t if Transfers::owns(t) => shell.transfers.readiness(t),
                SIGNALS => {
                    for sig in signals.pending() {
                        info!("signal {sig}: leaving");
                        quit = true;
                    }
                }
                Token(t) => shell.conn_event(&mut chat, t, &info.token, ev.is_readable()),
            }
        }
        let now = Instant::now();
        if now >= next_net_check {
            next_net_check = now + opts.heartbeat;
            chat.set_network(
                net::broadcast_targets(&opts.broadcast, opts.interfaces, &opts.interface),
                net::local_addresses(),
            );
        }
        chat.tick(now);
        shell.sweep_unauthed(&mut chat, now);
        shell.run_transfers(&mut chat, now);
        shell.flush(&mut chat);
        if chat.handle() != &current_handle {
            // Prompts find this client by the handle in the runtime file's name.
            current_handle = chat.handle().clone();
            let dir = runtime_file
                .0
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let moved = RuntimeInfo::path(&dir, current_handle.as_str());
            match std::fs::rename(&runtime_file.0, &moved) {
                Ok(()) => runtime_file.0 = moved,
                Err(e) => warn!("moving {}: {e}", runtime_file.0.display()),
            }
        }
        quit |= chat.out.quit;
    }
    chat.shutdown();
    shell.flush(&mut chat);
    shell.drain_before_exit();
    info!("client stopped");
    Ok(())
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
