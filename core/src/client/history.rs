//! The shell's side of the history: the database is opened here (it is I/O), the chat logic's
//! `HistoryOp`s are carried out here, and the answers to HISTORY and SEARCH are written here,
//! with times in the local time zone.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::warn;

use super::chat::{Chat, ConnId, HistoryOp, HistoryQuery};
use crate::history::{Dir, Row, Store};
use crate::ipc::Event;

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

/// Carries out what the chat asked of the history.
pub fn apply(store: &mut Option<Store>, chat: &mut Chat) {
    let ops = std::mem::take(&mut chat.out.history);
    let Some(s) = store.as_mut() else {
        return;
    };
    for op in ops {
        match op {
            HistoryOp::Add {
                at,
                peer,
                incoming,
                kind,
                body,
                outcome,
                unread,
            } => {
                let dir = if incoming { Dir::In } else { Dir::Out };
                if let Err(e) = s.add(at as i64, &peer, dir, kind, &body, &outcome, unread) {
                    warn!("not kept in the history: {e}");
                }
            }
            HistoryOp::Query { conn, id, q } => {
                let r = query(s, &q).map_err(|e| e.to_string());
                chat.finish_command(conn, id, r);
            }
            HistoryOp::Attach { conn, recap } => attach(s, chat, conn, recap),
        }
    }
}

fn query(s: &Store, q: &HistoryQuery) -> Result<Vec<String>, crate::history::HistoryError> {
    Ok(match q {
        HistoryQuery::Conversations => {
            let c = s.conversations()?;
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
        HistoryQuery::Last { peer, n } => {
            let rows = s.conversation(peer.as_deref(), *n)?;
            if rows.is_empty() {
                return Ok(vec![match peer {
                    Some(p) => format!("no messages with {p}"),
                    None => "no messages yet".into(),
                }]);
            }
            rows.iter().map(line).collect()
        }
        HistoryQuery::Search { words } => {
            let rows = s.search(words, SEARCH_HITS)?;
            if rows.is_empty() {
                return Ok(vec![format!("no message holds all of: {words}")]);
            }
            rows.iter().map(line).collect()
        }
    })
}

/// A prompt attached: for a person, the last lines of each recent conversation and how many came
/// meanwhile; then the messages that came while nobody was looking, each with its own time.
fn attach(s: &mut Store, chat: &mut Chat, conn: ConnId, recap: bool) {
    let unread = match s.take_unread() {
        Ok(u) => u,
        Err(e) => return warn!("unread messages not shown: {e}"),
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
        let e = if r.kind == "image" {
            Event::Image {
                from: r.peer,
                size: 0,
                path: r.body,
            }
        } else {
            Event::Message {
                from: r.peer,
                text: r.body,
            }
        };
        events.push((e, r.at as u64));
    }
    chat.replay(conn, events);
}
