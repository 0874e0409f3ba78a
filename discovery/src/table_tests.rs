//! Tests of the discovery table, driven by datagrams and instants.

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn h(s: &str) -> Handle {
    Handle::new(s).unwrap()
}

fn table() -> (Table, Instant) {
    (
        Table::new(Duration::from_secs(3), vec![Ipv4Addr::new(10, 0, 0, 1)]),
        Instant::now(),
    )
}

fn who(t: &mut Table, now: Instant) -> Vec<String> {
    t.datagram(now, addr("127.0.0.1:6000"), b"WHO\n")
        .into_iter()
        .map(|(_, d)| String::from_utf8(d).unwrap())
        .collect()
}

fn text(out: Out) -> Vec<(SocketAddr, String)> {
    out.into_iter()
        .map(|(a, d)| (a, String::from_utf8(d).unwrap()))
        .collect()
}

#[test]
fn join_who_leave() {
    let (mut t, now) = table();
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS\n"]);
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    t.datagram(now, addr("10.0.0.3:40000"), b"join carol 5002\r\n");
    assert_eq!(
        who(&mut t, now),
        vec!["KNOWUSERS bob 10.0.0.2 5001, carol 10.0.0.3 5002\n"]
    );
    // A LEAVE from another host does not remove bob, nor one from another port of his host
    // (he sends from his own port); his own does.
    t.datagram(now, addr("10.0.0.9:5001"), b"LEAVE bob");
    t.datagram(now, addr("10.0.0.2:6000"), b"LEAVE bob");
    assert_eq!(t.entries().len(), 2);
    assert_eq!(t.stats.refused, 2);
    t.datagram(now, addr("10.0.0.2:5001"), b"LEAVE bob");
    // carol sends from ephemeral ports: her host speaks for her.
    t.datagram(now, addr("10.0.0.3:40001"), b"AWAY carol");
    assert!(t.entries()[&h("carol")].away);
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS carol 10.0.0.3 5002\n"]);
    // The reference implementation (no terminator) reads away users as `[AFK]`.
    let r = t.datagram(now, addr("10.0.0.5:6000"), b"WHO");
    assert_eq!(r[0].1, b"KNOWUSERS carol 10.0.0.3 5002 [AFK]\n");
}

#[test]
fn a_claim_from_elsewhere_waits_for_a_probe_of_the_holder() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    // Another host claims bob: the holder's port is probed with the list a WHO would get.
    let out = text(t.datagram(now, addr("10.0.0.7:5001"), b"JOIN bob 5001\n"));
    assert_eq!(
        out,
        vec![(
            addr("10.0.0.2:5001"),
            "KNOWUSERS bob 10.0.0.2 5001\n".into()
        )]
    );
    // Nothing bounced: bob is alive and keeps his handle.
    let later = now + Duration::from_millis(500);
    t.tick(later);
    assert_eq!(t.stats.clashes, 1);
    assert_eq!(who(&mut t, later), vec!["KNOWUSERS bob 10.0.0.2 5001\n"]);
    // A second claim, and this time the probe bounces: bob is gone, the claimant has it.
    t.datagram(later, addr("10.0.0.7:5001"), b"JOIN bob 5001\n");
    t.bounced(later, addr("10.0.0.2:5001"));
    assert_eq!(who(&mut t, later), vec!["KNOWUSERS bob 10.0.0.7 5001\n"]);
}

#[test]
fn a_heartbeating_holder_that_stops_loses_its_handle_after_the_expiry() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001");
    let t2 = now + Duration::from_secs(2);
    t.datagram(t2, addr("10.0.0.2:5001"), b"JOIN bob 5001");
    assert!(t.entries()[&h("bob")].refreshed);
    assert!(t.expire(now + Duration::from_secs(4)).is_empty());
    let t6 = now + Duration::from_millis(5100);
    t.datagram(t6, addr("10.0.0.7:5001"), b"JOIN bob 5001");
    assert_eq!(who(&mut t, t6), vec!["KNOWUSERS bob 10.0.0.7 5001\n"]);
}

#[test]
fn one_local_client_seen_from_loopback_and_lan_is_one_entry() {
    let (mut t, now) = table();
    t.datagram(now, addr("127.0.0.1:5001"), b"JOIN bob 5001\n");
    t.datagram(now, addr("10.0.0.1:5001"), b"JOIN bob 5001\n");
    t.datagram(now, addr("127.0.0.1:5001"), b"JOIN bob 5001\n");
    assert_eq!(t.stats.clashes, 0);
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS bob 10.0.0.1 5001\n"]);
}

#[test]
fn heartbeats_expire_but_a_single_join_stays_until_it_leaves_or_its_port_closes() {
    let (mut t, now) = table();
    // One JOIN, never again (several implementations): kept for 10 expiries and more.
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN once 5001");
    // A heartbeat: JOIN again a second later.
    t.datagram(now, addr("10.0.0.3:5001"), b"JOIN beat 5001");
    let t1 = now + Duration::from_secs(1);
    t.datagram(t1, addr("10.0.0.3:5001"), b"JOIN beat 5001");
    // The reference implementation: one JOIN, then WHO every few seconds from its port.
    t.datagram(now, addr("10.0.0.4:5001"), b"JOIN poll 5001");
    for s in 1..=30 {
        t.datagram(now + Duration::from_secs(s), addr("10.0.0.4:5001"), b"WHO");
    }
    let gone = t.expire(now + Duration::from_millis(4001));
    assert_eq!(gone, vec![h("beat")]);
    let t30 = now + Duration::from_secs(30);
    assert!(t.expire(t30).is_empty());
    assert_eq!(
        who(&mut t, t30),
        vec!["KNOWUSERS once 10.0.0.2 5001, poll 10.0.0.4 5001\n"]
    );
    // The poller stops: it expires. The single JOIN is probed every expiry; its port closes.
    assert_eq!(t.expire(now + Duration::from_secs(34)), vec![h("poll")]);
    let probes = text(t.tick(now + Duration::from_secs(35)));
    assert!(
        probes.iter().any(|(a, _)| *a == addr("10.0.0.2:5001")),
        "{probes:?}"
    );
    t.bounced(now + Duration::from_secs(35), addr("10.0.0.2:5001"));
    assert!(t.entries().is_empty());
}

#[test]
fn away_back_and_malformed() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001\nAWAY bob\n");
    assert!(t.entries()[&h("bob")].away);
    // Presence from another host is not believed.
    t.datagram(now, addr("10.0.0.9:5001"), b"BACK bob\n");
    assert!(t.entries()[&h("bob")].away);
    t.datagram(now, addr("10.0.0.2:5001"), b"BACK bob");
    assert!(!t.entries()[&h("bob")].away);
    for bad in [
        &b"\xff\xfe"[..],
        b"",
        b"JOIN bob",
        b"JOIN bob 0",
        &[b'A'; 65_000][..],
    ] {
        assert!(t.datagram(now, addr("10.0.0.2:5001"), bad).is_empty());
    }
    assert_eq!(t.stats.malformed, 5);
}

#[test]
fn a_long_table_is_answered_in_several_valid_datagrams_or_one_for_the_reference() {
    let (mut t, now) = table();
    for i in 0..100u16 {
        let h = format!("user-with-a-long-handle-{i:03}");
        t.datagram(
            now,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8)), 5000 + i),
            format!("JOIN {h} {}\n", 5000 + i).as_bytes(),
        );
    }
    let answer = t.datagram(now, addr("127.0.0.1:6000"), b"WHO\n");
    assert!(answer.len() > 1);
    // A stranger's WHO gets one datagram: at most 512 bytes out for its 4 bytes in.
    let stranger = t.datagram(now, addr("192.0.2.9:6000"), b"WHO\n");
    assert_eq!(stranger.len(), 1);
    assert!(stranger[0].1.len() <= codec::MAX_SEND);
    let mut n = 0;
    for (_, d) in answer {
        assert!(d.len() <= codec::MAX_SEND);
        match codec::decode(&d).unwrap() {
            Message::KnowUsers(e) => n += e.len(),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, 100);
    // A WHO with no terminator: the reference implementation, which reads one datagram of at
    // most 1 024 bytes and keeps only the last.
    let answer = t.datagram(now, addr("10.0.2.1:6000"), b"WHO");
    assert_eq!(answer.len(), 1);
    assert!(answer[0].1.len() <= 1024 && answer[0].1.len() > 900);
    // A host the config says reads KNOWNUSERS in `h:ip:p` form gets exactly that.
    let mut forms = HashMap::new();
    forms.insert(
        "10.0.2.2".parse().unwrap(),
        Forms::parse(["knownusers", "colon"]).unwrap(),
    );
    t.set_host_forms(forms);
    let answer = t.datagram(now, addr("10.0.2.2:6000"), b"WHO\n");
    assert!(
        answer[0]
            .1
            .starts_with(b"KNOWNUSERS user-with-a-long-handle-000:10.0.1.0:5000, ")
    );
}

#[test]
fn presence_is_relayed_to_this_hosts_clients() {
    let (mut t, now) = table();
    t.datagram(now, addr("127.0.0.1:5001"), b"JOIN alice 5001\n");
    let out = text(t.datagram(now, addr("10.0.0.2:5002"), b"JOIN bob 5002\n"));
    let alice = addr("127.0.0.1:5001");
    assert_eq!(out, vec![(alice, "KNOWUSERS bob 10.0.0.2 5002\n".into())]);
    let out = text(t.datagram(now, addr("10.0.0.2:5002"), b"AWAY bob"));
    assert_eq!(out, vec![(alice, "AWAY bob\n".into())]);
    let out = text(t.datagram(now, addr("10.0.0.2:5002"), b"LEAVE bob"));
    assert_eq!(out, vec![(alice, "LEAVE bob\n".into())]);
    // A refused LEAVE is not relayed.
    t.datagram(now, addr("10.0.0.2:5002"), b"JOIN bob 5002\n");
    assert!(
        t.datagram(now, addr("10.0.0.9:5002"), b"LEAVE bob")
            .is_empty()
    );
    assert_eq!(t.stats.relayed, 4);
}

#[test]
fn a_bare_join_of_a_new_handle_from_the_same_address_is_a_rename() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN fab 5001");
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN fab2 5001");
    assert_eq!(t.entries().keys().collect::<Vec<_>>(), vec![&h("fab2")]);
}

#[test]
fn a_rejoin_on_a_new_port_replaces_the_old_one() {
    let (mut t, now) = table();
    // Sends from ephemeral ports: its host identifies it, the new port wins at once.
    t.datagram(now, addr("10.0.0.2:40000"), b"JOIN eph 5001\n");
    t.datagram(now, addr("10.0.0.2:40001"), b"JOIN eph 5002\n");
    assert_eq!(t.entries()[&h("eph")].port, 5002);
    // Sends from its port: the old port is probed, and taken over when it bounces.
    t.datagram(now, addr("10.0.0.3:5001"), b"JOIN own 5001\n");
    t.datagram(now, addr("10.0.0.3:5002"), b"JOIN own 5002\n");
    assert_eq!(t.entries()[&h("own")].port, 5001);
    t.bounced(now, addr("10.0.0.3:5001"));
    assert_eq!(t.entries()[&h("own")].port, 5002);
}

#[test]
fn floods_are_bounded() {
    let (mut t, now) = table();
    // 2 000 WHO lines in one datagram get one answer.
    let many = "WHO\n".repeat(2000);
    assert_eq!(
        t.datagram(now, addr("10.0.0.9:6000"), many.as_bytes())
            .len(),
        1
    );
    // More than WHO_PER_SEC a second from one source are not answered.
    let answered = (0..50)
        .filter(|_| !t.datagram(now, addr("10.0.0.9:6000"), b"WHO\n").is_empty())
        .count();
    assert_eq!(answered as u32, WHO_PER_SEC - 1);
    // One address cannot fill the table.
    for i in 0..500 {
        t.datagram(
            now,
            addr("10.0.0.8:6000"),
            format!("JOIN u{i} {}\n", 6000 + i).as_bytes(),
        );
    }
    assert_eq!(t.entries().len(), MAX_PER_SOURCE);
    // Non-unicast sources are refused.
    t.datagram(now, addr("0.0.0.0:6000"), b"JOIN z 6000\n");
    assert!(!t.entries().contains_key(&h("z")));
}

#[test]
fn look_alike_and_invisible_handles_are_refused() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    for (i, fake) in ["b\u{43e}b", "bob\u{200b}", "\u{202e}bob", "b\u{ff4f}b"]
        .iter()
        .enumerate()
    {
        let src = addr(&format!("10.0.0.{}:6000", 10 + i));
        t.datagram(now, src, format!("JOIN {fake} 6000\n").as_bytes());
    }
    assert_eq!(t.entries().keys().collect::<Vec<_>>(), vec![&h("bob")]);
    // Invisible ones are malformed on the wire; the look-alikes are refused.
    assert_eq!(t.stats.malformed, 2);
    assert_eq!(t.stats.refused, 2);
}

/// How often the relay broadcast `line` while the LAN ran `per_step` datagrams every 10 ms from
/// ten other hosts for 3 s, then one a second from one host for 12 s; the local user joined 1 s in.
fn said_in_a_storm(per_step: u32, line: &str) -> usize {
    let (mut t, t0) = (
        // A long expiry puts the first refresh (half an interval at the least) past the run.
        Table::new(Duration::from_secs(350), vec![Ipv4Addr::new(10, 0, 0, 1)]),
        Instant::now(),
    );
    let lan = addr("10.0.0.255:4000");
    t.set_relay(4000, vec![lan], "10.0.0.1".parse().unwrap());
    let mut said = 0;
    let mut count = |out: Out| {
        said += text(out)
            .iter()
            .filter(|(a, d)| *a == lan && d == line)
            .count()
    };
    let step = Duration::from_millis(10);
    for i in 0..1500u32 {
        let now = t0 + step * i;
        let burst = if i < 300 {
            per_step
        } else {
            u32::from(i % 100 == 0)
        };
        for k in 0..burst {
            let h = if i < 300 { (i * per_step + k) % 10 } else { 0 };
            let src = addr(&format!("10.0.1.{}:4000", h + 1));
            count(t.datagram(now, src, format!("JOIN u{h} 5000\n").as_bytes()));
        }
        if i == 100 {
            count(t.datagram(now, addr("10.0.0.1:5000"), b"JOIN bob 5000\n"));
        }
        count(t.tick(now));
    }
    said
}

#[test]
fn an_announcement_said_once_in_a_storm_is_said_again_after_it() {
    // A quiet LAN: at once, and again after 250 ms and 750 ms.
    assert_eq!(said_in_a_storm(0, "JOIN bob 5000\n"), 3);
    // 300 datagrams a second: once in the storm, once more when it is over.
    assert_eq!(said_in_a_storm(3, "JOIN bob 5000\n"), 2);
}
