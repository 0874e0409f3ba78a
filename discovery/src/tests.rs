//! Tests of the discovery table, driven by datagrams and instants.

use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
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
        .map(|d| String::from_utf8(d).unwrap())
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
    // A LEAVE from another host does not remove bob; his own does.
    t.datagram(now, addr("10.0.0.9:5001"), b"LEAVE bob");
    assert_eq!(t.entries().len(), 2);
    t.datagram(now, addr("10.0.0.2:5001"), b"LEAVE bob");
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS carol 10.0.0.3 5002\n"]);
}

#[test]
fn clash_keeps_the_first_holder_until_it_expires() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001");
    t.datagram(now, addr("10.0.0.7:5001"), b"JOIN bob 5001");
    assert_eq!(t.stats.clashes, 1);
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS bob 10.0.0.2 5001\n"]);
    // Refreshing keeps it alive past the first expiry.
    let t2 = now + Duration::from_secs(2);
    t.datagram(t2, addr("10.0.0.2:5001"), b"JOIN bob 5001");
    let t4 = now + Duration::from_secs(4);
    assert!(t.expire(t4).is_empty());
    // Once stale, the newcomer gets it.
    let t6 = now + Duration::from_millis(5100);
    t.datagram(t6, addr("10.0.0.7:5001"), b"JOIN bob 5001");
    assert_eq!(who(&mut t, t6), vec!["KNOWUSERS bob 10.0.0.7 5001\n"]);
}

#[test]
fn one_local_client_seen_from_loopback_and_lan_is_one_entry() {
    let (mut t, now) = table();
    t.datagram(now, addr("127.0.0.1:5001"), b"JOIN bob 5001");
    t.datagram(now, addr("10.0.0.1:5001"), b"JOIN bob 5001");
    t.datagram(now, addr("127.0.0.1:5001"), b"JOIN bob 5001");
    assert_eq!(t.stats.clashes, 0);
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS bob 10.0.0.1 5001\n"]);
}

#[test]
fn entries_expire() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001");
    assert!(t.expire(now + Duration::from_secs(3)).is_empty());
    assert_eq!(
        t.expire(now + Duration::from_millis(3001)),
        vec![Handle::new("bob").unwrap()]
    );
    assert_eq!(who(&mut t, now), vec!["KNOWUSERS\n"]);
}

#[test]
fn away_back_and_malformed() {
    let (mut t, now) = table();
    t.datagram(now, addr("10.0.0.2:5001"), b"JOIN bob 5001\nAWAY bob\n");
    assert!(t.entries()[&Handle::new("bob").unwrap()].away);
    t.datagram(now, addr("10.0.0.2:5001"), b"BACK bob");
    assert!(!t.entries()[&Handle::new("bob").unwrap()].away);
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
fn a_long_table_is_answered_in_several_valid_datagrams() {
    let (mut t, now) = table();
    for i in 0..100u16 {
        let h = format!("user-with-a-long-handle-{i:03}");
        t.datagram(
            now,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8)), 5000 + i),
            format!("JOIN {h} {}", 5000 + i).as_bytes(),
        );
    }
    let answer = t.datagram(now, addr("127.0.0.1:6000"), b"WHO");
    assert!(answer.len() > 1);
    let mut n = 0;
    for d in answer {
        assert!(d.len() <= codec::MAX_SEND);
        match codec::decode(&d).unwrap() {
            Message::KnowUsers(e) => n += e.len(),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, 100);
}
