//! Desktop notifications on a real session bus: a private `dbus-daemon --session`, a
//! notification service played by this test (it records every Notify call), and real clients
//! with `notify = "desktop"`. Then the same without the service: one warning, then the bell.

mod support;

use std::collections::HashMap;
use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use slcp_core::ipc::Event;
use support::*;

const S: Duration = Duration::from_secs(1);

struct Bus {
    daemon: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// A private session bus; `None` (said loudly) where dbus-daemon is missing.
fn session_bus() -> Option<Bus> {
    let daemon = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut daemon) = daemon else {
        eprintln!("SKIPPED: dbus-daemon is not installed (apt-get install dbus-daemon)");
        return None;
    };
    let out = daemon.stdout.take().unwrap();
    let address = line_within(BufReader::new(out), 5 * S).expect("dbus-daemon printed no address");
    Some(Bus {
        daemon,
        address: address.trim().to_string(),
    })
}

struct Service {
    calls: Sender<(String, String)>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl Service {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::OwnedVariant>,
        _expire_timeout: i32,
    ) -> u32 {
        let _ = self.calls.send((summary, body));
        1
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        ("test".into(), "slcp".into(), "1".into(), "1.2".into())
    }
}

/// Serves org.freedesktop.Notifications on `address`; the calls come out of the receiver.
fn serve(address: &str) -> (zbus::Connection, Receiver<(String, String)>) {
    let (tx, rx) = channel();
    let conn = futures_lite::future::block_on(
        zbus::connection::Builder::address(address)
            .name("org.freedesktop.Notifications")
            .serve_at("/org/freedesktop/Notifications", Service { calls: tx })
            .build(),
    )
    .expect("serving org.freedesktop.Notifications");
    (conn, rx)
}

fn desktop_lan(bus: &str, notify: &str) -> Lan {
    let mut lan = Lan::new(&format!("notify = \"{notify}\""));
    lan.bus = Some(bus.to_string());
    lan.start_all(&["alice", "bob", "carol"]);
    lan
}

#[test]
fn messages_become_desktop_notifications_but_not_ones_own_or_the_focused_conversation() {
    let Some(bus) = session_bus() else { return };
    let (_service, calls) = serve(&bus.address);
    let lan = desktop_lan(&bus.address, "desktop");
    let (mut a, mut b) = lan.pair("alice", "bob");
    // A person's prompt (recap) on bob's side: FOCUS is per prompt.
    a.cmd("MSG bob hello there, this is a long first message that goes on and on and on and on, more than eighty characters")
        .unwrap();
    let (summary, body) = calls.recv_timeout(5 * S).expect("no Notify call");
    assert_eq!(summary, "alice");
    assert!(body.starts_with("hello there, this is a long"), "{body}");
    assert!(body.ends_with('…') && body.chars().count() <= 81, "{body}");
    // The rate limit: a second message from alice within 5 s is not another popup.
    a.cmd("MSG bob <b>again</b>").unwrap();
    b.wait_event(
        5 * S,
        |e| matches!(e, Event::Message { text, .. } if text.contains("again")),
    )
    .unwrap();
    // bob's own message to alice notifies alice, not bob.
    b.cmd("MSG alice hi from bob & co").unwrap();
    let (summary, body) = calls.recv_timeout(5 * S).expect("no Notify call for alice");
    assert_eq!(
        (summary.as_str(), body.as_str()),
        ("bob", "hi from bob &amp; co")
    );

    // While bob types in his conversation with carol, carol's messages make no popup; a group
    // message names its group.
    let mut c = lan.ipc("carol");
    b.cmd("FOCUS carol").unwrap();
    c.cmd("MSG bob are you there").unwrap();
    b.wait_event(
        5 * S,
        |e| matches!(e, Event::Message { text, .. } if text == "are you there"),
    )
    .unwrap();
    b.cmd("FOCUS").unwrap();
    // A group goes as a group only to peers whose extension hello came (greetings are spread
    // over a client's first seconds): wait for carol's at both.
    a.wait_who("carol", "slcpx:", 5 * S);
    b.wait_who("carol", "slcpx:", 5 * S);
    c.cmd("MSG alice,bob lunch?").unwrap();
    let mut got = vec![
        calls.recv_timeout(5 * S).expect("no Notify for the group"),
        calls
            .recv_timeout(5 * S)
            .expect("no second Notify for the group"),
    ];
    got.sort();
    assert_eq!(
        got,
        vec![
            ("carol in carol,alice,bob".to_string(), "lunch?".to_string()),
            ("carol in carol,alice,bob".to_string(), "lunch?".to_string()),
        ]
    );
    assert!(
        calls.recv_timeout(S / 2).is_err(),
        "a notification for the focused conversation, or for one's own message"
    );
}

#[test]
fn without_a_notification_service_one_warning_then_the_bell() {
    let Some(bus) = session_bus() else { return };
    let lan = desktop_lan(&bus.address, "desktop");
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.cmd("MSG bob one").unwrap();
    let w = b.wait_event(5 * S, |e| matches!(e, Event::Error { .. }));
    let Some(Event::Error { text }) = w else {
        panic!("no warning: {:?}", b.events)
    };
    assert!(
        text.starts_with("desktop notifications are unavailable"),
        "{text}"
    );
    assert!(text.contains("ringing the bell instead"), "{text}");
    b.cmd("STATUS").unwrap();
    assert!(
        !b.events.iter().any(|e| matches!(e, Event::Error { .. })),
        "a second warning: {:?}",
        b.events
    );
}
