//! The scenarios the figures come from: a cold start, the steady state, and one join, one leave
//! and one crash on a converged LAN, each with the time until every client knows and the
//! datagrams it put on the wire beyond the steady state's.

use std::time::{Duration, Instant};

use super::{Config, Sim, handle};
use crate::relay::REFRESH_RATE;

/// The figures of one LAN size.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Hosts (one user each).
    pub hosts: usize,
    /// Loss per delivery.
    pub loss: f64,
    /// Cold start (all start within 1 s): until everyone knows everyone.
    pub cold: Option<Duration>,
    /// The most datagrams one host received in one second of the cold start (until it settled).
    pub cold_peak: u32,
    /// Steady state: datagrams received per host per second (from the wire).
    pub steady_per_host: f64,
    /// Steady state: datagrams put on the LAN per second, all hosts.
    pub steady_lan: f64,
    /// One new user: until every other knows it, and the datagrams it caused.
    pub join: (Option<Duration>, i64),
    /// One user leaves (LEAVE): until nobody lists it, and the datagrams it caused.
    pub leave: (Option<Duration>, i64),
    /// One client dies (kill -9, its host stays up): until nobody lists it, and the datagrams
    /// it caused.
    pub kill: (Option<Duration>, i64),
    /// Hosts go off (no ICMP), [`HOSTS_OFF`] of them one after the other at random moments:
    /// the longest until nobody lists its user, and the datagrams the first caused.
    pub crash: (Option<Duration>, i64),
    /// The median of the same.
    pub crash_median: Option<Duration>,
    /// Steady state: unicast datagrams received per host per second (beyond the broadcasts
    /// every host hears).
    pub steady_unicast: f64,
    /// Virtual time simulated.
    pub simulated: Duration,
    /// Wall-clock time it took.
    pub wall: Duration,
}

const S: Duration = Duration::from_secs(1);
/// Hosts switched off, one after the other.
pub const HOSTS_OFF: usize = 10;
/// The steady state is watched from here on at the least (the cold start has settled).
const SETTLE: Duration = Duration::from_secs(20);

/// When the cold start of `hosts` hosts is over: its announcements, and the hellos every
/// client spreads over a second per fifteen peers (greet.rs), with ten seconds to spare.
fn settle(hosts: usize) -> Duration {
    SETTLE.max(Duration::from_secs(hosts as u64 / 15 + 10))
}

/// Runs every scenario on `hosts` hosts with `loss`; `steady` is how long the steady state is
/// watched; `forget` how long a leave or crash may take to be noticed.
pub fn figures(cfg: Config, steady: Duration, forget: Duration) -> Figures {
    let wall = Instant::now();
    let hosts = cfg.hosts;
    let loss = cfg.loss;
    let period = cfg.heartbeat;
    let mut s = Sim::new(cfg);
    for h in 0..hosts {
        let at = s.rng().upto(S);
        s.start_client(h, 0, at);
    }
    let cold = s.run_until(60 * S, Duration::from_millis(10), |s| {
        s.running().count() == hosts && s.converged()
    });
    // Past the cold start, and far enough for a crash's window to look a few periods back.
    let settled = settle(hosts);
    s.run_to(settled);
    let cold_peak = s.metrics.peak_received(Duration::ZERO, settled);
    // At least two refresh intervals, or the window may hold none.
    let steady = steady.max(Duration::from_secs_f64(hosts as f64 / REFRESH_RATE * 2.0).ceil_secs());
    let from = s.now();
    s.run_to(from + steady);
    let steady_per_host = s.metrics.received_per_host(from, from + steady, hosts);
    let steady_lan = s.metrics.sent_on_lan(from, from + steady);
    let steady_unicast = s.metrics.unicast_per_host(from, from + steady, hosts);
    let next_second = |s: &mut Sim| {
        let t = Duration::from_secs(s.now().as_secs() + 1);
        s.run_to(t);
    };

    next_second(&mut s);
    let t0 = s.now();
    let new = s.add_host();
    s.start_client(new, 0, t0);
    let who = handle(new, 0);
    let known = s.run_until(10 * S, Duration::from_millis(1), |s| {
        s.running()
            .filter(|&(h, _)| h != new)
            .all(|(h, m)| s.knows(h, m, &who))
    });
    let spent = s.now() - t0;
    let join = (
        known,
        window_from(&mut s, t0, spent, (period, steady_lan, settled)),
    );

    next_second(&mut s);
    let t0 = s.now();
    s.leave(new, 0);
    let gone = s.run_until(forget, Duration::from_millis(10), |s| {
        s.running().all(|(h, m)| !s.knows(h, m, &who))
    });
    let spent = s.now() - t0;
    let leave = (
        gone,
        window_from(&mut s, t0, spent, (period, steady_lan, settled)),
    );

    next_second(&mut s);
    let t0 = s.now();
    // At a random moment: the local checks run on a period, and a kill can come at any point.
    let at = t0 + s.rng().upto(5 * S);
    s.run_to(at);
    s.kill(1, 0);
    let killed = handle(1, 0);
    let gone = s.run_until(forget, Duration::from_millis(10), |s| {
        s.running().all(|(h, m)| !s.knows(h, m, &killed))
    });
    let spent = s.now() - t0;
    let kill = (
        gone,
        window_from(&mut s, t0, spent, (period, steady_lan, settled)),
    );

    // How long a host switched off goes unnoticed depends on where in its refresh interval
    // it went: [`HOSTS_OFF`] hosts, one after the other, each at a random moment of one
    // interval; the worst, the median, and the datagrams of the first.
    let interval = Duration::from_secs_f64(hosts as f64 / REFRESH_RATE).max(period);
    let mut offs = Vec::new();
    let mut crash_dgrams = 0;
    for i in 0..HOSTS_OFF.min(hosts - 2) {
        next_second(&mut s);
        let at = s.now() + s.rng().upto(interval);
        s.run_to(at);
        let t0 = s.now();
        // Host 1's client was killed above; host 0 and from host 2 on.
        let victim = if i == 0 { 0 } else { i + 1 };
        s.crash(victim);
        let dead = handle(victim, 0);
        let gone = s.run_until(forget, Duration::from_millis(100), |s| {
            s.running().all(|(h, m)| !s.knows(h, m, &dead))
        });
        let spent = s.now() - t0;
        if i == 0 {
            crash_dgrams = window_from(&mut s, t0, spent, (period, steady_lan, settled));
        }
        offs.push(gone);
    }
    // Never noticed sorts last.
    offs.sort_by_key(|d| d.unwrap_or(Duration::MAX));
    let crash = (offs.last().copied().flatten(), crash_dgrams);
    let crash_median = offs.get(offs.len() / 2).copied().flatten();
    Figures {
        hosts,
        loss,
        cold,
        cold_peak,
        steady_per_host,
        steady_lan,
        join,
        leave,
        kill,
        crash,
        crash_median,
        steady_unicast,
        simulated: s.now(),
        wall: wall.elapsed(),
    }
}

/// The datagrams on the wire from `t0` for `spent` (whole seconds, at least one) beyond what
/// the same window of the heartbeat before carried (the steady traffic repeats with the
/// heartbeat); runs the LAN to the window's end.
fn window_from(s: &mut Sim, t0: Duration, spent: Duration, base: (Duration, f64, Duration)) -> i64 {
    let (period, steady_lan, settled) = base;
    let secs = Duration::from_secs(spent.as_secs() + 1);
    // A window longer than a period is compared with as many whole periods before it, when
    // they were steady; else with the steady rate.
    let back = period * (secs.as_secs() as u32).div_ceil(period.as_secs().max(1) as u32);
    let end = t0 + secs;
    if s.now() < end {
        s.run_to(end);
    }
    let before = if t0 >= back + settled {
        s.metrics.sent_between(t0 - back, end - back) as i64
    } else {
        (steady_lan * secs.as_secs_f64()).round() as i64
    };
    s.metrics.sent_between(t0, end) as i64 - before
}

trait CeilSecs {
    fn ceil_secs(self) -> Duration;
}

impl CeilSecs for Duration {
    /// Rounded up to whole seconds (the counters are per second).
    fn ceil_secs(self) -> Duration {
        Duration::from_secs(self.as_secs() + u64::from(self.subsec_nanos() > 0))
    }
}
