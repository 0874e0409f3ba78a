//! Unit tests of the sessions: a handshake, sealing and opening, replays and forgeries refused.

use super::*;

fn pair() -> (Session, Session) {
    let (a, b) = (generate(), generate());
    let t = Instant::now();
    let (hi, m1) = initiate(&a, t).unwrap();
    let (hr, m2) = respond(&b, &m1, t).unwrap();
    let (sa, m3) = hi.finish_initiator(&m2, t).unwrap();
    let sb = hr.finish_responder(&m3, t).unwrap();
    assert_eq!(sa.remote, b.public);
    assert_eq!(sb.remote, a.public);
    (sa, sb)
}

#[test]
fn a_handshake_gives_sessions_that_talk_both_ways() {
    let (mut a, mut b) = pair();
    let (n, ct) = a.seal(b"MSG alice hi\n").unwrap();
    assert!(!ct.windows(2).any(|w| w == b"hi"));
    assert_eq!(b.open(n, &ct).unwrap(), b"MSG alice hi\n");
    let (n2, ct2) = b.seal(b"MSG bob hello\n").unwrap();
    assert_eq!(a.open(n2, &ct2).unwrap(), b"MSG bob hello\n");
}

#[test]
fn replays_forgeries_and_old_nonces_are_refused() {
    let (mut a, mut b) = pair();
    let sealed: Vec<(u64, Vec<u8>)> = (0..200).map(|_| a.seal(b"x").unwrap()).collect();
    // Out of order within the window is fine; the same one twice is not.
    assert!(b.open(sealed[5].0, &sealed[5].1).is_some());
    assert!(b.open(sealed[3].0, &sealed[3].1).is_some());
    assert!(b.open(sealed[5].0, &sealed[5].1).is_none());
    assert!(b.open(sealed[199].0, &sealed[199].1).is_some());
    // 196 behind the newest: outside the window.
    assert!(b.open(sealed[3].0, &sealed[3].1).is_none());
    assert!(b.open(sealed[10].0, &sealed[10].1).is_none());
    let mut forged = sealed[198].1.clone();
    forged[0] ^= 1;
    assert!(b.open(sealed[198].0, &forged).is_none());
    // A forgery does not burn the nonce.
    assert!(b.open(sealed[198].0, &sealed[198].1).is_some());
    // A stranger's session cannot open it.
    let (_, mut c) = pair();
    let (n, ct) = a.seal(b"secret").unwrap();
    assert!(c.open(n, &ct).is_none());
}

#[test]
fn wire_forms_round_trip_and_fit() {
    let me = Handle::new("alice").unwrap();
    let b = encode_handshake(&me, 2, &[1, 2, 3, 250]);
    assert_eq!(
        decode(&b),
        Some(Wire::Handshake {
            handle: me.clone(),
            step: 2,
            bytes: vec![1, 2, 3, 250]
        })
    );
    let ct = vec![7u8; room(&me) + TAG];
    let s = encode_sealed(&me, u64::MAX, &ct).unwrap();
    assert!(s.len() <= MAX_SEND);
    assert!(encode_sealed(&me, u64::MAX, &vec![7u8; room(&me) + TAG + 3]).is_none());
    assert_eq!(
        decode(&s),
        Some(Wire::Sealed {
            handle: me,
            nonce: u64::MAX,
            ct
        })
    );
    assert_eq!(decode(b"SLCPH alice 4 AAAA"), None);
    assert_eq!(decode(b"SLCPE alice x AAAA"), None);
    assert_eq!(decode(b"SLCPE alice 1 !!"), None);
}

#[test]
fn fingerprints_are_six_groups_of_five_digits() {
    let k = generate();
    let f = fingerprint(&k.public);
    assert_eq!(f.len(), 35, "{f}");
    assert!(
        f.split(' ')
            .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
    );
    assert_eq!(f, fingerprint(&k.public));
    assert_ne!(f, fingerprint(&generate().public));
}
