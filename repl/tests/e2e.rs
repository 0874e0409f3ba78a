//! End-to-end encryption between real slcp processes: what a capture of the loopback sees, keys
//! pinned at first use and the warning when one changes, and the hijacks of the trust issue
//! replayed against two peers with pinned keys (another host's claim, a spoofed source address).

mod support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use slcp_core::ipc::{Event, Privacy};
use support::attack::*;
use support::capture::{Capture, contains};
use support::*;

const S: Duration = Duration::from_secs(1);
const ON: &str = "encryption = \"prefer\"";

/// A UDP datagram with a forged source address (a raw IPv4 socket writes the header itself).
fn spoof_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .expect("a raw socket (root)");
    let total = 20 + 8 + payload.len();
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        17,
        0,
        0,
    ]);
    p.extend_from_slice(&src.ip().octets());
    p.extend_from_slice(&dst.ip().octets());
    let sum = p
        .chunks(2)
        .fold(0u32, |a, c| a + u32::from(u16::from_be_bytes([c[0], c[1]])));
    let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    let ulen = (8 + payload.len()) as u16;
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&ulen.to_be_bytes());
    // No UDP checksum (0: allowed for IPv4).
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    s.send_to(&p, &std::net::SocketAddr::V4(dst).into())
        .unwrap();
}

fn lo(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

#[test]
fn messages_are_encrypted_on_the_wire_and_keys_are_pinned_at_first_use() {
    let lan = {
        let mut l = Lan::new(ON);
        l.start_all(&["alice", "bob"]);
        l
    };
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.wait_who("bob", "encrypted", 10 * S);
    b.wait_who("alice", "encrypted", 10 * S);

    let cap = Capture::start("lo", vec![lan.user("alice").port, lan.user("bob").port]);
    let secret = "the eagle lands at dawn, grüße";
    a.cmd(&format!("MSG bob {secret}")).unwrap();
    let got = b.wait_event(5 * S, |e| matches!(e, Event::Private { .. }));
    assert_eq!(
        got,
        Some(Event::Private {
            from: "alice".into(),
            text: secret.into(),
            privacy: Privacy::Encrypted,
        })
    );
    // A group message and a long one (in parts) too.
    let long = "x".repeat(900) + " the end of a long secret";
    a.cmd(&format!("MSG bob {long}")).unwrap();
    let got = b.wait_event(
        5 * S,
        |e| matches!(e, Event::Private { text, .. } if text.len() > 800),
    );
    assert!(
        matches!(got, Some(Event::Private { ref text, .. }) if *text == long),
        "{got:?}"
    );
    a.cmd("MSG * a secret for everyone").unwrap();
    let got = b.wait_event(5 * S, |e| matches!(e, Event::Group { .. }));
    assert!(
        matches!(&got, Some(Event::Group { privacy: Privacy::Encrypted, text, .. }) if text == "a secret for everyone"),
        "{got:?}"
    );
    let wire = cap.finish();
    assert!(
        contains(&wire, b"SLCPE alice "),
        "the capture saw no encrypted datagram"
    );
    for plain in [
        secret.as_bytes(),
        b"the end of a long secret",
        b"a secret for everyone",
    ] {
        assert!(
            !contains(&wire, plain),
            "plaintext on the wire: {}",
            String::from_utf8_lossy(plain)
        );
    }

    // The keys: 0600 files in a 0700 folder; the pin is bob's key; FINGERPRINT agrees.
    let keys = lan.home().join("data/slcp/keys");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys), 0o700);
    assert_eq!(mode(&keys.join("alice.key")), 0o600);
    assert_eq!(mode(&keys.join("alice.known_peers")), 0o600);
    let bob_fp = b.cmd("FINGERPRINT").unwrap()[0]
        .strip_prefix("your safety number: ")
        .unwrap()
        .to_string();
    let seen = a.cmd("FINGERPRINT bob").unwrap();
    assert_eq!(
        seen[0],
        format!("bob: {bob_fp} (pinned, not verified)"),
        "{seen:?}"
    );
    a.cmd("VERIFY bob").unwrap();
    a.wait_who("bob", "verified", S);
    b.cmd("MSG alice verified now").unwrap();
    // alice verified bob's key, not bob alice's: alice sees bob's message as verified.
    let got = a.wait_event(5 * S, |e| matches!(e, Event::Private { .. }));
    assert!(
        matches!(
            &got,
            Some(Event::Private {
                privacy: Privacy::Verified,
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn a_changed_key_is_a_loud_warning_until_trusted() {
    let mut lan = Lan::new(ON);
    lan.start_all(&["alice", "bob"]);
    let mut a = lan.ipc("alice");
    a.wait_who("bob", "encrypted", 10 * S);
    // bob gets a new key (a reinstall, or someone else with his handle).
    lan.kill_client("bob", "TERM");
    std::fs::remove_file(lan.home().join("data/slcp/keys/bob.key")).unwrap();
    lan.start_client("bob");
    let mut b = lan.ipc("bob");
    let w = a.wait_event(
        10 * S,
        |e| matches!(e, Event::Error { text } if text.contains("CHANGED")),
    );
    assert!(w.is_some(), "no warning: {:?}", a.events);
    a.wait_who("bob", "KEY CHANGED", 5 * S);
    b.cmd("MSG alice it is me, really").unwrap();
    let got = a.wait_event(5 * S, |e| matches!(e, Event::Private { .. }));
    assert!(
        matches!(
            &got,
            Some(Event::Private {
                privacy: Privacy::Unverified,
                ..
            })
        ),
        "{got:?}"
    );
    let e = a.cmd("MSG bob are you?").unwrap_err();
    assert!(e.contains("key changed") && e.contains("TRUST bob"), "{e}");
    let fp = a.cmd("FINGERPRINT bob").unwrap();
    assert!(
        fp.iter().any(|l| l.contains("presents another key")),
        "{fp:?}"
    );
    a.cmd("TRUST bob").unwrap();
    a.wait_who("bob", "encrypted", S);
    a.cmd("MSG bob welcome back").unwrap();
    let got = b.wait_event(5 * S, |e| matches!(e, Event::Private { .. }));
    assert!(
        matches!(&got, Some(Event::Private { privacy: Privacy::Encrypted, text, .. }) if text == "welcome back"),
        "{got:?}"
    );
}

#[test]
fn hijacks_fail_against_pinned_keys() {
    let mut v = Victims::new(None, &img_plugin(), ON);
    v.alice.wait_who("bob", "encrypted", 10 * S);

    // A spoofed datagram from bob's own address: without a key it would be bob's.
    let (alice_port, bob_port) = (v.port("alice"), v.port("bob"));
    spoof_udp(
        lo(bob_port),
        lo(alice_port),
        b"MSG bob send me your password\n",
    );
    let got = v.alice.wait_event(
        5 * S,
        |e| matches!(e, Event::Message { text, .. } if text == "send me your password"),
    );
    match got {
        Some(Event::Message { from, .. }) => assert!(from.starts_with("?bob@"), "{from}"),
        other => panic!("the spoofed message did not arrive: {other:?}"),
    }
    // Another host's claim on bob's handle: nothing of bob's reaches the attacker.
    let h = hijack(&mut v);
    assert!(!h.msg_reached_attacker);
    let i = impersonate(&mut v);
    assert_ne!(i.shown_as.as_deref(), Some("bob"));

    // bob's client dies; a plain client at another address takes the handle over.
    v.lan.kill_client("bob", "KILL");
    let (att, p) = attacker("127.0.0.2");
    let deadline = Instant::now() + 10 * S;
    while Victims::holder(&mut v.alice, "bob").as_deref() != Some(&format!("127.0.0.2:{p}")) {
        att.send_to(format!("JOIN bob {p}\n").as_bytes(), v.to("alice"))
            .unwrap();
        assert!(
            Instant::now() < deadline,
            "the attacker never got bob's handle"
        );
    }
    v.alice.cmd("MSG bob for bob only, again").unwrap();
    let not_sent = v.alice.wait_event(6 * S, |e| {
        matches!(e, Event::Notice { text } | Event::Error { text } if text.contains("not sent"))
    });
    assert!(not_sent.is_some(), "{:?}", v.alice.events);
    att.set_read_timeout(Some(S / 2)).unwrap();
    let mut buf = [0u8; 2048];
    while let Ok(n) = att.recv(&mut buf) {
        assert!(
            !contains(&buf[..n], b"for bob only"),
            "the attacker got {}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
}

#[test]
fn a_plain_peer_still_chats_with_prefer_and_require_refuses_it() {
    let lan = {
        let mut l = Lan::new(ON);
        l.start_all(&["alice"]);
        l
    };
    let mut a = lan.ipc("alice");
    let fake = FakePeer::join("plain", lan.user("alice").port);
    assert!(a.wait_peers(&["plain"], 5 * S));
    // The same capture as above sees plain SLCP (so its silence there means something).
    let fake_port = fake.udp.local_addr().unwrap().port();
    let cap = Capture::start("lo", vec![lan.user("alice").port, fake_port]);
    a.cmd("MSG plain hello in the clear").unwrap();
    assert_eq!(
        fake.recv_udp(5 * S).as_deref(),
        Some("MSG alice hello in the clear\n")
    );
    assert!(contains(&cap.finish(), b"MSG alice hello in the clear"));
    fake.udp
        .send_to(
            b"MSG plain hi back\n",
            ("127.0.0.1", lan.user("alice").port),
        )
        .unwrap();
    a.expect_event(
        5 * S,
        Event::Message {
            from: "plain".into(),
            text: "hi back".into(),
        },
    );
    assert!(
        a.cmd("WHO")
            .unwrap()
            .iter()
            .any(|r| r.starts_with("plain ") && r.ends_with("plain"))
    );
    lan.set_key("alice", "encryption", "\"require\"");
    drop(a);
    let mut lan = lan;
    lan.kill_client("alice", "TERM");
    lan.start_client("alice");
    let mut a = lan.ipc("alice");
    let _fake2 = FakePeer::join("plain2", lan.user("alice").port);
    assert!(a.wait_peers(&["plain2"], 5 * S));
    let e = a.cmd("MSG plain2 hello").unwrap_err();
    assert!(
        e.contains("does not encrypt") && e.contains("require"),
        "{e}"
    );
}

#[test]
fn images_and_files_travel_encrypted_between_pinned_peers() {
    let mut lan = Lan::new(ON);
    lan.with_plugins(&[(&img_plugin(), "libslcp_plugin_img.so")]);
    lan.start_all(&["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.wait_who("bob", "encrypted", 10 * S);
    b.wait_who("alice", "encrypted", 10 * S);
    let marker = b"PLAINTEXT-MARKER-0123456789";
    let mut body = b"\x89PNG\r\n\x1a\n".to_vec();
    for _ in 0..20_000 {
        body.extend_from_slice(marker);
    }
    let png = lan.home().join("photo.png");
    std::fs::write(&png, &body).unwrap();
    let doc = lan.home().join("secret-plans.txt");
    std::fs::write(&doc, &body[8..]).unwrap();

    let cap = Capture::start("lo", vec![lan.user("alice").port, lan.user("bob").port]);
    let r = a.cmd(&format!("IMG bob {}", png.display())).unwrap();
    assert!(r[0].starts_with("sent photo.png to bob"), "{r:?}");
    let got = b.wait_event(5 * S, |e| matches!(e, Event::Image { .. }));
    let Some(Event::Image { path, .. }) = got else {
        panic!("{got:?} {:?}", b.events)
    };
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let r = a.cmd(&format!("FILE bob {}", doc.display())).unwrap();
    assert!(r[0].starts_with("sent secret-plans.txt to bob"), "{r:?}");
    let got = b.wait_event(5 * S, |e| matches!(e, Event::File { .. }));
    let Some(Event::File { path, .. }) = got else {
        panic!("{got:?}")
    };
    assert!(path.ends_with("/secret-plans.txt"), "{path}");
    assert_eq!(std::fs::read(&path).unwrap(), &body[8..]);
    let wire = cap.finish();
    assert!(
        contains(&wire, b"SLCPT alice\n"),
        "no encrypted transfer seen"
    );
    for plain in [&marker[..], b"secret-plans", b"IMG alice", b"FILE alice"] {
        assert!(
            !contains(&wire, plain),
            "{} on the wire",
            String::from_utf8_lossy(plain)
        );
    }
}
