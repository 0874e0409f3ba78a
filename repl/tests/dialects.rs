//! The dialect matrix: slcp against a fake peer for each behaviour of SLCP.md's "Dialects seen
//! in the wild" (the reference implementation's first), each cell a conversation a user would
//! have: seen in WHO after 3 x expiry, MSG both ways, IMG both ways (SHA-256), exactly one
//! auto-reply, rename, re-join on a new port, LEAVE. Every failure names the dialect and cell.

mod support;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slcp_core::ipc::Event;
use support::fake::{Dialect, Fake, Got, ImgForm};
use support::*;

const S: Duration = Duration::from_secs(1);
const TEXT: &str = "Grüße \"quoted\" 🚀";
/// The timing of the LANs here: expiry 1 s, heartbeat 0.3 s.
const EXPIRY: Duration = Duration::from_secs(1);

fn dialects() -> Vec<Dialect> {
    let p = Dialect::plain;
    vec![
        Dialect {
            newline: false,
            poll_who: true,
            literal: true,
            auto_all: true,
            img: ImgForm::Named,
            img_port_apart: true,
            ..p("reference")
        },
        p("no-heartbeat"),
        Dialect {
            udp: false,
            ..p("tcp-only")
        },
        Dialect {
            udp: false,
            colon: true,
            ..p("tcp-colon")
        },
        Dialect {
            recipient: true,
            ..p("recipient-handle")
        },
        Dialect {
            quote: true,
            ..p("quotes-always")
        },
        Dialect {
            img: ImgForm::Ready,
            ..p("ready-handshake")
        },
        Dialect {
            never_close: true,
            ..p("never-closes")
        },
        Dialect {
            img: ImgForm::Udp,
            ..p("udp-image")
        },
        Dialect {
            tcp: false,
            img: ImgForm::Udp,
            ..p("no-tcp-listener")
        },
        Dialect {
            ephemeral: true,
            ..p("ephemeral-ports")
        },
    ]
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// One row: every cell for one dialect; returns the failed cells.
fn row(d: Dialect) -> Vec<String> {
    let name = d.name;
    let mut fails = Vec::new();
    let mut lan = Lan::new(
        "heartbeat = 0.3\nexpiry = 1\nwho_wait = 0.2\nconfirm_grace = 0.5\ntransfer_timeout = 3",
    );
    lan.with_plugins(&[
        (&workspace_plugin("img"), "libslcp_plugin_img.so"),
        (
            &workspace_plugin("autoreply"),
            "libslcp_plugin_autoreply.so",
        ),
    ]);
    lan.start_discovery();
    lan.add_user("slu");
    let slu_port = lan.user("slu").port;
    let mut fab = Fake::start(d.clone(), "fab", lan.whoisport, "slu", slu_port);
    if d.img_port_apart {
        lan.set_key(
            "slu",
            "image_ports",
            &format!("{{ fab = {} }}", fab.img_port),
        );
    }
    lan.start_client("slu");
    let mut slu = lan.ipc("slu");
    let mut cell = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            fails.push(format!("{name} x {what}: {e}"));
        }
    };

    // Seen, and still there after 3 x expiry (it never re-sends JOIN).
    let r = if !slu.wait_peers(&["fab"], 3 * S) {
        Err("slu never saw fab".into())
    } else if let Some(e) = slu.wait_event(3 * EXPIRY, |e| matches!(e, Event::Leave { .. })) {
        Err(format!("dropped: {e:?}"))
    } else {
        let who = slu.cmd("WHO").unwrap_or_default();
        if who.iter().any(|l| l.starts_with("fab ")) {
            Ok(())
        } else {
            Err(format!("not in WHO: {who:?}"))
        }
    };
    cell("seen after 3 x expiry", r);

    // MSG both ways.
    fab.msg(TEXT);
    let got = slu.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
    let want = Event::Message {
        from: "fab".into(),
        text: TEXT.into(),
    };
    cell(
        "MSG fab -> slu",
        if got.as_ref() == Some(&want) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        },
    );
    let r = slu.cmd(&format!("MSG fab {TEXT}")).and_then(|_| {
        match fab.wait(2 * S, |g| matches!(g, Got::Msg { shown: Some(_), .. })) {
            Some(Got::Msg { shown: Some(t), .. }) if t == TEXT => Ok(()),
            other => Err(format!("fab saw {other:?}")),
        }
    });
    cell("MSG slu -> fab", r);

    // WHO -v shows the forms slu learned of fab (its dialect).
    let who = slu.cmd("WHO -v").unwrap_or_default();
    let line = who
        .iter()
        .find(|l| l.starts_with("fab "))
        .cloned()
        .unwrap_or_default();
    let want: Vec<&str> = [
        (d.recipient, "recipient"),
        (d.quote, "quoted"),
        (!d.udp, "tcp"),
        (!d.newline, "no-newline"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, w)| w)
    .collect();
    cell(
        "WHO -v shows its forms",
        if want.iter().all(|w| line.contains(w)) && (!want.is_empty() || line.ends_with("slcp")) {
            Ok(())
        } else {
            Err(format!("want {want:?} in {line:?}"))
        },
    );

    // IMG both ways.
    let img = make_file(lan.home(), "small.png", b"\x89PNG\r\n\x1a\n", 50_000);
    let bytes = std::fs::read(&img).unwrap();
    let sent = fab.send_image(&bytes, "small.png");
    let got = slu.wait_event(3 * S, |e| {
        matches!(e, Event::Image { .. } | Event::Error { .. })
    });
    let r = match (&sent, got) {
        (Err(e), _) => Err(format!("fab's send failed: {e}")),
        (_, Some(Event::Image { from, path, .. })) if from == "fab" => {
            let saved = std::fs::read(&path).unwrap_or_default();
            if sha(&saved) == sha(&bytes) {
                Ok(())
            } else {
                Err("the saved file differs (sha256)".into())
            }
        }
        (_, other) => Err(format!("{other:?}")),
    };
    cell("IMG fab -> slu", r);
    let reply = slu.cmd(&format!("IMG fab {}", img.display()));
    let r = if !d.tcp {
        match reply {
            Err(e) if e.contains("accepts no TCP connection") => Ok(()),
            other => Err(format!("want one clear line, got {other:?}")),
        }
    } else {
        match (reply, fab.wait(3 * S, |g| matches!(g, Got::Image(_)))) {
            (Ok(lines), Some(Got::Image(b))) if sha(&b) == sha(&bytes) => {
                let confirmed = !lines.iter().any(|l| l.contains("did not confirm"));
                if confirmed != d.never_close {
                    Ok(())
                } else {
                    Err(format!("reply {lines:?}"))
                }
            }
            (reply, got) => Err(format!(
                "reply {reply:?}, fab got {:?}",
                got.map(|_| "an image")
            )),
        }
    };
    cell("IMG slu -> fab", r);

    // Exactly one auto-reply per away period, even to an implementation that answers every
    // message (its own auto-replies included).
    slu.cmd("AWAY").unwrap();
    if d.auto_all {
        fab.set_away(true);
    }
    fab.drain();
    fab.msg("one");
    fab.msg("two");
    let first = fab.wait(
        2 * S,
        |g| matches!(g, Got::Msg { shown: Some(t), .. } if t.starts_with("[auto] ")),
    );
    // Everything slu sends before the marker arrives before it.
    let _ = slu.wait_event(
        S / 2,
        |e| matches!(e, Event::Message { text, .. } if text == "two"),
    );
    slu.cmd("BACK").unwrap();
    if d.auto_all {
        fab.set_away(false);
    }
    slu.cmd("MSG fab marker").unwrap();
    let _ = fab.wait(
        2 * S,
        |g| matches!(g, Got::Msg { shown: Some(t), .. } if t == "marker"),
    );
    let more = fab
        .drain()
        .into_iter()
        .filter(|g| matches!(g, Got::Msg { shown: Some(t), .. } if t.starts_with("[auto] ")))
        .count();
    cell(
        "auto-reply exactly once",
        match (first, more) {
            (Some(_), 0) => Ok(()),
            (f, m) => Err(format!("first {f:?}, then {m} more")),
        },
    );
    if d.auto_all {
        // Its automatic replies are shown as such, never answered (checked above).
        let seen = slu.events.iter().any(
            |e| matches!(e, Event::Message { text, .. } if text.starts_with("(Autoreply):")),
        ) || slu
            .wait_event(S, |e| matches!(e, Event::Message { text, .. } if text.starts_with("(Autoreply):")))
            .is_some();
        cell(
            "its auto-reply shown",
            if seen {
                Ok(())
            } else {
                Err("not shown".into())
            },
        );
    }

    // Rename by a bare JOIN from the same address.
    fab.rename("fab2");
    let got = slu.wait_event(2 * S, |e| matches!(e, Event::Rename { .. }));
    let r = match got {
        Some(Event::Rename { from, to }) if from == "fab" && to == "fab2" => {
            slu.cmd("MSG fab2 renamed").and_then(|_| {
                fab.wait(
                    2 * S,
                    |g| matches!(g, Got::Msg { shown: Some(t), .. } if t == "renamed"),
                )
                .map(|_| ())
                .ok_or_else(|| "fab2 did not get a MSG".to_string())
            })
        }
        other => Err(format!("{other:?}")),
    };
    cell("rename", r);

    // Re-join on a new port: the new port replaces the old one.
    let old = fab.port;
    fab.restart_on_new_port();
    let want = format!("127.0.0.1:{}", fab.port);
    let got = slu.wait_event(
        3 * S,
        |e| matches!(e, Event::Join { handle, addr } if handle == "fab2" && *addr == want),
    );
    let r = if got.is_none() {
        Err(format!("slu never moved fab2 from {old} to {}", fab.port))
    } else {
        slu.cmd("MSG fab2 moved").and_then(|_| {
            fab.wait(
                2 * S,
                |g| matches!(g, Got::Msg { shown: Some(t), .. } if t == "moved"),
            )
            .map(|_| ())
            .ok_or_else(|| "no MSG at the new port".to_string())
        })
    };
    cell("re-join on a new port", r);

    // LEAVE to the discovery only: relayed to slu.
    let t = Instant::now();
    fab.leave();
    let got = slu.wait_event(2 * S, |e| {
        *e == Event::Leave {
            handle: "fab2".into(),
        }
    });
    let leave_took = t.elapsed();
    eprintln!("{name}: LEAVE relayed to slu in {leave_took:?}");
    cell(
        "LEAVE seen",
        match got {
            Some(_) if leave_took < S => Ok(()),
            Some(_) => Err(format!("after {leave_took:?}")),
            None => Err("never".into()),
        },
    );
    if !fails.is_empty() {
        eprintln!(
            "==== {name}: discovery log\n{}\n==== {name}: slu's client log\n{}",
            lan.log("discovery.log"),
            lan.log("client-slu.log")
        );
    }
    fails
}

#[test]
fn every_dialect_holds_a_conversation_with_slcp() {
    workspace_plugin("img");
    let rows: Vec<_> = dialects()
        .into_iter()
        .map(|d| std::thread::spawn(move || row(d)))
        .collect();
    let fails: Vec<String> = rows
        .into_iter()
        .flat_map(|h| h.join().unwrap_or_else(|_| vec!["a row panicked".into()]))
        .collect();
    assert!(fails.is_empty(), "failed cells:\n{}", fails.join("\n"));
}

/// Item 1 of the issue: a user that sent one JOIN and nothing since stays (10 x expiry), and
/// goes when its port is found closed.
#[test]
fn a_user_that_joined_once_stays_until_its_port_closes() {
    let mut lan = Lan::new("heartbeat = 0.2\nexpiry = 0.5\nwho_wait = 0.2");
    lan.start_discovery();
    lan.add_user("slu");
    let port = lan.user("slu").port;
    let fab = Fake::start(Dialect::plain("once"), "fab", lan.whoisport, "slu", port);
    lan.start_client("slu");
    let mut slu = lan.ipc("slu");
    assert!(slu.wait_peers(&["fab"], 3 * S));
    let expiry = Duration::from_millis(500);
    let gone = slu.wait_event(10 * expiry, |e| matches!(e, Event::Leave { .. }));
    assert_eq!(gone, None, "dropped before 10 x expiry");
    assert!(lan.who().contains(&"fab".to_string()));
    // Its process ends without a word: the discovery's probe of its port bounces.
    let t = Instant::now();
    drop(fab);
    slu.expect_event(
        3 * S,
        Event::Leave {
            handle: "fab".into(),
        },
    );
    eprintln!("dropped {:?} after its port closed", t.elapsed());
    assert!(!lan.who().contains(&"fab".to_string()));
}

/// Several users behind one address: an image is attributed by its header's handle.
#[test]
fn images_from_two_users_of_one_host_are_told_apart_by_their_header() {
    let mut lan = Lan::new("heartbeat = 0.3\nexpiry = 1\nwho_wait = 0.2");
    lan.with_plugins(&[(&workspace_plugin("img"), "libslcp_plugin_img.so")]);
    lan.start_discovery();
    lan.add_user("slu");
    let port = lan.user("slu").port;
    let named = Dialect {
        img: ImgForm::Named,
        newline: false,
        ..Dialect::plain("r")
    };
    let fab = Fake::start(named.clone(), "fab", lan.whoisport, "slu", port);
    let pol = Fake::start(named, "pol", lan.whoisport, "slu", port);
    lan.start_client("slu");
    let mut slu = lan.ipc("slu");
    assert!(slu.wait_peers(&["fab", "pol"], 3 * S));
    for (f, who) in [(&pol, "pol"), (&fab, "fab")] {
        f.send_image(b"GIF89a-from-one-host", "x.gif").unwrap();
        match slu.wait_event(3 * S, |e| {
            matches!(e, Event::Image { .. } | Event::Error { .. })
        }) {
            Some(Event::Image { from, .. }) => assert_eq!(from, who),
            other => panic!("{who}: {other:?}"),
        }
    }
}
