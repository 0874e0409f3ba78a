//! The discovery as its host's voice on the LAN (README "Discovery at scale"): this host's slcp
//! clients send their JOIN and WHO to it alone; it announces a new local user at once (paced
//! while many hosts announce theirs), refreshes them at an interval that grows with the number of users
//! (RTCP's rule: the LAN's total stays near 15 a second), answers a
//! remote WHO only when it is one of [`ANSWERERS`] discoveries chosen for the asker, tells the
//! LAN at once when a local user's port closes, and at start asks three other discoveries for
//! their lists. All of it is plain SLCP.
//!
//! Pure like the table: time comes in, datagrams go out; the jitter is a hash of this host's
//! address and a counter, so a run is the same every time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use log::{debug, info};
use slcp_core::codec::{self, Handle, Message, UserEntry};
use slcp_core::net;

use crate::mix;
use crate::table::{Entry, MAX_ENTRIES, MAX_PER_SOURCE, Out, Table};

/// Host refreshes per second on the whole LAN that the refresh interval aims at.
pub const REFRESH_RATE: f64 = 18.0;
/// The shortest refresh interval is the expiry over this (35 s: 10 s, the clients' own
/// heartbeat by default).
const MIN_REFRESH_DIV: f64 = 3.5;
/// Discoveries that answer one remote WHO.
pub const ANSWERERS: usize = 2;
/// Other discoveries a discovery asks for their lists at start.
const ASKED: usize = 3;
/// Datagrams per second from other hosts above which our question at start waits, and an
/// announcement is said once, not twice.
const BUSY: u32 = 250;
/// Announcements of new users per second the whole LAN aims at while many hosts start at
/// once (a floor powering up): each is a broadcast every host receives.
const NEWS_RATE: f64 = 150.0;
/// New users heard in the last second above which the LAN is still announcing (our question
/// at start waits): twice the refresh rate, since to a discovery that just started every
/// refresh of the LAN names a user new to it.
const QUIET_NEWS: usize = 2 * REFRESH_RATE as usize;
/// New users of other hosts heard in the last [`NEWS_WINDOW`] up to which the LAN is quiet (a
/// join, not a floor powering up).
const QUIET_JOINS: usize = 4;
/// How far back new users heard count towards the pace of our own announcements.
const NEWS_WINDOW: Duration = Duration::from_secs(10);
/// How often each local user's port is checked (a datagram a closed port bounces).
const LOCAL_PROBE: Duration = Duration::from_secs(5);
/// An announcement or a LEAVE goes out again this much later, and again three times as late
/// (mDNS announces more than once too): with loss p per delivery a host misses all three with
/// p cubed, so at 1 % loss a LAN of a thousand hosts all hear a join within the second
/// (twice, one join in ten left some host waiting a refresh interval). While others join too
/// it is said twice (see `relay_tick`).
pub(crate) const AGAIN: [Duration; 2] = [Duration::from_millis(250), Duration::from_millis(750)];
/// The bootstrap WHO goes out within this long after start.
const BOOTSTRAP_SPREAD: Duration = Duration::from_secs(5);
/// How long after our own WHO the answers of other discoveries are taken into the table.
const BOOTSTRAP: Duration = Duration::from_secs(5);

/// Another host's discovery, as heard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heard {
    /// When its port last sent us something.
    pub(crate) at: Instant,
    /// It speaks for its host's users (a JOIN came from its port): an slcp discovery, watched
    /// (watch.rs).
    pub(crate) speaks: bool,
}

/// What the relay keeps beside the table.
#[derive(Debug)]
pub struct Relay {
    pub(crate) whoisport: u16,
    pub(crate) targets: Vec<SocketAddr>,
    pub(crate) me: IpAddr,
    /// Other hosts' discoveries, by address, with when they were last heard.
    /// (In the order first heard: the picks of the question at start are a draw among them.)
    pub(crate) discoveries: IndexMap<IpAddr, Heard>,
    /// Local users to announce: since when, and the draw in [0, 1) that places the
    /// announcement within the spread the news of the LAN calls for.
    announce: Vec<(Instant, f64, Handle)>,
    /// When each new user of another host was heard of, the last [`NEWS_WINDOW`] (bounded).
    news: std::collections::VecDeque<Instant>,
    /// Datagrams from other hosts: (start of this second, this second's count, last second's).
    heard: (Option<Instant>, u32, u32),
    /// The refresh: from when, and the draw that times it (a share of the refresh interval,
    /// taken again at each look, so a table that grew meanwhile pushes it back). None while
    /// there is no local user: the clock starts at the first announcement, which is itself the
    /// first refresh, so when the discovery started (at boot, or minutes before anyone) does
    /// not matter.
    refresh: Option<(Instant, f64)>,
    next_probe: Option<Instant>,
    asked: Option<Instant>,
    /// Users the lists asked for at start taught us (we had missed their announcement), and
    /// whether a second round of asking is still to come.
    taught: usize,
    ask_again: bool,
    /// When the bootstrap WHO is due.
    ask_at: Option<Instant>,
    /// Datagrams to broadcast a second time, and when.
    pub(crate) again: Vec<(Instant, Vec<u8>)>,
    /// Announcements said once because the LAN was busy, to say again once it is quiet.
    after_storm: Vec<Vec<u8>>,
    /// The other hosts this one watches (`watch.rs`).
    pub(crate) watch: crate::table::watch::Watch,
    turn: u64,
}

impl Relay {
    /// When an announcement queued at `since` with draw `u` goes out: `u` of the time the
    /// users heard of lately take at [`NEWS_RATE`]. On a quiet LAN that is at once; while a
    /// floor powers up, the spread grows with every announcement heard, so each host's draw
    /// is weighed against what the others already said (RTCP's timer reconsideration) and
    /// the LAN's rate stays near the aim whatever the number of hosts.
    fn announce_at(&self, (since, u, _): &(Instant, f64, Handle)) -> Instant {
        *since + Duration::from_secs_f64(u * self.news.len() as f64 / NEWS_RATE)
    }

    fn forget_news(&mut self, now: Instant) {
        while self
            .news
            .front()
            .is_some_and(|t| now.duration_since(*t) > NEWS_WINDOW)
        {
            self.news.pop_front();
        }
    }

    fn unit(&mut self) -> f64 {
        self.turn += 1;
        let seed = match self.me {
            IpAddr::V4(v) => u64::from(u32::from(v)),
            IpAddr::V6(v) => u128::from(v) as u64,
        };
        mix::unit(mix::finalize(
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(self.turn.wrapping_mul(0xbf58_476d_1ce4_e5b9)),
        ))
    }
}

/// Rendezvous weight of answerer `who` for asker `asker`.
pub(crate) fn weight(asker: IpAddr, who: IpAddr) -> u64 {
    let bits = |ip: IpAddr| match ip {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v) as u64,
    };
    let mut z = bits(asker) ^ bits(who).rotate_left(32) ^ 0x6a09_e667_f3bc_c909;
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

impl Table {
    /// Makes this discovery its host's voice on the LAN: `targets` are the broadcast
    /// addresses (with the discovery port), `me` this host's LAN address.
    pub fn set_relay(&mut self, whoisport: u16, targets: Vec<SocketAddr>, me: IpAddr) {
        self.relay = Some(Relay {
            whoisport,
            targets,
            me,
            discoveries: IndexMap::new(),
            announce: Vec::new(),
            news: std::collections::VecDeque::new(),
            heard: (None, 0, 0),
            refresh: None,
            next_probe: None,
            asked: None,
            taught: 0,
            ask_again: true,
            after_storm: Vec::new(),
            ask_at: None,
            again: Vec::new(),
            watch: Default::default(),
            turn: 0,
        });
    }

    /// At start: plans one WHO from the discovery port to three other discoveries (the lists
    /// they send back fill the table), at a random moment of the first 5 s, once another
    /// discovery has been heard and the LAN has stopped announcing new users: a floor of hosts
    /// powering up together learns everything from the announcements, and pays three WHO and
    /// three lists per host (which fill what loss made it miss), not one broadcast each.
    pub fn start(&mut self, now: Instant) -> Out {
        let Some(r) = self.relay.as_mut() else {
            return Vec::new();
        };
        r.ask_at = Some(now + BOOTSTRAP_SPREAD.mul_f64(r.unit()));
        r.next_probe = Some(now + LOCAL_PROBE);
        Vec::new()
    }

    /// How long between two refreshes of this host's users, for the users we know of: each
    /// user's JOIN once per interval keeps the LAN's total near [`REFRESH_RATE`] a second.
    pub fn refresh_interval(&self) -> Duration {
        let users = self.entries().len().max(1);
        let least = self.expiry.div_f64(MIN_REFRESH_DIV);
        least.max(Duration::from_secs_f64(users as f64 / REFRESH_RATE))
    }

    /// Remote users live this long without a refresh: three and a half refresh intervals, so
    /// that only three lost in a row drop a user (a host switched off is told by its watchers
    /// within one interval, watch.rs; this is for when they are gone too).
    pub(crate) fn remote_expiry(&self) -> Duration {
        match self.relay {
            Some(_) => self.expiry.max(self.refresh_interval().mul_f64(3.5)),
            None => self.expiry,
        }
    }

    pub(crate) fn is_local(&self, ip: IpAddr) -> bool {
        net::is_local(ip, &self.local_ips)
    }

    /// A datagram this host's discovery port sent (our broadcast, heard back).
    pub(crate) fn own_echo(&self, src: SocketAddr) -> bool {
        self.relay
            .as_ref()
            .is_some_and(|r| src.port() == r.whoisport && self.is_local(src.ip()))
    }

    /// Notes a datagram from `src` (its rate, and whether a discovery sent it).
    pub(crate) fn heard(&mut self, now: Instant, src: SocketAddr) {
        let local = self.is_local(src.ip());
        let Some(r) = self.relay.as_mut() else { return };
        if local {
            return;
        }
        match r.heard.0 {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => r.heard.1 += 1,
            Some(t) if now.duration_since(t) < Duration::from_secs(2) => {
                r.heard = (Some(t + Duration::from_secs(1)), 1, r.heard.1)
            }
            _ => r.heard = (Some(now), 1, 0),
        }
        if src.port() == r.whoisport
            && (r.discoveries.len() < MAX_ENTRIES || r.discoveries.contains_key(&src.ip()))
        {
            let e = r.discoveries.entry(src.ip());
            let i = e.index();
            let h = e.or_insert(Heard {
                at: now,
                speaks: false,
            });
            h.at = now;
            if h.speaks {
                self.watch_heard(now, src.ip(), i);
            }
        }
    }

    /// A user is new (or moved). A local one is announced on the LAN: at once when the LAN is
    /// quiet, and while many hosts announce theirs, at the moment its draw gives within the
    /// spread they call for ([`Relay::announce_at`]). A remote one is news that sets that
    /// spread.
    pub(crate) fn queue_announce(&mut self, now: Instant, h: &Handle, ip: IpAddr) {
        let local = self.is_local(ip);
        let Some(r) = self.relay.as_mut() else { return };
        if !local {
            if r.news.len() >= MAX_ENTRIES {
                r.news.pop_front();
            }
            r.news.push_back(now);
            return;
        }
        let u = r.unit();
        r.announce.retain(|(_, _, x)| x != h);
        r.announce.push((now, u, h.clone()));
    }

    /// Whether this discovery is one of those chosen to answer a WHO from `asker`.
    pub(crate) fn answers(&self, now: Instant, asker: SocketAddr) -> bool {
        let Some(r) = self.relay.as_ref() else {
            return true;
        };
        if self.is_local(asker.ip()) {
            return true;
        }
        // Discoveries never broadcast WHO: one from a discovery's port was sent to us alone.
        let from_discovery = asker.port() == r.whoisport;
        from_discovery || self.outranked(now, asker.ip(), false) < ANSWERERS
    }

    /// How many other discoveries heard lately (only slcp ones when `speakers`) rank above this
    /// one for `target` (rendezvous hashing: WHO answerers, watchers).
    pub(crate) fn outranked(&self, now: Instant, target: IpAddr, speakers: bool) -> usize {
        let Some(r) = self.relay.as_ref() else {
            return 0;
        };
        let alive = self.remote_expiry();
        let mine = weight(target, r.me);
        r.discoveries
            .iter()
            .filter(|(ip, h)| (h.speaks || !speakers) && **ip != target)
            .filter(|(_, h)| now.duration_since(h.at) <= alive)
            .filter(|(ip, _)| weight(target, **ip) > mine)
            .count()
    }

    /// The list another discovery sent for our WHO at start: users we did not know yet.
    pub(crate) fn take_list(
        &mut self,
        now: Instant,
        src: SocketAddr,
        users: Vec<UserEntry>,
        out: &mut Out,
    ) {
        if self.asked_alive(now, src, &users, out) {
            return;
        }
        let Some(r) = self.relay.as_ref() else { return };
        let fresh = r.asked.is_some_and(|t| now.duration_since(t) <= BOOTSTRAP);
        if !fresh || src.port() != r.whoisport || self.is_local(src.ip()) {
            return;
        }
        for u in users {
            if self.entries().contains_key(&u.handle)
                || self.is_local(u.ip)
                || !slcp_core::client::peers::is_unicast(u.ip)
                || self.entries().len() >= MAX_ENTRIES
            {
                continue;
            }
            debug!("{} at {}:{} learned from {src}", u.handle, u.ip, u.port);
            if let Some(r) = self.relay.as_mut() {
                r.taught += 1;
            }
            self.insert_heard(now, u.handle.clone(), u.ip, u.port, u.away);
            let m = Message::KnowUsers(vec![u.clone()]);
            self.relay(now, &u.handle, &m, out);
        }
    }

    /// A local user is gone: the LAN hears its LEAVE from this host, at once when its port
    /// closed, and [`AGAIN`] in both cases (a client that left `said` it once itself: a host
    /// that missed that broadcast would keep a ghost for three refresh intervals).
    pub(crate) fn gone_local(
        &mut self,
        now: Instant,
        h: &Handle,
        ip: IpAddr,
        said: bool,
        out: &mut Out,
    ) {
        if !self.is_local(ip) {
            return;
        }
        let Some(r) = self.relay.as_mut() else { return };
        if let Ok(b) = codec::encode(&Message::Leave { handle: h.clone() }) {
            if !said {
                for t in &r.targets {
                    out.push((*t, b.clone()));
                }
            }
            r.again.extend(AGAIN.iter().map(|a| (now + *a, b.clone())));
        }
    }

    /// Announcements due, the refresh and the local probes.
    pub(crate) fn relay_tick(&mut self, now: Instant, out: &mut Out) {
        let interval = self.refresh_interval();
        let has_local = !self.locals.is_empty();
        let Some(r) = self.relay.as_mut() else { return };
        r.forget_news(now);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut r.announce)
            .into_iter()
            .partition(|a| r.announce_at(a) <= now);
        r.announce = later;
        let due: Vec<Handle> = due.into_iter().map(|(_, _, h)| h).collect();
        let busy = r.heard.1.max(r.heard.2);
        let backoff =
            |r: &mut Relay| Duration::from_secs_f64(f64::from(busy) / f64::from(BUSY) * r.unit());
        // Lists that taught us users we had missed show the storm cost us announcements; the
        // first lists may have been asked before the last of them went out, so ask once more
        // (three others again). Without loss they teach nothing, and nobody asks twice.
        if r.ask_again && r.asked.is_some_and(|t| now >= t + BOOTSTRAP) {
            r.ask_again = false;
            if r.taught > 0 {
                info!(
                    "the lists at start taught us {} users; asking again",
                    r.taught
                );
                r.ask_at = Some(now + BOOTSTRAP_SPREAD.mul_f64(r.unit()));
            }
        }
        if r.ask_at.is_some_and(|t| now >= t) && busy > BUSY {
            r.ask_at = Some(now + backoff(r));
        }
        // While new users are still being announced (a floor powering up), a list asked for now
        // would lack them: the question waits until the news stops, then goes out at a moment
        // of the next few seconds (so the hosts do not all ask at once), and its answers fill
        // what the storm made us miss.
        let lately = r
            .news
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < Duration::from_secs(1))
            .count();
        if r.ask_at.is_some_and(|t| now >= t) && lately > QUIET_NEWS {
            r.ask_at = Some(now + Duration::from_secs(1) + BOOTSTRAP_SPREAD.mul_f64(r.unit()));
        }
        // Our question waits for our own users to be announced: another discovery tells a
        // host none of whose users it knows the first datagram of its list only (see
        // `Table::who`), and a discovery's lists are for its clients anyway. Announced means
        // sent before the question, not in this same turn.
        if r.ask_at.is_some_and(|t| now >= t)
            && (!has_local || !r.announce.is_empty() || !due.is_empty())
        {
            let next = r.announce.iter().map(|a| r.announce_at(a)).min();
            r.ask_at = Some(match next {
                Some(t) => t.max(now) + Duration::from_millis(10),
                None if due.is_empty() => now + BOOTSTRAP_SPREAD,
                None => now + Duration::from_millis(10),
            });
        }
        if r.ask_at.is_some_and(|t| now >= t) {
            let n = r.discoveries.len();
            if n == 0 {
                // Nobody to ask yet: whoever comes will announce its users anyway.
                r.ask_at = Some(now + BOOTSTRAP_SPREAD);
            } else {
                // Three of them: what one missed in a storm (or lost on the way back), the
                // others most likely have.
                let want = ASKED.min(n);
                let mut picks: Vec<usize> = Vec::new();
                for _ in 0..64 {
                    let i = ((r.unit() * n as f64) as usize).min(n - 1);
                    if !picks.contains(&i) {
                        picks.push(i);
                    }
                    if picks.len() == want {
                        break;
                    }
                }
                let ask: Vec<IpAddr> = picks
                    .iter()
                    .filter_map(|&i| r.discoveries.get_index(i).map(|(ip, _)| *ip))
                    .collect();
                r.ask_at = None;
                r.asked = Some(now);
                if let Ok(who) = codec::encode(&Message::Who) {
                    for ip in ask {
                        out.push((SocketAddr::new(ip, r.whoisport), who.clone()));
                    }
                }
            }
        }
        let refresh = r
            .refresh
            .is_some_and(|(from, d)| now >= from + interval.mul_f64(d));
        let probe = r.next_probe.is_some_and(|t| now >= t);
        let local: Vec<(Handle, Entry)> = self
            .locals
            .iter()
            .filter_map(|h| self.entries().get(h).map(|e| (h.clone(), e.clone())))
            .collect();
        // One JOIN per datagram, as every implementation reads it (several lines in one
        // datagram are a tolerance, not something to rely on).
        let joins = |which: &dyn Fn(&Handle) -> bool| -> Vec<Vec<u8>> {
            local
                .iter()
                .filter(|(h, _)| which(h))
                .filter_map(|(h, e)| {
                    codec::encode(&Message::Join {
                        handle: h.clone(),
                        port: e.port,
                    })
                    .ok()
                })
                .collect()
        };
        let fresh = joins(&|h| due.contains(h));
        let mut send = if refresh {
            joins(&|_| true)
        } else {
            fresh.clone()
        };
        if probe {
            for (_, e) in local.iter().filter(|(_, e)| e.own_port) {
                let to = SocketAddr::new(e.ip, e.port);
                if let Some(b) = self.answer_first(now, self.forms_of(to)) {
                    out.push((to, b));
                }
            }
        }
        let Some(r) = self.relay.as_mut() else { return };
        if local.is_empty() {
            r.refresh = None;
        } else if refresh {
            // On the dot: the watchers (watch.rs) ask a host whose refresh is late.
            r.refresh = Some((now, 1.0));
        } else if r.refresh.is_none() && !due.is_empty() {
            // The first refresh at a moment of the first interval, so hosts powered up
            // together do not refresh together (then or ever after).
            r.refresh = Some((now, r.unit()));
        }
        if probe {
            r.next_probe = Some(now + LOCAL_PROBE);
        }
        let (again, later): (Vec<_>, Vec<_>) = std::mem::take(&mut r.again)
            .into_iter()
            .partition(|(t, _)| *t <= now);
        r.again = later;
        send.extend(again.into_iter().map(|(_, d)| d));
        // Said again against loss, unless the LAN is busy (the list we ask for at start, after
        // the storm, fills what was missed then). Three times for a user joining a quiet LAN
        // (hardly any new users heard lately); twice while others are joining too (a floor
        // powering up), where every extra copy lands in the busiest second of the storm.
        if busy <= BUSY / 2 {
            let quiet = r.news.len() <= QUIET_JOINS;
            let copies = if quiet { &AGAIN[..] } else { &AGAIN[..1] };
            for d in fresh {
                r.again.extend(copies.iter().map(|a| (now + *a, d.clone())));
            }
            // What was said once in the storm goes out once more now that it is over, at a
            // moment of the next few seconds: a host that lost it late in the storm, after
            // its lists were asked for, would otherwise wait a refresh interval.
            if !r.after_storm.is_empty() {
                let at = now + BOOTSTRAP_SPREAD.mul_f64(r.unit());
                let later = std::mem::take(&mut r.after_storm);
                r.again.extend(later.into_iter().map(|d| (at, d)));
            }
        } else {
            let room = MAX_PER_SOURCE.saturating_sub(r.after_storm.len());
            r.after_storm.extend(fresh.into_iter().take(room));
        }
        for d in send.drain(..) {
            for t in &r.targets {
                out.push((*t, d.clone()));
            }
        }
        if !due.is_empty() {
            info!("announced {} local users on the LAN", due.len());
        }
        if refresh {
            debug!("refreshed {} local users on the LAN", local.len());
        }
    }

    /// When the relay must run next.
    pub(crate) fn relay_deadline(&self) -> Option<Instant> {
        let interval = self.refresh_interval();
        let r = self.relay.as_ref()?;
        [
            r.announce.iter().map(|a| r.announce_at(a)).min(),
            r.again.iter().map(|(t, _)| *t).min(),
            r.ask_at,
            r.asked.filter(|_| r.ask_again).map(|t| t + BOOTSTRAP),
            r.refresh.map(|(from, d)| from + interval.mul_f64(d)),
            r.next_probe,
            self.watch_deadline(interval),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// This host's LAN address among `local` (loopback when it has none).
pub(crate) fn lan_address(local: &[Ipv4Addr]) -> IpAddr {
    IpAddr::V4(
        local
            .iter()
            .find(|ip| !ip.is_loopback())
            .copied()
            .unwrap_or(Ipv4Addr::LOCALHOST),
    )
}
