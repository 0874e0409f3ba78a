//! The web UI's one way into the client: a single IPC connection, like a REPL's. Requests from
//! every open page go out on it with their own ids; replies come back to the page that asked;
//! events go to every page over its live channel, and the unread counts live here so that a page
//! opened later (or reloaded) still shows them.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use slcp_core::ipc::{Event, IpcClient, IpcReader, ServerMsg, send_request};
use tokio::sync::{broadcast, oneshot};

/// Events kept for a page that is slow to read; past this it is told to reload its state.
const EVENT_QUEUE: usize = 4096;
/// Requests waiting for their reply at most (each page sends one at a time, plus uploads).
const MAX_PENDING: usize = 256;
/// Conversations with an unread count at most (a flood of senders cannot grow it without end).
const MAX_UNREAD: usize = 1024;

/// What a command answered.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    /// The lines to show (or, after `--json`, one JSON object each).
    pub lines: Vec<String>,
    /// Set when the command failed.
    pub error: Option<String>,
}

/// What the page is told when it (re)connects.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Our handle.
    pub me: String,
    /// Unread messages per conversation.
    pub unread: HashMap<String, u64>,
    /// The commands the client runs (for the page's command line).
    pub commands: Vec<String>,
}

struct Shared {
    me: String,
    unread: HashMap<String, u64>,
    commands: Vec<String>,
}

/// The IPC connection shared by every page.
pub struct Bridge {
    writer: Mutex<TcpStream>,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    events: broadcast::Sender<String>,
    shared: Mutex<Shared>,
}

/// The conversation an event belongs to (and is counted unread in), if it is a message.
pub fn conversation(e: &Event) -> Option<&str> {
    match e {
        Event::Message { from, .. }
        | Event::Private { from, .. }
        | Event::Image { from, .. }
        | Event::File { from, .. } => Some(from),
        Event::Group { group, .. } => Some(group),
        _ => None,
    }
}

impl Bridge {
    /// Takes over an attached client; `on_close` runs when the client goes away.
    pub fn start(
        client: IpcClient,
        hello: ServerMsg,
        on_close: impl FnOnce() + Send + 'static,
    ) -> Arc<Bridge> {
        let (me, commands) = match hello {
            ServerMsg::Hello {
                handle, commands, ..
            } => (handle, commands.into_iter().map(|c| c.usage).collect()),
            _ => (String::new(), Vec::new()),
        };
        let (writer, reader) = client.split();
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let b = Arc::new(Bridge {
            writer: Mutex::new(writer),
            // The REPL's IpcClient numbers from 1; this connection is ours alone.
            next_id: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            events,
            shared: Mutex::new(Shared {
                me,
                unread: HashMap::new(),
                commands,
            }),
        });
        let r = b.clone();
        std::thread::Builder::new()
            .name("ipc-reader".into())
            .spawn(move || {
                r.read(reader);
                on_close();
            })
            .expect("spawning the IPC reader");
        b
    }

    fn read(&self, mut reader: IpcReader) {
        loop {
            match reader.recv() {
                Ok(Some(ServerMsg::Reply { id, lines, error })) => {
                    if let Some(tx) = self.pending.lock().unwrap().remove(&id) {
                        let _ = tx.send(Reply { lines, error });
                    }
                }
                Ok(Some(ServerMsg::Event { event, at })) => self.event(event, at),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    log::warn!("IPC with the client: {e}");
                    break;
                }
            }
        }
        // Whoever waits for a reply hears that none will come.
        self.pending.lock().unwrap().clear();
        let _ = self.events.send(r#"{"type":"closed"}"#.into());
    }

    fn event(&self, event: Event, at: u64) {
        {
            let mut s = self.shared.lock().unwrap();
            if let Event::Handle { handle } = &event {
                s.me = handle.clone();
            }
            if let Some(c) = conversation(&event)
                && (s.unread.len() < MAX_UNREAD || s.unread.contains_key(c))
            {
                *s.unread.entry(c.to_owned()).or_default() += 1;
            }
        }
        let at = if at == 0 {
            slcp_core::client::history::now_ms()
        } else {
            at
        };
        let line = serde_json::json!({ "type": "event", "at": at, "event": event });
        // No page open is fine: the unread counts above keep what matters.
        let _ = self.events.send(line.to_string());
    }

    /// Runs a command line; waits at most `limit` for its outcome.
    pub async fn run(&self, line: &str, limit: Duration) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap();
            if p.len() >= MAX_PENDING {
                return failed("too many commands at once; wait for one to finish");
            }
            p.insert(id, tx);
        }
        // A line of a few hundred bytes to a local socket: the write does not block for long.
        if let Err(e) = send_request(&mut self.writer.lock().unwrap(), id, line) {
            self.pending.lock().unwrap().remove(&id);
            return failed(&format!("the client is gone ({e})"));
        }
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => failed("the client stopped before it answered"),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                failed(&format!("no answer from the client within {limit:?}"))
            }
        }
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.events.subscribe()
    }

    /// The page read a conversation: its unread count goes to zero.
    pub fn mark_read(&self, conv: &str) {
        self.shared.lock().unwrap().unread.remove(conv);
    }

    /// What a page needs first.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.shared.lock().unwrap();
        Snapshot {
            me: s.me.clone(),
            unread: s.unread.clone(),
            commands: s.commands.clone(),
        }
    }
}

fn failed(why: &str) -> Reply {
    Reply {
        lines: Vec::new(),
        error: Some(why.to_owned()),
    }
}
