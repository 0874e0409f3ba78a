//! A real LAN: hosts in network namespaces joined by a bridge (repl/tests/netns/harness.sh), each
//! with its own discovery and users, default config (interface broadcast). Root required; where
//! namespaces cannot be made these tests fail loudly, unless SLCP_SKIP_NETNS=1 says to skip.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use slcp_core::ipc::{Event, Privacy};
use support::netns::*;
use support::*;

const S: Duration = Duration::from_secs(1);

const USERS: [(usize, &str); 6] = [
    (1, "ann"),
    (1, "abe"),
    (2, "ben"),
    (2, "bea"),
    (3, "cat"),
    (3, "cal"),
];

/// 3 hosts x 2 users, everyone started; returns the net and an IPC connection per user.
fn six_users(extra: &str) -> (Net, HashMap<&'static str, Ipc>, Instant) {
    let mut net = Net::new(3, extra);
    for h in 1..=3 {
        net.start_discovery(h);
    }
    for (h, u) in USERS {
        net.start_client(h, u, "");
    }
    let last_start = Instant::now();
    let ipcs = USERS.iter().map(|(h, u)| (*u, net.ipc(*h, u))).collect();
    (net, ipcs, last_start)
}

#[test]
fn three_hosts_see_everyone_and_talk_in_every_direction() {
    if !netns_available() {
        return;
    }
    let (net, mut ipcs, last_start) = six_users("");
    for (_, u) in USERS {
        let others: Vec<&str> = USERS.iter().map(|x| x.1).filter(|x| *x != u).collect();
        let left = (2 * S).saturating_sub(last_start.elapsed());
        assert!(
            ipcs.get_mut(u).unwrap().wait_peers(&others, left),
            "{u} did not see everyone within 2 s of the last start"
        );
    }
    // Remote users are listed at their LAN address, never 0.0.0.0 or loopback.
    let who = ipcs.get_mut("ann").unwrap().cmd("WHO").unwrap();
    for (h, u) in USERS.iter().filter(|(h, _)| *h != 1) {
        let row = who
            .iter()
            .find(|l| l.starts_with(&format!("{u} ")))
            .unwrap();
        assert!(row.contains(&format!("10.99.0.{h}:50")), "{row}");
    }
    // MSG between every pair, both ways.
    for (_, from) in USERS {
        for (_, to) in USERS.iter().filter(|(_, t)| *t != from) {
            let text = format!("{from} to {to} über das Netz");
            ipcs.get_mut(from)
                .unwrap()
                .cmd(&format!("MSG {to} {text}"))
                .unwrap();
            let got = ipcs
                .get_mut(to)
                .unwrap()
                .wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
            assert_eq!(
                got,
                Some(Event::Message {
                    from: from.into(),
                    text
                })
            );
        }
    }
    // IMG from each host to each other host.
    let file = net.dir.path().join("pic.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..1_000_000u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&file, &bytes).unwrap();
    for (from, to) in [
        ("ann", "ben"),
        ("ann", "cat"),
        ("ben", "ann"),
        ("ben", "cal"),
        ("cat", "abe"),
        ("cal", "bea"),
    ] {
        let r = ipcs
            .get_mut(from)
            .unwrap()
            .cmd(&format!("IMG {to} {}", file.display()))
            .unwrap();
        assert!(r[0].starts_with(&format!("sent pic.png to {to}")), "{r:?}");
        let got = ipcs
            .get_mut(to)
            .unwrap()
            .wait_event(5 * S, |e| matches!(e, Event::Image { .. }));
        match got {
            Some(Event::Image { from: f, path, .. }) => {
                assert_eq!(f, from);
                assert_eq!(std::fs::read(&path).unwrap(), bytes);
            }
            other => panic!("{from} -> {to}: {other:?}"),
        }
    }
}

#[test]
fn a_restarted_discovery_and_a_killed_client_recover() {
    if !netns_available() {
        return;
    }
    let (mut net, mut ipcs, _) = six_users("");
    let all: Vec<String> = {
        let mut v: Vec<String> = USERS.iter().map(|u| u.1.to_string()).collect();
        v.sort();
        v
    };
    assert!(
        ipcs.get_mut("ann")
            .unwrap()
            .wait_peers(&["ben", "bea", "cat", "cal", "abe"], 3 * S)
    );
    // Host 2's discovery dies and comes back: its table is whole within one heartbeat (0.5 s).
    net.kill_discovery(2);
    net.start_discovery(2);
    let restarted = Instant::now();
    let mut table = Vec::new();
    while restarted.elapsed() < Duration::from_millis(900) {
        table = net.discovery_table(2);
        if table == all {
            break;
        }
    }
    assert_eq!(
        table,
        all,
        "not whole {:?} after the restart",
        restarted.elapsed()
    );
    // A client killed with SIGKILL is dropped by everyone once it expires.
    net.kill_client(2, "bea");
    for u in ["ann", "abe", "ben", "cat", "cal"] {
        let gone = ipcs.get_mut(u).unwrap().wait_event(6 * S, |e| {
            *e == Event::Leave {
                handle: "bea".into(),
            }
        });
        assert!(gone.is_some(), "{u} never dropped bea");
    }
}

#[test]
fn a_link_that_goes_down_and_up_brings_its_users_back() {
    if !netns_available() {
        return;
    }
    let (net, mut ipcs, _) = six_users("");
    let a = ipcs.get_mut("ann").unwrap();
    assert!(a.wait_peers(&["cat", "cal"], 3 * S));
    // A user is dropped for silence only once it has shown that it heartbeats (one that sent a
    // single JOIN is kept until it leaves or its port is found closed): cut the link once host
    // 1's discovery has seen all six heartbeat (the first heartbeat is 0.5 s after the JOIN).
    let deadline = Instant::now() + 5 * S;
    while net.heartbeating(1) < 6 {
        assert!(
            Instant::now() < deadline,
            "host 1 never saw everyone heartbeat"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    sh(&["link", &net.name, "3", "down"]).unwrap();
    for u in ["cat", "cal"] {
        let gone = a.wait_event(6 * S, |e| *e == Event::Leave { handle: u.into() });
        assert!(
            gone.is_some(),
            "ann never dropped {u} while host 3 was cut off"
        );
    }
    sh(&["link", &net.name, "3", "up"]).unwrap();
    // Nothing restarted: heartbeats bring them back.
    for u in ["cat", "cal"] {
        let back = a.wait_event(
            6 * S,
            |e| matches!(e, Event::Join { handle, .. } if handle == u),
        );
        assert!(
            back.is_some(),
            "{u} did not come back after the link came up"
        );
    }
    let c = ipcs.get_mut("cat").unwrap();
    c.cmd("MSG ann back online").unwrap();
    let a = ipcs.get_mut("ann").unwrap();
    assert!(
        a.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "back online")
        )
        .is_some()
    );
}

/// A host cut off (no datagram, no ICMP: as if switched off) is known gone through its
/// watchers (README "Discovery at scale"): within its refresh interval and three questions,
/// long before the expiry that was the only way before them.
#[test]
fn a_host_cut_off_is_known_gone_within_its_refresh_interval_not_the_expiry() {
    if !netns_available() {
        return;
    }
    let mut net = Net::new(3, "");
    // A refresh interval of 4 s (the expiry / 3.5) against an expiry of 14 s.
    net.timing = "heartbeat = 0.5\nexpiry = 14".into();
    for h in 1..=3 {
        net.start_discovery(h);
    }
    for (h, u) in USERS {
        net.start_client(h, u, "");
    }
    let mut ipcs: HashMap<&str, Ipc> = USERS.iter().map(|(h, u)| (*u, net.ipc(*h, u))).collect();
    let others = ["ann", "abe", "ben", "bea"];
    for u in others {
        let i = ipcs.get_mut(u).unwrap();
        assert!(i.wait_peers(&["cat", "cal"], 3 * S), "{u} never saw host 3");
    }
    sh(&["link", &net.name, "3", "down"]).unwrap();
    let cut = Instant::now();
    // At most 4 s to its refresh, then 0.3 s, three questions 300 ms apart: 5.2 s.
    for u in others {
        for gone in ["cat", "cal"] {
            let left = (8 * S).saturating_sub(cut.elapsed());
            let seen = ipcs.get_mut(u).unwrap().wait_event(left, |e| {
                *e == Event::Leave {
                    handle: gone.into(),
                }
            });
            assert!(
                seen.is_some(),
                "{u} did not drop {gone} within 8 s of the cut"
            );
        }
    }
    let silent: u64 = (1..=2)
        .map(|h| net.discovery_status(h)["silent"].as_u64().unwrap())
        .sum();
    assert_eq!(
        silent, 4,
        "hosts 1 and 2 each dropped cat and cal as silent"
    );
    // Back on the LAN: its next refresh (within 4 s) brings them back.
    sh(&["link", &net.name, "3", "up"]).unwrap();
    let up = Instant::now();
    for u in others {
        let left = (6 * S).saturating_sub(up.elapsed());
        let i = ipcs.get_mut(u).unwrap();
        assert!(
            i.wait_peers(&["cat", "cal"], left),
            "{u} never saw host 3 again"
        );
    }
}

#[test]
fn the_same_handle_on_two_hosts_is_told_and_stays_out() {
    if !netns_available() {
        return;
    }
    let mut net = Net::new(2, "");
    net.start_discovery(1);
    net.start_discovery(2);
    net.start_client(1, "sam", "");
    net.start_client(2, "ted", "");
    let mut sam1 = net.ipc(1, "sam");
    assert!(sam1.wait_peers(&["ted"], 3 * S));
    // A second "sam" on host 2 (same port number: it is another machine).
    net.start_client(2, "sam", "");
    let mut sam2 = net.ipc(2, "sam");
    let clash = sam2.wait_event(3 * S, |e| matches!(e, Event::Clash { .. }));
    assert_eq!(
        clash,
        Some(Event::Clash {
            handle: "sam".into(),
            addr: "10.99.0.1:5000".into()
        })
    );
    let status = sam2.cmd("STATUS").unwrap();
    assert!(
        status
            .iter()
            .any(|l| l == "state     not joined: sam is held by 10.99.0.1:5000"),
        "{status:?}"
    );
    assert_eq!(
        sam2.cmd("MSG ted hi").unwrap_err(),
        "you are not in the chat; JOIN first"
    );
    // Everyone still has the first sam at host 1; the first sam never heard of a rival.
    let mut ted = net.ipc(2, "ted");
    let who = ted.cmd("WHO").unwrap();
    assert!(
        who.iter()
            .any(|l| l.starts_with("sam ") && l.contains("10.99.0.1:5000")),
        "{who:?}"
    );
    assert!(!sam1.events.iter().any(|e| matches!(e, Event::Clash { .. })));
    // A new handle gets the second one in.
    assert_eq!(
        sam2.cmd("HANDLE sammy").unwrap(),
        vec!["you are now sammy (were sam)"]
    );
    assert!(
        ted.wait_event(
            3 * S,
            |e| matches!(e, Event::Join { handle, .. } if handle == "sammy")
        )
        .is_some()
    );
    sam2.cmd("MSG ted hi from sammy").unwrap();
    assert!(
        ted.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "hi from sammy")
        )
        .is_some()
    );
}

#[test]
fn doctor_tells_which_direction_is_blocked_and_static_peers_fix_another_subnet() {
    if !netns_available() {
        return;
    }
    let mut net = Net::new(2, "");
    // Host 3 sits on the same wire but in another subnet: broadcasts from 10.99.0.0/24 do not
    // reach it, unicast does (with routes both ways).
    sh(&["host", &net.name, "3", "10.98.0.3/24"]).unwrap();
    net.add_host_entry(3);
    sh(&["route", &net.name, "1", "10.98.0.0/24"]).unwrap();
    sh(&["route", &net.name, "3", "10.99.0.0/24"]).unwrap();
    for h in 1..=3 {
        net.start_discovery(h);
    }
    net.start_client(1, "ann", "");
    // Host 3's user knows host 1 as a static peer: her JOIN reaches host 1's discovery directly.
    net.start_client(3, "zoe", "peers = [\"10.99.0.1\"]");
    let mut zoe = net.ipc(3, "zoe");
    assert!(
        zoe.wait_peers(&["ann"], 3 * S),
        "the static peer did not work"
    );
    // Host 2's discovery is down, but its user is known (her JOIN reached host 1's discovery,
    // announced by host 2's discovery before it stopped).
    net.start_client(2, "bob", "");
    let deadline = Instant::now() + 5 * S;
    while !net.discovery_table(1).iter().any(|h| h == "bob") {
        assert!(
            Instant::now() < deadline,
            "host 1's discovery never heard of bob"
        );
    }
    net.kill_discovery(2);
    let mut ann = net.ipc(1, "ann");
    assert!(ann.wait_peers(&["bob", "zoe"], 3 * S));

    let cfg = net.hosts[0].home.join("ann.toml");
    let out = run_with_input(
        net.cmd(1, &["doctor", "--config", cfg.to_str().unwrap()]),
        "",
        10 * S,
    );
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("eth0     10.99.0.1       broadcast 10.99.0.255     used"),
        "{report}"
    );
    assert!(
        report.contains(
            "JOIN/LEAVE/WHO/AWAY/BACK go to: 127.255.255.255, 10.99.0.255 (UDP port 4000)"
        ),
        "{report}"
    );
    assert!(
        report.contains("discovery on this host: running"),
        "{report}"
    );
    assert!(report.contains("your client (ann): pid "), "{report}");
    assert!(
        report.contains("discovery at 10.99.0.1 answered: 3 user(s): ann, bob, zoe"),
        "{report}"
    );
    assert!(
        report.contains("PROBLEM: host 10.98.0.3 answers WHO sent to it directly but not our broadcast: our broadcasts do not reach it (another subnet?); add \"10.98.0.3\" to `peers`"),
        "{report}"
    );
    assert!(
        report.contains("PROBLEM: users at 10.99.0.2 are known, but its discovery does not answer us: it is not running there, or UDP port 4000 is blocked"),
        "{report}"
    );
    assert!(report.contains("2 problem(s) found"), "{report}");
}

#[test]
fn a_group_across_two_hosts_sees_itself_and_answers_all() {
    if !netns_available() {
        return;
    }
    let mut net = Net::new(2, "");
    net.start_discovery(1);
    net.start_discovery(2);
    let members = [(1, "ann"), (1, "abe"), (2, "ben")];
    for (h, u) in members {
        net.start_client(h, u, "");
    }
    let mut ipcs: HashMap<&str, Ipc> = members.iter().map(|(h, u)| (*u, net.ipc(*h, u))).collect();
    for (_, u) in members {
        for (_, o) in members.iter().filter(|(_, o)| *o != u) {
            ipcs.get_mut(u).unwrap().wait_who(o, "slcpx:", 10 * S);
        }
    }
    let r = ipcs
        .get_mut("ann")
        .unwrap()
        .cmd("GROUP create team abe ben")
        .unwrap();
    assert_eq!(r, vec!["created @team: abe ben".to_string()]);
    // The creator writes; then each member answers the whole group from its own side.
    for (from, text) in [
        ("ann", "hello team"),
        ("ben", "hi from host 2"),
        ("abe", "hi from host 1"),
    ] {
        let r = ipcs
            .get_mut(from)
            .unwrap()
            .cmd(&format!("MSG @team {text}"))
            .unwrap();
        assert!(r[0].starts_with("to @team: "), "{from}: {r:?}");
        for (_, to) in members.iter().filter(|(_, t)| *t != from) {
            let want = Event::Group {
                from: from.into(),
                group: "@team".into(),
                text: text.into(),
                privacy: Privacy::Plain,
            };
            let got = ipcs
                .get_mut(to)
                .unwrap()
                .wait_event(5 * S, |e| matches!(e, Event::Group { .. }));
            assert_eq!(got, Some(want), "{from} -> {to}");
        }
    }
    // And a file from one host to the other.
    let file = net.dir.path().join("notes.txt");
    std::fs::write(&file, "über das Netz\n".repeat(10_000)).unwrap();
    let r = ipcs
        .get_mut("ben")
        .unwrap()
        .cmd(&format!("FILE ann {}", file.display()))
        .unwrap();
    assert!(r[0].starts_with("sent notes.txt to ann"), "{r:?}");
    match ipcs
        .get_mut("ann")
        .unwrap()
        .wait_event(5 * S, |e| matches!(e, Event::File { .. }))
    {
        Some(Event::File { from, path, .. }) => {
            assert_eq!(from, "ben");
            assert!(path.ends_with("/notes.txt"), "{path}");
            assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(&file).unwrap());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_capture_on_the_lan_sees_no_plaintext_between_slcp_hosts() {
    if !netns_available() {
        return;
    }
    let mut net = Net::new(2, "encryption = \"prefer\"");
    net.start_discovery(1);
    net.start_discovery(2);
    net.start_client(1, "ann", "");
    net.start_client(2, "ben", "");
    let mut ann = net.ipc(1, "ann");
    let mut ben = net.ipc(2, "ben");
    ann.wait_who("ben", "encrypted", 10 * S);
    // Host 1's wire, as anyone on the segment could record it.
    let ns = net.hosts[0].ns.clone();
    let cap = in_ns(&ns, || {
        support::capture::Capture::start("eth0", (5000..=5010).collect())
    });
    let secret = "meet me behind the gym at noon";
    ann.cmd(&format!("MSG ben {secret}")).unwrap();
    let got = ben.wait_event(5 * S, |e| matches!(e, Event::Private { .. }));
    assert!(
        matches!(&got, Some(Event::Private { text, .. }) if text == secret),
        "{got:?}"
    );
    let marker = "SECRET-FILE-CONTENT-4711\n".repeat(4000);
    let doc = net.dir.path().join("minutes.txt");
    std::fs::write(&doc, &marker).unwrap();
    let r = ben.cmd(&format!("FILE ann {}", doc.display())).unwrap();
    assert!(r[0].starts_with("sent minutes.txt to ann"), "{r:?}");
    match ann.wait_event(5 * S, |e| matches!(e, Event::File { .. })) {
        Some(Event::File { path, .. }) => {
            assert_eq!(std::fs::read_to_string(&path).unwrap(), marker)
        }
        other => panic!("{other:?}"),
    }
    let wire = cap.finish();
    use support::capture::contains;
    assert!(contains(&wire, b"SLCPE ann ") && contains(&wire, b"SLCPT ben\n"));
    for plain in [secret.as_bytes(), b"SECRET-FILE-CONTENT", b"minutes.txt"] {
        assert!(
            !contains(&wire, plain),
            "{} on the wire",
            String::from_utf8_lossy(plain)
        );
    }
}
