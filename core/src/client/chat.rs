//! The client's protocol logic: peer table, commands, heartbeats, expiry and pending commands.
//!
//! Architecture Invariant: `Chat` does no I/O and reads no clock. Every input comes with `now`,
//! every output goes to its [`Outbox`], which the mio shell flushes; so the logic is tested by
//! feeding it datagrams and instants.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::codec::{self, Forms, Handle, Message};
use crate::ipc::{CommandInfo, Event, ServerMsg};
use crate::plugin::PluginEvent;

use super::peers::{Peer, Peers};

/// Greetings (our JOIN unicast to a newly learned peer) sent per second at most.
const GREETS_PER_SEC: u32 = 64;

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
    /// The forms sent to a peer that has shown none (SLCP.md's by default).
    pub forms: Forms,
    /// Forms set in the config for a handle or an IP address.
    pub peer_forms: BTreeMap<String, Forms>,
    /// Image ports of peers that receive images elsewhere than on their JOIN port.
    pub image_ports: BTreeMap<String, u16>,
    /// Messages are kept in the history database (the shell has one open).
    pub history: bool,
    /// How the user hears that something arrived.
    pub notify: NotifyMode,
    /// Whether to encrypt with slcp peers.
    pub encryption: Encryption,
    /// An slcp discovery runs on this host: it speaks for us on the LAN (announces our JOIN,
    /// refreshes it at a rate scaled to the LAN's size, answers WHO), so the heartbeat's JOIN
    /// and WHO go to it alone instead of to every host. Cleared when it stops answering.
    pub local_discovery: bool,
    /// Hosts our broadcasts do not reach (`peers`): they still hear our JOIN and WHO directly.
    pub static_peers: Vec<IpAddr>,
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
    /// Claims, presence and messages refused because their source does not hold the handle.
    pub refused: u64,
    /// Peers greeted.
    pub greeted: u64,
}

/// Where an IPC line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    /// Every attached REPL.
    All,
    /// One REPL.
    Conn(ConnId),
    /// Every attached REPL but one.
    AllBut(ConnId),
}

/// What the shell must do after a call into [`Chat`].
#[derive(Debug, Default)]
pub struct Outbox {
    /// Datagrams to send.
    pub udp: Vec<(SocketAddr, Vec<u8>)>,
    /// SLCP lines for peers without a UDP socket, each sent on a TCP connection of its own.
    pub tcp: Vec<(SocketAddr, Vec<u8>)>,
    /// IPC lines to write.
    pub ipc: Vec<(To, ServerMsg)>,
    /// The client should leave and exit.
    pub quit: bool,
    /// Commands for plugins: (conn, request id, word, args).
    pub plugin_calls: Vec<(ConnId, u64, String, String)>,
    /// Events for plugins.
    pub plugin_events: Vec<PluginEvent>,
    /// UDP image announcements heard: (source address, sender, size).
    pub img_announced: Vec<(SocketAddr, String, u64)>,
    /// What to write to or ask of the history database.
    pub history: Vec<HistoryOp>,
    /// Config keys to save in the config file: (key, value in TOML).
    pub persist: Vec<(String, String)>,
    /// Desktop notifications to show.
    pub notify: Vec<Notification>,
    /// FILE commands to carry out.
    pub files: Vec<FileJob>,
    /// The pinned keys changed: the shell saves them.
    pub pins_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Joined,
    Left,
    /// Our JOIN lost to another holder of the handle.
    Clashed(SocketAddr),
}

#[derive(Debug)]
enum Pending {
    Who {
        heard_at_start: u64,
        verbose: bool,
        json: bool,
    },
    Msg {
        to: Handle,
        text: String,
    },
    Rename {
        new: Handle,
    },
}

#[derive(Debug)]
struct PendingCmd {
    conn: ConnId,
    id: u64,
    kind: Pending,
}

/// The client's state.
pub struct Chat {
    s: Settings,
    me: Handle,
    state: State,
    away: bool,
    peers: Peers,
    /// A discovery listed us at our own address since we joined: we hold our handle, and
    /// nobody's claim takes it from us.
    confirmed: bool,
    /// The WHO round (one per heartbeat) and the discoveries that answered in it.
    round: u64,
    answered: BTreeSet<IpAddr>,
    /// Discoveries that list away users with a flag (the reference implementation's `[AFK]`).
    flag_writers: BTreeSet<IpAddr>,
    /// When we last asked WHO: KNOWUSERS from a non-discovery is believed only soon after.
    last_who: Option<Instant>,
    /// Saved groups, and groups named in messages received.
    groups: groups::Groups,
    /// Who reads which prompt, and what to tell them of arrivals.
    attention: notify::Attention,
    /// Keys, pins and sessions.
    secure: secure::Secure,
    /// The `now` of the call being handled (for what runs deep inside one).
    clock: Instant,
    /// Long texts arriving in parts.
    parts: parts::Parts,
    /// Prompts waiting for the history's replay, and their commands meanwhile (bounded).
    replaying: BTreeSet<ConnId>,
    held: Vec<(ConnId, u64, String)>,
    /// Greetings we may still send this second (a flood of new peers is not reflected).
    greet_budget: (Instant, u32),
    /// Peers to greet later (when our discovery speaks for us), with when we learned of each
    /// and its draw: a newcomer on a crowded LAN must not get a hello from every host in the
    /// same millisecond. And the earliest any may be due (a lower bound: see greet.rs).
    greet_later: Vec<(Instant, f64, SocketAddr)>,
    greet_next: Option<Instant>,
    /// Messages waiting for a new peer's answer to our hello, and until when (hold.rs).
    awaiting_hello: Vec<hold::Held>,
    /// When we started, and when each peer of the last second was learned: a quiet LAN's
    /// newcomer is greeted at once (greet.rs).
    started: Option<Instant>,
    learned: std::collections::VecDeque<Instant>,
    pending: HashMap<u64, PendingCmd>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    next_pending: u64,
    knowusers_heard: u64,
    backlog: VecDeque<(Event, u64)>,
    /// Wall-clock time (ms since the Unix epoch), set by the shell before each call: what
    /// events and the history are stamped with (the logic itself runs on `Instant`s).
    wall: u64,
    conns: BTreeSet<ConnId>,
    next_heartbeat: Instant,
    next_sweep: Instant,
    /// No peer expires before this (a lower bound).
    expire_at: Option<Instant>,
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
            peers: Peers::new(s.local_ips.clone()),
            confirmed: false,
            round: 0,
            answered: BTreeSet::new(),
            flag_writers: BTreeSet::new(),
            last_who: None,
            greet_budget: (now, GREETS_PER_SEC),
            greet_later: Vec::new(),
            greet_next: None,
            awaiting_hello: Vec::new(),
            started: None,
            learned: std::collections::VecDeque::new(),
            parts: parts::Parts::default(),
            groups: groups::Groups::default(),
            attention: notify::Attention::default(),
            secure: secure::Secure::default(),
            clock: now,
            replaying: BTreeSet::new(),
            held: Vec::new(),
            pending: HashMap::new(),
            deadlines: BinaryHeap::new(),
            next_pending: 0,
            knowusers_heard: 0,
            backlog: VecDeque::new(),
            wall: 0,
            conns: BTreeSet::new(),
            next_heartbeat: now,
            next_sweep: now,
            expire_at: None,
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
        self.peers.local_ips = local_ips.clone();
        self.s.local_ips = local_ips;
    }

    /// The wall-clock time (ms since the Unix epoch) events and history records get from now on.
    pub fn set_wall(&mut self, ms: u64) {
        self.wall = ms;
    }

    /// Stores a message in the history (when it is on).
    pub(super) fn record(
        &mut self,
        peer: &str,
        incoming: bool,
        kind: &'static str,
        body: &str,
        outcome: &str,
    ) {
        if self.s.history {
            self.out.history.push(HistoryOp::Add {
                at: self.wall,
                peer: peer.to_owned(),
                incoming,
                kind,
                body: body.to_owned(),
                outcome: outcome.to_owned(),
                unread: incoming && self.conns.is_empty(),
            });
        }
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

    /// The known peers, by handle, in the order they were learned.
    pub fn peers(&self) -> &indexmap::IndexMap<Handle, Peer> {
        self.peers.map()
    }

    /// JOIN and WHO, and the heartbeat from now on.
    pub fn start(&mut self, now: Instant) {
        self.started = Some(now);
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
        // Only a joined client goes away by itself; after LEAVE or a clash the deadline would
        // stay in the past and spin the loop.
        if let Some(d) = self
            .s
            .auto_away
            .filter(|_| !self.away && self.state == State::Joined)
        {
            t = t.min(self.last_activity + d);
        }
        if let Some(Reverse((d, _))) = self.deadlines.peek() {
            t = t.min(*d);
        }
        if let Some(d) = self.peers.next_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.parts.next_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.greet_next {
            t = t.min(d);
        }
        if let Some(d) = self.held_deadline() {
            t = t.min(d);
        }
        if let Some(d) = self.e2e_deadline() {
            t = t.min(d);
        }
        t
    }

    /// Runs whatever is due at `now`: heartbeat, expiry, pending commands.
    pub fn tick(&mut self, now: Instant) {
        self.clock = now;
        self.e2e_tick(now);
        if now >= self.next_heartbeat {
            if self.state == State::Joined {
                self.tell_discovery(&Message::Join {
                    handle: self.me.clone(),
                    port: self.s.port,
                });
            }
            self.close_round();
            self.ask_who(now);
            self.next_heartbeat = now + self.s.heartbeat;
        }
        self.greet_due(now);
        self.release_held_messages(now, None);
        for (from, text) in self.parts.expired(now) {
            // The rest never came: what did is shown as it came.
            self.deliver(from.to_string(), text, "received");
        }
        for w in self.peers.probes_expired(now) {
            // The holder did not bounce the probe: it is alive, and keeps its handle.
            self.stats.refused += 1;
            info!(
                "{} claimed from {} refused: the holder at {} is alive",
                w.handle, w.addr, w.old
            );
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
        if self.expire_at.is_some_and(|t| now <= t) {
            return;
        }
        // Nobody can expire before the oldest sign of life does (signs of life only move
        // forward, and a new peer's is now): a table of thousands is not scanned every sweep.
        self.expire_at = self
            .peers
            .map()
            .values()
            .filter(|p| now.duration_since(p.last_seen) <= expiry)
            .map(|p| p.last_seen + expiry)
            .min()
            .or(Some(now + expiry));
        let gone: Vec<Handle> = self
            .peers
            .map()
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_seen) > expiry)
            .map(|(h, _)| h.clone())
            .collect();
        for h in gone {
            info!("{h} expired (not heard of for {expiry:?})");
            self.peers.remove(&h);
            self.e2e_forget(&h);
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

    fn join(&mut self, now: Instant) {
        self.state = State::Joined;
        self.confirmed = false;
        let join = Message::Join {
            handle: self.me.clone(),
            port: self.s.port,
        };
        if self.s.local_discovery {
            // Our discovery announces it on the LAN; the peers we know hear it from us.
            self.tell_discovery(&join);
            self.unicast_peers(&join);
        } else {
            self.announce(&join);
        }
        if self.away {
            self.announce(&Message::Away {
                handle: self.me.clone(),
            });
        }
        self.ask_who(now);
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
            ) && !(self.s.history && matches!(e, Event::Message { .. }))
            {
                // (With history on, messages wait in the database as unread instead.)
                if self.backlog.len() >= self.s.backlog {
                    self.backlog.pop_front();
                    self.stats.backlog_dropped += 1;
                }
                if self.s.backlog > 0 {
                    self.backlog.push_back((e, self.wall));
                }
            }
            return;
        }
        let at = self.wall;
        self.out
            .ipc
            .push((To::All, ServerMsg::Event { event: e, at }));
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
}

mod announce;
mod commands;
mod files;
pub use files::{FileJob, parse_file_args};
mod greet;
mod groups;
mod history_ops;
mod hold;
mod notify;
mod outside;
pub use notify::{Notification, NotifyMode};
mod secure;
mod trust;
pub use secure::Encryption;
mod parts;
mod prompts;
#[cfg(test)]
mod secure_tests;
pub use commands::builtin_commands;
use commands::minutes;
pub use history_ops::{HistoryAsk, HistoryOp, HistoryQuery};
#[cfg(test)]
mod identity_tests;
#[cfg(test)]
mod presence_tests;
mod receive;
mod senders;
mod tables;
#[cfg(test)]
mod tests;
