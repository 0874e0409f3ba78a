//! The simulator's own tests: a seed names one run, every delivery is accounted for, and a
//! small LAN converges.

use super::*;

fn cold(cfg: Config) -> Sim {
    let mut s = Sim::new(cfg);
    for h in 0..s.hosts() {
        let at = s.rng().upto(Duration::from_secs(1));
        s.start_client(h, 0, at);
    }
    s
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let cfg = Config {
        hosts: 12,
        loss: 0.02,
        ..Config::default()
    };
    let run = |seed| {
        let mut s = cold(Config {
            seed,
            ..cfg.clone()
        });
        s.run_to(Duration::from_secs(25));
        (s.trace, s.metrics.datagrams_received)
    };
    let (a, b) = (run(7), run(7));
    assert_eq!(a, b);
    assert_ne!(run(8).0, a.0);
}

#[test]
fn every_delivery_is_received_lost_or_on_its_way() {
    let mut s = cold(Config {
        hosts: 15,
        loss: 0.05,
        ..Config::default()
    });
    s.run_to(Duration::from_secs(12));
    s.crash(3);
    s.run_to(Duration::from_secs(24));
    let m = &s.metrics;
    assert!(m.lost > 0 && m.to_dead > 0, "{m:?}");
    assert_eq!(
        m.deliveries,
        m.datagrams_received + m.lost + m.to_dead + s.in_flight(),
        "{m:?}"
    );
}

#[test]
fn a_small_lan_converges_and_forgets_a_crashed_host() {
    let mut s = cold(Config {
        hosts: 20,
        ..Config::default()
    });
    let t = s.run_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        Sim::converged,
    );
    assert!(t.is_some(), "20 hosts never converged");
    s.crash(5);
    let gone = s.run_until(Duration::from_secs(120), Duration::from_millis(100), |s| {
        s.running().all(|(h, m)| !s.knows(h, m, &handle(5, 0)))
    });
    assert!(gone.is_some(), "the crashed host is still known");
}

/// The goals of the bounded design (README "Discovery at scale"), at a size CI can afford.
#[test]
fn two_hundred_hosts_stay_within_the_budget() {
    let cfg = Config {
        hosts: 200,
        ..Config::default()
    };
    let f = figures(cfg, Duration::from_secs(30), Duration::from_secs(90));
    let cold = f.cold.expect("never converged");
    assert!(cold <= Duration::from_secs(10), "cold start took {cold:?}");
    assert!(
        f.cold_peak < 500,
        "{} datagrams/s into one host",
        f.cold_peak
    );
    assert!(
        f.steady_lan <= 20.0,
        "{} datagrams/s on the LAN",
        f.steady_lan
    );
    assert!(
        f.steady_unicast < 0.1,
        "{} unicast/s into each host",
        f.steady_unicast
    );
    let join = f.join.0.expect("the newcomer was never known to all");
    assert!(join <= Duration::from_secs(1), "join known after {join:?}");
    let kill = f.kill.0.expect("the killed client is still listed");
    assert!(
        kill <= Duration::from_secs(60),
        "kill noticed after {kill:?}"
    );
    assert!(f.leave.0.is_some(), "{f:?}");
    let off = f.crash.0.expect("a host switched off is still listed");
    assert!(
        off <= noticed(200),
        "a host switched off noticed after {off:?}"
    );
}

/// How long a host switched off may go unnoticed on a LAN of `hosts`: its watchers ask once
/// its refresh is due (one interval) and give up after three questions half a second apart.
fn noticed(hosts: usize) -> Duration {
    let interval =
        Duration::from_secs_f64(hosts as f64 / REFRESH_RATE).max(Duration::from_secs(10));
    interval + Duration::from_secs(3)
}

/// At 1 % loss per delivery the lists asked for at start fill what the storm lost: a
/// discovery asks once its own users are announced (a stranger gets the first datagram of a
/// list only), and again when the first lists taught it users it had missed.
#[test]
fn two_hundred_hosts_at_one_percent_loss_converge_and_hear_a_join() {
    let cfg = Config {
        hosts: 200,
        loss: 0.01,
        ..Config::default()
    };
    let f = figures(cfg, Duration::from_secs(30), Duration::from_secs(90));
    let cold = f.cold.expect("never converged");
    assert!(cold <= Duration::from_secs(15), "cold start took {cold:?}");
    let join = f.join.0.expect("the newcomer was never known to all");
    assert!(join <= Duration::from_secs(1), "join known after {join:?}");
    let off = f.crash.0.expect("a host switched off is still listed");
    assert!(
        off <= noticed(200),
        "a host switched off noticed after {off:?}"
    );
}

/// At 1 % loss a refresh is lost somewhere on every round: nobody drops a live user for it
/// (only its watchers ask, and a user past the expiry is asked about before it is dropped).
/// Before the watchers, a quarter of these looks found some client missing a live peer.
#[test]
fn at_one_percent_loss_no_live_user_is_ever_dropped() {
    let mut s = cold(Config {
        hosts: 200,
        loss: 0.01,
        ..Config::default()
    });
    let mut t = Duration::from_secs(60);
    while t <= Duration::from_secs(300) {
        s.run_to(t);
        let n = s.running().count();
        let missing: Vec<(usize, usize)> = s
            .running()
            .filter(|&(h, m)| s.known(h, m) + 1 != n)
            .collect();
        assert!(
            missing.is_empty(),
            "at {t:?} these miss a live peer: {missing:?}"
        );
        t += Duration::from_secs(5);
    }
}

#[test]
fn a_cold_start_with_relays_greets_with_hellos_and_each_discovery_asks_once() {
    let mut s = cold(Config {
        hosts: 100,
        ..Config::default()
    });
    // The hellos are spread over a second per fifteen peers, in batches.
    s.run_to(Duration::from_secs(12));
    let w = s.metrics.by_word();
    // The discoveries told everyone of everyone: no client greets with a JOIN of its own.
    assert!(!w.contains_key("JOIN"), "{w:?}");
    assert!(w.get("SLCPX").copied().unwrap_or(0) > 0, "{w:?}");
    // One bootstrap WHO per discovery, to three other discoveries (fewer for one that asks
    // before it has heard three); nobody broadcasts WHO.
    let who = w.get("WHO").copied().unwrap_or(0);
    assert!((250..=300).contains(&who), "{w:?}");
    // One hello each way per pair, no more.
    assert_eq!(w.get("SLCPX").copied(), Some(100 * 99), "{w:?}");
    assert!(!w.contains_key("broadcast WHO"), "{w:?}");
}
