//! The discovery table's clock: claims waiting for their probe, entries that expire, and the
//! ports that bounced (a user gone). Part of [`Table`], kept apart as the time-driven half.

use std::net::SocketAddr;
use std::time::Instant;

use log::info;
use slcp_core::codec::{Forms, Handle, Message, UserEntry};

use super::{Out, Table};

impl Table {
    /// A datagram we sent to `addr` bounced (port unreachable): whoever held it is gone, and a
    /// claim that waited for that probe takes over.
    pub fn bounced(&mut self, now: Instant, addr: SocketAddr) -> Out {
        let mut out = Vec::new();
        // A handle a waiting claim takes over is moved, not left.
        let taken: Vec<Handle> = self
            .pending
            .iter()
            .filter(|p| p.old == addr)
            .map(|p| p.handle.clone())
            .collect();
        let gone: Vec<Handle> = self
            .entries
            .iter()
            .filter(|(h, e)| {
                e.own_port && self.same_client(e, addr.ip(), addr.port()) && !taken.contains(h)
            })
            .map(|(h, _)| h.clone())
            .collect();
        for h in gone {
            info!("{h} at {addr} is gone (its port is closed)");
            self.take(&h);
            let leave = Message::Leave { handle: h.clone() };
            self.relay(now, &h, &leave, &mut out);
            self.gone_local(now, &h, addr.ip(), false, &mut out);
        }
        let (won, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.old == addr);
        self.pending = keep;
        for p in won {
            info!(
                "{} moved from {} to {}:{}",
                p.handle, p.old, p.entry.ip, p.entry.port
            );
            let m = Message::KnowUsers(vec![UserEntry::new(
                p.handle.clone(),
                p.entry.ip,
                p.entry.port,
            )]);
            self.put(p.handle.clone(), p.entry);
            self.relay(now, &p.handle, &m, &mut out);
        }
        out
    }

    /// When [`Table::tick`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let claims = self.pending.iter().map(|p| p.deadline).min();
        match (claims, self.relay_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Refuses the claims whose probe was not bounced (the holder is alive), drops expired
    /// entries, and every `expiry` probes the entries that never heartbeat; returns what to
    /// send.
    pub fn tick(&mut self, now: Instant) -> Out {
        let before = self.pending.len();
        self.pending.retain(|p| p.deadline > now);
        self.stats.clashes += (before - self.pending.len()) as u64;
        let mut out = Vec::new();
        for h in self.expire(now) {
            let leave = Message::Leave { handle: h.clone() };
            self.relay(now, &h, &leave, &mut out);
        }
        self.relay_tick(now, &mut out);
        self.watch_tick(now, &mut out);
        let due = self.next_probe_round.is_none_or(|t| now >= t);
        if due {
            self.next_probe_round = Some(now + self.expiry);
            // A user that never heartbeats is kept while its port is open: ask it.
            let silent: Vec<(SocketAddr, Forms)> = self
                .entries
                .values()
                .filter(|e| {
                    !e.refreshed && e.own_port && now.duration_since(e.joined) >= self.expiry
                })
                .map(|e| {
                    let a = SocketAddr::new(e.ip, e.port);
                    (a, self.forms_of(a))
                })
                .collect();
            for (to, forms) in silent {
                if let Some(b) = self.answer_first(now, forms) {
                    out.push((to, b));
                }
            }
        }
        out
    }

    /// Drops the heartbeating entries not refreshed for longer than the expiry; returns their
    /// handles.
    pub fn expire(&mut self, now: Instant) -> Vec<Handle> {
        if self.expire_at.is_some_and(|t| now <= t) {
            return Vec::new();
        }
        // Nobody expires before the oldest refresh does: refreshes only move forward, a new
        // or newly heartbeating entry lives at least `expiry` from now, and remote entries
        // live at least as long (a table that shrinks shortens their life, then they go at
        // the next look, within `expiry`). A table of thousands is not scanned every sweep.
        let remote = self.remote_expiry();
        self.expire_at = self
            .entries
            .values()
            .filter(|e| e.refreshed && self.alive(e, now))
            .map(|e| {
                let life = if self.is_local(e.ip) {
                    self.expiry
                } else {
                    remote
                };
                e.last_seen + life
            })
            .chain([now + self.expiry])
            .min();
        let stale: Vec<(Handle, std::net::IpAddr)> = self
            .entries
            .iter()
            .filter(|(_, e)| !self.alive(e, now))
            .map(|(h, e)| (h.clone(), e.ip))
            .collect();
        let mut gone = Vec::new();
        for (h, ip) in stale {
            if self.ask_before_drop(now, ip) {
                // Kept, but out of the lists until its host answers.
                self.generation += 1;
            } else {
                gone.push(h);
            }
        }
        for h in &gone {
            info!("{h} expired");
            self.take(h);
        }
        gone
    }
}
