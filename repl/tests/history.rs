//! The message history with real processes and a real SQLite database: what arrives while no
//! prompt is attached survives `kill -9` of the client and is shown once, with its time;
//! HISTORY and SEARCH read it back.

mod support;

use std::time::{Duration, Instant};

use slcp_core::history::Store;
use slcp_core::ipc::{Event, IpcClient, ServerMsg};
use support::*;

const S: Duration = Duration::from_secs(1);

#[test]
fn messages_survive_kill_9_and_unread_ones_are_shown_once_with_their_time() {
    let mut lan = Lan::new("");
    lan.start_all(&["alice", "bob"]);
    // alice never has a prompt here: what bob sends waits for her as unread.
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 2 * S));
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for t in ["one", "two with ümlauts"] {
        b.cmd(&format!("MSG alice {t}")).unwrap();
    }
    let db = lan.home().join("data/slcp/history/alice.sqlite3");
    let reader = Store::open(&db).unwrap();
    let deadline = Instant::now() + 5 * S;
    while reader
        .conversations()
        .unwrap()
        .first()
        .is_none_or(|c| c.unread < 2)
    {
        assert!(
            Instant::now() < deadline,
            "the messages never reached the database"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(reader);
    lan.kill_client("alice", "KILL");
    lan.start_client("alice");
    // A person's prompt: how many came, then the two with their own times.
    let info = lan.runtime("alice");
    let (mut a, _) = IpcClient::attach_as(info.ipc_port, &info.token, true).unwrap();
    a.set_timeout(Some(5 * S)).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        if let Some(ServerMsg::Event { event, at }) = a.recv().unwrap()
            && matches!(event, Event::Notice { .. } | Event::Message { .. })
        {
            got.push((event.line(), at));
        }
    }
    let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "notice 2 unread while you were away (2 from bob)",
            "message bob one",
            "message bob two with ümlauts"
        ]
    );
    for (l, at) in &got[1..] {
        assert!(
            (sent_at..sent_at + 5_000).contains(at),
            "{l}: {at} is not when it arrived ({sent_at})"
        );
    }
    // alice answers; HISTORY bob has both directions, in order, with times.
    let _ = a_cmd(&mut a, "MSG bob after the crash");
    let lines = a_cmd(&mut a, "HISTORY bob");
    let tail: Vec<&str> = lines
        .iter()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    assert_eq!(
        tail,
        vec![
            "bob: one",
            "bob: two with ümlauts",
            "you → bob: after the crash"
        ],
        "{lines:?}"
    );
    // SEARCH finds by words, with the peer and the time.
    let hits = a_cmd(&mut a, "SEARCH ümlauts");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].ends_with("bob: two with ümlauts"), "{hits:?}");
    // HISTORY alone: the conversations, nothing unread any more.
    let conv = a_cmd(&mut a, "HISTORY");
    assert_eq!(conv.len(), 1, "{conv:?}");
    assert!(conv[0].ends_with("bob: 3 messages, 0 unread"), "{conv:?}");
    // The database is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn unread_messages_are_shown_once_to_the_next_prompt() {
    let mut lan = Lan::new("");
    lan.start_all(&["alice", "bob"]);
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 2 * S));
    for t in ["while", "you were out"] {
        b.cmd(&format!("MSG alice {t}")).unwrap();
    }
    // A message to everyone comes back as one, once bob knows alice speaks the extension.
    b.wait_who("alice", "slcpx:", 10 * S);
    b.cmd("MSG * and to all of you").unwrap();
    let cfg = lan.user("alice").config.to_str().unwrap().to_string();
    let out = lan.run_script(&["repl", "--config", &cfg], "HISTORY\n", 10 * S);
    assert_eq!(
        text(&out.stdout).lines().take(3).collect::<Vec<_>>(),
        vec![
            "message bob while",
            "message bob you were out",
            "group * bob and to all of you"
        ]
    );
    // Shown once: the next prompt gets none of them again.
    let out = lan.run_script(&["repl", "--config", &cfg], "HISTORY\n", 10 * S);
    let t = text(&out.stdout);
    assert!(!t.contains("message bob"), "{t}");
    assert!(
        t.lines().any(|l| l.ends_with("bob: 2 messages, 0 unread")),
        "{t}"
    );
    // With the history off, HISTORY says so and how to turn it on.
    lan.set_key("alice", "history", "false");
    lan.kill_client("alice", "TERM");
    lan.start_client("alice");
    let out = lan.run_script(&["repl", "--config", &cfg], "HISTORY\n", 10 * S);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("the history is off (history = false)"),
        "{}",
        text(&out.stderr)
    );
}

fn a_cmd(c: &mut IpcClient, line: &str) -> Vec<String> {
    let id = c.send(line).unwrap();
    loop {
        match c.recv().unwrap().expect("closed") {
            ServerMsg::Reply {
                id: r,
                lines,
                error,
            } if r == id => {
                assert_eq!(error, None, "{line}");
                return lines;
            }
            _ => {}
        }
    }
}

/// A script that writes a thousand commands at once on a fresh connection, while the history
/// replay it waits for is not in yet: every command runs (TCP holds the rest back meanwhile),
/// none is refused as "busy", and every message reaches bob.
#[test]
fn a_thousand_commands_written_at_once_all_run_with_the_history_on() {
    let mut lan = Lan::new("history = true");
    lan.start_all(&["alice", "bob"]);
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 5 * S));
    // alice's history is busy (two thousand unread messages to write, then to replay): the
    // new prompt's replay comes well after its commands.
    b.c.set_timeout(Some(10 * S)).unwrap();
    let unread = 2000;
    for i in 0..unread {
        b.c.send(&format!("MSG alice unread {i}")).unwrap();
    }
    let mut replied = 0;
    while replied < unread {
        if let Some(ServerMsg::Reply { .. }) = b.c.recv().unwrap() {
            replied += 1;
        }
    }
    let info = lan.runtime("alice");
    let (mut w, mut replies) = IpcClient::attach(info.ipc_port, &info.token)
        .unwrap()
        .0
        .split();
    let n = 1000;
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend_from_slice(
            format!("{{\"id\":{i},\"line\":\"MSG bob line {i}\"}}\n").as_bytes(),
        );
    }
    std::io::Write::write_all(&mut w, &batch).unwrap();
    w.set_read_timeout(Some(10 * S)).unwrap();
    let mut answered = 0;
    while answered < n {
        match replies.recv() {
            Ok(Some(ServerMsg::Reply { error, .. })) => {
                assert_eq!(error, None, "reply {answered}");
                answered += 1;
            }
            Ok(Some(_)) => {}
            other => panic!("after {answered} replies: {other:?}"),
        }
    }
    for got in 0..n {
        let e = b.wait_event(10 * S, |e| {
            matches!(e, Event::Message { from, text } if from == "alice" && text.starts_with("line "))
        });
        assert!(e.is_some(), "bob had {got} of {n}");
    }
}
