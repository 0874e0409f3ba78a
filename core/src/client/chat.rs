//! The client's protocol logic: peer table, commands, heartbeats, expiry and pending commands.
//!
//! Architecture Invariant: `Chat` does no I/O and reads no clock. Every input comes with `now`,
//! every output goes to its [`Outbox`], which the mio shell flushes; so the logic is tested by
//! feeding it datagrams and instants.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::codec::{self, Handle, Message, UserEntry};
use crate::ipc::{ArgKind, CommandInfo, Event, ServerMsg};
use crate::net;
use crate::plugin::{CallOut, PluginEvent};

/// Identifies one attached REPL connection; never reused.
pub type ConnId = u64;

/// What the client is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The handle to join with.
    pub handle: Handle,
    /// Our SLCP port (UDP and TCP).
    pub port: u16,
    /// Every host's discovery port.
    pub whoisport: u16,
    /// Where JOIN/LEAVE/WHO/AWAY/BACK are broadcast.
    pub broadcast: Vec<IpAddr>,
    /// This host's own addresses, to recognise ourselves in KNOWUSERS.
    pub local_ips: Vec<Ipv4Addr>,
    /// Interval of JOIN and WHO re-sends.
    pub heartbeat: Duration,
    /// Age at which a peer not heard of is dropped.
    pub expiry: Duration,
    /// How long WHO waits for answers.
    pub who_wait: Duration,
    /// Messages kept while no REPL is attached.
    pub backlog: usize,
    /// Go away after this long without a command.
    pub auto_away: Option<Duration>,
}

/// Counters, shown by STATUS.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Datagrams received.
    pub datagrams: u64,
    /// Lines that failed to decode, dropped.
    pub malformed: u64,
    /// MSG received.
    pub messages_in: u64,
    /// MSG sent.
    pub messages_out: u64,
    /// Messages dropped from a full backlog.
    pub backlog_dropped: u64,
}

/// Where an IPC line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Every attached REPL.
    All,
    /// One REPL.
    Conn(ConnId),
}

/// What the shell must do after a call into [`Chat`].
#[derive(Debug, Default)]
pub struct Outbox {
    /// Datagrams to send.
    pub udp: Vec<(SocketAddr, Vec<u8>)>,
    /// IPC lines to write.
    pub ipc: Vec<(To, ServerMsg)>,
    /// The client should leave and exit.
    pub quit: bool,
    /// Commands for plugins: (conn, request id, word, args).
    pub plugin_calls: Vec<(ConnId, u64, String, String)>,
    /// Events for plugins.
    pub plugin_events: Vec<PluginEvent>,
    /// UDP image announcements heard: (source ip, sender, size).
    pub img_announced: Vec<(IpAddr, String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Joined,
    Left,
    /// Our JOIN lost to another holder of the handle.
    Clashed(SocketAddr),
}

/// A peer as this client knows it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Where it receives.
    pub addr: SocketAddr,
    /// Whether it said AWAY.
    pub away: bool,
    last_seen: Instant,
}

#[derive(Debug)]
enum Pending {
    Who { heard_at_start: u64 },
    Msg { to: Handle, text: String },
    Rename { new: Handle },
}

#[derive(Debug)]
struct PendingCmd {
    conn: ConnId,
    id: u64,
    kind: Pending,
}

/// The built-in commands.
pub fn builtin_commands() -> Vec<CommandInfo> {
    let c = |word: &str, usage: &str, help: &str, args: &[ArgKind]| CommandInfo {
        word: word.into(),
        usage: usage.into(),
        help: help.into(),
        args: args.to_vec(),
    };
    vec![
        c(
            "MSG",
            "MSG <handle> <text...>",
            "send a message",
            &[ArgKind::Handle, ArgKind::Text],
        ),
        c("WHO", "WHO", "ask who is here and list them", &[]),
        c("AWAY", "AWAY", "tell everyone you are away", &[]),
        c("BACK", "BACK", "tell everyone you are back", &[]),
        c(
            "HANDLE",
            "HANDLE <new>",
            "change your handle",
            &[ArgKind::Text],
        ),
        c("JOIN", "JOIN", "join the chat again after LEAVE", &[]),
        c(
            "LEAVE",
            "LEAVE",
            "leave the chat (the client keeps running)",
            &[],
        ),
        c(
            "STATUS",
            "STATUS",
            "show your handle, port, state and counters",
            &[],
        ),
        c(
            "HELP",
            "HELP [command]",
            "list the commands, or explain one",
            &[ArgKind::Text],
        ),
        c("QUIT", "QUIT", "leave the chat and stop the client", &[]),
    ]
}

fn minutes(d: Duration) -> String {
    let m = d.as_secs_f64() / 60.0;
    if m.fract() == 0.0 {
        format!("{m:.0} min")
    } else {
        format!("{:.0} s", d.as_secs_f64())
    }
}

/// The client's state.
pub struct Chat {
    s: Settings,
    me: Handle,
    state: State,
    away: bool,
    peers: BTreeMap<Handle, Peer>,
    pending: HashMap<u64, PendingCmd>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_pending: u64,
    knowusers_heard: u64,
    backlog: VecDeque<Event>,
    conns: BTreeSet<ConnId>,
    next_heartbeat: Instant,
    next_sweep: Instant,
    /// The last command from a prompt, for auto-away.
    last_activity: Instant,
    /// The current away period was started by auto-away.
    auto_away_active: bool,
    commands: Vec<CommandInfo>,
    plugin_words: Vec<String>,
    plugin_report: Vec<String>,
    /// Counters.
    pub stats: Stats,
    /// What to do next; the shell drains it.
    pub out: Outbox,
}

impl Chat {
    /// A client that has not sent anything yet; call [`Chat::start`].
    pub fn new(s: Settings, now: Instant) -> Chat {
        Chat {
            me: s.handle.clone(),
            state: State::Left,
            away: false,
            peers: BTreeMap::new(),
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_pending: 0,
            knowusers_heard: 0,
            backlog: VecDeque::new(),
            conns: BTreeSet::new(),
            next_heartbeat: now,
            next_sweep: now,
            last_activity: now,
            auto_away_active: false,
            commands: builtin_commands(),
            plugin_words: Vec::new(),
            plugin_report: vec!["no plugins loaded".into()],
            stats: Stats::default(),
            out: Outbox::default(),
            s,
        }
    }

    /// Our current handle.
    pub fn handle(&self) -> &Handle {
        &self.me
    }

    /// Replaces the broadcast targets and this host's addresses (interfaces come and go).
    pub fn set_network(&mut self, broadcast: Vec<IpAddr>, local_ips: Vec<Ipv4Addr>) {
        if broadcast != self.s.broadcast {
            info!("broadcast targets now {broadcast:?}");
        }
        self.s.broadcast = broadcast;
        self.s.local_ips = local_ips;
    }

    /// Whether we said AWAY.
    pub fn is_away(&self) -> bool {
        self.away
    }

    /// Adds the plugins' commands (after the built-in ones) and their load report.
    pub fn set_plugins(&mut self, commands: Vec<CommandInfo>, report: Vec<String>) {
        self.plugin_words = commands.iter().map(|c| c.word.clone()).collect();
        self.commands.extend(commands);
        self.plugin_report = report;
    }

    /// Ends a command whose outcome came later (an image transfer).
    pub fn finish_command(&mut self, conn: ConnId, id: u64, result: Result<Vec<String>, String>) {
        self.reply(conn, id, result);
    }

    /// Tells the prompt that started a send how far it is.
    pub fn progress(&mut self, conn: ConnId, sent: u64, size: u64) {
        if self.conns.contains(&conn) {
            self.out.ipc.push((
                To::Conn(conn),
                ServerMsg::Event {
                    event: Event::Progress { sent, size },
                },
            ));
        }
    }

    /// An image was saved: tell the prompts and the plugins.
    pub fn image_received(&mut self, from: String, size: u64, path: String) {
        self.event(Event::Image { from, size, path });
    }

    /// A problem the prompts should hear of (a refused image, ...).
    pub fn report(&mut self, text: String) {
        self.event(Event::Error { text });
    }

    /// Where `to` receives, if known.
    pub fn peer_addr(&self, to: &Handle) -> Option<SocketAddr> {
        self.peers.get(to).map(|p| p.addr)
    }

    /// Announces an image of `size` bytes to `addr` (the UDP half of SLCP's IMG).
    pub fn announce_image(&mut self, addr: SocketAddr, size: u64) {
        let m = Message::Img {
            handle: self.me.clone(),
            size,
        };
        self.send_to(addr, &m);
    }

    /// The sender of an image whose header names `named` and that comes from `ip`: a known peer
    /// at that address (by name, or by address when the header names us).
    pub fn image_sender(&self, named: &Handle, ip: IpAddr) -> Result<String, String> {
        let local = &self.s.local_ips;
        let same = |a: IpAddr| a == ip || (net::is_local(a, local) && net::is_local(ip, local));
        if *named != self.me {
            return match self.peers.get(named) {
                Some(p) if same(p.addr.ip()) => Ok(named.to_string()),
                Some(p) => Err(format!("{named} is known at {}, not at {ip}", p.addr)),
                None => Err(format!("{named} at {ip} is not a known peer")),
            };
        }
        let mut at: Vec<&Handle> = self
            .peers
            .iter()
            .filter(|(_, p)| same(p.addr.ip()))
            .map(|(h, _)| h)
            .collect();
        match (at.pop(), at.is_empty()) {
            (Some(h), true) => Ok(h.to_string()),
            (Some(_), false) => Err(format!("several peers at {ip}; cannot tell who sent it")),
            (None, _) => Err(format!("nobody known at {ip}")),
        }
    }

    /// Applies what a plugin call produced: its messages are sent; for a command, its lines and
    /// error are the reply; for an event, its lines become notices.
    pub fn plugin_done(&mut self, call: Option<(ConnId, u64)>, out: CallOut) {
        for (to, text) in out.sends {
            match self.peers.get(&to).map(|p| p.addr) {
                Some(addr) => {
                    if let Err(e) = self.send_msg(addr, &text) {
                        warn!("plugin message to {to} not sent: {e}");
                    }
                }
                None => warn!("plugin message to {to} not sent: {to} left"),
            }
        }
        match call {
            Some(_) if out.deferred && out.error.is_none() => {}
            Some((conn, id)) => {
                let r = match out.error {
                    Some(e) => Err(e),
                    None => Ok(out.lines),
                };
                self.reply(conn, id, r);
            }
            None => {
                for text in out.lines {
                    self.event(Event::Notice { text });
                }
            }
        }
    }

    /// The known peers, by handle.
    pub fn peers(&self) -> &BTreeMap<Handle, Peer> {
        &self.peers
    }

    /// JOIN and WHO, and the heartbeat from now on.
    pub fn start(&mut self, now: Instant) {
        self.join(now);
        self.next_heartbeat = now + self.s.heartbeat;
        self.next_sweep = now + self.sweep_interval();
    }

    fn sweep_interval(&self) -> Duration {
        (self.s.expiry / 10).clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// When [`Chat::tick`] must run next.
    pub fn next_deadline(&self) -> Instant {
        let mut t = self.next_heartbeat.min(self.next_sweep);
        if let Some(d) = self.s.auto_away.filter(|_| !self.away) {
            t = t.min(self.last_activity + d);
        }
        if let Some(Reverse((d, _))) = self.deadlines.peek() {
            t = t.min(*d);
        }
        t
    }

    /// Runs whatever is due at `now`: heartbeat, expiry, pending commands.
    pub fn tick(&mut self, now: Instant) {
        if now >= self.next_heartbeat {
            if self.state == State::Joined {
                self.broadcast(&Message::Join {
                    handle: self.me.clone(),
                    port: self.s.port,
                });
            }
            self.broadcast(&Message::Who);
            self.next_heartbeat = now + self.s.heartbeat;
        }
        if let Some(d) = self.s.auto_away
            && !self.away
            && self.state == State::Joined
            && now >= self.last_activity + d
        {
            let _ = self.set_away(true);
            self.auto_away_active = true;
            self.event(Event::Notice {
                text: format!("you are away (no command for {})", minutes(d)),
            });
        }
        if now >= self.next_sweep {
            self.expire(now);
            self.next_sweep = now + self.sweep_interval();
        }
        while let Some(Reverse((d, pid))) = self.deadlines.peek().copied() {
            if d > now {
                break;
            }
            self.deadlines.pop();
            if let Some(p) = self.pending.remove(&pid) {
                self.finish_pending(now, p);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let expiry = self.s.expiry;
        let gone: Vec<Handle> = self
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_seen) > expiry)
            .map(|(h, _)| h.clone())
            .collect();
        for h in gone {
            info!("{h} expired (not heard of for {expiry:?})");
            self.peers.remove(&h);
            self.event(Event::Leave {
                handle: h.to_string(),
            });
        }
    }

    /// Leaves (if joined) before the client exits.
    pub fn shutdown(&mut self) {
        if self.state == State::Joined {
            self.announce(&Message::Leave {
                handle: self.me.clone(),
            });
            self.state = State::Left;
        }
    }

    // ---- sending -------------------------------------------------------------------------

    fn send_to(&mut self, addr: SocketAddr, m: &Message) {
        match codec::encode(m) {
            Ok(b) => self.out.udp.push((addr, b)),
            Err(e) => warn!("not sent to {addr}: {e}"),
        }
    }

    fn broadcast(&mut self, m: &Message) {
        let Ok(b) = codec::encode(m) else { return };
        for ip in &self.s.broadcast {
            self.out
                .udp
                .push((SocketAddr::new(*ip, self.s.whoisport), b.clone()));
        }
    }

    /// Broadcast, and unicast to every known peer.
    fn announce(&mut self, m: &Message) {
        self.broadcast(m);
        let addrs: Vec<SocketAddr> = self.peers.values().map(|p| p.addr).collect();
        for a in addrs {
            self.send_to(a, m);
        }
    }

    fn join(&mut self, now: Instant) {
        self.state = State::Joined;
        let join = Message::Join {
            handle: self.me.clone(),
            port: self.s.port,
        };
        self.announce(&join);
        if self.away {
            self.announce(&Message::Away {
                handle: self.me.clone(),
            });
        }
        self.broadcast(&Message::Who);
        self.next_heartbeat = now + self.s.heartbeat;
    }

    // ---- IPC -----------------------------------------------------------------------------

    fn event(&mut self, e: Event) {
        // Plugins hear of everything, whether or not a prompt is attached (auto-reply must).
        self.out.plugin_events.push(PluginEvent::Chat(e.clone()));

        if self.conns.is_empty() {
            // Only messages are worth keeping for later; presence is stale by then.
            if matches!(
                e,
                Event::Message { .. }
                    | Event::Image { .. }
                    | Event::Clash { .. }
                    | Event::Notice { .. }
                    | Event::Error { .. }
            ) {
                if self.backlog.len() >= self.s.backlog {
                    self.backlog.pop_front();
                    self.stats.backlog_dropped += 1;
                }
                if self.s.backlog > 0 {
                    self.backlog.push_back(e);
                }
            }
            return;
        }
        self.out.ipc.push((To::All, ServerMsg::Event { event: e }));
    }

    fn reply(&mut self, conn: ConnId, id: u64, result: Result<Vec<String>, String>) {
        let (lines, error) = match result {
            Ok(l) => (l, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        self.out
            .ipc
            .push((To::Conn(conn), ServerMsg::Reply { id, lines, error }));
    }

    /// A REPL presented the right token: greet it and hand it the backlog.
    pub fn attach(&mut self, conn: ConnId) {
        self.conns.insert(conn);
        let hello = ServerMsg::Hello {
            handle: self.me.to_string(),
            port: self.s.port,
            peers: self.peers.keys().map(|h| h.to_string()).collect(),
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
                },
            ));
        }
        for e in std::mem::take(&mut self.backlog) {
            self.out
                .ipc
                .push((To::Conn(conn), ServerMsg::Event { event: e }));
        }
    }

    /// A REPL went away; its pending commands are dropped.
    pub fn detach(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
        self.pending.retain(|_, p| p.conn != conn);
    }

    /// Runs one command line from a REPL.
    pub fn request(&mut self, now: Instant, conn: ConnId, id: u64, line: &str) {
        let line = line.trim();
        let line = line.strip_prefix('/').unwrap_or(line);
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim_start()),
            None => (line, ""),
        };
        let word = word.to_ascii_uppercase();
        self.last_activity = now;
        if self.auto_away_active && self.away && word != "AWAY" && word != "BACK" {
            // Typing again ends an away period that auto-away began.
            let _ = self.set_away(false);
            self.event(Event::Notice {
                text: "you are back".into(),
            });
        }
        let r = match word.as_str() {
            "" => Ok(Vec::new()),
            "MSG" => return self.cmd_msg(now, conn, id, rest),
            "WHO" => {
                if let Err(e) = self.no_args("WHO", rest) {
                    return self.reply(conn, id, Err(e));
                }
                self.broadcast(&Message::Who);
                let heard_at_start = self.knowusers_heard;
                return self.defer(now, conn, id, Pending::Who { heard_at_start });
            }
            "AWAY" => self.no_args("AWAY", rest).and_then(|_| self.set_away(true)),
            "BACK" => self
                .no_args("BACK", rest)
                .and_then(|_| self.set_away(false)),
            "HANDLE" => return self.cmd_handle(now, conn, id, rest),
            "JOIN" => self.no_args("JOIN", rest).and_then(|_| match &self.state {
                State::Joined => Err(format!(
                    "you are already in the chat as {}; LEAVE first to rejoin",
                    self.me
                )),
                _ => {
                    self.join(now);
                    Ok(vec![format!(
                        "joined as {} on port {}",
                        self.me, self.s.port
                    )])
                }
            }),
            "LEAVE" => self.no_args("LEAVE", rest).and_then(|_| match &self.state {
                State::Joined => {
                    self.shutdown();
                    Ok(vec!["left the chat; JOIN to come back".to_string()])
                }
                _ => Err("you are not in the chat; JOIN to come back".to_string()),
            }),
            "STATUS" => self.no_args("STATUS", rest).map(|_| self.status()),
            "PLUGINS" => self
                .no_args("PLUGINS", rest)
                .map(|_| self.plugin_report.clone()),
            "HELP" => self.help(rest),
            "QUIT" => self.no_args("QUIT", rest).map(|_| {
                self.out.quit = true;
                vec!["bye".to_string()]
            }),
            w if self.plugin_words.iter().any(|p| p == w) => {
                self.out
                    .plugin_calls
                    .push((conn, id, w.to_string(), rest.to_string()));
                return;
            }
            other => Err(format!(
                "unknown command {other}; HELP lists the commands, PLUGINS the plugins that loaded"
            )),
        };
        self.reply(conn, id, r);
    }

    fn no_args(&self, word: &str, rest: &str) -> Result<(), String> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{word} takes no arguments (got {rest:?})"))
        }
    }

    fn defer(&mut self, now: Instant, conn: ConnId, id: u64, kind: Pending) {
        let pid = self.next_pending;
        self.next_pending += 1;
        self.pending.insert(pid, PendingCmd { conn, id, kind });
        self.deadlines.push(Reverse((now + self.s.who_wait, pid)));
    }

    fn finish_pending(&mut self, now: Instant, p: PendingCmd) {
        let r = match p.kind {
            Pending::Who { heard_at_start } => {
                if self.knowusers_heard == heard_at_start {
                    Err(format!(
                        "no discovery service answered WHO on UDP port {} within {:?}; start one with `slcp discovery` (plain `slcp` starts it) or check `broadcast` in the config",
                        self.s.whoisport, self.s.who_wait
                    ))
                } else {
                    Ok(self.who_table())
                }
            }
            Pending::Msg { to, text } => match self.peers.get(&to) {
                Some(p) => {
                    let addr = p.addr;
                    self.send_msg(addr, &text).map(|_| Vec::new())
                }
                None => Err(format!(
                    "nobody called {to} is here (asked the discovery services for {:?}); WHO lists who is",
                    self.s.who_wait
                )),
            },
            Pending::Rename { new } => self.rename(now, new),
        };
        self.reply(p.conn, p.id, r);
    }

    fn cmd_msg(&mut self, now: Instant, conn: ConnId, id: u64, rest: &str) {
        let (to, text) = match rest.split_once(char::is_whitespace) {
            Some((h, t)) => (h, t.trim_start()),
            None => (rest, ""),
        };
        if to.is_empty() || text.is_empty() {
            return self.reply(conn, id, Err("usage: MSG <handle> <text...>".into()));
        }
        let to = match Handle::new(to) {
            Ok(h) => h,
            Err(e) => return self.reply(conn, id, Err(format!("{to:?} is not a handle: {e}"))),
        };
        if self.state != State::Joined {
            return self.reply(
                conn,
                id,
                Err("you are not in the chat; JOIN first".to_string()),
            );
        }
        // A text typed in quotes is meant without them.
        let text = codec::unquote(text);
        let probe = Message::Msg {
            handle: self.me.clone(),
            text: text.clone(),
        };
        if let Err(e) = codec::encode(&probe) {
            return self.reply(
                conn,
                id,
                Err(format!(
                    "message too long: {e}; send it in parts (at most {} plain characters fit)",
                    codec::max_plain_text(&self.me)
                )),
            );
        }
        match self.peers.get(&to) {
            Some(p) => {
                let addr = p.addr;
                let r = self.send_msg(addr, &text).map(|_| Vec::new());
                self.reply(conn, id, r);
            }
            None if to == self.me => {
                self.reply(conn, id, Err("that is you; MSG someone else".into()))
            }
            None => {
                // Maybe they joined a moment ago: ask, and decide when the answers are in.
                self.broadcast(&Message::Who);
                self.defer(now, conn, id, Pending::Msg { to, text });
            }
        }
    }

    fn send_msg(&mut self, addr: SocketAddr, text: &str) -> Result<(), String> {
        let m = Message::Msg {
            handle: self.me.clone(),
            text: text.to_owned(),
        };
        let b = codec::encode(&m).map_err(|e| e.to_string())?;
        self.out.udp.push((addr, b));
        self.stats.messages_out += 1;
        Ok(())
    }

    fn set_away(&mut self, away: bool) -> Result<Vec<String>, String> {
        if self.away == away {
            return Err(if away {
                "you are already away; BACK to return".into()
            } else {
                "you are not away".into()
            });
        }
        self.away = away;
        self.auto_away_active = false;
        self.out.plugin_events.push(if away {
            PluginEvent::SelfAway
        } else {
            PluginEvent::SelfBack
        });
        if self.state == State::Joined {
            let h = self.me.clone();
            self.announce(&if away {
                Message::Away { handle: h }
            } else {
                Message::Back { handle: h }
            });
        }
        Ok(vec![
            if away { "you are away" } else { "you are back" }.to_string(),
        ])
    }

    fn cmd_handle(&mut self, now: Instant, conn: ConnId, id: u64, rest: &str) {
        let new = match Handle::new(rest) {
            Ok(h) => h,
            Err(_) if rest.is_empty() => {
                return self.reply(conn, id, Err("usage: HANDLE <new>".into()));
            }
            Err(e) => return self.reply(conn, id, Err(format!("{rest:?} is not a handle: {e}"))),
        };
        if new == self.me && self.state == State::Joined {
            return self.reply(conn, id, Err(format!("you are already {new}")));
        }
        // Ask first, so a handle somebody holds is refused rather than fought over.
        self.broadcast(&Message::Who);
        self.defer(now, conn, id, Pending::Rename { new });
    }

    fn rename(&mut self, now: Instant, new: Handle) -> Result<Vec<String>, String> {
        if let Some(p) = self.peers.get(&new) {
            return Err(format!(
                "{new} is taken by {}; choose another handle",
                p.addr
            ));
        }
        let old = std::mem::replace(&mut self.me, new.clone());
        let was = std::mem::replace(&mut self.state, State::Left);
        if was == State::Joined {
            self.announce(&Message::Leave {
                handle: old.clone(),
            });
        }
        if was != State::Left {
            self.join(now);
        }
        self.event(Event::Handle {
            handle: new.to_string(),
        });
        Ok(vec![format!("you are now {new} (were {old})")])
    }

    fn who_table(&self) -> Vec<String> {
        if self.peers.is_empty() {
            return vec!["nobody else is here".to_string()];
        }
        let rows: Vec<[String; 3]> = self
            .peers
            .iter()
            .map(|(h, p)| {
                [
                    h.to_string(),
                    p.addr.to_string(),
                    if p.away { "away" } else { "here" }.to_string(),
                ]
            })
            .collect();
        let w0 = rows
            .iter()
            .map(|r| r[0].chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(7);
        let mut out = vec![format!("{:w0$}  {:w1$}  STATUS", "HANDLE", "ADDRESS")];
        for r in rows {
            out.push(format!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2]));
        }
        out
    }

    fn status(&self) -> Vec<String> {
        let state = match &self.state {
            State::Joined => "joined".to_string(),
            State::Left => "left".to_string(),
            State::Clashed(by) => format!("not joined: {} is held by {by}", self.me),
        };
        vec![
            format!("handle    {}", self.me),
            format!("port      {}", self.s.port),
            format!("state     {state}"),
            format!("away      {}", if self.away { "yes" } else { "no" }),
            format!("peers     {}", self.peers.len()),
            format!("datagrams {}", self.stats.datagrams),
            format!("malformed {}", self.stats.malformed),
            format!("msg in    {}", self.stats.messages_in),
            format!("msg out   {}", self.stats.messages_out),
        ]
    }

    fn help(&self, rest: &str) -> Result<Vec<String>, String> {
        let want = rest.trim().trim_start_matches('/').to_ascii_uppercase();
        if !want.is_empty() {
            return self
                .commands
                .iter()
                .find(|c| c.word == want)
                .map(|c| vec![format!("{}  {}", c.usage, c.help)])
                .ok_or_else(|| format!("no command {want}; HELP lists the commands"));
        }
        let w = self
            .commands
            .iter()
            .map(|c| c.usage.len())
            .max()
            .unwrap_or(0);
        Ok(self
            .commands
            .iter()
            .map(|c| format!("{:w$}  {}", c.usage, c.help))
            .collect())
    }

    // ---- receiving -----------------------------------------------------------------------

    /// Handles one received datagram.
    pub fn datagram(&mut self, now: Instant, src: SocketAddr, bytes: &[u8]) {
        self.stats.datagrams += 1;
        for r in codec::decode_datagram(bytes) {
            match r {
                Ok(m) => self.message(now, src, m),
                Err(e) => {
                    self.stats.malformed += 1;
                    debug!("dropped a malformed datagram from {src}: {e}");
                }
            }
        }
    }

    fn is_me(&self, handle: &Handle, addr: SocketAddr) -> bool {
        *handle == self.me
            && addr.port() == self.s.port
            && net::is_local(addr.ip(), &self.s.local_ips)
    }

    fn message(&mut self, now: Instant, src: SocketAddr, m: Message) {
        match m {
            Message::KnowUsers(entries) => {
                self.knowusers_heard += 1;
                for e in entries {
                    self.learn(now, e);
                }
                self.flush_pending_msgs(now);
            }
            Message::Join { handle, port } => {
                let e = UserEntry {
                    handle,
                    ip: src.ip(),
                    port,
                };
                self.learn(now, e);
                self.flush_pending_msgs(now);
            }
            Message::Leave { handle } => {
                if self
                    .peers
                    .get(&handle)
                    .is_some_and(|p| p.addr.ip() == src.ip())
                {
                    self.peers.remove(&handle);
                    self.event(Event::Leave {
                        handle: handle.to_string(),
                    });
                }
            }
            Message::Away { handle } | Message::Back { handle } if handle == self.me => {}
            Message::Away { handle } => self.presence(now, &handle, true),
            Message::Back { handle } => self.presence(now, &handle, false),
            Message::Msg { handle, text } => {
                self.stats.messages_in += 1;
                let from = self.sender(&handle, src);
                if let Some(p) = Handle::new(&from).ok().and_then(|h| self.peers.get_mut(&h)) {
                    p.last_seen = now;
                }
                self.event(Event::Message { from, text });
            }
            Message::Img { handle, size } => {
                let from = self.sender(&handle, src);
                debug!("{from} announced an image of {size} bytes");
                self.out.img_announced.push((src.ip(), from.clone(), size));
                self.out
                    .plugin_events
                    .push(PluginEvent::ImageAnnounced { from, size });
            }
            Message::Who => debug!("ignored WHO from {src}: clients do not answer WHO"),
        }
    }

    /// The sender of a MSG/IMG: the handle it names, unless that is our own handle (some
    /// implementations name the addressee), in which case the peer at the source address.
    fn sender(&self, named: &Handle, src: SocketAddr) -> String {
        if *named != self.me {
            return named.to_string();
        }
        let exact = self.peers.iter().find(|(_, p)| p.addr == src);
        let by_ip: Vec<_> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr.ip() == src.ip())
            .collect();
        match (exact, by_ip.as_slice()) {
            (Some((h, _)), _) => h.to_string(),
            (None, [(h, _)]) => h.to_string(),
            _ => src.to_string(),
        }
    }

    fn presence(&mut self, now: Instant, handle: &Handle, away: bool) {
        let Some(p) = self.peers.get_mut(handle) else {
            return;
        };
        p.last_seen = now;
        if p.away != away {
            p.away = away;
            let handle = handle.to_string();
            self.event(if away {
                Event::Away { handle }
            } else {
                Event::Back { handle }
            });
        }
    }

    /// Takes in one (handle, address) claim from a KNOWUSERS entry or a JOIN.
    fn learn(&mut self, now: Instant, e: UserEntry) {
        let addr = SocketAddr::new(e.ip, e.port);
        if e.handle == self.me {
            if self.is_me(&e.handle, addr) {
                if let State::Clashed(_) = self.state {
                    // The other holder is gone and the discovery took our JOIN.
                    self.state = State::Joined;
                }
            } else if self.state == State::Joined {
                self.state = State::Clashed(addr);
                warn!("{} is held by {addr}", self.me);
                self.event(Event::Clash {
                    handle: self.me.to_string(),
                    addr: addr.to_string(),
                });
            }
            return;
        }
        let local = &self.s.local_ips;
        match self.peers.get_mut(&e.handle) {
            Some(p) => {
                let same_client = p.addr == addr
                    || (p.addr.port() == addr.port()
                        && net::is_local(p.addr.ip(), local)
                        && net::is_local(addr.ip(), local));
                if same_client || now.duration_since(p.last_seen) > self.s.expiry {
                    p.last_seen = now;
                    if p.addr != addr && !same_client {
                        info!("{} moved from {} to {addr}", e.handle, p.addr);
                        p.addr = addr;
                    }
                } else {
                    debug!("{} claimed by {addr} too; keeping {}", e.handle, p.addr);
                }
            }
            None => {
                let greet = self.state == State::Joined;
                self.peers.insert(
                    e.handle.clone(),
                    Peer {
                        addr,
                        away: false,
                        last_seen: now,
                    },
                );
                if greet {
                    // Tell the newcomer (or the peer we just learned of) about us at once.
                    self.send_to(
                        addr,
                        &Message::Join {
                            handle: self.me.clone(),
                            port: self.s.port,
                        },
                    );
                    if self.away {
                        self.send_to(
                            addr,
                            &Message::Away {
                                handle: self.me.clone(),
                            },
                        );
                    }
                }
                self.event(Event::Join {
                    handle: e.handle.to_string(),
                    addr: addr.to_string(),
                });
            }
        }
    }

    /// Sends the MSGs that waited for their addressee, now that the addressee is known.
    fn flush_pending_msgs(&mut self, now: Instant) {
        let ready: Vec<u64> = self
            .pending
            .iter()
            .filter(
                |(_, p)| matches!(&p.kind, Pending::Msg { to, .. } if self.peers.contains_key(to)),
            )
            .map(|(k, _)| *k)
            .collect();
        for pid in ready {
            if let Some(p) = self.pending.remove(&pid) {
                self.finish_pending(now, p);
            }
        }
    }
}

#[cfg(test)]
mod tests;
