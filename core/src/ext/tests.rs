//! Unit tests of the extension messages: every form round-trips, anything else is refused.

use super::*;

fn h(s: &str) -> Handle {
    Handle::new(s).unwrap()
}

#[test]
fn hello_round_trips_and_ignores_unknown_extensions() {
    let b = hello(&h("alice"), Exts::ALL);
    assert_eq!(b, b"SLCPX alice 1 file,group,e2e\n");
    assert_eq!(
        decode(&b),
        Some(Ext::Hello {
            handle: h("alice"),
            version: 1,
            exts: Exts::ALL
        })
    );
    assert_eq!(
        decode(b"SLCPX bob 3 e2e,group,future"),
        Some(Ext::Hello {
            handle: h("bob"),
            version: 3,
            exts: Exts {
                file: false,
                group: true,
                e2e: true
            }
        })
    );
    assert_eq!(decode(b"SLCPX bob x file"), None);
    assert_eq!(decode(b"SLCPX bob 1 file extra"), None);
    assert_eq!(decode(b"SLCPX b\x07b 1 file"), None);
}

#[test]
fn group_messages_round_trip() {
    let team = To::Named("team".into(), vec![h("alice"), h("bob"), h("carol")]);
    for (to, text, wire) in [
        (
            team.clone(),
            "hi all",
            "GMSG alice @team alice,bob,carol hi all\n",
        ),
        (
            To::List(vec![h("alice"), h("bob")]),
            "two lines\nhere",
            "GMSG alice + alice,bob \"two lines\\nhere\"\n",
        ),
        (To::All, "Grüße 🚀", "GMSG alice * * Grüße 🚀\n"),
    ] {
        let b = group_msg(&h("alice"), &to, text).unwrap();
        assert_eq!(String::from_utf8_lossy(&b), wire);
        assert_eq!(
            decode(&b),
            Some(Ext::Group {
                handle: h("alice"),
                to,
                text: text.into()
            })
        );
    }
    assert_eq!(team.label(), "@team");
    assert!(group_msg(&h("alice"), &To::All, &"x".repeat(600)).is_none());
}

#[test]
fn bad_group_messages_are_refused() {
    for bad in [
        &b"GMSG alice team bob hi"[..],
        b"GMSG alice @team bob",
        b"GMSG alice @te,am bob hi",
        b"GMSG alice + bob,,carol hi",
        b"GMSG alice * bob hi",
        b"GMSG alice @team bob hi\nMSG x y",
        b"GMSG \xff @t b hi",
    ] {
        assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
    let many: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("u{i}")).collect();
    let line = format!("GMSG alice + {} hi", many.join(","));
    assert_eq!(decode(line.as_bytes()), None);
}

#[test]
fn file_header_and_answers() {
    let b = file_header(&h("alice"), 1234, "00ff", "my notes\n.txt");
    assert_eq!(b, b"FILE alice 1234 00ff my notes_.txt\n");
    let line = std::str::from_utf8(&b).unwrap().trim_end();
    assert_eq!(
        parse_file_header(line),
        Ok(FileHeader {
            handle: h("alice"),
            size: 1234,
            id: "00ff".into(),
            name: "my notes_.txt".into()
        })
    );
    assert!(parse_file_header("FILE alice 12 zz x").is_err());
    assert!(parse_file_header("FILE alice -1 00 x").is_err());
    assert!(parse_file_header("FILE alice 12 00").is_err());
    assert_eq!(parse_file_answer(b"FILEOK 42\n"), Some(Ok(42)));
    assert_eq!(
        parse_file_answer(&file_no("too big\x07")),
        Some(Err("too big".into()))
    );
    assert_eq!(parse_file_answer(b"FILEOK 4"), None);
    assert!(matches!(parse_file_answer(b"READY\n"), Some(Err(_))));
}
