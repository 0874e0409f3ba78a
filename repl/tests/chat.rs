//! End-to-end tests of the chat: real `slcp` discovery, clients and prompts on loopback.

mod support;

use std::time::{Duration, Instant};

use slcp_core::ipc::Event;
use support::*;

const S: Duration = Duration::from_secs(1);

#[test]
fn three_users_see_each_other_chat_and_change_status() {
    let mut lan = Lan::new("heartbeat = 5\nexpiry = 20");
    lan.start_discovery();
    for h in ["alice", "bob", "carol"] {
        lan.add_user(h);
    }
    for h in ["alice", "bob", "carol"] {
        lan.start_client(h);
    }
    let started = Instant::now();
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    let mut c = lan.ipc("carol");
    assert!(a.wait_peers(&["bob", "carol"], S.saturating_sub(started.elapsed())));
    assert!(b.wait_peers(&["alice", "carol"], S.saturating_sub(started.elapsed())));
    assert!(c.wait_peers(&["alice", "bob"], S.saturating_sub(started.elapsed())));
    let who = a.cmd("WHO").unwrap();
    assert_eq!(who.len(), 3, "{who:?}");
    assert!(
        who[1].starts_with("bob ") && who[1].ends_with("here    plain"),
        "{who:?}"
    );
    assert!(
        who[2].starts_with("carol ") && who[2].ends_with("here    plain"),
        "{who:?}"
    );

    // Text with spaces, quotes, backslashes, umlauts and emoji, both ways.
    let texts = [
        "hello there, how are you?",
        "she said \"hi\" and left \\o/",
        "grüße aus Köln — ça va? 👋🏽🎉",
        "  leading and trailing spaces  ",
    ];
    for t in texts {
        a.cmd(&format!("MSG bob {t}")).unwrap();
        let got = b.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
        assert_eq!(
            got,
            Some(Event::Message {
                from: "alice".into(),
                text: t.trim().into()
            })
        );
        b.cmd(&format!("/msg alice \"{t}\"")).unwrap();
        let got = a.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
        assert_eq!(
            got,
            Some(Event::Message {
                from: "bob".into(),
                text: t.into()
            })
        );
    }

    // AWAY shows in the others' WHO; BACK clears it.
    assert_eq!(a.cmd("away").unwrap(), vec!["you are away"]);
    b.expect_event(
        2 * S,
        Event::Away {
            handle: "alice".into(),
        },
    );
    c.expect_event(
        2 * S,
        Event::Away {
            handle: "alice".into(),
        },
    );
    let who = b.cmd("WHO").unwrap();
    assert!(
        who.iter()
            .any(|l| l.starts_with("alice ") && l.contains(" away ")),
        "{who:?}"
    );
    a.cmd("BACK").unwrap();
    b.expect_event(
        2 * S,
        Event::Back {
            handle: "alice".into(),
        },
    );

    // HANDLE change is seen by the others; a taken handle is refused.
    let e = c.cmd("HANDLE bob").unwrap_err();
    assert!(e.starts_with("bob is taken by 127.0.0.1:"), "{e}");
    assert_eq!(
        c.cmd("HANDLE caroline").unwrap(),
        vec!["you are now caroline (were carol)"]
    );
    // The others see a rename (not carol leaving and a stranger joining).
    a.expect_event(
        2 * S,
        Event::Rename {
            from: "carol".into(),
            to: "caroline".into(),
        },
    );
    let who = a.cmd("WHO").unwrap();
    assert!(who.iter().any(|l| l.starts_with("caroline ")), "{who:?}");
    assert!(!who.iter().any(|l| l.starts_with("carol ")), "{who:?}");
    a.cmd("MSG caroline still there?").unwrap();
    assert!(
        c.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "still there?")
        )
        .is_some()
    );

    // LEAVE removes the user from the others' tables and from the discovery.
    b.cmd("LEAVE").unwrap();
    a.expect_event(
        2 * S,
        Event::Leave {
            handle: "bob".into(),
        },
    );
    c.expect_event(
        2 * S,
        Event::Leave {
            handle: "bob".into(),
        },
    );
    let who = a.cmd("WHO").unwrap();
    assert!(!who.iter().any(|l| l.starts_with("bob ")), "{who:?}");
    assert_eq!(lan.who(), vec!["alice", "caroline"]);
    let e = a.cmd("MSG bob are you there").unwrap_err();
    assert!(e.starts_with("nobody called bob is here"), "{e}");
}

#[test]
fn killed_client_expires_and_a_restarted_discovery_is_whole_within_a_heartbeat() {
    let mut lan = Lan::three_users("heartbeat = 0.5\nexpiry = 1.5");
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob", "carol"], 2 * S));
    assert!(b.wait_peers(&["alice", "carol"], 2 * S));

    lan.kill_client("carol", "KILL");
    let killed = Instant::now();
    let gone = |e: &Event| {
        *e == Event::Leave {
            handle: "carol".into(),
        }
    };
    assert!(
        a.wait_event(5 * S, gone).is_some(),
        "alice never dropped carol"
    );
    assert!(
        b.wait_event(5 * S, gone).is_some(),
        "bob never dropped carol"
    );
    let took = killed.elapsed();
    // The discovery forgets carol when her port bounces its check (every 5 s) or `expiry`
    // after her last JOIN, whichever comes first, and tells its clients at once: at most
    // 1.5 + 0.5 s plus sweeps, and slack for a loaded machine.
    assert!(
        took <= Duration::from_millis(4500),
        "dropped too late: {took:?}"
    );

    lan.kill_discovery();
    lan.start_discovery();
    let restarted = Instant::now();
    // Ask until the table is whole (each WHO waits for its answer), at most ~one heartbeat.
    let mut table = Vec::new();
    while restarted.elapsed() < Duration::from_millis(900) {
        table = lan.who();
        if table == ["alice", "bob"] {
            break;
        }
    }
    assert_eq!(
        table,
        ["alice", "bob"],
        "not whole after {:?}",
        restarted.elapsed()
    );
    // And the clients kept each other: nobody left.
    a.cmd("MSG bob still here").unwrap();
    assert!(
        b.wait_event(2 * S, |e| matches!(e, Event::Message { .. }))
            .is_some()
    );
    assert!(!a.events.iter().any(|e| *e
        == Event::Leave {
            handle: "bob".into()
        }));
}

#[test]
fn errors_a_user_can_act_on() {
    // No discovery: WHO says so and how to fix it.
    let mut lan = Lan::new("who_wait = 0.2");
    lan.add_user("alice");
    lan.start_client("alice");
    let mut a = lan.ipc("alice");
    let e = a.cmd("WHO").unwrap_err();
    assert!(
        e.starts_with("no discovery service answered WHO on UDP port"),
        "{e}"
    );
    assert!(e.contains("slcp discovery"), "{e}");

    // Too long a text (over 99 datagrams of parts).
    lan.add_user("bob");
    let e = a
        .cmd(&format!("MSG bob {}", "x".repeat(60_000)))
        .unwrap_err();
    assert!(e.contains("message too long: 60000 bytes"), "{e}");

    // A wrong IPC token is refused with a clear line.
    let info = lan.runtime("alice");
    let r = slcp_core::ipc::IpcClient::attach(info.ipc_port, "not-the-token");
    let e = r.err().expect("wrong token accepted").to_string();
    assert_eq!(
        e,
        "the client refused the IPC token (wrong IPC token); stop it and start slcp again"
    );
    // ... and the client keeps serving the right one.
    a.cmd("STATUS").unwrap();

    // A second client for the same user is refused.
    let alice_cfg = lan.user("alice").config.to_str().unwrap().to_string();
    let out = lan.run_script(&["client", "--config", &alice_cfg], "", 10 * S);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("a client for alice already runs"),
        "{}",
        text(&out.stderr)
    );

    // Client not running: `slcp repl` says what to do.
    let bob_cfg = lan.user("bob").config.to_str().unwrap().to_string();
    let out = lan.run_script(&["repl", "--config", &bob_cfg], "WHO\n", 10 * S);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "slcp: no client runs for bob; start one with `slcp` (or `slcp client`)"
    );

    // Port range exhausted: alice holds her port; bob is confined to it.
    let alice_port = lan.user("alice").port;
    let out = lan.run_script(
        &[
            "client",
            "--config",
            &bob_cfg,
            "--port",
            &format!("{alice_port}-{alice_port}"),
        ],
        "",
        10 * S,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "every port of the range {alice_port}-{alice_port} is in use"
        )),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("slcp:")).count(),
        1,
        "{err}"
    );
}

#[test]
fn busy_ports_of_the_range_are_skipped() {
    // Three free ports in a row: the first busy for UDP, the second for TCP, the third free.
    let p = free_ports(3);
    let _udp = std::net::UdpSocket::bind(("0.0.0.0", p)).unwrap();
    let _tcp = std::net::TcpListener::bind(("0.0.0.0", p + 1)).unwrap();
    let mut lan = Lan::new("");
    lan.start_discovery();
    lan.add_user("alice");
    lan.set_key("alice", "port", &format!("[{p}, {}]", p + 2));
    lan.start_client("alice");
    assert_eq!(lan.runtime("alice").port, p + 2);
    lan.ipc("alice").cmd("STATUS").unwrap();
}

#[test]
fn plain_slcp_starts_discovery_and_client_then_attaches_again() {
    // bob starts before any discovery exists: he is listed from his next heartbeat on.
    let mut lan = Lan::new("heartbeat = 0.5\nexpiry = 3");
    let cfg = lan.add_user("alice").to_str().unwrap().to_string();
    lan.add_user("bob");
    lan.start_client("bob");
    let out = lan.run_script(&["--config", &cfg], "WAIT peer bob 5\nWHO\n", 20 * S);
    // Note the detached processes first, so they are killed even when an assertion fails.
    let status = lan.discovery_status();
    lan.detached.push(status["pid"].as_u64().unwrap() as u32);
    lan.detached.push(lan.runtime("alice").pid);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("bob "), "{}", text(&out.stdout));
    // A second `slcp` attaches to the same client (same pid) and gets what arrived meanwhile.
    let mut b = lan.ipc("bob");
    b.cmd("MSG alice while you were out").unwrap();
    let out = lan.run_script(&["--config", &cfg], "WAIT message bob 5\nQUIT\n", 20 * S);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "message bob while you were out\nbye\n");
    // QUIT made alice leave.
    b.expect_event(
        2 * S,
        Event::Leave {
            handle: "alice".into(),
        },
    );
}

#[test]
fn messages_kept_while_no_prompt_is_attached_are_bounded_and_shown_on_attach() {
    // Without the history, the client keeps them in memory, bounded.
    let mut lan = Lan::new("backlog = 2\nhistory = false");
    lan.start_all(&["alice", "bob"]);
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 2 * S));
    // Each reply means the datagram is already queued on alice's socket: her client reads it
    // before it can read the token of a prompt that connects afterwards.
    for t in ["one", "two", "three"] {
        b.cmd(&format!("MSG alice {t}")).unwrap();
    }
    let cfg = lan.user("alice").config.to_str().unwrap().to_string();
    let out = lan.run_script(
        &["repl", "--config", &cfg],
        "STATUS
",
        10 * S,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        &lines[..3],
        [
            "error 1 older messages were dropped while no prompt was attached (backlog = 2)",
            "message bob two",
            "message bob three"
        ],
        "{stdout}"
    );
    assert!(lines.contains(&"msg in    3"), "{stdout}");
    // Shown once: the next prompt starts empty.
    let out = lan.run_script(
        &["repl", "--config", &cfg],
        "STATUS
",
        10 * S,
    );
    assert!(
        text(&out.stdout).starts_with("handle    alice\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn sigterm_and_sigint_make_a_client_leave_at_once() {
    // Long expiry: only a LEAVE can explain a prompt departure.
    let mut lan = Lan::three_users("heartbeat = 5\nexpiry = 30");
    let mut a = lan.ipc("alice");
    assert!(a.wait_peers(&["bob", "carol"], 2 * S));
    for (who, sig) in [("bob", "TERM"), ("carol", "INT")] {
        lan.kill_client(who, sig);
        let left = a.wait_event(2 * S, |e| *e == Event::Leave { handle: who.into() });
        assert!(left.is_some(), "{who} did not LEAVE on SIG{sig}");
        // A clean exit removes the runtime file.
        assert!(
            !lan.home()
                .join(format!("run/slcp/client-{who}.json"))
                .exists(),
            "{who}'s runtime file outlived it"
        );
    }
    assert_eq!(lan.who(), vec!["alice"]);
}

#[test]
fn a_second_discovery_on_the_host_is_refused_unless_shared() {
    let mut lan = Lan::new("");
    lan.start_discovery();
    let cfg = lan.home().join("discovery.toml");
    let cfg = cfg.to_str().unwrap();
    let out = lan.run_script(&["discovery", "--config", cfg], "", 10 * S);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        format!(
            "slcp: a discovery service already runs on this host (TCP 127.0.0.1:{} is taken); stop it first, or pass --share to run beside it",
            lan.whoisport
        )
    );
    // With --share it runs; both answer WHO.
    let mut shared = lan
        .cmd()
        .args(["discovery", "--share", "--config", cfg])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = line_within(shared.stdout.take().unwrap(), 10 * S);
    let _ = shared.kill();
    let _ = shared.wait();
    assert!(ready.is_some_and(|l| l.starts_with("discovery listening on UDP port")));
}

#[test]
fn handle_is_a_rename_for_peers_is_saved_and_the_next_prompt_finds_the_client() {
    let mut lan = Lan::new("");
    lan.start_all(&["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    let mut a2 = lan.ipc("alice");
    assert_eq!(
        a.cmd("HANDLE alicia").unwrap(),
        vec!["you are now alicia (were alice)"]
    );
    b.expect_event(
        2 * S,
        Event::Rename {
            from: "alice".into(),
            to: "alicia".into(),
        },
    );
    assert!(!b.events.iter().any(|e| matches!(e, Event::Leave { .. })));
    // The other prompt hears of it once; the one that asked got the reply only.
    a2.expect_event(
        2 * S,
        Event::Handle {
            handle: "alicia".into(),
        },
    );
    assert!(
        a.wait_event(S / 2, |e| matches!(e, Event::Handle { .. }))
            .is_none()
    );
    // Saved, comments and all, and the next `slcp repl` with that config attaches to it.
    let cfg = lan.user("alice").config.clone();
    let saved = std::fs::read_to_string(&cfg).unwrap();
    assert!(saved.contains("handle = \"alicia\""), "{saved}");
    let out = lan.run_script(
        &["repl", "--config", cfg.to_str().unwrap()],
        "STATUS\n",
        10 * S,
    );
    assert!(
        text(&out.stdout).starts_with("handle    alicia\n"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
