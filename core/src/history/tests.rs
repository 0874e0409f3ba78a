//! Tests of the history store on real database files.

use super::*;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(&d.path().join("h/alice.sqlite3")).unwrap();
    (d, s)
}

#[test]
fn messages_survive_reopening_and_the_files_are_private() {
    let (d, mut s) = store();
    s.add(1000, "bob", Dir::In, "text", "hi alice", "received", true)
        .unwrap();
    s.add(2000, "bob", Dir::Out, "text", "hi bob", "sent", false)
        .unwrap();
    drop(s);
    let path = d.path().join("h/alice.sqlite3");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&d.path().join("h")), 0o700);
    let mut s = Store::open(&path).unwrap();
    let c = s.conversation(Some("bob"), 10).unwrap();
    assert_eq!(
        c.iter()
            .map(|r| (r.dir, r.body.as_str()))
            .collect::<Vec<_>>(),
        vec![(Dir::In, "hi alice"), (Dir::Out, "hi bob")]
    );
    assert_eq!(
        s.conversations().unwrap(),
        vec![Conversation {
            peer: "bob".into(),
            total: 2,
            unread: 1,
            last: 2000
        }]
    );
    assert_eq!(s.take_unread().unwrap().len(), 1);
    assert!(s.take_unread().unwrap().is_empty());
    assert_eq!(s.prune(1500).unwrap(), 1);
    assert_eq!(s.newest().unwrap(), Some(2000));
}

#[test]
fn search_finds_the_right_message_among_100_000() {
    let (_d, mut s) = store();
    let words = [
        "lunch", "meeting", "code", "review", "coffee", "train", "late", "report",
    ];
    let bodies: Vec<String> = (0..100_000u32)
        .map(|i| {
            format!(
                "{} {} {} number {i}",
                words[i as usize % 8],
                words[(i as usize / 8) % 8],
                words[(i as usize / 64) % 8]
            )
        })
        .collect();
    s.add_many(
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (i as i64, "bob", Dir::In, b.as_str())),
    )
    .unwrap();
    s.add(
        200_000,
        "carol",
        Dir::In,
        "text",
        "the zebra crossing at noon",
        "received",
        false,
    )
    .unwrap();
    let t = std::time::Instant::now();
    let hits = s.search("zebra noon", 5).unwrap();
    eprintln!("search among 100 001: {:?}", t.elapsed());
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].peer.as_str(), hits[0].at), ("carol", 200_000));
    // Ranked: the message with both words first; quotes and operators are plain text.
    let hits = s.search("number 4242", 3).unwrap();
    assert!(hits[0].body.ends_with("number 4242"), "{:?}", hits[0]);
    assert!(s.search("\"NEAR( *", 3).unwrap().is_empty());
    assert!(s.search("   ", 3).unwrap().is_empty());
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_line() {
    let (d, s) = store();
    s.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(s);
    let e = Store::open(&d.path().join("h/alice.sqlite3"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("written by a newer slcp"), "{e}");
}

#[test]
fn a_long_conversation_is_read_back_page_by_page() {
    let (_d, mut s) = store();
    let texts: Vec<String> = (0..25).map(|i| format!("m{i:02}")).collect();
    s.add_many(texts.iter().enumerate().map(|(i, t)| {
        (
            i as i64,
            if i % 2 == 0 { "bob" } else { "carol" },
            Dir::In,
            t.as_str(),
        )
    }))
    .unwrap();
    let bodies = |r: Vec<Row>| r.into_iter().map(|r| r.body).collect::<Vec<_>>();
    let last = s.page(Some("bob"), None, 3).unwrap();
    assert_eq!(bodies(last.clone()), ["m20", "m22", "m24"]);
    let before = s.page(Some("bob"), Some(last[0].id), 3).unwrap();
    assert_eq!(bodies(before.clone()), ["m14", "m16", "m18"]);
    // Ids count from 1: m00 is 1, m02 is 3.
    let first = s.page(Some("bob"), Some(3), 10).unwrap();
    assert_eq!(bodies(first), ["m00"]);
}
