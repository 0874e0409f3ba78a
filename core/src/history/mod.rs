//! The message history: one SQLite database per user (WAL, 0600 in a 0700 folder), written by
//! the client, so what arrives while no prompt is attached is kept too, and a `kill -9` loses
//! nothing committed. Every message in and out with its time, peer, direction and outcome;
//! images by path; FTS5 for SEARCH; unread counts per conversation.
//!
//! Schema changes go through `user_version` migrations, never by editing an applied one.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use thiserror::Error;

/// Why the history cannot be used; one line.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// SQLite said no.
    #[error("history database {path}: {why}")]
    Db {
        /// The file.
        path: String,
        /// SQLite's reason.
        why: String,
    },
    /// The folder or file could not be made private.
    #[error("history database {path}: {why}")]
    Io {
        /// The file.
        path: String,
        /// The OS's reason.
        why: String,
    },
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Received.
    In,
    /// Sent.
    Out,
}

/// One stored message (or image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its id.
    pub id: i64,
    /// Unix time in milliseconds.
    pub at: i64,
    /// The other side: who sent it, or to whom it went.
    pub peer: String,
    /// In or out.
    pub dir: Dir,
    /// `text` or `image`.
    pub kind: String,
    /// The text, or the image's path.
    pub body: String,
    /// `received`, `sent`, or why it failed.
    pub outcome: String,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unix time in milliseconds.
    pub at: i64,
    /// The other side.
    pub peer: String,
    /// In or out.
    pub dir: Dir,
    /// `text` or `image`.
    pub kind: &'static str,
    /// The text, or the image's path.
    pub body: String,
    /// `received`, `sent`, `unverified`, or why it failed.
    pub outcome: String,
    /// Nobody saw it yet.
    pub unread: bool,
}

/// One conversation's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The peer.
    pub peer: String,
    /// Messages in all.
    pub total: u64,
    /// Received and not yet shown.
    pub unread: u64,
    /// The last one's time (unix ms).
    pub last: i64,
}

const MIGRATIONS: &[&str] = &[
    // 1: messages, their full-text index kept in step by triggers.
    "CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        peer TEXT NOT NULL,
        dir TEXT NOT NULL CHECK (dir IN ('in', 'out')),
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        outcome TEXT NOT NULL,
        unread INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_peer_at ON messages (peer, at);
    CREATE INDEX messages_unread ON messages (unread) WHERE unread = 1;
    CREATE VIRTUAL TABLE messages_fts USING fts5 (body, content = 'messages', content_rowid = 'id');
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
    END;",
    // 2: named groups (GROUP create), members as one comma-separated list of handles.
    "CREATE TABLE groups (name TEXT PRIMARY KEY, members TEXT NOT NULL);",
];

/// The open database.
pub struct Store {
    conn: Connection,
    path: String,
}

fn dir_of(s: &str) -> Dir {
    if s == "out" { Dir::Out } else { Dir::In }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        at: r.get(1)?,
        peer: r.get(2)?,
        dir: dir_of(&r.get::<_, String>(3)?),
        kind: r.get(4)?,
        body: r.get(5)?,
        outcome: r.get(6)?,
    })
}

fn dberr(path: &str, e: rusqlite::Error) -> HistoryError {
    HistoryError::Db {
        path: path.to_owned(),
        why: e.to_string(),
    }
}

const COLUMNS: &str = "id, at, peer, dir, kind, body, outcome";

/// `words` as an FTS5 query that matches all of them, whatever characters they hold (each one
/// a quoted phrase, so `"`, `*`, `NEAR` and the like are just text).
pub fn fts_query(words: &str) -> String {
    words
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// Opens (creating, 0600 in a 0700 folder) the database at `path` and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<Store, HistoryError> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| HistoryError::Io {
            path: shown.clone(),
            why: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(io)?;
        }
        let db = |e: rusqlite::Error| HistoryError::Db {
            path: shown.clone(),
            why: e.to_string(),
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        // Committed rows survive a killed process; only a power loss may take the last ones.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))
            .map_err(db)?;
        let mut s = Store { conn, path: shown };
        s.migrate()?;
        Ok(s)
    }

    fn err(&self, e: rusqlite::Error) -> HistoryError {
        dberr(&self.path, e)
    }

    fn migrate(&mut self) -> Result<(), HistoryError> {
        let have: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let have = usize::try_from(have).unwrap_or(usize::MAX);
        if have > MIGRATIONS.len() {
            return Err(HistoryError::Db {
                path: self.path.clone(),
                why: format!(
                    "written by a newer slcp (schema {have}, this one knows {})",
                    MIGRATIONS.len()
                ),
            });
        }
        let path = self.path.clone();
        for (i, m) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = self.conn.transaction().map_err(|e| dberr(&path, e))?;
            tx.execute_batch(m)
                .and_then(|_| tx.pragma_update(None, "user_version", (i + 1) as i64))
                .and_then(|_| tx.commit())
                .map_err(|e| HistoryError::Db {
                    path: self.path.clone(),
                    why: format!("schema {}: {e}", i + 1),
                })?;
        }
        Ok(())
    }

    /// The saved groups: name and members.
    pub fn groups(&self) -> Result<Vec<(String, Vec<String>)>, HistoryError> {
        let mut st = self
            .conn
            .prepare("SELECT name, members FROM groups ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(n, m)| {
                (
                    n,
                    m.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            })
            .collect())
    }

    /// Saves group `name` with `members` (replacing it), or deletes it when `members` is `None`.
    pub fn set_group(
        &mut self,
        name: &str,
        members: Option<&[String]>,
    ) -> Result<(), HistoryError> {
        let r = match members {
            Some(m) => self.conn.execute(
                "INSERT INTO groups (name, members) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET members = excluded.members",
                rusqlite::params![name, m.join(",")],
            ),
            None => self
                .conn
                .execute("DELETE FROM groups WHERE name = ?1", [name]),
        };
        r.map(|_| ()).map_err(|e| self.err(e))
    }

    /// Stores one message; `unread` when no prompt saw it arrive. Returns its id.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        at: i64,
        peer: &str,
        dir: Dir,
        kind: &str,
        body: &str,
        outcome: &str,
        unread: bool,
    ) -> Result<i64, HistoryError> {
        self.conn
            .execute(
                "INSERT INTO messages (at, peer, dir, kind, body, outcome, unread)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    at,
                    peer,
                    if dir == Dir::Out { "out" } else { "in" },
                    kind,
                    body,
                    outcome,
                    unread
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Stores many records in one transaction (one commit for a burst).
    pub fn add_records(&mut self, rows: &[Record]) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| dberr(&path, e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO messages (at, peer, dir, kind, body, outcome, unread)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(|e| dberr(&path, e))?;
            for r in rows {
                let d = if r.dir == Dir::Out { "out" } else { "in" };
                st.execute(params![
                    r.at, r.peer, d, r.kind, r.body, r.outcome, r.unread
                ])
                .map_err(|e| dberr(&path, e))?;
            }
        }
        tx.commit().map_err(|e| dberr(&path, e))
    }

    /// The last `n` messages with `peer` (with everyone when `None`), oldest first.
    pub fn conversation(&self, peer: Option<&str>, n: usize) -> Result<Vec<Row>, HistoryError> {
        self.page(peer, None, n)
    }

    /// The last `n` messages with `peer` stored before message `before` (all when `None`),
    /// oldest first: a front end scrolling back through a long conversation asks page by page.
    pub fn page(
        &self,
        peer: Option<&str>,
        before: Option<i64>,
        n: usize,
    ) -> Result<Vec<Row>, HistoryError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM messages
             WHERE (?1 IS NULL OR peer = ?1) AND (?3 IS NULL OR id < ?3)
             ORDER BY at DESC, id DESC LIMIT ?2)
             ORDER BY at, id"
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![peer, n as i64, before], row)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The `n` messages that match all `words` best (FTS5 rank), best first.
    pub fn search(&self, words: &str, n: usize) -> Result<Vec<Row>, HistoryError> {
        let q = fts_query(words);
        if q.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
             WHERE messages_fts MATCH ?1 ORDER BY rank LIMIT ?2",
            COLUMNS
                .split(", ")
                .map(|c| format!("m.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut st = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![q, n as i64], row)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every conversation, the most recent first, with its unread count.
    pub fn conversations(&self) -> Result<Vec<Conversation>, HistoryError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT peer, COUNT(*), SUM(unread), MAX(at) FROM messages
                 GROUP BY peer ORDER BY MAX(at) DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Conversation {
                    peer: r.get(0)?,
                    total: r.get::<_, i64>(1)? as u64,
                    unread: r.get::<_, i64>(2)? as u64,
                    last: r.get(3)?,
                })
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// The unread messages, oldest first, now marked read (they are being shown).
    pub fn take_unread(&mut self) -> Result<Vec<Row>, HistoryError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| dberr(&path, e))?;
        let rows = {
            let mut st = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM messages WHERE unread = 1 ORDER BY at, id"
                ))
                .map_err(|e| dberr(&path, e))?;
            st.query_map([], row)
                .and_then(|r| r.collect::<Result<Vec<_>, _>>())
                .map_err(|e| dberr(&path, e))?
        };
        tx.execute("UPDATE messages SET unread = 0 WHERE unread = 1", [])
            .and_then(|_| tx.commit())
            .map_err(|e| dberr(&path, e))?;
        Ok(rows)
    }

    /// The time of the newest message, if any.
    pub fn newest(&self) -> Result<Option<i64>, HistoryError> {
        self.conn
            .query_row("SELECT MAX(at) FROM messages", [], |r| r.get(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// Deletes what is older than `before` (unix ms); returns how many.
    pub fn prune(&mut self, before: i64) -> Result<usize, HistoryError> {
        self.conn
            .execute("DELETE FROM messages WHERE at < ?1", params![before])
            .map_err(|e| self.err(e))
    }

    /// Stores many messages in one transaction (for imports and tests).
    pub fn add_many<'a>(
        &mut self,
        rows: impl IntoIterator<Item = (i64, &'a str, Dir, &'a str)>,
    ) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| dberr(&path, e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO messages (at, peer, dir, kind, body, outcome)
                     VALUES (?1, ?2, ?3, 'text', ?4, ?5)",
                )
                .map_err(|e| dberr(&path, e))?;
            for (at, peer, dir, body) in rows {
                let (d, outcome) = match dir {
                    Dir::In => ("in", "received"),
                    Dir::Out => ("out", "sent"),
                };
                st.execute(params![at, peer, d, body, outcome])
                    .map_err(|e| dberr(&path, e))?;
            }
        }
        tx.commit().map_err(|e| dberr(&path, e))
    }
}

#[cfg(test)]
mod tests;
