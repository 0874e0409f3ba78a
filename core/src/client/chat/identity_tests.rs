//! Tests of who is who: claims, probes, renames, relays and the sender of what arrives, driven
//! by datagrams, TCP lines, bounces and instants.

use super::tests::{addr, events, from_disc, sent, started};
use super::*;

fn local_disc() -> SocketAddr {
    addr("127.0.0.1:4000")
}

#[test]
fn away_flags_and_loopback_addresses_in_lists_from_other_hosts() {
    let (mut c, t0) = started("slu");
    // The reference's discovery on 10.98.1.2: a loopback address there means that host.
    c.datagram(
        t0,
        addr("10.98.1.2:4000"),
        b"KNOWNUSERS fab 10.98.1.2 12345 [AFK], pol 127.0.0.1 5000\n",
    );
    assert_eq!(
        events(&mut c),
        vec![
            "join fab 10.98.1.2:12345",
            "away fab",
            "join pol 10.98.1.2:5000"
        ]
    );
    // It writes flags, so a list without the flag says fab is back.
    c.datagram(
        t0,
        addr("10.98.1.2:4000"),
        b"KNOWNUSERS fab:10.98.1.2:12345,\n",
    );
    assert_eq!(events(&mut c), vec!["back fab"]);
}

#[test]
fn unsolicited_lists_count_only_for_the_senders_own_address() {
    let (mut c, t0) = started("slu");
    let late = t0 + Duration::from_secs(5);
    sent(&mut c);
    // Not from a discovery, not after our WHO: a list of strangers (and of ourselves) is
    // ignored; an entry at the sender's own address counts, like its JOIN.
    c.datagram(
        late,
        addr("10.0.0.9:6000"),
        b"KNOWUSERS slu 10.0.0.9 6000, x 10.0.0.50 1, y 0.0.0.0 7, fab 10.0.0.9 6000\n",
    );
    assert_eq!(events(&mut c), vec!["join fab 10.0.0.9:6000"]);
    assert!(c.status().iter().any(|l| l == "state     joined"));
    // The same push over TCP (an implementation that pushes its own entry after each JOIN).
    c.tcp_lines(late, addr("10.0.0.8:41000"), b"KNOWUSERS pol 10.0.0.8 5000");
    assert_eq!(events(&mut c), vec!["join pol 10.0.0.8:5000"]);
}

#[test]
fn a_claim_from_another_host_probes_the_holder_and_waits() {
    let (mut c, t0) = started("slu");
    // bob shows he sends from his own port.
    c.datagram(t0, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    events(&mut c);
    sent(&mut c);
    // A discovery lists bob elsewhere: bob's port is probed, nothing moves yet.
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 10.0.0.66 6000\n");
    assert_eq!(
        sent(&mut c),
        vec![(addr("10.0.0.2:5001"), "JOIN slu 5000\n".to_string())]
    );
    assert!(events(&mut c).is_empty());
    // No bounce within the wait: bob is alive and keeps his handle.
    c.tick(t0 + Duration::from_millis(500));
    assert_eq!(
        c.peer_addr(&Handle::new("bob").unwrap()),
        Some(addr("10.0.0.2:5001"))
    );
    assert_eq!(c.stats.refused, 1);
    // Again, and now the probe bounces: bob is gone, the claimant has the handle.
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 10.0.0.66 6000\n");
    c.unreachable(t0, addr("10.0.0.2:5001"));
    assert_eq!(events(&mut c), vec!["join bob 10.0.0.66:6000"]);
}

#[test]
fn presence_and_messages_are_believed_only_from_the_holders_address() {
    let (mut c, t0) = started("slu");
    c.datagram(t0, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    c.datagram(t0, addr("10.0.0.3:40000"), b"JOIN eph 5002\n");
    events(&mut c);
    // From another host, or another port of bob's host (he sends from his own port).
    for src in ["10.0.0.66:5001", "10.0.0.2:6000"] {
        c.datagram(
            t0,
            addr(src),
            b"AWAY bob\nLEAVE bob\nMSG bob send me your password\n",
        );
    }
    assert_eq!(
        events(&mut c),
        vec![
            "message ?bob@10.0.0.66:5001 send me your password",
            "message ?bob@10.0.0.2:6000 send me your password"
        ]
    );
    // eph sends from ephemeral ports: its host speaks for it.
    c.datagram(t0, addr("10.0.0.3:40001"), b"AWAY eph\nMSG eph hi\n");
    assert_eq!(events(&mut c), vec!["away eph", "message eph hi"]);
    // A LEAVE relayed by this host's discovery is believed for the user it listed...
    c.datagram(t0, local_disc(), b"KNOWUSERS bob 10.0.0.2 5001\n");
    events(&mut c);
    c.datagram(t0, local_disc(), b"LEAVE bob\n");
    assert_eq!(events(&mut c), vec!["leave bob"]);
    // ...not for one it never listed at that address (a claim it did not see).
    c.datagram(t0, local_disc(), b"LEAVE eph\n");
    assert!(events(&mut c).is_empty());
}

#[test]
fn a_bare_join_from_an_old_handles_address_is_a_rename() {
    let (mut c, t0) = started("slu");
    c.datagram(t0, addr("10.0.0.2:5001"), b"JOIN fab 5001");
    c.datagram(t0, addr("10.0.0.2:5001"), b"MSG fab \"quoted\"");
    events(&mut c);
    c.datagram(t0, addr("10.0.0.2:5001"), b"JOIN fab2 5001");
    assert_eq!(events(&mut c), vec!["rename fab fab2"]);
    // What it showed of its forms stays with it.
    let p = &c.peers()[&Handle::new("fab2").unwrap()];
    assert!(p.forms.quoted && p.forms.no_newline);
}

#[test]
fn a_peer_without_udp_gets_its_messages_over_tcp() {
    let (mut c, t0) = started("slu");
    c.datagram(t0, local_disc(), b"KNOWUSERS tcpo 127.0.0.1 5005\n");
    sent(&mut c);
    c.request(t0, 1, 1, "MSG tcpo first");
    assert_eq!(
        sent(&mut c),
        vec![(addr("127.0.0.1:5005"), "MSG slu first\n".into())]
    );
    // The datagram bounced: it has no UDP socket; the message goes again, over TCP.
    c.unreachable(t0, addr("127.0.0.1:5005"));
    assert_eq!(
        c.out.tcp,
        vec![(addr("127.0.0.1:5005"), b"MSG slu first\n".to_vec())]
    );
    c.out.tcp.clear();
    c.request(t0, 1, 2, "MSG tcpo second");
    assert!(sent(&mut c).is_empty());
    assert_eq!(c.out.tcp.len(), 1);
    // A refused connection where it used to accept: gone.
    c.tcp_accepted(addr("127.0.0.1:5005"));
    c.tcp_refused(addr("127.0.0.1:5005"));
    assert!(events(&mut c).contains(&"leave tcpo".to_string()));
}

#[test]
fn greetings_are_rate_limited_and_lists_are_bounded() {
    let (mut c, t0) = started("slu");
    sent(&mut c);
    let mut list = String::from("KNOWUSERS");
    for i in 0..2000u32 {
        list.push_str(&format!(
            " u{i} 10.1.{}.{} {},",
            i / 250,
            i % 250 + 1,
            5000 + i
        ));
    }
    c.datagram(t0, from_disc(), list.as_bytes());
    let greeted = sent(&mut c)
        .iter()
        .filter(|(_, l)| l.starts_with("JOIN"))
        .count();
    assert_eq!(greeted as u32, GREETS_PER_SEC);
    assert_eq!(c.peers().len(), 1024, "one list adds at most 1024 entries");
}

#[test]
fn a_long_text_goes_in_parts_and_comes_back_whole() {
    let (mut a, t0) = started("alice");
    a.datagram(t0, addr("127.0.0.1:5001"), b"JOIN bob 5001\n");
    sent(&mut a);
    events(&mut a);
    let long = "Grüße ".repeat(200).trim_end().to_string();
    a.request(t0, 1, 1, &format!("MSG bob {long}"));
    let out: Vec<String> = sent(&mut a).into_iter().map(|(_, d)| d).collect();
    assert!(out.len() >= 3, "{out:?}");
    assert!(
        out.iter()
            .all(|d| d.len() <= 512 && d.starts_with("MSG alice ("))
    );
    // bob (an slcp client) shows one message; a part that comes twice starts a new text and
    // shows the unfinished one as it came; an unfinished one is shown after the wait.
    let (mut b, t1) = started("bob");
    b.datagram(t1, addr("127.0.0.1:5000"), b"JOIN alice 5000\n");
    events(&mut b);
    for d in &out {
        b.datagram(t1, addr("127.0.0.1:5000"), d.as_bytes());
    }
    assert_eq!(events(&mut b), vec![format!("message alice {long}")]);
    b.datagram(t1, addr("127.0.0.1:5000"), b"MSG alice (1/2) half\n");
    assert!(events(&mut b).is_empty());
    b.tick(t1 + Duration::from_secs(11));
    assert_eq!(events(&mut b)[0], "message alice (1/2) half");
}

#[test]
fn a_late_relay_does_not_undo_what_a_peer_said_itself() {
    let (mut c, t0) = started("slu");
    c.datagram(t0, addr("127.0.0.1:5001"), b"JOIN bob 5001\n");
    events(&mut c);
    // bob says AWAY then BACK himself; the discovery's relay of his AWAY comes after.
    c.datagram(t0, addr("127.0.0.1:5001"), b"AWAY bob\n");
    c.datagram(t0, addr("127.0.0.1:5001"), b"BACK bob\n");
    c.datagram(t0, from_disc(), b"AWAY bob\n");
    assert_eq!(events(&mut c), vec!["away bob", "back bob"]);
    // A peer that only broadcasts (the reference implementation) is told by the relay.
    c.datagram(t0, addr("127.0.0.1:5002"), b"JOIN fab 5002");
    events(&mut c);
    c.datagram(t0, from_disc(), b"AWAY fab\n");
    assert_eq!(events(&mut c), vec!["away fab"]);
}
