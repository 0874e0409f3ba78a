//! What the simulator counts: datagrams and bytes on the wire, sent and received per host per
//! second (what stays inside a host is counted apart), and
//! the fate of every delivery (received, lost, to a host that is down, to no listener), so
//! that nothing sent goes unaccounted.

use std::time::Duration;

/// Counts per second of virtual time, per host.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    hosts: usize,
    /// `[second][host]` datagrams received.
    recv: Vec<Vec<u32>>,
    /// `[second][host]` unicast datagrams received.
    unicast: Vec<Vec<u32>>,
    /// `[second][host]` datagrams sent (a broadcast counts once: one frame on the wire).
    sent: Vec<Vec<u32>>,
    /// Bytes received from the wire in all (UDP payload).
    pub bytes_received: u64,
    /// Bytes put on the wire in all.
    pub bytes_sent: u64,
    /// Datagrams put on the wire in all (a broadcast once).
    pub datagrams_sent: u64,
    /// Of those, broadcasts (heard by every host; what a capture on a bridge device sees of
    /// the LAN, since switched unicasts pass it by).
    pub broadcasts_sent: u64,
    /// Datagrams sent within a host (to loopback or its own address).
    pub sent_local: u64,
    /// Datagrams received in all, from the wire and from the host itself.
    pub datagrams_received: u64,
    /// Of those, from the host itself (its own broadcasts, loopback).
    pub received_local: u64,
    /// Of those, by a discovery (the rest by clients).
    pub received_by_discovery: u64,
    /// Receivers a datagram was sent towards (a broadcast counts once per host).
    pub deliveries: u64,
    /// Deliveries lost on the wire.
    pub lost: u64,
    /// Deliveries that reached a host that was down.
    pub to_dead: u64,
    /// Deliveries that reached a port where nothing listens (or an address no host has).
    pub no_listener: u64,
    /// ICMP port unreachable answers (unicasts to a closed port of a host that is up).
    pub icmp: u64,
    /// SLCP lines a client wanted to send over TCP (not simulated; counted).
    pub tcp_lines: u64,
    /// Datagrams received from the wire, by broadcast or not and their first word (at most 12
    /// bytes): a key without an allocation, since every delivery counts.
    words: std::collections::HashMap<(bool, [u8; 12]), u64>,
}

fn bump(v: &mut Vec<Vec<u32>>, hosts: usize, now: Duration, h: usize) {
    let s = now.as_secs() as usize;
    while v.len() <= s {
        v.push(vec![0; hosts]);
    }
    if v[s].len() < hosts {
        v[s].resize(hosts, 0);
    }
    v[s][h] += 1;
}

impl Metrics {
    pub(super) fn grow(&mut self, hosts: usize) {
        self.hosts = hosts;
    }

    pub(super) fn received(
        &mut self,
        now: Duration,
        h: usize,
        bytes: &[u8],
        local: bool,
        cast: bool,
    ) {
        self.datagrams_received += 1;
        if local {
            self.received_local += 1;
            return;
        }
        self.bytes_received += bytes.len() as u64;
        bump(&mut self.recv, self.hosts, now, h);
        let word = bytes
            .split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        let mut key = (cast, [0u8; 12]);
        let n = word.len().min(12);
        key.1[..n].copy_from_slice(&word[..n]);
        if self.words.len() < 64 || self.words.contains_key(&key) {
            *self.words.entry(key).or_default() += 1;
        }
        if !cast {
            bump(&mut self.unicast, self.hosts, now, h);
        }
    }

    /// Datagrams received from the wire, by their first word (what the traffic is made of),
    /// broadcasts as `broadcast <word>`.
    pub fn by_word(&self) -> std::collections::BTreeMap<String, u64> {
        self.words
            .iter()
            .map(|((cast, w), n)| {
                let w = String::from_utf8_lossy(w);
                let w = w.trim_end_matches('\0');
                let key = format!("{}{w}", if *cast { "broadcast " } else { "" });
                (key, *n)
            })
            .collect()
    }

    pub(super) fn sent(&mut self, now: Duration, h: usize, bytes: usize, on_wire: bool) {
        if !on_wire {
            self.sent_local += 1;
            return;
        }
        self.datagrams_sent += 1;
        self.bytes_sent += bytes as u64;
        bump(&mut self.sent, self.hosts, now, h);
    }

    fn seconds(v: &[Vec<u32>], from: Duration, to: Duration) -> &[Vec<u32>] {
        let a = (from.as_secs() as usize).min(v.len());
        let b = (to.as_secs() as usize).min(v.len());
        &v[a..b]
    }

    /// The most datagrams one host received in one second of [from, to).
    pub fn peak_received(&self, from: Duration, to: Duration) -> u32 {
        Self::seconds(&self.recv, from, to)
            .iter()
            .flat_map(|s| s.iter().copied())
            .max()
            .unwrap_or(0)
    }

    /// Datagrams received per host per second over [from, to), averaged over `hosts` hosts.
    pub fn received_per_host(&self, from: Duration, to: Duration, hosts: usize) -> f64 {
        let total: u64 = Self::seconds(&self.recv, from, to)
            .iter()
            .flat_map(|s| s.iter().map(|&x| u64::from(x)))
            .sum();
        let secs = (to.as_secs() - from.as_secs()).max(1) as f64;
        total as f64 / secs / hosts.max(1) as f64
    }

    /// Unicast datagrams received per host per second over [from, to), averaged.
    pub fn unicast_per_host(&self, from: Duration, to: Duration, hosts: usize) -> f64 {
        let total: u64 = Self::seconds(&self.unicast, from, to)
            .iter()
            .flat_map(|s| s.iter().map(|&x| u64::from(x)))
            .sum();
        let secs = (to.as_secs() - from.as_secs()).max(1) as f64;
        total as f64 / secs / hosts.max(1) as f64
    }

    /// Datagrams put on the LAN per second over [from, to), all hosts together.
    pub fn sent_on_lan(&self, from: Duration, to: Duration) -> f64 {
        let total: u64 = Self::seconds(&self.sent, from, to)
            .iter()
            .flat_map(|s| s.iter().map(|&x| u64::from(x)))
            .sum();
        total as f64 / (to.as_secs() - from.as_secs()).max(1) as f64
    }

    /// Datagrams sent in [from, to), all hosts together.
    pub fn sent_between(&self, from: Duration, to: Duration) -> u64 {
        Self::seconds(&self.sent, from, to)
            .iter()
            .flat_map(|s| s.iter().map(|&x| u64::from(x)))
            .sum()
    }
}
