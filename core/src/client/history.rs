//! The shell's side of the history: the database lives on a worker thread (the event loop never
//! waits for the disk), the chat logic's `HistoryOp`s are carried out there in batches, and the
//! answers to HISTORY and SEARCH are written there, with times in the local time zone.

use std::path::Path;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, warn};

use super::chat::{Chat, ConnId, HistoryAsk, HistoryOp, HistoryQuery};
use crate::history::{Dir, Record, Row, Store};
use crate::ipc::{Event, Privacy};

/// Lines of each recent conversation shown on attach, before its unread messages.
const RECAP_LINES: usize = 3;
/// A conversation is recent when its last message is younger than this.
const RECAP_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// Matches SEARCH shows.
const SEARCH_HITS: usize = 20;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ms` as local `YYYY-MM-DD HH:MM`.
pub fn local_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "????-??-?? ??:??".into())
}

/// One stored message as a line: `2026-11-26 14:02  bob: hi` or `... you → bob: hi`.
pub fn line(r: &Row) -> String {
    let body = if r.kind == "image" {
        format!("[image {}]", r.body)
    } else {
        r.body.clone()
    };
    let failed = if r.outcome.starts_with("failed") {
        format!("  ({})", r.outcome)
    } else {
        String::new()
    };
    match r.dir {
        Dir::In => format!("{}  {}: {body}", local_time(r.at), r.peer),
        Dir::Out => format!("{}  you → {}: {body}{failed}", local_time(r.at), r.peer),
    }
}

/// Opens the history at `path` and drops what is older than `days` (0: keep everything).
pub fn open(path: &Path, days: u32) -> Result<Store, String> {
    let mut s = Store::open(path).map_err(|e| e.to_string())?;
    if days > 0 {
        let before = now_ms() as i64 - i64::from(days) * 86_400_000;
        s.prune(before).map_err(|e| e.to_string())?;
    }
    Ok(s)
}

/// What the worker hands back to the loop.
pub enum Done {
    /// The answer to a HISTORY or SEARCH.
    Reply {
        /// The prompt.
        conn: ConnId,
        /// The request.
        id: u64,
        /// Its lines, or why not.
        result: Result<Vec<String>, String>,
    },
    /// What a prompt that attached is shown.
    Replay {
        /// The prompt.
        conn: ConnId,
        /// The events, each with its time.
        events: Vec<(Event, u64)>,
    },
}

/// Messages waiting to be written at most; past this a slow disk costs records, never memory
/// or the loop's time (each one dropped is counted in the log).
const QUEUE: usize = 65_536;
/// How long records gather before they are written (what a `kill -9` can lose at most).
const GATHER: Duration = Duration::from_millis(20);
/// The history thread's nice value: it yields to the event loop under load, and still gets a
/// tenth of a busy core (nice 10 weighs 110 against 1024), so it keeps up with a burst.
const HISTORY_NICE: i32 = 10;
/// Records written in one transaction at most.
const BATCH: usize = 1024;

/// The history database on a thread of its own: the event loop hands it operations and never
/// waits for the disk; writes are batched in transactions; answers come back through `done`
/// and the loop's waker.
pub struct Worker {
    tx: Option<SyncSender<HistoryOp>>,
    done: Arc<Mutex<Vec<Done>>>,
    dropped: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Worker {
    /// At exit, what is queued is written before the process ends.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Worker {
    /// Starts the worker on `store`; `wake` is called when an answer is ready.
    pub fn start(mut store: Store, wake: impl Fn() + Send + 'static) -> Worker {
        let (tx, rx) = sync_channel::<HistoryOp>(QUEUE);
        let done = Arc::new(Mutex::new(Vec::new()));
        let out = done.clone();
        let thread = std::thread::Builder::new()
            .name("history".into())
            .spawn(move || {
                // Indexing is background work: where the CPU is short (two cores, a burst),
                // the event loop that carries the messages goes first. On Linux a
                // PRIO_PROCESS of 0 names the calling thread alone.
                if let Err(e) = rustix::process::setpriority_process(None, HISTORY_NICE) {
                    debug!("history thread keeps its priority: {e}");
                }
                while let Ok(first) = rx.recv() {
                    // Records gather for a moment into one transaction (a commit per message
                    // would take the CPU the event loop needs); a question ends the wait.
                    let mut batch = vec![first];
                    let until = std::time::Instant::now() + GATHER;
                    while batch.len() < BATCH && matches!(batch.last(), Some(HistoryOp::Add { .. }))
                    {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(op) => batch.push(op),
                            Err(_) => break,
                        }
                    }
                    let answers = run(&mut store, batch);
                    if !answers.is_empty() {
                        out.lock().unwrap().extend(answers);
                        wake();
                    }
                }
            })
            .expect("spawning the history thread");
        Worker {
            tx: Some(tx),
            done,
            dropped: 0,
            thread: Some(thread),
        }
    }

    /// Hands over what the chat asked of the history (never blocks).
    pub fn send(&mut self, chat: &mut Chat) {
        let Some(tx) = self.tx.as_ref() else {
            return;
        };
        for op in std::mem::take(&mut chat.out.history) {
            match tx.try_send(op) {
                Ok(()) => {}
                Err(TrySendError::Full(HistoryOp::Query { conn, id, .. })) => {
                    chat.finish_command(conn, id, Err("the history is busy; try again".into()))
                }
                // The prompt waits for its replay: give it an empty one rather than none.
                Err(TrySendError::Full(HistoryOp::Attach { conn, .. })) => {
                    chat.replay(std::time::Instant::now(), conn, Vec::new())
                }
                Err(_) => {
                    self.dropped += 1;
                    if self.dropped.is_power_of_two() {
                        warn!(
                            "{} messages not kept in the history: it is falling behind",
                            self.dropped
                        );
                    }
                }
            }
        }
    }

    /// Gives the chat the answers that are ready.
    pub fn collect(&self, chat: &mut Chat) {
        for d in std::mem::take(&mut *self.done.lock().unwrap()) {
            match d {
                Done::Reply { conn, id, result } => chat.finish_command(conn, id, result),
                Done::Replay { conn, events } => {
                    chat.replay(std::time::Instant::now(), conn, events)
                }
            }
        }
    }
}

/// Carries out a batch: the records in one transaction, then the questions, in order.
fn run(s: &mut Store, batch: Vec<HistoryOp>) -> Vec<Done> {
    let mut answers = Vec::new();
    let mut adds = Vec::new();
    let flush = |s: &mut Store, adds: &mut Vec<Record>| {
        if !adds.is_empty()
            && let Err(e) = s.add_records(adds)
        {
            warn!("{} messages not kept in the history: {e}", adds.len());
        }
        adds.clear();
    };
    for op in batch {
        match op {
            HistoryOp::Add {
                at,
                peer,
                incoming,
                kind,
                body,
                outcome,
                unread,
            } => adds.push(Record {
                at: at as i64,
                peer,
                dir: if incoming { Dir::In } else { Dir::Out },
                kind,
                body,
                outcome,
                unread,
            }),
            HistoryOp::Query { conn, id, q } => {
                flush(s, &mut adds);
                let result = query(s, &q).map_err(|e| e.to_string());
                answers.push(Done::Reply { conn, id, result });
            }
            HistoryOp::Group { name, members } => {
                if let Err(e) = s.set_group(&name, members.as_deref()) {
                    warn!("group {name} not saved: {e}");
                }
            }
            HistoryOp::Attach { conn, recap } => {
                flush(s, &mut adds);
                answers.push(Done::Replay {
                    conn,
                    events: attach(s, recap),
                });
            }
        }
    }
    flush(s, &mut adds);
    answers
}

fn query(s: &Store, q: &HistoryQuery) -> Result<Vec<String>, crate::history::HistoryError> {
    Ok(match &q.ask {
        HistoryAsk::Conversations => {
            let c = s.conversations()?;
            if q.json {
                return Ok(c
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "peer": c.peer, "total": c.total, "unread": c.unread, "last": c.last,
                        })
                        .to_string()
                    })
                    .collect());
            }
            if c.is_empty() {
                return Ok(vec!["no messages yet".into()]);
            }
            c.iter()
                .map(|c| {
                    format!(
                        "{}  {}: {} messages, {} unread",
                        local_time(c.last),
                        c.peer,
                        c.total,
                        c.unread
                    )
                })
                .collect()
        }
        HistoryAsk::Last { peer, n, before } => {
            let rows = s.page(peer.as_deref(), *before, *n)?;
            if q.json {
                return Ok(rows.iter().map(json_row).collect());
            }
            if rows.is_empty() {
                return Ok(vec![match peer {
                    Some(p) => format!("no messages with {p}"),
                    None => "no messages yet".into(),
                }]);
            }
            rows.iter().map(line).collect()
        }
        HistoryAsk::Search { words } => {
            let rows = s.search(words, SEARCH_HITS)?;
            if q.json {
                return Ok(rows.iter().map(json_row).collect());
            }
            if rows.is_empty() {
                return Ok(vec![format!("no message holds all of: {words}")]);
            }
            rows.iter().map(line).collect()
        }
    })
}

/// One stored message as a JSON object (HISTORY --json, SEARCH --json).
fn json_row(r: &Row) -> String {
    serde_json::json!({
        "id": r.id,
        "at": r.at,
        "peer": r.peer,
        "dir": match r.dir { Dir::In => "in", Dir::Out => "out" },
        "kind": r.kind,
        "body": r.body,
        "outcome": r.outcome,
    })
    .to_string()
}

/// A prompt attached: for a person, the last lines of each recent conversation and how many came
/// meanwhile; then the messages that came while nobody was looking, each with its own time.
fn attach(s: &mut Store, recap: bool) -> Vec<(Event, u64)> {
    let unread = match s.take_unread() {
        Ok(u) => u,
        Err(e) => {
            warn!("unread messages not shown: {e}");
            return Vec::new();
        }
    };
    let since = now_ms() as i64 - RECAP_WITHIN.as_millis() as i64;
    let recent: Vec<String> = if recap {
        s.conversations()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.last >= since)
            .map(|c| c.peer)
            .collect()
    } else {
        Vec::new()
    };
    let mut events = Vec::new();
    for peer in &recent {
        let first_unread = unread.iter().find(|r| r.peer == *peer).map(|r| r.id);
        let rows = s
            .conversation(Some(peer), RECAP_LINES + unread.len())
            .unwrap_or_default();
        let earlier: Vec<&Row> = rows
            .iter()
            .filter(|r| first_unread.is_none_or(|u| r.id < u))
            .collect();
        for r in earlier.iter().rev().take(RECAP_LINES).rev() {
            let text = match r.dir {
                Dir::In => format!("earlier, {}: {}", r.peer, r.body),
                Dir::Out => format!("earlier, you → {}: {}", r.peer, r.body),
            };
            events.push((Event::Notice { text }, r.at as u64));
        }
    }
    if recap && !unread.is_empty() {
        let mut by: Vec<(String, usize)> = Vec::new();
        for r in &unread {
            match by.iter_mut().find(|(p, _)| *p == r.peer) {
                Some((_, n)) => *n += 1,
                None => by.push((r.peer.clone(), 1)),
            }
        }
        let who: Vec<String> = by.iter().map(|(p, n)| format!("{n} from {p}")).collect();
        events.push((
            Event::Notice {
                text: format!(
                    "{} unread while you were away ({})",
                    unread.len(),
                    who.join(", ")
                ),
            },
            now_ms(),
        ));
    }
    for r in unread {
        // A group's conversation (`@team`, `*`, `a,b`) keeps `<sender>: <text>` records.
        let group = r.peer.starts_with('@') || r.peer == "*" || r.peer.contains(',');
        // An encrypted message was kept with its privacy as its outcome.
        let privacy = match r.outcome.as_str() {
            "encrypted" => Some(Privacy::Encrypted),
            "verified" => Some(Privacy::Verified),
            "unverified" => Some(Privacy::Unverified),
            _ => None,
        };
        let e = if r.kind == "image" {
            Event::Image {
                from: r.peer,
                size: 0,
                path: r.body,
            }
        } else if r.kind == "file" {
            Event::File {
                from: r.peer,
                size: 0,
                path: r.body,
            }
        } else if let Some((from, text)) = r.body.split_once(": ").filter(|_| group) {
            Event::Group {
                from: from.to_owned(),
                group: r.peer.clone(),
                text: text.to_owned(),
                privacy: privacy.unwrap_or_default(),
            }
        } else if let Some(privacy) = privacy.filter(|p| *p != Privacy::Unverified) {
            Event::Private {
                from: r.peer,
                text: r.body,
                privacy,
            }
        } else {
            Event::Message {
                from: r.peer,
                text: r.body,
            }
        };
        events.push((e, r.at as u64));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of this process's thread called `name` (field 19 of its stat line).
    fn nice_of(name: &str) -> Option<i32> {
        for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if comm.trim() == name {
                let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
                // After the parenthesised name: state is field 3, nice field 19.
                let rest = &stat[stat.rfind(')')? + 2..];
                return rest.split(' ').nth(16)?.parse().ok();
            }
        }
        None
    }

    #[test]
    fn the_history_thread_yields_to_the_event_loop() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("h.db"), 0).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut w = Worker::start(store, move || {
            let _ = tx.send(());
        });
        // An answer proves the thread runs (and set its priority first).
        w.tx.as_ref()
            .unwrap()
            .send(HistoryOp::Attach {
                conn: 1,
                recap: false,
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the worker answers");
        assert_eq!(nice_of("history"), Some(HISTORY_NICE));
        w.tx.take();
    }
}
