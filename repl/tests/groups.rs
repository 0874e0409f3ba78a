//! Messages to several people end to end: a saved group of three slcp users (encrypted between
//! them, the default) and a plain SLCP peer (played by this test, in the clear), answers to the
//! whole group, MSG * and ALL, a list of handles with a member who is not there, and the group
//! surviving a restart of the client.

mod support;

use std::time::Duration;

use slcp_core::ipc::{Event, Privacy};
use support::*;

const S: Duration = Duration::from_secs(1);

fn group(from: &str, group: &str, text: &str) -> Event {
    Event::Group {
        from: from.into(),
        group: group.into(),
        text: text.into(),
        // Between slcp peers (encryption on, the default), sealed end to end.
        privacy: Privacy::Encrypted,
    }
}

#[test]
fn a_group_reaches_everyone_in_their_form_and_answers_go_to_all() {
    let mut lan = Lan::new("encryption = \"prefer\"");
    lan.start_all(&["alice", "bob", "carol"]);
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    let mut c = lan.ipc("carol");
    for (x, others) in [
        (&mut a, ["bob", "carol"]),
        (&mut b, ["alice", "carol"]),
        (&mut c, ["alice", "bob"]),
    ] {
        for o in others {
            x.wait_who(o, "encrypted", 10 * S);
        }
    }
    // A plain SLCP peer that only alice knows.
    let plain = FakePeer::join("plain", lan.user("alice").port);
    assert!(a.wait_peers(&["plain"], 5 * S));

    let r = a.cmd("GROUP create team bob carol plain").unwrap();
    assert_eq!(r, vec!["created @team: bob carol plain".to_string()]);
    let r = a.cmd("MSG @team Grüße \"quoted\" 🚀").unwrap();
    assert_eq!(r, vec!["to @team: bob, carol, plain".to_string()]);
    let greeting = "Grüße \"quoted\" 🚀";
    b.expect_event(5 * S, group("alice", "@team", greeting));
    c.expect_event(5 * S, group("alice", "@team", greeting));
    // The plain peer reads an ordinary MSG; besides the one hello it never sees an extension.
    let mut got = Vec::new();
    while let Some(d) = plain.recv_udp_all(S) {
        let done = d.starts_with("MSG ");
        got.push(d);
        if done {
            break;
        }
    }
    assert_eq!(
        got.last().map(String::as_str),
        Some("MSG alice Grüße \"quoted\" 🚀\n")
    );
    assert!(
        got.iter()
            .all(|d| d.starts_with("MSG ") || d.starts_with("SLCPX alice 1 ")),
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|d| d.starts_with("SLCPX")).count(),
        1,
        "{got:?}"
    );

    // Bob answers the whole group: alice and carol get it; plain is not bob's peer, and that
    // does not stop the others.
    let r = b.cmd("MSG @team thanks").unwrap();
    assert_eq!(
        r,
        vec!["to @team: alice, carol; not to plain (not here)".to_string()]
    );
    a.expect_event(5 * S, group("bob", "@team", "thanks"));
    c.expect_event(5 * S, group("bob", "@team", "thanks"));

    // Everyone present, and a list with one name nobody holds.
    assert_eq!(
        c.cmd("MSG * hello all").unwrap(),
        vec!["to *: alice, bob".to_string()]
    );
    a.expect_event(5 * S, group("carol", "*", "hello all"));
    b.expect_event(5 * S, group("carol", "*", "hello all"));
    assert_eq!(
        a.cmd("ALL bye").unwrap(),
        vec!["to *: bob, carol, plain".to_string()]
    );
    b.expect_event(5 * S, group("alice", "*", "bye"));
    assert_eq!(plain.recv_udp(5 * S).as_deref(), Some("MSG alice bye\n"));
    assert_eq!(
        a.cmd("MSG bob,ghost psst").unwrap(),
        vec!["to alice,bob,ghost: bob; not to ghost (not here)".to_string()]
    );
    b.expect_event(5 * S, group("alice", "alice,bob,ghost", "psst"));
    let e = a.cmd("MSG ghost,phantom x").unwrap_err();
    assert!(e.contains("nobody got it"), "{e}");
    let e = a.cmd("MSG @nope x").unwrap_err();
    assert!(e.contains("no group @nope"), "{e}");

    // In a QUERY with the group, plain lines go to all of it.
    let cfg = lan.user("alice").config.clone();
    let out = lan.run_script(
        &["repl", "--config", cfg.to_str().unwrap()],
        "QUERY @team\nplain line to the team\n",
        10 * S,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    b.expect_event(5 * S, group("alice", "@team", "plain line to the team"));
    c.expect_event(5 * S, group("alice", "@team", "plain line to the team"));

    // Groups are saved: they survive the client.
    a.cmd("GROUP remove team plain").unwrap();
    drop(a);
    lan.kill_client("alice", "TERM");
    lan.start_client("alice");
    let mut a = lan.ipc("alice");
    assert_eq!(
        a.cmd("GROUP list team").unwrap(),
        vec!["@team: bob carol".to_string()]
    );
    a.cmd("GROUP delete team").unwrap();
    assert!(a.cmd("GROUP list team").is_err());
}
