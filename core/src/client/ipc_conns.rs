//! The IPC connections of the client: accept (at most `MAX_CONNS`), authenticate (a token
//! within `AUTH_DEADLINE` and `MAX_UNAUTHED_BYTES`, from this user or another local one alike),
//! read request lines, write replies and events with a bound on what may pile up.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::chat::{Chat, ConnId};
use super::{MAX_PENDING_OUTPUT, Shell};
use crate::ipc::{self, Auth, Request, ServerMsg};

/// IPC connections at once; more are closed at accept.
pub(super) const MAX_CONNS: usize = 64;
/// A connection must present the token within this long.
pub(super) const AUTH_DEADLINE: Duration = Duration::from_secs(3);
/// Bytes a connection may send before presenting the token (the token line is ~80).
pub(super) const MAX_UNAUTHED_BYTES: usize = 4096;
/// Bytes read ahead of the commands run: while a prompt's commands wait (its history replay
/// is not in yet), the rest stays in the socket, and TCP makes a script that writes thousands
/// of lines at once wait, instead of the client refusing them.
const READ_AHEAD: usize = 256 * 1024;

pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) rbuf: Vec<u8>,
    pub(super) wbuf: Vec<u8>,
    pub(super) authed: bool,
    /// Close once `wbuf` is flushed.
    pub(super) closing: bool,
    pub(super) writable: bool,
    pub(super) accepted: Instant,
    /// Reading stopped before the socket was drained ([`READ_AHEAD`]): no readiness event
    /// will say there is more, so the loop reads again when the commands may run.
    pub(super) stalled: bool,
}

impl Shell {
    pub(super) fn accept(&mut self, listener: &mut TcpListener) {
        loop {
            match listener.accept() {
                Ok((_, addr)) if self.conns.len() >= MAX_CONNS => {
                    // Dropping it closes it: a full house does not grow.
                    warn!("IPC connection from {addr} refused: {MAX_CONNS} are open");
                }
                Ok((mut stream, addr)) => {
                    let id = self.next_conn;
                    self.next_conn += 1;
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, Token(id), Interest::READABLE)
                    {
                        warn!("IPC connection from {addr}: {e}");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    debug!("IPC connection {id} from {addr}");
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            rbuf: Vec::new(),
                            wbuf: Vec::new(),
                            authed: false,
                            closing: false,
                            writable: false,
                            accepted: Instant::now(),
                            stalled: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!("IPC accept: {e}");
                    break;
                }
            }
        }
    }

    pub(super) fn conn_event(&mut self, chat: &mut Chat, t: usize, token: &str, readable: bool) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let mut closed = false;
        let mut eof = false;
        if readable && !c.closing {
            let mut tmp = [0u8; 16 * 1024];
            c.stalled = false;
            loop {
                if c.rbuf.len() >= READ_AHEAD {
                    c.stalled = true;
                    break;
                }
                match c.stream.read(&mut tmp) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => c.rbuf.extend_from_slice(&tmp[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            let now = Instant::now();
            while let Some(pos) = c.rbuf.iter().position(|b| *b == b'\n') {
                if c.authed && chat.replaying(t as ConnId) {
                    // Its commands wait for the replay; the lines wait here (see READ_AHEAD).
                    break;
                }
                let line: Vec<u8> = c.rbuf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                if !c.authed {
                    let auth = serde_json::from_str::<Auth>(line.trim())
                        .ok()
                        .filter(|a| a.token == token);
                    if let Some(a) = auth {
                        c.authed = true;
                        chat.attach(t as ConnId, a.recap);
                    } else {
                        warn!("IPC connection {t} presented a wrong token; closing it");
                        push_line(
                            &mut c.wbuf,
                            &ServerMsg::Denied {
                                error: "wrong IPC token".into(),
                            },
                        );
                        c.closing = true;
                        c.rbuf.clear();
                        break;
                    }
                    continue;
                }
                match serde_json::from_str::<Request>(line.trim()) {
                    Ok(r) => chat.request(now, t as ConnId, r.id, &r.line),
                    Err(e) => warn!("IPC connection {t}: bad request ({e}), ignored"),
                }
            }
            // A script that wrote its lines and closed: the lines still waiting for a replay
            // run first (resume_conns reads the end again).
            if eof && !(c.rbuf.contains(&b'\n') && chat.replaying(t as ConnId)) {
                closed = true;
            }
            if !c.authed && c.rbuf.len() > MAX_UNAUTHED_BYTES {
                warn!(
                    "IPC connection {t} sent {} bytes without the token; closing it",
                    c.rbuf.len()
                );
                closed = true;
            } else if c.rbuf.len() > ipc::MAX_LINE && !c.rbuf.contains(&b'\n') {
                warn!("IPC connection {t} sent an over-long line; closing it");
                closed = true;
            }
        }
        if closed {
            self.drop_conn(chat, t);
        } else {
            self.write_conn(chat, t);
        }
    }

    /// Runs the lines that waited for a replay, and reads on where reading stopped.
    pub(super) fn resume_conns(&mut self, chat: &mut Chat, token: &str) {
        let waiting: Vec<usize> = self
            .conns
            .iter()
            .filter(|(t, c)| {
                (c.stalled || c.rbuf.contains(&b'\n')) && !chat.replaying(**t as ConnId)
            })
            .map(|(t, _)| *t)
            .collect();
        for t in waiting {
            self.conn_event(chat, t, token, true);
        }
    }

    pub(super) fn drop_conn(&mut self, chat: &mut Chat, t: usize) {
        if let Some(mut c) = self.conns.remove(&t) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            if c.authed {
                chat.detach(t as ConnId);
            }
            debug!("IPC connection {t} closed");
        }
    }

    /// Writes what is queued for connection `t` until the socket is full.
    pub(super) fn write_conn(&mut self, chat: &mut Chat, t: usize) {
        let Some(c) = self.conns.get_mut(&t) else {
            return;
        };
        let mut dead = false;
        while !c.wbuf.is_empty() {
            match c.stream.write(&c.wbuf) {
                Ok(0) => {
                    dead = true;
                    break;
                }
                Ok(n) => {
                    c.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    dead = true;
                    break;
                }
            }
        }
        if dead || (c.closing && c.wbuf.is_empty()) || c.wbuf.len() > MAX_PENDING_OUTPUT {
            self.drop_conn(chat, t);
            return;
        }
        let want = !c.wbuf.is_empty();
        if want != c.writable {
            c.writable = want;
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self
                .poll
                .registry()
                .reregister(&mut c.stream, Token(t), interest);
        }
    }

    /// Closes the connections that did not authenticate in time.
    pub(super) fn sweep_unauthed(&mut self, chat: &mut Chat, now: Instant) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.authed && now.duration_since(c.accepted) >= AUTH_DEADLINE)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            warn!(
                "IPC connection {id} did not present the token within {AUTH_DEADLINE:?}; closing it"
            );
            self.drop_conn(chat, id);
        }
    }

    /// When the next unauthenticated connection runs out of time.
    pub(super) fn auth_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| !c.authed)
            .map(|c| c.accepted + AUTH_DEADLINE)
            .min()
    }
}

pub(super) fn push_line(buf: &mut Vec<u8>, m: &ServerMsg) {
    if let Ok(mut b) = serde_json::to_vec(m) {
        b.push(b'\n');
        buf.extend_from_slice(&b);
    }
}
