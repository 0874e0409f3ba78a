//! Tests of the watchers (watch.rs): real tables, fed datagrams and instants.

use super::watch::ASKS;
use super::*;
use crate::relay::weight;

const LAN: &str = "10.255.255.255:4000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn h(s: &str) -> Handle {
    Handle::new(s).unwrap()
}

/// A discovery at `me` speaking for its host (35 s expiry: a 10 s refresh interval).
fn discovery(me: &str) -> Table {
    let ip: Ipv4Addr = me.parse().unwrap();
    let mut t = Table::new(Duration::from_secs(35), vec![ip]);
    t.set_relay(4000, vec![addr(LAN)], IpAddr::V4(ip));
    t
}

fn text(out: Out) -> Vec<(SocketAddr, String)> {
    out.into_iter()
        .map(|(a, d)| (a, String::from_utf8(d).unwrap()))
        .collect()
}

/// Runs `t`'s clock from `from` to `to`, deadline by deadline; what it sent.
fn run(t: &mut Table, from: Instant, to: Instant) -> Vec<(SocketAddr, String)> {
    let mut now = from;
    let mut sent = text(t.tick(now));
    for _ in 0..100_000 {
        let Some(d) = t.next_deadline() else { break };
        let next = d.max(now + Duration::from_millis(1));
        if next > to {
            break;
        }
        now = next;
        sent.extend(text(t.tick(now)));
    }
    sent
}

fn questions(sent: &[(SocketAddr, String)]) -> usize {
    sent.iter()
        .filter(|(a, d)| *a == addr("10.0.0.2:4000") && d == "KNOWUSERS xu 10.0.0.2 5000\n")
        .count()
}

#[test]
fn a_watcher_asks_a_host_that_missed_its_refresh_and_drops_it_when_it_stays_silent() {
    let t0 = Instant::now();
    for answers in [false, true] {
        let mut d = discovery("10.0.0.1");
        // The only other slcp discovery: this one watches it.
        d.datagram(t0, addr("10.0.0.2:4000"), b"JOIN xu 5000\n");
        assert!(d.entries()[&h("xu")].refreshed);
        // Refreshes every 10 s keep it without a question.
        let mut now = t0;
        for _ in 0..3 {
            let sent = run(&mut d, now, now + Duration::from_secs(10));
            assert_eq!(questions(&sent), 0, "{sent:?}");
            now += Duration::from_secs(10);
            d.datagram(now, addr("10.0.0.2:4000"), b"JOIN xu 5000\n");
        }
        // It goes quiet: 10.3 s after its refresh was heard, a question, then two more.
        let late = now + Duration::from_millis(10_400);
        let mut sent = run(&mut d, now, late);
        assert_eq!(questions(&sent), 1, "{sent:?}");
        if answers {
            d.datagram(late, addr("10.0.0.2:4000"), b"JOIN xu 5000\n");
        }
        sent.extend(run(&mut d, late, late + Duration::from_secs(3)));
        let leave = sent
            .iter()
            .filter(|(a, m)| *a == addr(LAN) && m == "LEAVE xu\n");
        if answers {
            assert_eq!(questions(&sent), 1, "{sent:?}");
            assert_eq!(leave.count(), 0);
            assert!(d.entries().contains_key(&h("xu")));
        } else {
            assert_eq!(questions(&sent), ASKS as usize, "{sent:?}");
            // Said on the LAN, and again against loss.
            assert_eq!(leave.count(), 3, "{sent:?}");
            assert!(!d.entries().contains_key(&h("xu")));
            assert_eq!(d.stats.silent, 1);
        }
    }
}

/// A discovery that does not watch xu's host, told nothing for 35 s (the expiry), by then.
fn past_the_expiry(t0: Instant) -> (Table, Instant, Vec<(SocketAddr, String)>) {
    let x: IpAddr = "10.0.0.2".parse().unwrap();
    let me: IpAddr = "10.0.0.1".parse().unwrap();
    // Two discoveries that outrank us for x.
    let better: Vec<IpAddr> = (10..250)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
        .filter(|ip| weight(x, *ip) > weight(x, me))
        .take(2)
        .collect();
    let mut d = discovery("10.0.0.1");
    d.datagram(
        t0,
        addr("10.0.0.1:6000"),
        b"JOIN me 6000
",
    );
    d.datagram(t0, addr("10.0.0.2:4000"), b"JOIN xu 5000\n");
    // Interval 10 s: the watchers ask after 10.3 s; we wait for the expiry (35 s), keeping
    // the watchers and our own user alive meanwhile.
    let mut now = t0;
    let mut sent = Vec::new();
    while now < t0 + Duration::from_secs(35) {
        let next = now + Duration::from_secs(5);
        sent.extend(run(&mut d, now, next));
        now = next;
        for (i, ip) in better.iter().enumerate() {
            let line = format!("JOIN w{i} 5000\n");
            d.datagram(now, SocketAddr::new(*ip, 4000), line.as_bytes());
        }
        d.datagram(now, addr("10.0.0.1:6000"), b"JOIN me 6000\n");
    }
    (d, now + Duration::from_millis(1), sent)
}

fn lists_xu(d: &mut Table, now: Instant) -> bool {
    let out = text(d.datagram(now, addr("10.0.0.1:6000"), b"WHO\n"));
    out.iter().any(|(_, l)| l.contains("xu 10.0.0.2 5000"))
}

#[test]
fn a_host_is_watched_by_two_discoveries_the_others_only_ask_past_the_expiry() {
    let t0 = Instant::now();
    for gone in [true, false] {
        let (mut d, now, sent) = past_the_expiry(t0);
        assert_eq!(questions(&sent), 0, "{sent:?}");
        assert!(lists_xu(&mut d, now - Duration::from_secs(1)));
        // Past the expiry it asks before it drops, and lists xu no more meanwhile.
        let sent = run(&mut d, now, now + Duration::from_millis(100));
        assert_eq!(questions(&sent), 1, "{sent:?}");
        assert!(d.entries().contains_key(&h("xu")));
        assert!(!lists_xu(&mut d, now));
        if gone {
            // The host answers that xu is gone: dropped, and not said on the LAN.
            let out = text(d.datagram(now, addr("10.0.0.2:4000"), b"LEAVE xu\n"));
            assert!(!d.entries().contains_key(&h("xu")));
            assert!(out.iter().all(|(a, _)| *a != addr(LAN)), "{out:?}");
        } else {
            // Here: listed again at once (the list kept encoded is not the one without it).
            d.datagram(now, addr("10.0.0.2:4000"), b"JOIN xu 5000\n");
            assert!(lists_xu(&mut d, now));
            let later = now + Duration::from_secs(2);
            let sent = run(&mut d, now, later);
            assert_eq!(questions(&sent), 0, "{sent:?}");
            assert!(lists_xu(&mut d, later));
        }
    }
}

#[test]
fn a_leave_said_by_a_watcher_is_believed_only_by_those_who_heard_nothing_either() {
    let t0 = Instant::now();
    let mut d = discovery("10.0.0.1");
    d.datagram(t0, addr("10.0.0.1:6000"), b"JOIN me 6000\n");
    d.datagram(t0, addr("10.0.0.2:4000"), b"JOIN xu 5000\n");
    d.datagram(t0, addr("10.0.0.3:4000"), b"JOIN wu 5000\n");
    // From a host that never spoke for its users: not a discovery of ours.
    d.datagram(t0, addr("10.0.0.4:4000"), b"LEAVE xu\n");
    // From a watcher, while we heard xu's host 2 s ago.
    let soon = t0 + Duration::from_secs(2);
    d.datagram(soon, addr("10.0.0.3:4000"), b"LEAVE xu\n");
    assert!(d.entries().contains_key(&h("xu")));
    assert_eq!(d.stats.refused, 2);
    // A whole interval without a word from it: believed, and told to our client.
    let late = t0 + Duration::from_millis(10_100);
    let out = text(d.datagram(late, addr("10.0.0.3:4000"), b"LEAVE xu\n"));
    assert!(!d.entries().contains_key(&h("xu")));
    assert_eq!(out, vec![(addr("10.0.0.1:6000"), "LEAVE xu\n".to_owned())]);
}

#[test]
fn a_host_said_to_be_gone_announces_its_user_again_and_answers_questions() {
    let t0 = Instant::now();
    let mut x = discovery("10.0.0.2");
    x.datagram(t0, addr("10.0.0.2:5000"), b"JOIN xu 5000\n");
    x.datagram(t0, addr("10.0.0.3:4000"), b"JOIN wu 5000\n");
    let again = |out: Out| {
        text(out)
            .iter()
            .filter(|(a, m)| *a == addr(LAN) && m == "JOIN xu 5000\n")
            .count()
    };
    let now = t0 + Duration::from_secs(1);
    assert_eq!(
        again(x.datagram(now, addr("10.0.0.3:4000"), b"LEAVE xu\n")),
        1
    );
    assert!(x.entries().contains_key(&h("xu")));
    // Not twice within 5 s (three copies of one LEAVE, or someone forging them).
    let now = now + Duration::from_secs(1);
    assert_eq!(
        again(x.datagram(now, addr("10.0.0.3:4000"), b"LEAVE xu\n")),
        0
    );
    // A question: xu is here, gone never was.
    let q = b"KNOWUSERS xu 10.0.0.2 5000, gone 10.0.0.2 5001\n";
    let out = text(x.datagram(now, addr("10.0.0.9:4000"), q));
    let asker = addr("10.0.0.9:4000");
    assert_eq!(
        out,
        vec![
            (asker, "JOIN xu 5000\n".to_owned()),
            (asker, "LEAVE gone\n".to_owned())
        ]
    );
    // A list naming users of other hosts is no question; questions are rate-limited.
    let list = b"KNOWUSERS xu 10.0.0.2 5000, wu 10.0.0.3 5000\n";
    assert!(x.datagram(now, asker, list).is_empty());
    let answered = (0..20)
        .filter(|_| !x.datagram(now, asker, q).is_empty())
        .count();
    assert_eq!(answered, WHO_PER_SEC as usize - 1);
}
