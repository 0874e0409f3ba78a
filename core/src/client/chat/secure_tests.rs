//! Two chats with keys, wired to each other by hand: sessions start on the hello, messages go
//! sealed, a replayed datagram is refused, and a stale session is replaced by a fresh handshake.

use super::tests::{addr, events};
use super::*;
use crate::e2e;

fn chat(handle: &str, port: u16, ip: [u8; 4]) -> Chat {
    let mut s = super::tests::settings_for(handle);
    s.port = port;
    s.local_ips = vec![Ipv4Addr::from(ip)];
    let t0 = Instant::now();
    let mut c = Chat::new(s, t0);
    c.set_keys(e2e::generate(), BTreeMap::new());
    c.start(t0);
    c.attach(1, false);
    c.out = Outbox::default();
    c
}

/// Delivers what each sent to the other until both are quiet; the datagrams that went.
fn pump(a: &mut Chat, b: &mut Chat, now: Instant) -> Vec<String> {
    let (aa, ba) = (addr("10.0.0.1:5000"), addr("10.0.0.2:5001"));
    let mut log = Vec::new();
    loop {
        let from_a: Vec<_> = a.out.udp.drain(..).filter(|(to, _)| *to == ba).collect();
        let from_b: Vec<_> = b.out.udp.drain(..).filter(|(to, _)| *to == aa).collect();
        if from_a.is_empty() && from_b.is_empty() {
            return log;
        }
        for (_, d) in from_a {
            log.push(String::from_utf8_lossy(&d).into_owned());
            b.datagram(now, aa, &d);
        }
        for (_, d) in from_b {
            log.push(String::from_utf8_lossy(&d).into_owned());
            a.datagram(now, ba, &d);
        }
    }
}

#[test]
fn sessions_seal_messages_refuse_replays_and_rekey() {
    let mut a = chat("alice", 5000, [10, 0, 0, 1]);
    let mut b = chat("bob", 5001, [10, 0, 0, 2]);
    let t0 = Instant::now();
    a.datagram(t0, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    let log = pump(&mut a, &mut b, t0);
    // The smaller handle begins: three handshake messages, nothing more.
    let hs: Vec<&String> = log.iter().filter(|l| l.starts_with("SLCPH")).collect();
    assert_eq!(hs.len(), 3, "{log:?}");
    assert!(hs[0].starts_with("SLCPH alice 1 ") && hs[1].starts_with("SLCPH bob 2 "));
    assert!(a.out.pins_changed && b.out.pins_changed);
    assert_eq!(a.pins()["bob"].key, b.secure.keys.as_ref().unwrap().public);
    events(&mut b);

    a.request(t0, 1, 1, "MSG bob the secret");
    let sealed = a.out.udp.clone();
    let log = pump(&mut a, &mut b, t0);
    assert!(log.iter().all(|l| !l.contains("the secret")), "{log:?}");
    assert_eq!(events(&mut b), vec!["private alice encrypted the secret"]);
    // The same datagram again: refused.
    for (_, d) in &sealed {
        b.datagram(t0, addr("10.0.0.1:5000"), d);
    }
    assert!(events(&mut b).is_empty());
    assert!(b.secure.refused >= 1);

    // An hour later the session is stale: the next message still goes (on the old session)
    // and a fresh handshake replaces it.
    let t1 = t0 + e2e::REKEY_AFTER + Duration::from_secs(1);
    a.request(t1, 1, 2, "MSG bob after an hour");
    let log = pump(&mut a, &mut b, t1);
    assert_eq!(
        log.iter().filter(|l| l.starts_with("SLCPH")).count(),
        3,
        "{log:?}"
    );
    assert_eq!(
        events(&mut b),
        vec!["private alice encrypted after an hour"]
    );
    a.request(t1, 1, 3, "MSG bob on the new keys");
    pump(&mut a, &mut b, t1);
    assert_eq!(
        events(&mut b),
        vec!["private alice encrypted on the new keys"]
    );
    b.request(t1, 1, 4, "MSG alice and back");
    pump(&mut a, &mut b, t1);
    assert!(events(&mut a).contains(&"private bob encrypted and back".to_string()));
}

#[test]
fn a_pinned_handle_in_the_clear_is_not_believed() {
    let mut a = chat("alice", 5000, [10, 0, 0, 1]);
    let mut b = chat("bob", 5001, [10, 0, 0, 2]);
    let t0 = Instant::now();
    a.datagram(t0, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    pump(&mut a, &mut b, t0);
    events(&mut a);
    // From bob's very address, in the clear: not bob.
    a.datagram(t0, addr("10.0.0.2:5001"), b"MSG bob wire the money\n");
    assert_eq!(
        events(&mut a),
        vec!["message ?bob@10.0.0.2:5001 wire the money"]
    );
}

#[test]
fn a_flood_of_first_handshake_messages_gets_few_answers() {
    let mut a = chat("alice", 5000, [10, 0, 0, 1]);
    let mut b = chat("bob", 5001, [10, 0, 0, 2]);
    let t0 = Instant::now();
    a.datagram(t0, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    pump(&mut a, &mut b, t0);
    // From bob's address (spoofed, say): 100 first messages within a second.
    let k = e2e::generate();
    let mut answers = 0;
    for i in 0..100u64 {
        let (_, m1) = e2e::initiate(&k, t0).unwrap();
        let d = e2e::encode_handshake(&Handle::new("bob").unwrap(), 1, &m1);
        a.datagram(
            t0 + Duration::from_millis(i * 10),
            addr("10.0.0.2:5001"),
            &d,
        );
        answers += a
            .out
            .udp
            .drain(..)
            .filter(|(_, d)| d.starts_with(b"SLCPH alice 2 "))
            .count();
    }
    assert!(answers <= 4, "{answers} answers in one second");
}

/// A message to a peer we have only just greeted (a crowd, or our first seconds) waits for its
/// answer: an slcp peer then gets it sealed, never in the clear.
#[test]
fn a_first_message_to_a_new_peer_waits_for_its_hello_and_goes_sealed() {
    let mut a = chat("alice", 5000, [10, 0, 0, 1]);
    let mut b = chat("bob", 5001, [10, 0, 0, 2]);
    let t0 = Instant::now();
    a.datagram(t0, addr("10.0.0.2:5001"), b"JOIN bob 5001\n");
    // Our first second: the greeting is spread, so the message comes first.
    a.request(t0, 1, 1, "MSG bob the secret");
    let said: Vec<String> = a
        .out
        .udp
        .iter()
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(
        said.iter().any(|l| l.starts_with("SLCPX alice")),
        "{said:?}"
    );
    assert!(said.iter().all(|l| !l.contains("the secret")), "{said:?}");
    let log = pump(&mut a, &mut b, t0);
    assert!(log.iter().all(|l| !l.contains("the secret")), "{log:?}");
    let got: Vec<String> = events(&mut b)
        .into_iter()
        .filter(|e| e.contains("the secret"))
        .collect();
    assert_eq!(got, vec!["private alice encrypted the secret"]);
}

/// A peer that does not answer the hello is a plain SLCP peer: the message goes plain once the
/// wait is over, not never.
#[test]
fn a_message_to_a_silent_new_peer_goes_plain_after_the_wait() {
    let mut a = chat("alice", 5000, [10, 0, 0, 1]);
    let t0 = Instant::now();
    let carol = addr("10.0.0.3:5002");
    a.datagram(t0, carol, b"JOIN carol 5002\n");
    a.request(t0, 1, 1, "MSG carol hi there");
    let to_carol = |a: &mut Chat| -> Vec<String> {
        a.out
            .udp
            .drain(..)
            .filter(|(to, _)| *to == carol)
            .map(|(_, d)| String::from_utf8_lossy(&d).into_owned())
            .collect()
    };
    let first = to_carol(&mut a);
    assert!(first.iter().all(|l| !l.contains("hi there")), "{first:?}");
    assert!(a.next_deadline() <= t0 + super::hold::HELLO_WAIT);
    a.tick(t0 + super::hold::HELLO_WAIT);
    assert_eq!(to_carol(&mut a), vec!["MSG alice hi there\n"]);
}

/// Under `require`, a MSG to a peer greeted a moment ago is answered once the peer had its
/// chance to answer: refused, since it did not.
#[test]
fn require_refuses_a_silent_new_peer_once_the_wait_is_over() {
    let mut a = chat("alice", 5000, [10, 0, 0, 1]);
    a.s.encryption = Encryption::Require;
    let t0 = Instant::now();
    let carol = addr("10.0.0.3:5002");
    a.datagram(t0, carol, b"JOIN carol 5002\n");
    a.request(t0, 1, 7, "MSG carol hi there");
    let replied = |a: &mut Chat| -> Vec<Option<String>> {
        a.out
            .ipc
            .drain(..)
            .filter_map(|(_, m)| match m {
                ServerMsg::Reply { id: 7, error, .. } => Some(error),
                _ => None,
            })
            .collect()
    };
    assert!(replied(&mut a).is_empty(), "answered before the wait");
    a.tick(t0 + super::hold::HELLO_WAIT);
    let r = replied(&mut a);
    assert!(
        matches!(r.as_slice(), [Some(e)] if e.contains("does not encrypt")),
        "{r:?}"
    );
    assert!(
        a.out
            .udp
            .iter()
            .all(|(_, d)| !String::from_utf8_lossy(d).contains("hi there")),
        "nothing goes in the clear under require"
    );
}
