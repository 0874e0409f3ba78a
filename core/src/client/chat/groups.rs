//! Messages to several people (`MSG bob,carol`, `MSG *`, `ALL`, `MSG @team`), the GROUP
//! command, and the slcp extensions that carry them: the `SLCPX` hello and `GMSG`.
//!
//! A plain SLCP peer gets an ordinary MSG (one per member); an slcp peer that announced `group`
//! gets a GMSG naming the group and its members, so it can show the group and answer all of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info};

use super::receive::Transport;
use super::secure::Route;
use super::senders::Sender;
use super::{Chat, ConnId, HistoryOp, State};
use crate::codec::Handle;
use crate::ext::{self, Ext, Exts, MAX_MEMBERS, To};
use crate::ipc::{Event, Privacy};

/// A hello this soon after ours is taken as the answer to it.
const HELLO_ANSWERED: std::time::Duration = std::time::Duration::from_secs(2);

/// Saved groups at most, and groups heard of (named in a GMSG) kept at most.
pub const MAX_GROUPS: usize = 256;
const MAX_HEARD: usize = 64;

/// The groups a client knows: its own (saved) and those named in messages it received.
#[derive(Debug, Default)]
pub struct Groups {
    /// Created with GROUP, saved in the database.
    pub saved: BTreeMap<String, Vec<Handle>>,
    /// Named in a GMSG received: the members the sender listed (us excluded, the sender
    /// included), so that `MSG @team` answers all of them.
    pub heard: BTreeMap<String, Vec<Handle>>,
}

fn group_name(s: &str) -> Result<String, String> {
    let n = s.strip_prefix('@').unwrap_or(s);
    Handle::new(n).map(|h| h.to_string()).map_err(|e| {
        format!("{s:?} is not a group name: {e} (group names follow the rules of handles)")
    })
}

fn handles(words: &[&str]) -> Result<Vec<Handle>, String> {
    let mut out: Vec<Handle> = Vec::new();
    for w in words {
        let h = Handle::new(w).map_err(|e| format!("{w:?} is not a handle: {e}"))?;
        if !out.contains(&h) {
            out.push(h);
        }
    }
    Ok(out)
}

fn joined(m: &[Handle]) -> String {
    m.iter().map(Handle::as_str).collect::<Vec<_>>().join(" ")
}

impl Chat {
    /// The saved groups (read from the database at start).
    pub fn set_groups(&mut self, groups: Vec<(String, Vec<String>)>) {
        for (name, members) in groups.into_iter().take(MAX_GROUPS) {
            let m: Vec<Handle> = members
                .iter()
                .filter_map(|h| Handle::new(h).ok())
                .take(MAX_MEMBERS)
                .collect();
            self.groups.saved.insert(name, m);
        }
    }

    fn save_group(&mut self, name: &str) -> &'static str {
        let members = self
            .groups
            .saved
            .get(name)
            .map(|m| m.iter().map(|h| h.to_string()).collect());
        if self.s.history {
            self.out.history.push(HistoryOp::Group {
                name: name.to_owned(),
                members,
            });
            ""
        } else {
            " (kept until the client stops: the history database is off)"
        }
    }

    /// GROUP create|add|remove|delete|list.
    pub(super) fn cmd_group(&mut self, rest: &str) -> Result<Vec<String>, String> {
        let usage = "usage: GROUP create <name> <handles...> | add <name> <handles...> | remove <name> <handles...> | delete <name> | list [name]";
        let w: Vec<&str> = rest.split_whitespace().collect();
        let Some(sub) = w.first() else {
            return Err(usage.into());
        };
        let sub = sub.to_ascii_lowercase();
        if sub == "list" {
            return match w.get(1) {
                None if self.groups.saved.is_empty() && self.groups.heard.is_empty() => Ok(vec![
                    "no groups; GROUP create <name> <handles...> makes one".into(),
                ]),
                None => Ok(self
                    .groups
                    .saved
                    .iter()
                    .map(|(n, m)| format!("@{n}: {}", joined(m)))
                    .chain(
                        self.groups
                            .heard
                            .iter()
                            .filter(|(n, _)| !self.groups.saved.contains_key(*n))
                            .map(|(n, m)| format!("@{n}: {} (from a message)", joined(m))),
                    )
                    .collect()),
                Some(n) => {
                    let n = group_name(n)?;
                    self.group_members(&n)
                        .map(|m| vec![format!("@{n}: {}", joined(&m))])
                        .ok_or_else(|| format!("no group @{n}; GROUP list shows them"))
                }
            };
        }
        let name = group_name(w.get(1).ok_or(usage)?)?;
        let members = handles(&w[2..])?;
        let r = match sub.as_str() {
            "create" => {
                if members.is_empty() {
                    return Err("usage: GROUP create <name> <handles...>".into());
                }
                if self.groups.saved.contains_key(&name) {
                    return Err(format!(
                        "@{name} exists; GROUP add/remove changes it, GROUP delete removes it"
                    ));
                }
                if self.groups.saved.len() >= MAX_GROUPS {
                    return Err(format!("{MAX_GROUPS} groups already; delete one first"));
                }
                let members: Vec<Handle> = members.into_iter().filter(|h| *h != self.me).collect();
                if members.len() > MAX_MEMBERS {
                    return Err(format!("a group has at most {MAX_MEMBERS} members"));
                }
                let line = format!("created @{name}: {}", joined(&members));
                self.groups.saved.insert(name.clone(), members);
                line
            }
            "add" | "remove" => {
                if members.is_empty() {
                    return Err(format!("usage: GROUP {sub} <name> <handles...>"));
                }
                let me = self.me.clone();
                let g = self
                    .groups
                    .saved
                    .get_mut(&name)
                    .ok_or_else(|| format!("no group @{name}; GROUP create makes one"))?;
                if sub == "add" {
                    for h in members.into_iter().filter(|h| *h != me) {
                        if !g.contains(&h) {
                            g.push(h);
                        }
                    }
                    if g.len() > MAX_MEMBERS {
                        g.truncate(MAX_MEMBERS);
                        return Err(format!("a group has at most {MAX_MEMBERS} members"));
                    }
                } else {
                    g.retain(|h| !members.contains(h));
                }
                format!("@{name}: {}", joined(g))
            }
            "delete" => {
                if self.groups.saved.remove(&name).is_none() {
                    return Err(format!("no group @{name}"));
                }
                format!("deleted @{name}")
            }
            _ => return Err(usage.into()),
        };
        let note = self.save_group(&name);
        Ok(vec![r + note])
    }

    /// The members of group `name`: ours first, else the one a message named.
    fn group_members(&self, name: &str) -> Option<Vec<Handle>> {
        self.groups
            .saved
            .get(name)
            .or_else(|| self.groups.heard.get(name))
            .cloned()
    }

    /// Whom `target` (`*`, `@team`, `bob,carol`) names, and how the message names them.
    pub(super) fn recipients(&self, target: &str) -> Result<(To, Vec<Handle>), String> {
        let me = self.me.clone();
        let with_me = |m: &[Handle]| {
            let mut all = vec![me.clone()];
            all.extend(m.iter().filter(|h| **h != me).cloned());
            all
        };
        if target == "*" {
            return Ok((To::All, self.peers.map().keys().cloned().collect()));
        }
        if let Some(n) = target.strip_prefix('@') {
            let name = group_name(n)?;
            let m = self.group_members(&name).ok_or_else(|| {
                format!("no group @{name}; GROUP create {name} <handles...> makes one")
            })?;
            let to = To::Named(name, with_me(&m));
            let r = m.into_iter().filter(|h| *h != me).collect();
            return Ok((to, r));
        }
        let words: Vec<&str> = target.split(',').filter(|w| !w.is_empty()).collect();
        let m = handles(&words)?;
        if m.len() > MAX_MEMBERS {
            return Err(format!(
                "at most {MAX_MEMBERS} recipients at once; make a group"
            ));
        }
        let r: Vec<Handle> = m.iter().filter(|h| **h != me).cloned().collect();
        Ok((To::List(with_me(&m)), r))
    }

    /// MSG to several people: each gets it in the form it reads; one failure stops no one.
    pub(super) fn send_many(&mut self, conn: ConnId, id: u64, target: &str, text: &str) {
        if self.state != State::Joined {
            return self.reply(conn, id, Err("you are not in the chat; JOIN first".into()));
        }
        let (to, rcpt) = match self.recipients(target) {
            Ok(x) => x,
            Err(e) => return self.reply(conn, id, Err(e)),
        };
        if rcpt.is_empty() {
            let e = match to {
                To::All => "nobody else is here".to_string(),
                _ => format!("{} names nobody but you", to.label()),
            };
            return self.reply(conn, id, Err(e));
        }
        let gmsg = ext::group_msg(&self.me, &to, text);
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        let inner =
            ext::group_msg(&self.me, &to, text).filter(|g| g.len() <= crate::e2e::room(&self.me));
        for h in rcpt {
            let group_ext = self
                .peers
                .get(&h)
                .is_some_and(|p| p.exts.is_some_and(|e| e.group));
            let route = if self.peers.get(&h).is_some() {
                self.route(&h)
            } else {
                Route::Plain
            };
            let sealed = match route {
                Route::Plain => None,
                Route::Refuse(why) => {
                    failed.push(format!("{h} ({why})"));
                    continue;
                }
                r @ (Route::Sealed | Route::Wait) => Some(r),
            };
            if let Some(r) = sealed {
                // The group line itself when it fits a sealed datagram; else the text as MSG.
                let lines = match (&inner, group_ext) {
                    (Some(g), true) => Some(vec![g.clone()]),
                    _ => self.sealed_lines(text),
                };
                let Some(lines) = lines else {
                    failed.push(format!("{h} (too long)"));
                    continue;
                };
                self.stats.messages_out += 1;
                let res = if matches!(r, Route::Wait) {
                    self.queue_for(&h, lines, Some((conn, id)));
                    Ok(())
                } else {
                    lines.iter().try_for_each(|l| self.seal_to(&h, l))
                };
                match res {
                    Ok(()) => ok.push(h.to_string()),
                    Err(e) => failed.push(format!("{h} ({e})")),
                }
                continue;
            }
            let r = match self.peers.get_mut(&h) {
                None => Err("not here".to_string()),
                Some(p) if p.exts.is_some_and(|e| e.group) && gmsg.is_some() => {
                    let b = gmsg.clone().unwrap_or_default();
                    if p.forms.tcp {
                        self.out.tcp.push((p.addr, b));
                    } else {
                        self.out.udp.push((p.addr, b));
                    }
                    self.stats.messages_out += 1;
                    Ok(())
                }
                Some(_) => self.send_msg_unrecorded(&h, text),
            };
            match r {
                Ok(()) => ok.push(h.to_string()),
                Err(e) => failed.push(format!("{h} ({e})")),
            }
        }
        let label = to.label();
        let outcome = if failed.is_empty() {
            "sent".to_string()
        } else {
            format!("sent to {}; not to {}", ok.join(","), failed.join(", "))
        };
        self.record(&label, false, "text", text, &outcome);
        let r = if ok.is_empty() {
            Err(format!("{label}: nobody got it: {}", failed.join(", ")))
        } else if failed.is_empty() {
            Ok(vec![format!("to {label}: {}", ok.join(", "))])
        } else {
            Ok(vec![format!(
                "to {label}: {}; not to {}",
                ok.join(", "),
                failed.join(", ")
            )])
        };
        self.reply(conn, id, r);
    }

    /// Our hello, to a peer we just learned of (and, once, in answer to its own).
    pub(super) fn hello_to(&mut self, addr: SocketAddr, tcp: bool) {
        let exts = Exts {
            e2e: self.s.encryption != super::Encryption::Off,
            ..Exts::ALL
        };
        let b = ext::hello(&self.me, exts);
        if tcp {
            self.out.tcp.push((addr, b));
        } else {
            self.out.udp.push((addr, b));
        }
    }

    /// An extension message from `src`.
    pub(super) fn ext_message(
        &mut self,
        now: Instant,
        src: SocketAddr,
        m: Ext,
        via: Transport,
        terminated: bool,
    ) {
        match m {
            Ext::Hello {
                handle,
                version,
                exts,
            } => {
                // A hello can outrun the list that names its sender (our discovery's, when
                // discoveries speak for their hosts): from its own address it is as good a claim
                // as a JOIN.
                if self.peers.get(&handle).is_none()
                    && self.peers.at(src).is_none()
                    && via == Transport::Udp
                    && handle != self.me
                {
                    self.claim(now, &handle, src);
                }
                let Sender::Peer(h) = self.sender(&handle, src) else {
                    self.stats.refused += 1;
                    return debug!("hello from {src} ignored: it does not hold {handle}");
                };
                self.seen(now, &h, src, via, terminated);
                let Some(p) = self.peers.get_mut(&h) else {
                    return;
                };
                if p.exts.is_none() {
                    info!("{h} speaks slcp extensions v{version}: {}", exts.list());
                }
                p.exts = Some(exts);
                if exts.e2e {
                    self.e2e_hello(&h);
                }
                let Some(p) = self.peers.get_mut(&h) else {
                    return;
                };
                if p.hello_sent
                    .is_none_or(|t| now.duration_since(t) >= HELLO_ANSWERED)
                {
                    p.hello_sent = Some(now);
                    let (addr, tcp) = (p.addr, p.forms.tcp);
                    self.hello_to(addr, tcp);
                }
                self.release_held_messages(now, Some(&h));
            }
            Ext::Group { handle, to, text } => {
                self.stats.messages_in += 1;
                let from = match self.plain_sender(&handle, src) {
                    Sender::Peer(h) => {
                        self.seen(now, &h, src, via, terminated);
                        if let To::Named(name, members) = &to {
                            self.heard_group(name, &h, members);
                        }
                        h.to_string()
                    }
                    Sender::Unverified(s) => {
                        self.stats.refused += 1;
                        s
                    }
                };
                self.deliver_group(from, &to, text, Privacy::Plain);
            }
        }
    }

    /// A group message for the prompts, the plugins and the history.
    pub(super) fn deliver_group(&mut self, from: String, to: &To, text: String, privacy: Privacy) {
        let group = to.label();
        let outcome = match privacy {
            Privacy::Plain => "received",
            p => p.as_str(),
        };
        self.record(&group, true, "text", &format!("{from}: {text}"), outcome);
        self.attend(&from, &group, &text);
        self.event(Event::Group {
            from,
            group,
            text,
            privacy,
        });
    }

    /// Remembers who group `name` is, as its sender named it: so `MSG @name` answers all.
    pub(super) fn heard_group(&mut self, name: &str, from: &Handle, members: &[Handle]) {
        let mut m: Vec<Handle> = members.iter().filter(|h| **h != self.me).cloned().collect();
        if !m.contains(from) {
            m.insert(0, from.clone());
        }
        if !self.groups.heard.contains_key(name) && self.groups.heard.len() >= MAX_HEARD {
            // The oldest name goes (BTreeMap order is by name; any bound will do here).
            if let Some(k) = self.groups.heard.keys().next().cloned() {
                self.groups.heard.remove(&k);
            }
        }
        self.groups.heard.insert(name.to_owned(), m);
    }
}
