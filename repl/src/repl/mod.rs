//! The prompt: interactive (rustyline, history, Tab completion, events above the prompt) or
//! piped (a script from stdin, one command's outcome before the next line is read).
//!
//! One reader thread owns the IPC socket's reading half and prints everything the client sends,
//! replies and events alike, in the order the client sent it; so a transcript is the client's
//! order, not a race between threads. The main thread sends commands and waits for each outcome.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rustyline::completion::FilenameCompleter;
use rustyline::error::ReadlineError;
use rustyline::{CompletionType, Config as RlConfig, Editor};
use slcp_config::{Config, paths};
use slcp_core::ipc::{self, ArgKind, CommandInfo, Event, IpcClient, IpcReader, ServerMsg};
use slcp_core::render::render;

/// How long the client may stay silent about a command before the prompt gives up on it (a
/// transfer reports progress, which restarts the wait, so a long IMG is no reason).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest command line sent to the client (its IPC limit is 1 MiB; a message is at most
/// one 512-byte datagram, or a few when split).
const MAX_COMMAND: usize = 64 * 1024;
/// Events kept for WAIT.
const EVENT_QUEUE: usize = 10_000;

/// Commands the prompt runs itself.
fn local_commands() -> Vec<CommandInfo> {
    vec![
        CommandInfo {
            word: "DOCTOR".into(),
            usage: "DOCTOR".into(),
            help: "check the network: interfaces, discoveries that answer, what is blocked".into(),
            args: vec![],
        },
        CommandInfo {
            word: "QUERY".into(),
            usage: "QUERY [handle]".into(),
            help: "talk to someone: plain lines go to them (commands then start with /); QUERY alone ends it".into(),
            args: vec![ArgKind::Handle],
        },
        CommandInfo {
            word: "TALK".into(),
            usage: "TALK [handle]".into(),
            help: "the same as QUERY".into(),
            args: vec![ArgKind::Handle],
        },
        CommandInfo {
            word: "ME".into(),
            usage: "ME [handle] <action...>".into(),
            help: "an action, shown as `* you waves` (to your QUERY partner, or to the handle)".into(),
            args: vec![ArgKind::Handle, ArgKind::Text],
        },
        CommandInfo {
            word: "WAIT".into(),
            usage: "WAIT <message|image|join|leave|away|back|peer|error> [handle] [seconds]".into(),
            help: "wait for an event (peer: until the handle is known); default 10 seconds".into(),
            args: vec![ArgKind::Text, ArgKind::Handle, ArgKind::Text],
        },
    ]
}

mod complete;
mod print;
mod wait;

use complete::SlcpHelper;
use print::Printer;

/// State the reader thread and the prompt share.
struct Shared {
    peers: Mutex<BTreeSet<String>>,
    handle: Mutex<String>,
    /// Ctrl-C was pressed while a command ran (set by the SIGINT handler of an interactive
    /// prompt; rustyline reads Ctrl-C as a key while it edits a line).
    interrupted: Arc<AtomicBool>,
    /// Events with the time they happened (ms), for WAIT.
    events: Mutex<VecDeque<(Event, u64)>>,
    arrived: Condvar,
    /// stdout was closed by the reader of our output: stop writing, end quietly.
    stdout_closed: AtomicBool,
    /// Whom plain lines go to (QUERY), and how many messages came from others since.
    partner: Mutex<Option<String>>,
    unread: std::sync::atomic::AtomicUsize,
}

impl Shared {
    /// A message from `from` was shown: it counts as unread when you talk to someone else.
    fn message_from(&self, from: &str) {
        if let Some(p) = self.partner.lock().unwrap().as_deref()
            && p != from
        {
            self.unread.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The outcome of one command, as the reader thread saw it.
enum Outcome {
    Done {
        id: u64,
        ok: bool,
    },
    /// The client reported progress on the running command.
    Working,
    Closed(String),
}

fn reader_thread(
    mut reader: IpcReader,
    shared: Arc<Shared>,
    mut printer: Printer,
    done: mpsc::Sender<Outcome>,
) {
    loop {
        let msg = match reader.recv() {
            Ok(Some(m)) => m,
            Ok(None) => {
                let _ = done.send(Outcome::Closed("the client closed the connection".into()));
                return;
            }
            Err(e) => {
                let _ = done.send(Outcome::Closed(e.to_string()));
                return;
            }
        };
        match msg {
            ServerMsg::Reply { id, lines, error } => {
                // Replies carry foreign strings too (handles in WHO, a plugin's lines).
                for l in lines {
                    printer.out(&shared, render(&l));
                }
                if let Some(e) = &error {
                    printer.err(&render(e));
                }
                let _ = done.send(Outcome::Done {
                    id,
                    ok: error.is_none(),
                });
            }
            ServerMsg::Event { event, at } => {
                match &event {
                    Event::Join { handle, .. } => {
                        shared.peers.lock().unwrap().insert(handle.clone());
                    }
                    Event::Leave { handle } => {
                        shared.peers.lock().unwrap().remove(handle);
                    }
                    Event::Handle { handle } => *shared.handle.lock().unwrap() = handle.clone(),
                    _ => {}
                }
                printer.event(&shared, &event, at);
                if matches!(event, Event::Progress { .. }) {
                    // The command is under way: the prompt keeps waiting for it.
                    let _ = done.send(Outcome::Working);
                    continue;
                }
                let mut q = shared.events.lock().unwrap();
                if q.len() >= EVENT_QUEUE {
                    q.pop_front();
                }
                q.push_back((event, at));
                shared.arrived.notify_all();
            }
            ServerMsg::Hello { .. } | ServerMsg::Denied { .. } => {}
        }
    }
}

/// Runs the prompt on an attached client until QUIT, end of input, or the client going away.
/// Runs the prompt on an attached client; `again` is the command that attaches again (with the
/// user's `--config` and the like), for the hints.
pub fn run(client: IpcClient, hello: ServerMsg, cfg: &Config, again: &str) -> Result<ExitCode> {
    let ServerMsg::Hello {
        handle,
        peers,
        commands,
        ..
    } = hello
    else {
        anyhow::bail!("the client did not greet");
    };
    let shared = Arc::new(Shared {
        peers: Mutex::new(peers.into_iter().collect()),
        handle: Mutex::new(handle),
        interrupted: Arc::new(AtomicBool::new(false)),
        partner: Mutex::new(None),
        unread: std::sync::atomic::AtomicUsize::new(0),
        events: Mutex::new(VecDeque::new()),
        arrived: Condvar::new(),
        stdout_closed: AtomicBool::new(false),
    });
    let mut commands = commands;
    commands.extend(local_commands());
    let (writer, reader) = client.split();
    let (tx, rx) = mpsc::channel();
    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();
    let mut session = Session {
        cfg: cfg.clone(),
        writer,
        done: rx,
        shared: shared.clone(),
        next_id: 1_000_000,
        commands,
        mark: 0,
        again: again.to_string(),
        interactive,
        color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    };
    if interactive {
        interactive_loop(&mut session, reader, tx, cfg, again)
    } else {
        let s = shared.clone();
        std::thread::spawn(move || reader_thread(reader, s, Printer::Piped, tx));
        piped_loop(&mut session)
    }
}

struct Session {
    cfg: Config,
    writer: TcpStream,
    done: Receiver<Outcome>,
    shared: Arc<Shared>,
    next_id: u64,
    commands: Vec<CommandInfo>,
    /// When the last command other than WAIT started (ms since the Unix epoch).
    mark: u64,
    /// The command that attaches again (with the user's options), for the hints.
    again: String,
    /// A person reads this prompt (own messages are shown back, with colours unless NO_COLOR).
    interactive: bool,
    color: bool,
}

/// What running one line led to.
enum Step {
    Ok,
    Failed,
    Quit,
    Lost(String),
}

/// `IMG bob pics/cat.png` as `IMG bob /home/me/pics/cat.png` (the path relative to this
/// prompt's folder); `None` when the path is already absolute, `~/...`, or missing.
fn absolute_path_arg(body: &str) -> Option<String> {
    let (word, rest) = body.split_once(char::is_whitespace)?;
    let (to, path) = rest.trim_start().split_once(char::is_whitespace)?;
    let path = path.trim();
    let (quoted, bare) = match path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(p) => (true, p),
        None => (false, path),
    };
    if bare.is_empty() || bare.starts_with('/') || bare.starts_with("~/") {
        return None;
    }
    let abs = std::env::current_dir().ok()?.join(bare);
    let abs = abs.display();
    Some(if quoted {
        format!("{word} {to} \"{abs}\"")
    } else {
        format!("{word} {to} {abs}")
    })
}

impl Session {
    /// Runs one command line, local or sent to the client, and waits for its outcome.
    fn line(&mut self, line: &str) -> Step {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Step::Ok;
        }
        // In a QUERY, a plain line is a message to the partner; commands start with `/`.
        let partner = self.shared.partner.lock().unwrap().clone();
        if let Some(p) = &partner
            && !line.starts_with('/')
        {
            return self.message(p, line);
        }
        let body = line.strip_prefix('/').unwrap_or(line);
        let (word, rest) = body
            .split_once(char::is_whitespace)
            .map(|(w, r)| (w, r.trim()))
            .unwrap_or((body, ""));
        let word = word.to_ascii_uppercase();
        if word == "DOCTOR" {
            let report = crate::doctor::run(&self.cfg);
            for l in &report.lines {
                self.print(l);
            }
            return if report.problems == 0 {
                Step::Ok
            } else {
                Step::Failed
            };
        }
        if line.len() > MAX_COMMAND {
            eprintln!(
                "error: a command line of {} bytes is over the limit of {MAX_COMMAND}; a message must fit one line",
                line.len()
            );
            return Step::Failed;
        }
        if word == "HELP"
            && let Some(c) = local_commands()
                .into_iter()
                .find(|c| c.word == rest.trim_start_matches('/').to_ascii_uppercase())
        {
            self.print(&format!("{}  {}", c.usage, c.help));
            return Step::Ok;
        }
        if word == "QUERY" || word == "TALK" {
            return self.query(rest);
        }
        if word == "ME" {
            let me = self.shared.handle.lock().unwrap().clone();
            let (to, action) = match (&partner, rest.split_once(' ')) {
                (Some(p), _) if !rest.is_empty() => (p.clone(), rest.to_string()),
                (None, Some((h, a))) => (h.to_string(), a.trim().to_string()),
                _ => {
                    eprintln!(
                        "error: usage: ME <handle> <action...> (or /me <action...> in a QUERY)"
                    );
                    return Step::Failed;
                }
            };
            return self.message(&to, &format!("* {me} {action}"));
        }
        if word == "WAIT" {
            return match self.wait(rest) {
                Ok(()) => Step::Ok,
                Err(e) => {
                    eprintln!("error: {e}");
                    Step::Failed
                }
            };
        }
        // WAIT looks at what happened since the command before it started, not at older events
        // (a reply that arrives while this command runs still counts; a message kept from an
        // hour ago does not, whenever it reaches the prompt).
        self.mark = slcp_core::client::history::now_ms();
        // The client runs in a folder of its own: a relative path means this prompt's folder.
        let absolute = (word == "IMG" || word == "FILE")
            .then(|| absolute_path_arg(body))
            .flatten();
        let step = self.send(absolute.as_deref().unwrap_or(line));
        if matches!(step, Step::Ok) && word == "HELP" && rest.is_empty() {
            for c in local_commands() {
                self.print(&format!("{}  {}", c.usage, c.help));
            }
        }
        if matches!(step, Step::Ok) && word == "QUIT" {
            return Step::Quit;
        }
        step
    }

    /// Tells the client which conversation a person types in: no notification for it.
    fn focus(&mut self, conv: &str) {
        if self.interactive {
            let _ = self.send(&format!("FOCUS {conv}"));
        }
    }

    /// `QUERY <handle>` (or TALK): plain lines go to them until `QUERY` alone.
    fn query(&mut self, rest: &str) -> Step {
        let mut p = self.shared.partner.lock().unwrap();
        self.shared.unread.store(0, Ordering::Relaxed);
        let rest = rest.trim();
        if rest.is_empty() {
            match p.take() {
                Some(old) => {
                    drop(p);
                    self.focus("");
                    self.print(&format!(
                        "no longer talking to {old}; lines are commands again"
                    ))
                }
                None => self.print("you talk to nobody in particular; QUERY <handle> starts"),
            }
            return Step::Ok;
        }
        if rest.contains(char::is_whitespace) {
            eprintln!("error: usage: QUERY <handle> (QUERY alone ends it)");
            return Step::Failed;
        }
        *p = Some(rest.to_string());
        drop(p);
        self.focus(rest);
        self.print(&format!(
            "talking to {rest}: plain lines go to {rest}, commands start with /, /query alone ends it"
        ));
        Step::Ok
    }

    /// Sends `text` to `to`; at a terminal, your own message is shown too, with its time.
    fn message(&mut self, to: &str, text: &str) -> Step {
        let step = self.send(&format!("MSG {to} {text}"));
        if matches!(step, Step::Ok) && self.interactive {
            let me = self.shared.handle.lock().unwrap().clone();
            let at = print::clock(slcp_core::client::history::now_ms());
            let shown = match text.strip_prefix(&format!("* {me} ")) {
                Some(action) => format!("* {me} {}", render(action)),
                None => format!("you → {}: {}", render(to), render(text)),
            };
            let dim = if self.color {
                ("\x1b[2m", "\x1b[0m")
            } else {
                ("", "")
            };
            self.print(&format!("{}{at} {shown}{}", dim.0, dim.1));
        }
        step
    }

    fn print(&self, s: &str) {
        if self.shared.stdout_closed.load(Ordering::Relaxed) {
            return;
        }
        let mut o = io::stdout().lock();
        if writeln!(o, "{s}").and_then(|_| o.flush()).is_err() {
            self.shared.stdout_closed.store(true, Ordering::Relaxed);
        }
    }

    fn send(&mut self, line: &str) -> Step {
        let id = self.next_id;
        self.next_id += 1;
        if let Err(e) = ipc::send_request(&mut self.writer, id, line) {
            return Step::Lost(format!("cannot reach the client: {e}"));
        }
        let mut deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if self.shared.interrupted.swap(false, Ordering::Relaxed) {
                eprintln!("cancelled (the client may still finish it)");
                return Step::Failed;
            }
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            match self.done.recv_timeout(slice) {
                Ok(Outcome::Done { id: got, ok }) if got == id => {
                    return if ok { Step::Ok } else { Step::Failed };
                }
                Ok(Outcome::Done { .. }) => continue,
                Ok(Outcome::Working) => deadline = Instant::now() + REPLY_TIMEOUT,
                Ok(Outcome::Closed(why)) => return Step::Lost(why),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Step::Lost(format!(
                        "the client did not answer within {REPLY_TIMEOUT:?}"
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Step::Lost("the connection to the client is gone".into());
                }
            }
        }
    }
}

fn lost(why: &str, again: &str) -> ExitCode {
    eprintln!("error: lost the client ({why}); start it again with `{again}`");
    ExitCode::FAILURE
}

fn piped_loop(s: &mut Session) -> Result<ExitCode> {
    let mut failed = false;
    for line in io::stdin().lock().lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: reading standard input: {e}");
                failed = true;
                break;
            }
        };
        match s.line(&line) {
            Step::Ok => {}
            Step::Failed => failed = true,
            Step::Quit => break,
            Step::Lost(why) => return Ok(lost(&why, &s.again)),
        }
        if s.shared.stdout_closed.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The prompt history of `handle`: `<state dir>/history-<handle>` (each handle its own).
fn history_file(handle: &str) -> PathBuf {
    let safe = slcp_core::codec::Handle::file_stem(handle);
    paths::state_dir().join(format!("history-{safe}"))
}

fn interactive_loop(
    s: &mut Session,
    reader: IpcReader,
    tx: mpsc::Sender<Outcome>,
    cfg: &Config,
    again: &str,
) -> Result<ExitCode> {
    let rl_cfg = RlConfig::builder()
        .max_history_size(cfg.history_size)?
        .auto_add_history(true)
        .history_ignore_space(true)
        .history_ignore_dups(true)?
        .completion_type(CompletionType::List)
        .build();
    let mut rl: Editor<SlcpHelper, rustyline::history::FileHistory> = Editor::with_config(rl_cfg)?;
    rl.set_helper(Some(SlcpHelper {
        shared: s.shared.clone(),
        commands: s.commands.clone(),
        files: FilenameCompleter::new(),
    }));
    let history = history_file(&s.shared.handle.lock().unwrap());
    // Ctrl-C between two prompts (while a command runs) cancels that command's wait; it never
    // kills the prompt. While a line is edited, rustyline reads Ctrl-C as a key.
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, s.shared.interrupted.clone());
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = rl.load_history(&history);
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let printer = Printer::Interactive {
        printer: Box::new(rl.create_external_printer()?),
        color,
        bell: cfg.bell,
        bar: false,
    };
    let shared = s.shared.clone();
    std::thread::spawn(move || reader_thread(reader, shared, printer, tx));
    println!(
        "slcp {} — HELP lists the commands, Ctrl-D detaches, QUIT stops the client",
        env!("CARGO_PKG_VERSION")
    );
    let code = loop {
        let prompt = {
            let me = s.shared.handle.lock().unwrap().clone();
            match s.shared.partner.lock().unwrap().as_deref() {
                Some(p) => match s.shared.unread.load(Ordering::Relaxed) {
                    0 => format!("{me}→{p}> "),
                    n => format!("{me}→{p} ({n} unread)> "),
                },
                None => format!("{me}> "),
            }
        };
        // A Ctrl-C counts for the command entered after this prompt, even pressed at once.
        s.shared.interrupted.store(false, Ordering::Relaxed);
        let read = rl.readline(&prompt);
        // Written after every line: a killed prompt loses nothing typed before.
        if let Err(e) = rl.append_history(&history) {
            log::warn!("saving history to {}: {e}", history.display());
        }
        match read {
            Ok(line) => match s.line(&line) {
                Step::Ok | Step::Failed => {}
                Step::Quit => break ExitCode::SUCCESS,
                Step::Lost(why) => break lost(&why, again),
            },
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                println!(
                    "detached; your client keeps running (`{again}` attaches again, QUIT stops it)"
                );
                break ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("error: the terminal: {e}");
                break ExitCode::FAILURE;
            }
        }
    };
    Ok(code)
}
