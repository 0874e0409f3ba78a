//! The prompts attached to `Chat`: greeting one with the backlog, replaying the history to
//! it before its first command runs, and forgetting it when it goes.

use std::time::Instant;

use crate::ipc::{Event, ServerMsg};

use super::{Chat, ConnId, HistoryOp, To};

impl Chat {
    /// A REPL presented the right token: greet it and hand it the backlog.
    pub fn attach(&mut self, conn: ConnId, recap: bool) {
        self.conns.insert(conn);
        if recap {
            // A person reads it: it rings the bell when something arrives.
            self.attention.people.insert(conn);
        }
        // The table keeps the order peers were learned in; a person reads them sorted.
        let mut peers: Vec<String> = self.peers.map().keys().map(|h| h.to_string()).collect();
        peers.sort_unstable();
        let hello = ServerMsg::Hello {
            handle: self.me.to_string(),
            port: self.s.port,
            peers,
            commands: self.commands.clone(),
        };
        self.out.ipc.push((To::Conn(conn), hello));
        if self.stats.backlog_dropped > 0 {
            let n = std::mem::take(&mut self.stats.backlog_dropped);
            self.out.ipc.push((
                To::Conn(conn),
                ServerMsg::Event {
                    event: Event::Error {
                        text: format!(
                            "{n} older messages were dropped while no prompt was attached (backlog = {})",
                            self.s.backlog
                        ),
                    },
                    at: self.wall,
                },
            ));
        }
        for (event, at) in std::mem::take(&mut self.backlog) {
            self.out
                .ipc
                .push((To::Conn(conn), ServerMsg::Event { event, at }));
        }
        if self.s.history {
            // The messages that arrived meanwhile, with their times, then marked read; the
            // prompt's commands wait for them, so it sees them first.
            self.out.history.push(HistoryOp::Attach { conn, recap });
            self.replaying.insert(conn);
        }
    }

    /// Whether prompt `conn`'s commands wait for its history replay (the shell leaves its
    /// further lines unread meanwhile).
    pub fn replaying(&self, conn: ConnId) -> bool {
        self.replaying.contains(&conn)
    }

    /// Events from the past (the history) for one prompt, each with its own time.
    pub fn replay(&mut self, now: Instant, conn: ConnId, events: Vec<(Event, u64)>) {
        for (event, at) in events {
            self.out
                .ipc
                .push((To::Conn(conn), ServerMsg::Event { event, at }));
        }
        // Now the prompt has seen what came meanwhile: its commands run.
        self.replaying.remove(&conn);
        let held: Vec<(ConnId, u64, String)> = {
            let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
                .into_iter()
                .partition(|(c, _, _)| *c == conn);
            self.held = others;
            mine
        };
        for (c, id, line) in held {
            self.request(now, c, id, &line);
        }
    }

    /// A REPL went away; its pending commands are dropped.
    pub fn detach(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.attention.people.remove(&conn);
        self.set_focus(conn, "");
        self.replaying.remove(&conn);
        self.held.retain(|(c, _, _)| *c != conn);
        self.pending.retain(|_, p| p.conn != conn);
    }
}
