//! Tests of the client logic, driven by datagrams and instants (no sockets, no sleeps).

use super::*;

/// The extension hello that follows each greeting.
pub(super) const HELLO: &str = "SLCPX alice 1 file,group,e2e\n";

const BCAST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 255, 255, 255));

pub(super) fn settings_for(handle: &str) -> Settings {
    settings(handle)
}

pub(super) fn settings(handle: &str) -> Settings {
    Settings {
        handle: Handle::new(handle).unwrap(),
        port: 5000,
        whoisport: 4000,
        broadcast: vec![BCAST],
        local_ips: vec![Ipv4Addr::new(10, 0, 0, 1)],
        heartbeat: Duration::from_secs(1),
        expiry: Duration::from_secs(3),
        who_wait: Duration::from_millis(300),
        backlog: 2,
        auto_away: None,
        forms: Forms::default(),
        peer_forms: BTreeMap::new(),
        image_ports: BTreeMap::new(),
        history: false,
        notify: NotifyMode::Bell,
        encryption: Encryption::Prefer,
        local_discovery: false,
        static_peers: Vec::new(),
    }
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub(super) fn disc() -> SocketAddr {
    SocketAddr::new(BCAST, 4000)
}

/// Where this host's discovery answers from.
pub(super) fn from_disc() -> SocketAddr {
    addr("127.0.0.1:4000")
}

/// The datagrams sent since the last call, as text.
pub(super) fn sent(c: &mut Chat) -> Vec<(SocketAddr, String)> {
    c.out
        .udp
        .drain(..)
        .map(|(a, b)| (a, String::from_utf8(b).unwrap()))
        .collect()
}

pub(super) fn ipc(c: &mut Chat) -> Vec<(To, ServerMsg)> {
    c.out.ipc.drain(..).collect()
}

pub(super) fn events(c: &mut Chat) -> Vec<String> {
    ipc(c)
        .into_iter()
        .filter_map(|(_, m)| match m {
            ServerMsg::Event { event, .. } => Some(event.line()),
            _ => None,
        })
        .collect()
}

pub(super) fn reply(c: &mut Chat) -> Result<Vec<String>, String> {
    let replies: Vec<_> = ipc(c)
        .into_iter()
        .filter_map(|(_, m)| match m {
            ServerMsg::Reply { lines, error, .. } => Some(match error {
                Some(e) => Err(e),
                None => Ok(lines),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(replies.len(), 1, "expected one reply, got {replies:?}");
    replies.into_iter().next().unwrap()
}

/// A started client with one REPL (conn 1) attached and its outboxes empty.
pub(super) fn started(handle: &str) -> (Chat, Instant) {
    let t0 = Instant::now();
    let mut c = Chat::new(settings(handle), t0);
    c.start(t0);
    c.attach(1, false);
    sent(&mut c);
    ipc(&mut c);
    (c, t0)
}

#[test]
fn start_broadcasts_join_then_who() {
    let t0 = Instant::now();
    let mut c = Chat::new(settings("alice"), t0);
    c.start(t0);
    assert_eq!(
        sent(&mut c),
        vec![
            (disc(), "JOIN alice 5000\n".to_string()),
            (disc(), "WHO\n".to_string())
        ]
    );
    // The heartbeat repeats both.
    c.tick(t0 + Duration::from_millis(999));
    assert!(sent(&mut c).is_empty());
    c.tick(t0 + Duration::from_secs(1));
    assert_eq!(sent(&mut c).len(), 2);
}

#[test]
fn knowusers_adds_peers_and_greets_them_once() {
    let (mut c, t0) = started("alice");
    let ku = b"KNOWUSERS alice 127.0.0.1 5000, bob 127.0.0.1 5001, carol 10.0.0.9 5002\n";
    c.datagram(t0, from_disc(), ku);
    assert_eq!(
        sent(&mut c),
        vec![
            (addr("127.0.0.1:5001"), "JOIN alice 5000\n".to_string()),
            (addr("127.0.0.1:5001"), HELLO.to_string()),
            (addr("10.0.0.9:5002"), "JOIN alice 5000\n".to_string()),
            (addr("10.0.0.9:5002"), HELLO.to_string()),
        ]
    );
    assert_eq!(
        events(&mut c),
        vec!["join bob 127.0.0.1:5001", "join carol 10.0.0.9:5002"]
    );
    c.datagram(t0, from_disc(), ku);
    assert!(sent(&mut c).is_empty(), "known peers are not greeted again");
    assert!(events(&mut c).is_empty());
}

#[test]
fn msg_to_a_known_peer_is_sent_bare_unless_it_needs_quotes() {
    let (mut c, t0) = started("alice");
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    sent(&mut c);
    ipc(&mut c);
    c.request(t0, 1, 7, "msg bob hello \"there\" ü");
    assert_eq!(reply(&mut c), Ok(vec![]));
    // Bare by default (SLCP.md "Text"): quotes only where bare text cannot carry it.
    assert_eq!(
        sent(&mut c),
        vec![(
            addr("127.0.0.1:5001"),
            "MSG alice hello \"there\" ü\n".to_string()
        )]
    );
    // Typed in quotes, it is meant without them; what is left begins and ends with a quote.
    c.request(t0, 1, 9, "msg bob \"\"both ends\"\"");
    assert_eq!(reply(&mut c), Ok(vec![]));
    assert_eq!(sent(&mut c)[0].1, "MSG alice \"\\\"both ends\\\"\"\n");
    // A text typed in quotes is sent without them; /slash forms work.
    c.request(t0, 1, 8, "/MSG bob \"quoted\"");
    assert_eq!(reply(&mut c), Ok(vec![]));
    assert_eq!(sent(&mut c)[0].1, "MSG alice quoted\n");
}

#[test]
fn msg_to_an_unknown_handle_asks_then_sends_or_fails() {
    let (mut c, t0) = started("alice");
    c.request(t0, 1, 1, "MSG dave hi");
    assert_eq!(sent(&mut c), vec![(disc(), "WHO\n".to_string())]);
    assert!(ipc(&mut c).is_empty(), "no reply before the answers are in");
    c.datagram(t0, from_disc(), b"KNOWUSERS dave 127.0.0.1 5003\n");
    let out = sent(&mut c);
    assert!(out.contains(&(addr("127.0.0.1:5003"), "MSG alice hi\n".to_string())));
    assert_eq!(reply(&mut c), Ok(vec![]));

    c.request(t0, 1, 2, "MSG nobody hi");
    sent(&mut c);
    c.tick(t0 + Duration::from_millis(299));
    assert!(ipc(&mut c).is_empty());
    c.tick(t0 + Duration::from_millis(300));
    let e = reply(&mut c).unwrap_err();
    assert!(e.starts_with("nobody called nobody is here"), "{e}");
}

#[test]
fn msg_errors_are_one_line() {
    let (mut c, t0) = started("alice");
    c.request(t0, 1, 1, "MSG bob");
    assert_eq!(reply(&mut c), Err("usage: MSG <handle> <text...>".into()));
    c.request(t0, 1, 2, "MSG b\"ob hi");
    assert!(reply(&mut c).unwrap_err().contains("is not a handle"));
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    ipc(&mut c);
    // Over one datagram it goes in parts; over 99 parts it is refused with the limit.
    c.request(t0, 1, 3, &format!("MSG bob {}", "x".repeat(600)));
    assert_eq!(reply(&mut c), Ok(vec![]));
    c.request(t0, 1, 3, &format!("MSG bob {}", "x".repeat(60_000)));
    let e = reply(&mut c).unwrap_err();
    assert!(
        e.contains("message too long") && e.contains("99 parts"),
        "{e}"
    );
    c.request(t0, 1, 4, "FROB");
    assert_eq!(
        reply(&mut c),
        Err(
            "unknown command FROB; HELP lists the commands, PLUGINS the plugins that loaded".into()
        )
    );
}

#[test]
fn received_msg_names_the_sender_even_when_it_names_us() {
    let (mut c, t0) = started("alice");
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    ipc(&mut c);
    c.datagram(t0, addr("127.0.0.1:5001"), b"MSG bob \"hi \\\"you\\\"\"\n");
    // Some implementations put the addressee in the handle field.
    c.datagram(t0, addr("127.0.0.1:5001"), b"MSG alice hello there\r\n");
    c.datagram(t0, addr("10.9.9.9:7"), b"msg alice who am i");
    assert_eq!(
        events(&mut c),
        vec![
            "message bob hi \"you\"",
            "message bob hello there",
            // Not bob's address: shown as what it is, never as bob.
            "message ?alice@10.9.9.9:7 who am i"
        ]
    );
    assert_eq!(c.stats.messages_in, 3);
}

#[test]
fn malformed_datagrams_are_counted_and_dropped() {
    let (mut c, t0) = started("alice");
    for bad in [
        &b"\xff"[..],
        b"",
        b"JOIN",
        b"HELLO world",
        &[b'x'; 70_000][..],
    ] {
        c.datagram(t0, addr("127.0.0.1:9"), bad);
    }
    assert_eq!(c.stats.malformed, 5);
    assert!(sent(&mut c).is_empty());
    assert!(events(&mut c).is_empty());
}

#[test]
fn who_lists_after_the_wait_or_says_nobody_answered() {
    let (mut c, t0) = started("alice");
    c.request(t0, 1, 1, "WHO");
    assert_eq!(sent(&mut c), vec![(disc(), "WHO\n".to_string())]);
    c.tick(t0 + Duration::from_millis(300));
    let e = reply(&mut c).unwrap_err();
    assert!(
        e.starts_with("no discovery service answered WHO on UDP port 4000"),
        "{e}"
    );

    let t1 = t0 + Duration::from_secs(1);
    c.request(t1, 1, 2, "who");
    c.datagram(
        t1,
        from_disc(),
        b"KNOWUSERS alice 127.0.0.1 5000, bob 127.0.0.1 5001",
    );
    c.datagram(t1, addr("127.0.0.1:5001"), b"AWAY bob");
    ipc(&mut c);
    c.tick(t1 + Duration::from_millis(300));
    assert_eq!(
        reply(&mut c),
        Ok(vec![
            "HANDLE  ADDRESS         STATUS  PRIVACY".to_string(),
            "bob     127.0.0.1:5001  away    plain".to_string()
        ])
    );
}

#[test]
fn a_clash_is_reported_and_handle_change_is_checked() {
    // Once a discovery listed us as ourselves we hold the handle: a contrary listing later (a
    // hijack attempt, or two discoveries that disagree) changes nothing.
    let (mut h, t0) = started("holder");
    h.datagram(t0, from_disc(), b"KNOWUSERS holder 10.0.0.1 5000");
    h.datagram(t0, from_disc(), b"KNOWUSERS holder 10.0.0.7 5000");
    assert!(events(&mut h).is_empty());
    assert!(h.status().iter().any(|l| l == "state     joined"));
    assert_eq!(h.stats.refused, 1);

    // A JOIN that lost: the first listing shows somebody else at our handle.
    let (mut c, t0) = started("alice");
    c.datagram(
        t0,
        from_disc(),
        b"KNOWUSERS alice 10.0.0.7 5000, bob 10.0.0.8 5001",
    );
    assert_eq!(
        events(&mut c),
        vec!["clash alice 10.0.0.7:5000", "join bob 10.0.0.8:5001"]
    );
    assert!(c.status().iter().any(|l| l.contains("not joined")));
    sent(&mut c);
    // A taken handle is refused after asking.
    c.request(t0, 1, 1, "HANDLE bob");
    assert_eq!(sent(&mut c), vec![(disc(), "WHO\n".to_string())]);
    c.tick(t0 + Duration::from_millis(300));
    assert_eq!(
        reply(&mut c),
        Err("bob is taken by 10.0.0.8:5001; choose another handle".into())
    );
    // A free one: no LEAVE for a handle we never held, a JOIN for the new one.
    c.request(t0, 1, 2, "HANDLE alicia");
    sent(&mut c);
    c.tick(t0 + Duration::from_millis(600));
    let out: Vec<String> = sent(&mut c).into_iter().map(|(_, s)| s).collect();
    assert!(!out.iter().any(|s| s.starts_with("LEAVE")), "{out:?}");
    assert!(out.contains(&"JOIN alicia 5000\n".to_string()), "{out:?}");
    let msgs = ipc(&mut c);
    assert!(msgs.iter().any(|(_, m)| matches!(m, ServerMsg::Reply { lines, .. } if lines == &vec!["you are now alicia (were alice)".to_string()])));
}

#[test]
fn handle_change_joins_the_new_then_leaves_the_old_and_is_saved() {
    let (mut c, t0) = started("alice");
    c.attach(2, false);
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    sent(&mut c);
    ipc(&mut c);
    c.request(t0, 1, 1, "HANDLE ally");
    sent(&mut c);
    c.tick(t0 + Duration::from_millis(300));
    let out = sent(&mut c);
    // The new handle from our address first (peers that know us see a rename), then the LEAVE
    // for those that do not.
    assert_eq!(
        out.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        vec![
            "JOIN ally 5000\n",
            "JOIN ally 5000\n",
            "WHO\n",
            "LEAVE alice\n",
            "LEAVE alice\n"
        ]
    );
    assert_eq!(c.handle().as_str(), "ally");
    assert_eq!(
        c.out.persist,
        vec![("handle".to_string(), "\"ally\"".to_string())]
    );
    // The prompt that asked gets the reply; only the other one gets the event.
    let msgs = ipc(&mut c);
    assert!(
        msgs.iter()
            .any(|(to, m)| *to == To::Conn(1) && matches!(m, ServerMsg::Reply { .. }))
    );
    assert!(msgs.iter().any(|(to, m)| *to == To::AllBut(1)
        && matches!(
            m,
            ServerMsg::Event {
                event: Event::Handle { .. },
                ..
            }
        )));
    // A peer that sees our JOIN from the same address takes it as a rename.
    let (mut bob, t1) = started("bob");
    bob.datagram(t1, addr("127.0.0.1:5000"), b"JOIN alice 5000\n");
    events(&mut bob);
    bob.datagram(t1, addr("127.0.0.1:5000"), b"JOIN ally 5000\n");
    bob.datagram(t1, addr("127.0.0.1:5000"), b"LEAVE alice\n");
    assert_eq!(events(&mut bob), vec!["rename alice ally"]);
}

#[test]
fn messages_wait_in_a_bounded_backlog_while_nobody_is_attached() {
    let (mut c, t0) = started("alice");
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    ipc(&mut c);
    c.detach(1);
    for i in 0..3 {
        c.datagram(
            t0,
            addr("127.0.0.1:5001"),
            format!("MSG bob m{i}").as_bytes(),
        );
    }
    c.datagram(t0, from_disc(), b"KNOWUSERS carol 127.0.0.1 5002");
    assert!(ipc(&mut c).is_empty());
    c.attach(2, false);
    let lines = events(&mut c);
    assert_eq!(
        lines,
        vec![
            "error 1 older messages were dropped while no prompt was attached (backlog = 2)",
            "message bob m1",
            "message bob m2"
        ]
    );
}

#[test]
fn handles_that_read_as_targets_are_refused() {
    let (mut c, t0) = started("alice");
    for bad in ["*", "@team"] {
        c.request(t0, 1, 1, &format!("HANDLE {bad}"));
        let e = reply(&mut c).unwrap_err();
        assert!(e.contains("would read as a group"), "{e}");
    }
}

#[test]
fn json_forms_for_scripts_and_the_web_ui() {
    let (mut c, t0) = started("alice");
    c.s.history = true;
    let asked = |c: &mut Chat, line: &str| {
        c.request(t0, 1, 9, line);
        let ops: Vec<_> = c.out.history.drain(..).collect();
        match ops.as_slice() {
            [HistoryOp::Query { q, .. }] => Ok(q.clone()),
            _ => reply(c).map(|_| panic!("{line}: no query")),
        }
    };
    assert_eq!(
        asked(&mut c, "HISTORY --json --before 77 bob 30"),
        Ok(HistoryQuery {
            ask: HistoryAsk::Last {
                peer: Some("bob".into()),
                n: 30,
                before: Some(77)
            },
            json: true
        })
    );
    assert_eq!(
        asked(&mut c, "HISTORY -j").map(|q| q.ask),
        Ok(HistoryAsk::Conversations)
    );
    // `*` is the conversation with everyone, no longer every conversation.
    assert_eq!(
        asked(&mut c, "HISTORY * 5").map(|q| q.ask),
        Ok(HistoryAsk::Last {
            peer: Some("*".into()),
            n: 5,
            before: None
        })
    );
    assert!(
        asked(&mut c, "HISTORY --before x bob")
            .unwrap_err()
            .contains("--before ID")
    );
    assert!(
        asked(&mut c, "HISTORY --jsonx").is_ok(),
        "a handle, not the flag"
    );
    c.request(t0, 1, 10, "STATUS --json");
    let s: serde_json::Value = serde_json::from_str(&reply(&mut c).unwrap()[0]).unwrap();
    assert_eq!(
        (s["handle"].as_str(), s["away"].as_bool()),
        (Some("alice"), Some(false))
    );
    let ku = b"KNOWUSERS bob 127.0.0.1 5001\n";
    c.datagram(t0, from_disc(), ku);
    c.request(t0, 1, 11, "WHO --json");
    let later = t0 + Duration::from_millis(400);
    c.datagram(later, from_disc(), ku);
    c.tick(later);
    let lines = reply(&mut c).unwrap();
    let w: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (w["handle"].as_str(), w["status"].as_str()),
        (Some("bob"), Some("here"))
    );
}
