//! What `Chat` asks of the history database (HISTORY and SEARCH from a prompt, what to
//! store); the shell's worker thread carries it out.

use super::commands::json_flag;
use super::{Chat, ConnId};

/// A history database operation the shell carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryOp {
    /// Store a message (or an image): `unread` when no prompt saw it arrive.
    Add {
        /// Wall-clock time, ms.
        at: u64,
        /// The other side.
        peer: String,
        /// Received (true) or sent.
        incoming: bool,
        /// `text` or `image`.
        kind: &'static str,
        /// The text, or the image's path.
        body: String,
        /// `received`, `sent`, `unverified`, or why it failed.
        outcome: String,
        /// Nobody saw it yet.
        unread: bool,
    },
    /// HISTORY or SEARCH from a prompt: the shell replies to (conn, id).
    Query {
        /// The prompt.
        conn: ConnId,
        /// The request.
        id: u64,
        /// What is asked.
        q: HistoryQuery,
    },
    /// Save group `name` with its members, or delete it (`None`).
    Group {
        /// The group's name.
        name: String,
        /// Its members' handles.
        members: Option<Vec<String>>,
    },
    /// A prompt attached: send it the unread messages (and, for a person, a recap).
    Attach {
        /// The prompt.
        conn: ConnId,
        /// The last lines of each recent conversation, and a count of the unread.
        recap: bool,
    },
}

/// What HISTORY and SEARCH ask, and in which form the answer goes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// What is asked.
    pub ask: HistoryAsk,
    /// One JSON object per line (`--json`, for scripts and the web UI) instead of text.
    pub json: bool,
}

/// The question of a [`HistoryQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryAsk {
    /// The conversations with their unread counts.
    Conversations,
    /// The last `n` messages with `peer` (everyone when `None`).
    Last {
        /// With whom.
        peer: Option<String>,
        /// How many.
        n: usize,
        /// Only those stored before this message id (`--before ID`: the next page back).
        before: Option<i64>,
    },
    /// The best matches of `words`.
    Search {
        /// What to find.
        words: String,
    },
}

impl Chat {
    /// HISTORY [--json] [--before ID] [handle] [n] and SEARCH [--json] <words>: asked of the
    /// database by the shell.
    pub(super) fn cmd_history(&mut self, conn: ConnId, id: u64, word: &str, rest: &str) {
        if !self.s.history {
            let e = "the history is off (history = false); set history = true to keep and search messages";
            return self.reply(conn, id, Err(e.into()));
        }
        let (json, rest) = json_flag(rest);
        let ask = if word == "SEARCH" {
            if rest.trim().is_empty() {
                return self.reply(conn, id, Err("usage: SEARCH [--json] <words...>".into()));
            }
            HistoryAsk::Search {
                words: rest.to_owned(),
            }
        } else {
            const USAGE: &str =
                "usage: HISTORY [--json] [--before ID] [handle] [n] (n from 1 to 10000)";
            let mut w = rest.split_whitespace().peekable();
            let mut before = None;
            if w.peek() == Some(&"--before") {
                w.next();
                match w.next().map(str::parse::<i64>) {
                    Some(Ok(b)) => before = Some(b),
                    _ => return self.reply(conn, id, Err(USAGE.into())),
                }
            }
            let count = |n: Option<&str>| match n.map(str::parse::<usize>) {
                None => Some(20),
                Some(Ok(n)) if (1..=10_000).contains(&n) => Some(n),
                Some(_) => None,
            };
            match (w.next(), w.next(), w.next()) {
                (None, _, _) if before.is_none() => HistoryAsk::Conversations,
                (None, _, _) => HistoryAsk::Last {
                    peer: None,
                    n: 20,
                    before,
                },
                (Some(a), None, _) if a.parse::<usize>().is_ok() => match count(Some(a)) {
                    Some(n) => HistoryAsk::Last {
                        peer: None,
                        n,
                        before,
                    },
                    None => return self.reply(conn, id, Err(USAGE.into())),
                },
                (Some(p), n, None) => match count(n) {
                    // `*` is the conversation with everyone (MSG *), like any other.
                    Some(n) => HistoryAsk::Last {
                        peer: Some(p.to_owned()),
                        n,
                        before,
                    },
                    None => return self.reply(conn, id, Err(USAGE.into())),
                },
                _ => return self.reply(conn, id, Err(USAGE.into())),
            }
        };
        let q = HistoryQuery { ask, json };
        self.out.history.push(HistoryOp::Query { conn, id, q });
    }
}
