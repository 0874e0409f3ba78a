//! The client's shell state and its per-event work: reading UDP, running transfers and plugin
//! jobs, flushing the chat's outbox to sockets and prompts, draining before exit. `run` (mod.rs)
//! owns the loop; `ipc_conns.rs` adds the IPC connections' half.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::UdpSocket;
use mio::{Interest, Poll};

use super::chat::{Chat, ConnId, To};
use super::ipc_conns::Conn;
use super::notifier::Notifier;
use super::policy::{ShellPolicy, with_env};
use super::transfer::{Outcome, Transfers};
use super::{PluginSetup, UDP, history, jobs};
use crate::plugin::{CallOut, PluginHost};

/// What the loop owns besides the chat: sockets, queues, connections, jobs and workers.
pub(super) struct Shell {
    pub(super) jobs: jobs::Jobs,
    /// Where the pinned keys are saved.
    pub(super) pins_file: Option<PathBuf>,
    pub(super) history: Option<history::Worker>,
    pub(super) notifier: Option<Notifier>,
    pub(super) transfers: Transfers,
    pub(super) plugins: PluginHost,
    pub(super) setup: PluginSetup,
    pub(super) poll: Poll,
    pub(super) udp: UdpSocket,
    pub(super) udp_queue: VecDeque<(SocketAddr, Vec<u8>)>,
    pub(super) udp_writable: bool,
    pub(super) conns: HashMap<usize, Conn>,
    pub(super) next_conn: usize,
}

impl Shell {
    pub(super) fn read_udp(&mut self, chat: &mut Chat, buf: &mut [u8]) {
        loop {
            match self.udp.recv_from(buf) {
                Ok((n, src)) if self.transfers.expects_udp_image(src, n) => {
                    let now = Instant::now();
                    let mut policy = ShellPolicy {
                        chat,
                        plugins: &mut self.plugins,
                        setup: &mut self.setup,
                    };
                    match self.transfers.udp_image(src, &buf[..n], &mut policy, now) {
                        Some(Outcome::Received { from, size, path }) => {
                            chat.image_received(from, size, path.display().to_string())
                        }
                        Some(Outcome::RecvFailed { error }) => chat.report(error),
                        _ => chat.datagram(now, src, &buf[..n]),
                    }
                }
                Ok((n, src)) => {
                    let now = Instant::now();
                    chat.datagram(now, src, &buf[..n]);
                    // An image may follow its announcement as the very next datagram.
                    for (src, from, size) in chat.out.img_announced.drain(..) {
                        self.transfers.announce(src, &from, size, now);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // An ICMP error from an earlier send surfaces here; it is about that send only.
                Err(e) => debug!("UDP receive: {e}"),
            }
        }
    }

    /// Runs the transfers that are ready or due and applies their outcomes to the chat.
    pub(super) fn run_transfers(&mut self, chat: &mut Chat, now: Instant) {
        for (ip, from, size) in std::mem::take(&mut chat.out.img_announced) {
            self.transfers.announce(ip, &from, size, now);
        }
        let mut outcomes = {
            let mut policy = ShellPolicy {
                chat,
                plugins: &mut self.plugins,
                setup: &mut self.setup,
            };
            self.transfers.run(self.poll.registry(), &mut policy, now)
        };
        outcomes.extend(self.transfers.tick(self.poll.registry(), now));
        for o in outcomes {
            let Some(o) = self.jobs.outcome(chat, o) else {
                continue;
            };
            match o {
                Outcome::Progress { reply, sent, size } => chat.progress(reply.0, sent, size),
                Outcome::Stalling { reply, line } => chat.tell(reply.0, line),
                Outcome::Sent {
                    reply,
                    line,
                    to,
                    path,
                } => {
                    chat.image_sent(&to, &path);
                    chat.finish_command(reply.0, reply.1, Ok(vec![line]))
                }
                Outcome::SendFailed { reply, error } => {
                    chat.finish_command(reply.0, reply.1, Err(error))
                }
                Outcome::Received { from, size, path } => {
                    chat.image_received(from, size, path.display().to_string())
                }
                Outcome::FileReceived { from, size, path } => {
                    chat.file_received(from, size, path.display().to_string())
                }
                Outcome::RecvFailed { error } => chat.report(error),
                Outcome::Lines { from, bytes } => chat.tcp_lines(now, from, &bytes),
                Outcome::Reached { addr, ok: true } => chat.tcp_accepted(addr),
                Outcome::Reached { addr, ok: false } => chat.tcp_refused(addr),
                Outcome::Forms { from, named, ready } => {
                    chat.learn_image_forms(&from, named, ready)
                }
            }
        }
    }

    /// Gives the plugins their commands and events until none are left; what they do goes back
    /// into the chat (a plugin's MSG causes no event, so this ends).
    pub(super) fn plugin_work(&mut self, chat: &mut Chat) {
        loop {
            let calls = std::mem::take(&mut chat.out.plugin_calls);
            let events = std::mem::take(&mut chat.out.plugin_events);
            if calls.is_empty() && events.is_empty() {
                return;
            }
            for e in events {
                let mut out = with_env(chat, &mut self.setup, |env| self.plugins.event(&e, env));
                jobs::start_images(
                    chat,
                    None,
                    &mut out,
                    &self.udp,
                    &mut self.transfers,
                    self.poll.registry(),
                );
                chat.plugin_done(None, out);
            }
            for (conn, id, word, args) in calls {
                let out = with_env(chat, &mut self.setup, |env| {
                    self.plugins.command(&word, &args, env)
                })
                .unwrap_or_else(|| CallOut {
                    error: Some(format!("no plugin provides {word}")),
                    ..CallOut::default()
                });
                let mut out = out;
                jobs::start_images(
                    chat,
                    Some((conn, id)),
                    &mut out,
                    &self.udp,
                    &mut self.transfers,
                    self.poll.registry(),
                );
                chat.plugin_done(Some((conn, id)), out);
            }
        }
    }

    /// Sends the chat's outbox: plugin work first, then datagrams, then IPC lines.
    pub(super) fn flush(&mut self, chat: &mut Chat) {
        self.plugin_work(chat);
        self.jobs
            .start(chat, &mut self.transfers, self.poll.registry());
        if let Some(h) = self.history.as_mut() {
            h.send(chat);
        } else {
            chat.out.history.clear();
        }
        if std::mem::take(&mut chat.out.pins_changed)
            && let Some(f) = self.pins_file.as_ref()
            && let Err(e) = crate::e2e::keys::save_pins(f, chat.pins())
        {
            chat.report(format!("pinned keys not saved: {e}"));
        }
        for n in std::mem::take(&mut chat.out.notify) {
            if let Some(d) = self.notifier.as_ref() {
                d.send(n);
            }
        }
        for (key, value) in std::mem::take(&mut chat.out.persist) {
            if let Err(e) = (self.setup.persist)(&key, &value) {
                chat.report(format!("{key} not saved in the config file: {e}"));
            }
        }
        let now = Instant::now();
        for (addr, bytes) in std::mem::take(&mut chat.out.tcp) {
            self.transfers
                .send_lines(self.poll.registry(), addr, bytes, now);
        }
        self.udp_queue.extend(chat.out.udp.drain(..));
        while let Some((addr, b)) = self.udp_queue.front() {
            match self.udp.send_to(b, *addr) {
                Ok(_) => {
                    self.udp_queue.pop_front();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.udp_writable {
                        self.udp_writable = true;
                        let _ = self.poll.registry().reregister(
                            &mut self.udp,
                            UDP,
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                    break;
                }
                Err(e) => {
                    // Unreachable networks and the like concern this datagram only.
                    debug!("UDP send to {addr}: {e}");
                    self.udp_queue.pop_front();
                }
            }
        }
        if self.udp_queue.is_empty() && self.udp_writable {
            self.udp_writable = false;
            let _ = self
                .poll
                .registry()
                .reregister(&mut self.udp, UDP, Interest::READABLE);
        }
        let msgs: Vec<_> = chat.out.ipc.drain(..).collect();
        let mut touched = Vec::new();
        for (to, m) in msgs {
            let mut line = serde_json::to_vec(&m).unwrap_or_default();
            line.push(b'\n');
            for (id, c) in self.conns.iter_mut() {
                let hit = match to {
                    To::All => c.authed,
                    To::Conn(x) => x == *id as ConnId,
                    To::AllBut(x) => c.authed && x != *id as ConnId,
                };
                if hit {
                    c.wbuf.extend_from_slice(&line);
                    touched.push(*id);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            self.write_conn(chat, id);
        }
    }

    /// Last flush at exit: the LEAVE datagrams and the replies (e.g. "bye") should get out.
    pub(super) fn drain_before_exit(&mut self) {
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Some((addr, b)) = self.udp_queue.pop_front() {
            while self.udp.send_to(&b, addr).is_err() && Instant::now() < deadline {
                std::thread::yield_now();
            }
        }
        for c in self.conns.values_mut() {
            while !c.wbuf.is_empty() && Instant::now() < deadline {
                match c.stream.write(&c.wbuf) {
                    Ok(n) if n > 0 => {
                        c.wbuf.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                    _ => break,
                }
            }
        }
    }
}
