//! Table-driven and property tests of the SLCP codec.

use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn h(s: &str) -> Handle {
    Handle::new(s).unwrap()
}

fn entry(handle: &str, ip: &str, port: u16) -> UserEntry {
    UserEntry::new(h(handle), ip.parse().unwrap(), port)
}

/// The single helper every table row goes through: `expected` is either the messages the
/// datagram holds or the kind of the error of each line.
fn check(input: &[u8], expected: &[Result<Message, DecodeErrorKind>]) {
    let got: Vec<Result<Message, DecodeErrorKind>> = decode_datagram(input)
        .into_iter()
        .map(|r| r.map_err(|e| e.kind()))
        .collect();
    assert_eq!(
        got,
        expected,
        "decoding {:?}",
        String::from_utf8_lossy(input)
    );
}

fn ok(m: Message) -> Result<Message, DecodeErrorKind> {
    Ok(m)
}

fn msg(handle: &str, text: &str) -> Message {
    Message::Msg {
        handle: h(handle),
        text: text.into(),
    }
}

#[test]
fn encodes_every_message_exactly() {
    let cases: Vec<(Message, &str)> = vec![
        (
            Message::Join {
                handle: h("alice"),
                port: 5001,
            },
            "JOIN alice 5001\n",
        ),
        (Message::Leave { handle: h("alice") }, "LEAVE alice\n"),
        (Message::Who, "WHO\n"),
        (Message::KnowUsers(vec![]), "KNOWUSERS\n"),
        (
            Message::KnowUsers(vec![
                entry("alice", "10.0.0.1", 5001),
                entry("bob", "10.0.0.2", 5002),
            ]),
            "KNOWUSERS alice 10.0.0.1 5001, bob 10.0.0.2 5002\n",
        ),
        // Bare by default; quoted only for a line break, an empty text, or one that itself
        // begins and ends with a quote.
        (msg("alice", "hello there"), "MSG alice hello there\n"),
        (
            msg("alice", "Grüße \"quoted\" 🚀"),
            "MSG alice Grüße \"quoted\" 🚀\n",
        ),
        (msg("alice", "\"all\""), "MSG alice \"\\\"all\\\"\"\n"),
        (msg("alice", " padded "), "MSG alice  padded \n"),
        (
            msg("alice", "say \"hi\"\\ now\nbye"),
            "MSG alice \"say \\\"hi\\\"\\\\ now\\nbye\"\n",
        ),
        (msg("alice", ""), "MSG alice \"\"\n"),
        (
            Message::Img {
                handle: h("alice"),
                size: 1024,
                name: None,
            },
            "IMG alice 1024\n",
        ),
        (Message::Away { handle: h("alice") }, "AWAY alice\n"),
        (Message::Back { handle: h("alice") }, "BACK alice\n"),
        (msg("jörg", "grüße 👋"), "MSG jörg grüße 👋\n"),
        (
            Message::Img {
                handle: h("fab"),
                size: 99652,
                name: Some("small.png".into()),
            },
            "IMG fab small.png 99652\n",
        ),
    ];
    for (m, wire) in cases {
        assert_eq!(String::from_utf8(encode(&m).unwrap()).unwrap(), wire);
        check(wire.as_bytes(), &[ok(m)]);
    }
}

#[test]
fn refuses_to_send_over_512_bytes() {
    let handle = h("alice");
    let fits = "x".repeat(max_plain_text(&handle));
    assert_eq!(
        encode(&msg("alice", &fits)).unwrap().len(),
        MAX_SEND,
        "the largest plain text fills the datagram exactly"
    );
    let over = "x".repeat(max_plain_text(&handle) + 1);
    assert_eq!(
        encode(&msg("alice", &over)),
        Err(EncodeError::TooLong {
            len: 513,
            limit: 512
        })
    );
    // Escapes count: 300 quotes become 600 bytes.
    assert!(encode(&msg("alice", &"\"".repeat(300))).is_err());
    let many: Vec<_> = (0..40)
        .map(|i| entry(&format!("user{i:02}"), "192.168.100.200", 50000))
        .collect();
    assert!(encode(&Message::KnowUsers(many)).is_err());
}

#[test]
fn knowusers_splits_into_valid_datagrams() {
    let entries: Vec<_> = (0..200)
        .map(|i| {
            entry(
                &format!("ü{}{i:03}", "x".repeat(28)),
                "255.255.255.254",
                65535,
            )
        })
        .collect();
    let datagrams = encode_knowusers(&entries);
    assert!(datagrams.len() > 1);
    let mut back = Vec::new();
    for d in &datagrams {
        assert!(d.len() <= MAX_SEND, "datagram of {} bytes", d.len());
        assert!(d.ends_with(b"\n"));
        match decode(d).unwrap() {
            Message::KnowUsers(e) => {
                assert!(!e.is_empty());
                back.extend(e)
            }
            other => panic!("not KNOWUSERS: {other:?}"),
        }
    }
    assert_eq!(back, entries);
    assert_eq!(encode_knowusers(&[]), vec![b"KNOWUSERS\n".to_vec()]);
}

#[test]
fn tolerance_rules() {
    let alice_bob = Message::KnowUsers(vec![
        entry("alice", "10.0.0.1", 5001),
        entry("bob", "10.0.0.2", 5002),
    ]);
    // KNOWNUSERS spelling; commas with or without spaces; trailing comma.
    check(
        b"KNOWNUSERS alice 10.0.0.1 5001, bob 10.0.0.2 5002\n",
        &[ok(alice_bob.clone())],
    );
    check(
        b"KNOWUSERS alice 10.0.0.1 5001,bob 10.0.0.2 5002",
        &[ok(alice_bob.clone())],
    );
    check(
        b"KNOWUSERS alice 10.0.0.1 5001 ,  bob 10.0.0.2 5002,\n",
        &[ok(alice_bob.clone())],
    );
    check(b"KNOWUSERS ,\n", &[ok(Message::KnowUsers(vec![]))]);
    check(
        b"KNOWUSERS fe80::1 ::1 5001\n",
        &[ok(Message::KnowUsers(vec![UserEntry::new(
            h("fe80::1"),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            5001,
        )]))],
    );
    // \r\n, no terminator.
    check(b"WHO\r\n", &[ok(Message::Who)]);
    check(b"WHO", &[ok(Message::Who)]);
    check(b"LEAVE bob\r\n", &[ok(Message::Leave { handle: h("bob") })]);
    // Several messages, one per line, and blank lines between them.
    check(
        b"JOIN a 1\nAWAY a\r\n\nBACK a",
        &[
            ok(Message::Join {
                handle: h("a"),
                port: 1,
            }),
            ok(Message::Away { handle: h("a") }),
            ok(Message::Back { handle: h("a") }),
        ],
    );
    // A bad line does not hide the good ones.
    check(
        b"WHO\nFOO\nWHO\n",
        &[
            ok(Message::Who),
            Err(DecodeErrorKind::UnknownCommand),
            ok(Message::Who),
        ],
    );
    // Lower-case and mixed-case command words.
    check(b"who\n", &[ok(Message::Who)]);
    check(
        b"join alice 5001\n",
        &[ok(Message::Join {
            handle: h("alice"),
            port: 5001,
        })],
    );
    check(b"msg alice \"hi\"\n", &[ok(msg("alice", "hi"))]);
    check(
        b"Img alice 10\n",
        &[ok(Message::Img {
            handle: h("alice"),
            size: 10,
            name: None,
        })],
    );
    check(b"knownusers\n", &[ok(Message::KnowUsers(vec![]))]);
    // Unquoted text with spaces, verbatim.
    check(
        b"MSG alice hello  there \n",
        &[ok(msg("alice", "hello  there "))],
    );
    check(
        b"MSG alice \"half quoted\n",
        &[ok(msg("alice", "\"half quoted"))],
    );
    check(b"MSG alice a\\nb\n", &[ok(msg("alice", "a\\nb"))]);
    // Quoted text whose sender did not escape inner quotes, or used unknown escapes.
    check(
        b"MSG alice \"she said \"hi\"\"\n",
        &[ok(msg("alice", "she said \"hi\""))],
    );
    check(
        b"MSG alice \"tab\\there\"\n",
        &[ok(msg("alice", "tab\\there"))],
    );
    check(b"MSG alice \"\"\"\n", &[ok(msg("alice", "\""))]);
    check(b"MSG alice \"\n", &[ok(msg("alice", "\""))]);
    // Extra spaces between fields.
    check(
        b"JOIN  alice   5001  \n",
        &[ok(Message::Join {
            handle: h("alice"),
            port: 5001,
        })],
    );
    // The handle may be the recipient's: the codec reports it as is; the client resolves it.
    check(b"MSG bob \"for bob\"\n", &[ok(msg("bob", "for bob"))]);
    // IMG accepted on its own (as the header line of a TCP stream).
    check(
        b"IMG alice 0\n",
        &[ok(Message::Img {
            handle: h("alice"),
            size: 0,
            name: None,
        })],
    );
}

#[test]
fn malformed_inputs_give_typed_errors() {
    use DecodeErrorKind::*;
    let long_handle = format!("JOIN {} 5001", "a".repeat(33));
    let oversize = vec![b'A'; MAX_RECEIVE + 1];
    let cases: Vec<(&[u8], DecodeErrorKind)> = vec![
        (b"", Empty),
        (b"\n", Empty),
        (b"   \r\n", Empty),
        (b"\n\n\n", Empty),
        (b"\xff\xfe", InvalidUtf8),
        (b"MSG alice \"\xc3\x28\"", InvalidUtf8),
        (&oversize, Oversize),
        (b"HELLO", UnknownCommand),
        (b"JOINX alice 5001", UnknownCommand),
        (b"\"MSG\" alice hi", UnknownCommand),
        (b"K\xc3\xb6NOWUSERS", UnknownCommand),
        (b"JOIN", MissingField),
        (b"JOIN alice", MissingField),
        (b"LEAVE", MissingField),
        (b"LEAVE  \r\n", MissingField),
        (b"AWAY", MissingField),
        (b"BACK", MissingField),
        (b"MSG", MissingField),
        (b"MSG alice", MissingField),
        (b"MSG alice ", MissingField),
        (b"IMG alice", MissingField),
        (b"KNOWUSERS alice 10.0.0.1", MissingField),
        (b"KNOWUSERS alice", MissingField),
        (b"JOIN alice 5001 extra", ExtraField),
        (b"LEAVE alice bob", ExtraField),
        (b"WHO is there", ExtraField),
        (b"AWAY alice now", ExtraField),
        (b"BACK alice now", ExtraField),
        (b"IMG alice 10 20 30", ExtraField),
        (b"KNOWUSERS alice 10.0.0.1 5001 x", ExtraField),
        (b"JOIN alice 0", BadPort),
        (b"JOIN alice 65536", BadPort),
        (b"JOIN alice -1", BadPort),
        (b"JOIN alice +5001", BadPort),
        (b"JOIN alice 50a1", BadPort),
        (b"KNOWUSERS alice 10.0.0.1 99999", BadPort),
        (b"KNOWUSERS alice 10.0.0.1 port", BadPort),
        (long_handle.as_bytes(), BadHandle),
        (b"JOIN al,ice 5001", BadHandle),
        (b"JOIN \"alice\" 5001", BadHandle),
        (b"LEAVE a\x01b", BadHandle),
        (b"MSG a\x7fb hi", BadHandle),
        (b"KNOWUSERS alice 10.0.0.300 5001", BadAddress),
        (b"KNOWUSERS alice localhost 5001", BadAddress),
        (b"KNOWUSERS alice 0x0a000001 5001", BadAddress),
        (b"IMG alice -5", BadSize),
        (b"IMG alice 1.5", BadSize),
        (b"IMG alice 99999999999999999999999", BadSize),
        (b"IMG alice lots", BadSize),
    ];
    assert!(cases.len() >= 30);
    for (input, kind) in cases {
        check(input, &[Err(kind)]);
    }
}

#[test]
fn decode_one_refuses_several_lines() {
    assert_eq!(decode(b"WHO\n"), Ok(Message::Who));
    assert_eq!(decode(b""), Err(DecodeError::Empty));
    assert_eq!(
        decode(b"WHO\nWHO\n").map_err(|e| e.kind()),
        Err(DecodeErrorKind::ExtraField)
    );
}

#[test]
fn handle_rules() {
    assert!(Handle::new("a").is_ok());
    assert!(Handle::new(&"ü".repeat(32)).is_ok());
    assert_eq!(Handle::new(&"ü".repeat(33)), Err(HandleError::TooLong(33)));
    assert_eq!(Handle::new(""), Err(HandleError::Empty));
    for bad in ["a b", "a\tb", "a,b", "a\"b", "a\u{7}b", "a\u{a0}b", "a\nb"] {
        assert!(Handle::new(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn file_stems_stay_in_their_directory() {
    assert_eq!(Handle::file_stem("../../etc/passwd"), "______etc_passwd");
    assert_eq!(Handle::file_stem(".hidden"), "_hidden");
    assert_eq!(Handle::file_stem("a\\b"), "a_b");
    assert_eq!(Handle::file_stem("Zoë"), "Zoë");
}

#[test]
fn errors_read_as_one_line() {
    let e = decode(b"JOIN alice 70000").unwrap_err();
    assert_eq!(e.to_string(), "\"70000\" is not a port (1-65535)");
    let e = decode(b"JOIN alice").unwrap_err();
    assert_eq!(e.to_string(), "JOIN: missing port");
}

fn handle_strategy() -> impl Strategy<Value = Handle> {
    // Generated from the rule itself rather than filtered: rejection sampling of `any::<char>()`
    // would reject most of its draws.
    // Format characters (\p{Cf}: zero-width, bidi) are refused too.
    "[^\\s\\p{Cc}\\p{Cf},\"\u{115f}\u{1160}\u{3164}\u{ffa0}\u{34f}\u{17b4}\u{17b5}\u{180b}-\u{180f}]{1,32}"
        .prop_filter_map("an invisible character", |s| Handle::new(&s).ok())
}

fn ip_strategy() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

fn message_strategy() -> impl Strategy<Value = Message> {
    let port = 1u16..=65535;
    prop_oneof![
        (handle_strategy(), port.clone()).prop_map(|(handle, port)| Message::Join { handle, port }),
        handle_strategy().prop_map(|handle| Message::Leave { handle }),
        Just(Message::Who),
        proptest::collection::vec(
            (handle_strategy(), ip_strategy(), port).prop_map(|(handle, ip, port)| UserEntry {
                away: false,
                handle,
                ip,
                port
            }),
            0..4
        )
        .prop_map(Message::KnowUsers),
        (handle_strategy(), ".{0,120}").prop_map(|(handle, text)| Message::Msg { handle, text }),
        (handle_strategy(), any::<u64>()).prop_map(|(handle, size)| Message::Img {
            handle,
            size,
            name: None
        }),
        handle_strategy().prop_map(|handle| Message::Away { handle }),
        handle_strategy().prop_map(|handle| Message::Back { handle }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_encode_round_trips(m in message_strategy()) {
        if let Ok(bytes) = encode(&m) {
            prop_assert!(bytes.len() <= MAX_SEND);
            prop_assert_eq!(decode(&bytes), Ok(m));
        }
    }

    #[test]
    fn knowusers_round_trips_through_splitting(
        entries in proptest::collection::vec(
            (handle_strategy(), ip_strategy(), 1u16..=65535)
                .prop_map(|(handle, ip, port)| UserEntry::new(handle, ip, port)),
            0..60,
        )
    ) {
        let mut back = Vec::new();
        for d in encode_knowusers(&entries) {
            prop_assert!(d.len() <= MAX_SEND);
            match decode(&d) {
                Ok(Message::KnowUsers(e)) => back.extend(e),
                other => prop_assert!(false, "{:?}", other),
            }
        }
        prop_assert_eq!(back, entries);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = decode_datagram(&bytes);
        let _ = decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_near_messages(
        word in "(?i)(join|leave|who|knowusers|knownusers|msg|img|away|back)",
        rest in "[ a-z0-9.,:\"\\\\\r\n\t-]{0,80}",
    ) {
        let _ = decode_datagram(format!("{word}{rest}").as_bytes());
    }
}

#[test]
fn handles_a_human_cannot_tell_apart_are_refused_or_look_alike() {
    for invisible in [
        "bob\u{200b}",
        "b\u{200d}ob",
        "\u{202e}bob",
        "bob\u{2066}",
        "bo\u{ad}b",
    ] {
        assert!(
            matches!(Handle::new(invisible), Err(HandleError::Invisible(_))),
            "{invisible:?}"
        );
    }
    let bob = h("bob");
    // Cyrillic о, fullwidth о, NFD vs NFC, digit one for l: all look alike.
    assert!(h("b\u{43e}b").confusable_with(&bob));
    assert!(h("b\u{ff4f}b").confusable_with(&bob));
    assert!(h("j\u{f6}rg").confusable_with(&h("jo\u{308}rg")));
    assert!(h("pau1").confusable_with(&h("paul")));
    assert!(
        !h("bob").confusable_with(&bob),
        "a handle is not a look-alike of itself"
    );
    assert!(!h("rob").confusable_with(&bob));
}

proptest! {
    #[test]
    fn a_valid_handle_holds_nothing_a_terminal_would_act_on(s in any::<String>()) {
        if let Ok(h) = Handle::new(&s) {
            prop_assert!(!h.as_str().chars().any(crate::render::is_unsafe));
            prop_assert!(crate::render::render(h.as_str()) == h.as_str().replace('\\', "\\\\"));
            prop_assert_eq!(h.skeleton(), Handle::new(&s).unwrap().skeleton());
        }
    }
}

#[test]
fn long_texts_split_into_numbered_parts_that_each_fit_and_rejoin() {
    let (me, to) = (h("alice"), h("bob"));
    for text in [
        "ä".repeat(700),
        "word ".repeat(300),
        "🚀\"quoted\"\n".repeat(120),
        "x".repeat(2000),
    ] {
        for forms in [
            Forms::default(),
            Forms::parse(["quoted", "recipient"]).unwrap(),
        ] {
            let parts = split_text(&me, &to, &text, &forms).unwrap();
            assert!(parts.len() >= 2);
            let mut joined = String::new();
            for (i, p) in parts.iter().enumerate() {
                assert!(encode_msg(&me, &to, p, &forms).unwrap().len() <= MAX_SEND);
                let (k, n, rest) = part_of(p).unwrap();
                assert_eq!((k, n), (i + 1, parts.len()));
                joined.push_str(rest);
            }
            assert_eq!(joined, text);
        }
    }
    assert!(split_text(&me, &to, &"x".repeat(60_000), &Forms::default()).is_none());
    for not_a_part in [
        "(1/1) x",
        "(0/2) x",
        "(3/2) x",
        "(1/2)x",
        "(a/2) x",
        "(1/100) x",
    ] {
        assert_eq!(part_of(not_a_part), None, "{not_a_part}");
    }
}
