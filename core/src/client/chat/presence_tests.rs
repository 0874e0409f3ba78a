//! Tests of presence: peers that expire, leave, go away and come back; our own AWAY, BACK,
//! auto-away, LEAVE and JOIN, driven by datagrams and instants.

use super::tests::{HELLO, addr, disc, events, from_disc, ipc, reply, sent, settings, started};
use super::*;

#[test]
fn peers_expire_unless_refreshed() {
    let (mut c, t0) = started("alice");
    c.datagram(
        t0,
        from_disc(),
        b"KNOWUSERS bob 127.0.0.1 5001, carol 127.0.0.1 5002",
    );
    ipc(&mut c);
    let t2 = t0 + Duration::from_secs(2);
    c.datagram(t2, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    c.tick(t0 + Duration::from_millis(3100));
    assert_eq!(events(&mut c), vec!["leave carol"]);
    c.tick(t2 + Duration::from_millis(3100));
    assert_eq!(events(&mut c), vec!["leave bob"]);
}

#[test]
fn leave_away_back_update_the_table() {
    let (mut c, t0) = started("alice");
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    ipc(&mut c);
    c.datagram(t0, addr("127.0.0.1:5001"), b"AWAY bob\nAWAY bob\n");
    c.datagram(t0, addr("127.0.0.1:5001"), b"BACK bob");
    // A LEAVE from another address does not remove bob.
    c.datagram(t0, addr("10.6.6.6:5001"), b"LEAVE bob");
    c.datagram(t0, addr("127.0.0.1:5001"), b"LEAVE bob");
    assert_eq!(events(&mut c), vec!["away bob", "back bob", "leave bob"]);
    assert!(c.peers().is_empty());
}

#[test]
fn away_and_back_are_announced_and_newcomers_hear_we_are_away() {
    let (mut c, t0) = started("alice");
    c.datagram(t0, from_disc(), b"KNOWUSERS bob 127.0.0.1 5001");
    sent(&mut c);
    ipc(&mut c);
    c.request(t0, 1, 1, "AWAY");
    assert_eq!(reply(&mut c), Ok(vec!["you are away".to_string()]));
    assert_eq!(
        sent(&mut c),
        vec![
            (disc(), "AWAY alice\n".to_string()),
            (addr("127.0.0.1:5001"), "AWAY alice\n".to_string())
        ]
    );
    c.request(t0, 1, 2, "AWAY");
    assert!(reply(&mut c).is_err());
    c.datagram(t0, addr("127.0.0.1:5002"), b"JOIN carol 5002");
    assert_eq!(
        sent(&mut c),
        vec![
            (addr("127.0.0.1:5002"), "JOIN alice 5000\n".to_string()),
            (addr("127.0.0.1:5002"), "AWAY alice\n".to_string()),
            (addr("127.0.0.1:5002"), HELLO.to_string()),
        ]
    );
}

#[test]
fn leave_and_join_commands() {
    let (mut c, t0) = started("alice");
    c.request(t0, 1, 1, "LEAVE");
    assert!(reply(&mut c).is_ok());
    assert_eq!(sent(&mut c), vec![(disc(), "LEAVE alice\n".to_string())]);
    c.request(t0, 1, 2, "MSG bob hi");
    assert_eq!(
        reply(&mut c),
        Err("you are not in the chat; JOIN first".into())
    );
    // No heartbeat JOIN while left.
    c.tick(t0 + Duration::from_secs(1));
    assert_eq!(sent(&mut c), vec![(disc(), "WHO\n".to_string())]);
    c.request(t0, 1, 3, "JOIN");
    assert!(reply(&mut c).is_ok());
    assert_eq!(sent(&mut c)[0].1, "JOIN alice 5000\n");
    c.request(t0, 1, 4, "QUIT");
    assert_eq!(reply(&mut c), Ok(vec!["bye".to_string()]));
    assert!(c.out.quit);
}

#[test]
fn auto_away_after_idle_and_back_on_the_next_command() {
    let t0 = Instant::now();
    let mut s = settings("alice");
    s.auto_away = Some(Duration::from_secs(60));
    let mut c = Chat::new(s, t0);
    c.start(t0);
    c.attach(1, false);
    sent(&mut c);
    ipc(&mut c);
    // A command resets the idle clock.
    c.request(t0 + Duration::from_secs(30), 1, 1, "STATUS");
    ipc(&mut c);
    assert!(c.next_deadline() <= t0 + Duration::from_secs(90));
    c.tick(t0 + Duration::from_secs(89));
    assert!(!c.is_away());
    c.tick(t0 + Duration::from_secs(90));
    assert!(c.is_away());
    assert!(sent(&mut c).contains(&(disc(), "AWAY alice\n".to_string())));
    assert_eq!(
        events(&mut c),
        vec!["notice you are away (no command for 1 min)"]
    );
    assert!(c.out.plugin_events.contains(&PluginEvent::SelfAway));
    // The next command brings us back first.
    c.request(t0 + Duration::from_secs(200), 1, 2, "WHO");
    assert!(!c.is_away());
    assert!(sent(&mut c).contains(&(disc(), "BACK alice\n".to_string())));
    assert_eq!(events(&mut c), vec!["notice you are back"]);
    // An AWAY the user typed is not ended by the next command.
    c.request(t0 + Duration::from_secs(201), 1, 3, "AWAY");
    c.request(t0 + Duration::from_secs(202), 1, 4, "STATUS");
    assert!(c.is_away());
}

#[test]
fn auto_away_sets_no_deadline_after_leave_or_a_clash() {
    let t0 = Instant::now();
    let mut s = settings("alice");
    s.auto_away = Some(Duration::from_secs(60));
    let mut c = Chat::new(s, t0);
    c.start(t0);
    c.attach(1, false);
    c.request(t0, 1, 1, "LEAVE");
    // Long after the idle time, the next deadline is not in the past (it would spin the loop).
    let late = t0 + Duration::from_secs(3600);
    c.tick(late);
    assert!(c.next_deadline() > late);
    // The same after a clash.
    let mut s = settings("bob");
    s.auto_away = Some(Duration::from_secs(60));
    let t1 = t0;
    let mut d = Chat::new(s, t1);
    d.start(t1);
    d.datagram(t1, from_disc(), b"KNOWUSERS bob 10.0.0.7 5000\n");
    assert!(d.status().iter().any(|l| l.contains("not joined")));
    let late = t1 + Duration::from_secs(3600);
    d.tick(late);
    assert!(d.next_deadline() > late);
}
