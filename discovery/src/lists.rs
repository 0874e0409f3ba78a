//! The lists a discovery sends: the whole table for a WHO (kept encoded while nothing listed
//! changes), its first datagram for a probe, and what changed for this host's clients.

use std::net::SocketAddr;
use std::time::Instant;

use slcp_core::codec::{self, Forms, Handle, Message, UserEntry};
use slcp_core::net;

use super::{Entry, Out, Table};

impl Table {
    /// The whole list in `forms`: this host's users first (a reader that takes one datagram
    /// gets them whatever else fits).
    pub(crate) fn answer(&self, now: Instant, forms: Forms) -> Vec<Vec<u8>> {
        // The same list as last time while nothing listed changed and nobody can have expired
        // (before `expire_at`): every local client asks each heartbeat, and a table of
        // thousands is costly to encode.
        let fresh = self.expire_at.is_some_and(|t| now <= t);
        if let Some((generation, f, list)) = &*self.answer_cache.borrow()
            && fresh
            && *generation == self.generation
            && *f == forms
        {
            return list.clone();
        }
        let list = self.encode_answer(now, forms);
        *self.answer_cache.borrow_mut() = Some((self.generation, forms, list.clone()));
        list
    }

    fn encode_answer(&self, now: Instant, forms: Forms) -> Vec<Vec<u8>> {
        let mut list: Vec<(bool, UserEntry)> = self
            .entries
            .iter()
            .filter(|(_, e)| self.alive(e, now))
            .map(|(h, e)| {
                let local = net::is_local(e.ip, &self.local_ips);
                let mut u = UserEntry::new(h.clone(), e.ip, e.port);
                u.away = e.away;
                (!local, u)
            })
            .collect();
        // This host's users first (a reader that keeps one datagram still learns them), the
        // rest in the order they were learned. Sorting them by handle too cost the simulator
        // a fifth of its time (every list is encoded again after each change).
        list.sort_by_key(|(remote, _)| *remote);
        let list: Vec<UserEntry> = list.into_iter().map(|(_, u)| u).collect();
        codec::encode_knowusers_for(&list, &forms)
    }

    /// The first datagram of [`Table::answer`] (a probe, or a list for a reader that keeps
    /// only one), without encoding the rest: a datagram holds at most 40 entries (each is at
    /// least 12 bytes of 512), so this host's users and the first 64 others are enough.
    pub(crate) fn answer_first(&self, now: Instant, forms: Forms) -> Option<Vec<u8>> {
        if forms.one_datagram {
            return self.answer(now, forms).into_iter().next();
        }
        let entry = |(h, e): (&Handle, &Entry)| {
            let mut u = UserEntry::new(h.clone(), e.ip, e.port);
            u.away = e.away;
            u
        };
        let local = self
            .locals
            .iter()
            .filter_map(|h| self.entries.get_key_value(h))
            .filter(|(_, e)| self.alive(e, now));
        let remote = self
            .entries
            .iter()
            .filter(|(_, e)| !net::is_local(e.ip, &self.local_ips) && self.alive(e, now))
            .take(64);
        let list: Vec<UserEntry> = local.chain(remote).map(entry).collect();
        codec::encode_knowusers_for(&list, &forms)
            .into_iter()
            .next()
    }

    /// Tells this host's clients (all but `except`) what changed.
    pub(crate) fn relay(&mut self, now: Instant, except: &Handle, what: &Message, out: &mut Out) {
        let targets: Vec<(SocketAddr, Forms)> = self
            .locals
            .iter()
            .filter(|h| *h != except)
            .filter_map(|h| self.entries.get(h))
            .map(|e| {
                let a = SocketAddr::new(e.ip, e.port);
                (a, self.forms_of(a))
            })
            .collect();
        for (to, forms) in targets {
            let bytes = if forms.one_datagram {
                // It replaces its list with each KNOWUSERS it reads: give it the whole list.
                self.answer_first(now, forms)
            } else {
                codec::encode(what).ok()
            };
            if let Some(b) = bytes {
                self.stats.relayed += 1;
                out.push((to, b));
            }
        }
    }
}
