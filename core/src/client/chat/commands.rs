//! The prompt's commands: MSG, WHO, AWAY/BACK, HANDLE, JOIN/LEAVE, STATUS, HELP, QUIT, and the
//! routing of plugin words; the answers that wait for discovery (WHO, MSG to a newcomer).

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::secure::Route;
use super::{Chat, ConnId, Pending, PendingCmd, State, To};
use crate::codec::{self, Handle, Message};
use crate::ipc::ServerMsg;
use crate::ipc::{ArgKind, CommandInfo, Event};
use crate::plugin::PluginEvent;
use crate::render;

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
            "MSG <handle|h1,h2|@group|*> <text...>",
            "send a message to someone, to several people, to a group, or to everyone",
            &[ArgKind::Handle, ArgKind::Text],
        ),
        c(
            "ALL",
            "ALL <text...>",
            "send a message to everyone here (the same as MSG * <text>)",
            &[ArgKind::Text],
        ),
        c(
            "GROUP",
            "GROUP create|add|remove|delete|list <name> [handles...]",
            "named groups to message at once with MSG @name (saved)",
            &[ArgKind::Text, ArgKind::Text, ArgKind::Handle],
        ),
        c(
            "FOCUS",
            "FOCUS [conversation]",
            "no notification for the conversation you are typing in (QUERY sets it)",
            &[ArgKind::Handle],
        ),
        c(
            "FILE",
            "FILE <handle|@group|h1,h2|*> <path>",
            "send any file with its name (to slcp peers; resumes where an interrupted one stopped)",
            &[ArgKind::Handle, ArgKind::Path],
        ),
        c(
            "FINGERPRINT",
            "FINGERPRINT [handle]",
            "your safety number, or someone's, to compare by voice",
            &[ArgKind::Handle],
        ),
        c(
            "TRUST",
            "TRUST <handle>",
            "accept the new key someone presents (after comparing safety numbers)",
            &[ArgKind::Handle],
        ),
        c(
            "VERIFY",
            "VERIFY <handle>",
            "mark someone's key as compared in person",
            &[ArgKind::Handle],
        ),
        c(
            "WHO",
            "WHO [-v] [--json]",
            "ask who is here and list them",
            &[],
        ),
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
        c(
            "PLUGINS",
            "PLUGINS",
            "the plugins that loaded (built in or from which file), and the files that did not",
            &[],
        ),
        c(
            "HISTORY",
            "HISTORY [handle] [n]",
            "the conversations and their unread messages, or the last n messages with someone",
            &[ArgKind::Handle, ArgKind::Text],
        ),
        c(
            "SEARCH",
            "SEARCH <words...>",
            "find the messages that hold all the words, best first",
            &[ArgKind::Text],
        ),
        c("QUIT", "QUIT", "leave the chat and stop the client", &[]),
    ]
}

pub(super) fn minutes(d: Duration) -> String {
    let m = d.as_secs_f64() / 60.0;
    if m.fract() == 0.0 {
        format!("{m:.0} min")
    } else {
        format!("{:.0} s", d.as_secs_f64())
    }
}

impl Chat {
    /// Runs one command line from a REPL.
    pub fn request(&mut self, now: Instant, conn: ConnId, id: u64, line: &str) {
        if self.replaying.contains(&conn) {
            // It has not seen what came while nobody was attached yet: later.
            if self.held.len() < 256 {
                self.held.push((conn, id, line.to_owned()));
            } else {
                self.reply(conn, id, Err("busy; try again".into()));
            }
            return;
        }
        let line = line.trim();
        let line = line.strip_prefix('/').unwrap_or(line);
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim_start()),
            None => (line, ""),
        };
        let word = word.to_ascii_uppercase();
        self.clock = now;
        self.last_activity = now;
        self.typed(conn);
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
            "ALL" if rest.is_empty() => Err("usage: ALL <text...>".into()),
            "ALL" => return self.cmd_msg(now, conn, id, &format!("* {rest}")),
            "GROUP" => self.cmd_group(rest),
            "FILE" => return self.cmd_file(conn, id, rest),
            "FINGERPRINT" | "TRUST" | "VERIFY" => {
                if word != "FINGERPRINT" && rest.is_empty() {
                    Err(format!("usage: {word} <handle>"))
                } else {
                    self.cmd_keys(&word, rest)
                }
            }
            "FOCUS" => {
                self.set_focus(conn, rest);
                Ok(Vec::new())
            }
            "WHO" => {
                let (json, r) = json_flag(rest);
                let verbose = matches!(r, "-v" | "--verbose");
                if !verbose && !r.is_empty() {
                    let e = format!("WHO takes no arguments but -v and --json (got {rest:?})");
                    return self.reply(conn, id, Err(e));
                }
                self.ask_who(now);
                let heard_at_start = self.knowusers_heard;
                return self.defer(
                    now,
                    conn,
                    id,
                    Pending::Who {
                        heard_at_start,
                        verbose,
                        json,
                    },
                );
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
            "STATUS" => match json_flag(rest) {
                (true, "") => Ok(self.status_json()),
                (_, r) => self.no_args("STATUS", r).map(|_| self.status()),
            },
            "HISTORY" | "SEARCH" => return self.cmd_history(conn, id, &word, rest),
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

    pub(super) fn no_args(&self, word: &str, rest: &str) -> Result<(), String> {
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("{word} takes no arguments (got {rest:?})"))
        }
    }

    pub(super) fn defer(&mut self, now: Instant, conn: ConnId, id: u64, kind: Pending) {
        let pid = self.next_pending;
        self.next_pending += 1;
        self.pending.insert(pid, PendingCmd { conn, id, kind });
        self.deadlines.push(Reverse((now + self.s.who_wait, pid)));
    }

    pub(super) fn finish_pending(&mut self, now: Instant, p: PendingCmd) {
        let r = match p.kind {
            Pending::Who {
                heard_at_start,
                verbose,
                json,
            } => {
                if self.knowusers_heard == heard_at_start {
                    Err(format!(
                        "no discovery service answered WHO on UDP port {} within {:?}; start one with `slcp discovery` (plain `slcp` starts it) or check `broadcast` in the config",
                        self.s.whoisport, self.s.who_wait
                    ))
                } else {
                    Ok(if json {
                        self.who_json()
                    } else {
                        self.who_table(verbose)
                    })
                }
            }
            Pending::Msg { to, text } => match self.peers.get(&to) {
                Some(_) => self.send_msg(&to, &text).map(|_| Vec::new()),
                None => {
                    let why = format!(
                        "nobody called {to} is here (asked the discovery services for {:?}); WHO lists who is",
                        self.s.who_wait
                    );
                    self.record(to.as_str(), false, "text", &text, &format!("failed: {why}"));
                    Err(why)
                }
            },
            Pending::Rename { new } => self.rename(now, p.conn, new),
        };
        self.reply(p.conn, p.id, r);
    }

    pub(super) fn cmd_msg(&mut self, now: Instant, conn: ConnId, id: u64, rest: &str) {
        let (to, text) = match rest.split_once(char::is_whitespace) {
            Some((h, t)) => (h, t.trim_start()),
            None => (rest, ""),
        };
        if to.is_empty() || text.is_empty() {
            return self.reply(conn, id, Err("usage: MSG <handle> <text...>".into()));
        }
        // `*`, `@team` and `a,b` name several people (`*` and `@x` would be valid handles).
        if to == "*" || to.starts_with('@') || to.contains(',') {
            return self.msg_many(conn, id, to, text);
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
        if let Some(c) = render::first_unsafe(&text) {
            return self.reply(
                conn,
                id,
                Err(format!(
                    "the text holds U+{:04X}, a control or invisible character the receiver's terminal could act on; remove it",
                    c as u32
                )),
            );
        }
        // Longer than one datagram: it goes in numbered parts, up to a limit.
        if codec::split_text(&self.me, &to, &text, &codec::Forms::default()).is_none()
            && codec::encode_msg(&self.me, &to, &text, &codec::Forms::default()).is_none()
        {
            return self.reply(
                conn,
                id,
                Err(format!(
                    "message too long: {} bytes; at most {} parts of about {} bytes each are sent",
                    text.len(),
                    codec::MAX_PARTS,
                    codec::max_plain_text(&self.me) - 8
                )),
            );
        }
        match self.peers.get(&to) {
            Some(_) => {
                // A peer just greeted: the prompt hears what became of its words once the
                // peer answered (sealed, plain, or refused under `require`), not before.
                if self.must_wait_for_hello(&to) {
                    if let Err(e) = self.hold_for_hello(&to, &text, Some((conn, id))) {
                        self.reply(conn, id, Err(e));
                    }
                    return;
                }
                let r = self.send_msg(&to, &text).map(|_| Vec::new());
                self.reply(conn, id, r);
            }
            None if to == self.me => {
                self.reply(conn, id, Err("that is you; MSG someone else".into()))
            }
            None => {
                // Maybe they joined a moment ago: ask, and decide when the answers are in.
                self.ask_who(now);
                self.defer(now, conn, id, Pending::Msg { to, text });
            }
        }
    }

    /// MSG to `*`, `@group` or `h1,h2`: the text checked as for one recipient, then sent to each.
    fn msg_many(&mut self, conn: ConnId, id: u64, target: &str, text: &str) {
        let text = codec::unquote(text);
        if let Some(c) = render::first_unsafe(&text) {
            let e = format!(
                "the text holds U+{:04X}, a control or invisible character the receiver's terminal could act on; remove it",
                c as u32
            );
            return self.reply(conn, id, Err(e));
        }
        self.send_many(conn, id, target, &text);
    }

    /// Sends `text` to `to` and keeps it in the history.
    pub(super) fn send_msg(&mut self, to: &Handle, text: &str) -> Result<(), String> {
        self.send_msg_unrecorded(to, text)?;
        self.record(to.as_str(), false, "text", text, "sent");
        Ok(())
    }

    /// Sends `text` to `to` in the forms `to` uses: its handle field, quoting and terminator,
    /// over TCP to a peer without UDP.
    pub(super) fn send_msg_unrecorded(&mut self, to: &Handle, text: &str) -> Result<(), String> {
        if let Some(c) = render::first_unsafe(text) {
            return Err(format!(
                "the text holds U+{:04X}, which is not sent",
                c as u32
            ));
        }
        // A peer still waiting for our greeting (spread on a crowded LAN) gets it now; whether
        // it can read sealed messages, its answer says in a moment (hold.rs).
        if self.must_wait_for_hello(to) {
            return self.hold_for_hello(to, text, None);
        }
        match self.route(to) {
            Route::Plain => {}
            Route::Refuse(why) => return Err(why),
            r @ (Route::Sealed | Route::Wait) => {
                let lines = self
                    .sealed_lines(text)
                    .ok_or_else(|| format!("message too long for {to}: {} bytes", text.len()))?;
                self.stats.messages_out += lines.len() as u64;
                if matches!(r, Route::Wait) {
                    self.queue_for(to, lines, None);
                    return Ok(());
                }
                for l in lines {
                    self.seal_to(to, &l)?;
                }
                return Ok(());
            }
        }
        let me = self.me.clone();
        let p = self.peers.get_mut(to).ok_or_else(|| format!("{to} left"))?;
        let datagrams: Vec<Vec<u8>> = match codec::encode_msg(&me, to, text, &p.forms) {
            Some(b) => vec![b],
            // Over one datagram: numbered parts, on character boundaries (an slcp receiver
            // shows them as one message again; others show the parts in order).
            None => codec::split_text(&me, to, text, &p.forms)
                .ok_or_else(|| format!("message too long for {to}: {} bytes", text.len()))?
                .iter()
                .filter_map(|part| codec::encode_msg(&me, to, part, &p.forms))
                .collect(),
        };
        for b in datagrams {
            if p.forms.tcp {
                self.out.tcp.push((p.addr, b));
            } else {
                // Kept in case the datagram bounces: a peer without UDP gets it again over TCP.
                p.last_msg = Some(b.clone());
                self.out.udp.push((p.addr, b));
            }
            self.stats.messages_out += 1;
        }
        Ok(())
    }

    pub(super) fn set_away(&mut self, away: bool) -> Result<Vec<String>, String> {
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

    pub(super) fn cmd_handle(&mut self, now: Instant, conn: ConnId, id: u64, rest: &str) {
        let new = match Handle::new(rest) {
            Ok(h) => h,
            Err(_) if rest.is_empty() => {
                return self.reply(conn, id, Err("usage: HANDLE <new>".into()));
            }
            Err(e) => return self.reply(conn, id, Err(format!("{rest:?} is not a handle: {e}"))),
        };
        if new.as_str() == "*" || new.as_str().starts_with('@') {
            let e = format!(
                "{new} would read as a group (@name) or as everyone (*) in slcp's MSG and FILE; choose another handle"
            );
            return self.reply(conn, id, Err(e));
        }
        if new == self.me && self.state == State::Joined {
            return self.reply(conn, id, Err(format!("you are already {new}")));
        }
        // Ask first, so a handle somebody holds is refused rather than fought over.
        self.broadcast(&Message::Who);
        self.defer(now, conn, id, Pending::Rename { new });
    }

    pub(super) fn rename(
        &mut self,
        now: Instant,
        conn: ConnId,
        new: Handle,
    ) -> Result<Vec<String>, String> {
        if let Some(other) = self.peers.look_alike(&new) {
            return Err(format!(
                "{new} looks like {other}, who is here; choose a handle people can tell apart"
            ));
        }
        if let Some(p) = self.peers.get(&new) {
            return Err(format!(
                "{new} is taken by {}; choose another handle",
                p.addr
            ));
        }
        let old = std::mem::replace(&mut self.me, new.clone());
        let was = std::mem::replace(&mut self.state, State::Left);
        if was != State::Left {
            // The new handle from our address first: peers (and discoveries) that know us see a
            // rename; the LEAVE after it is for those that do not.
            self.join(now);
        }
        if was == State::Joined {
            self.announce(&Message::Leave {
                handle: old.clone(),
            });
        }
        // The other prompts hear of it; this one gets the reply below.
        self.out.ipc.push((
            To::AllBut(conn),
            ServerMsg::Event {
                event: Event::Handle {
                    handle: new.to_string(),
                },
                at: self.wall,
            },
        ));
        self.out
            .plugin_events
            .push(PluginEvent::Chat(Event::Handle {
                handle: new.to_string(),
            }));
        self.out
            .persist
            .push(("handle".into(), toml_quote(new.as_str())));
        Ok(vec![format!("you are now {new} (were {old})")])
    }
}

/// `s` as a TOML basic string.
fn toml_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `--json` (or `-j`) at the front of a command's arguments: answer one JSON object per line, for
/// scripts and the web UI. Returns the flag and the rest.
pub(super) fn json_flag(rest: &str) -> (bool, &str) {
    for flag in ["--json", "-j"] {
        if let Some(r) = rest.strip_prefix(flag)
            && (r.is_empty() || r.starts_with(char::is_whitespace))
        {
            return (true, r.trim_start());
        }
    }
    (false, rest)
}
