//! What `Chat` asks of the history database; the shell's worker thread carries it out.

use super::ConnId;

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
