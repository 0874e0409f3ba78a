//! The interactive prompt in a real terminal: tmux runs `slcp repl`, send-keys types, capture-pane
//! reads the screen.

mod support;

use std::time::{Duration, Instant};

use slcp_core::ipc::Event;
use support::tmux::{Tmux, repl_command};
use support::*;

/// A screen test: some line starting with `above`, and under it an empty `alice>` prompt.
fn fresh_prompt_after(above: &str) -> impl Fn(&str) -> bool + '_ {
    move |s| {
        let l: Vec<&str> = s.lines().collect();
        l.iter()
            .position(|l| l.starts_with(above))
            .is_some_and(|i| l[i + 1..].iter().any(|l| l.trim_end() == "alice>"))
    }
}

#[test]
fn tab_completes_a_handle_and_messages_print_above_the_half_typed_line() {
    let mut lan = Lan::new("bell = false");
    let dice = workspace_plugin("dice");
    lan.with_plugins(&[(&dice, "libslcp_plugin_dice.so")]);
    lan.start_discovery();
    for h in ["alice", "bob", "bernd"] {
        lan.add_user(h);
        lan.start_client(h);
    }
    let mut bob = lan.ipc("bob");
    let mut a = lan.ipc("alice");
    assert!(a.wait_peers(&["bob", "bernd"], Duration::from_secs(2)));
    drop(a);

    let tmux = Tmux::new("tab");
    tmux.start("t", &repl_command(&lan, "alice", ""));
    let t = Duration::from_secs(10);
    // capture-pane drops trailing blanks: "alice> " reads as "alice>".
    tmux.wait("t", t, |s| s.contains("alice>"));

    // A plugin's command completes too, and its first argument as the handle it declares.
    tmux.keys("t", &["di", "Tab"]);
    tmux.wait("t", t, |s| s.contains("alice> dice"));
    tmux.keys("t", &["be", "Tab"]);
    tmux.wait("t", t, |s| s.contains("alice> dice bernd"));
    tmux.keys("t", &["C-u"]);
    tmux.wait("t", t, |s| s.lines().any(|l| l.trim_end() == "alice>"));

    // The command word completes, then the handle ("bo" is unique; "b" is not). The space
    // each completion adds shows once the next word is typed.
    tmux.keys("t", &["ms", "Tab"]);
    tmux.wait("t", t, |s| s.contains("alice> msg"));
    tmux.keys("t", &["bo", "Tab"]);
    tmux.wait("t", t, |s| s.contains("alice> msg bob"));
    tmux.keys("t", &["hello half"]);
    tmux.wait("t", t, |s| s.contains("alice> msg bob hello half"));

    bob.cmd("MSG alice incoming while you type").unwrap();
    let s = tmux.wait("t", t, |s| s.contains("bob: incoming while you type"));
    let lines: Vec<&str> = s.lines().collect();
    let msg = lines
        .iter()
        .position(|l| l.contains("bob: incoming while you type"))
        .unwrap();
    let prompt = lines
        .iter()
        .rposition(|l| l.starts_with("alice> "))
        .unwrap();
    assert!(msg < prompt, "the message is not above the prompt:\n{s}");
    assert_eq!(
        lines[prompt].trim_end(),
        "alice> msg bob hello half",
        "the half-typed line was not kept:\n{s}"
    );
    // `bell = false` in the file: the message rang nothing.
    assert!(!tmux.bell("t"));

    // Finishing the line sends it.
    tmux.keys("t", &[" done", "Enter"]);
    let got = bob.wait_event(t, |e| matches!(e, Event::Message { .. }));
    assert_eq!(
        got,
        Some(Event::Message {
            from: "alice".into(),
            text: "hello half done".into()
        })
    );

    // Ctrl-D detaches; the history survives into the next session, which rings the bell
    // (SLCP_BELL overrides the file) when a message arrives. Like a user, the test waits for the
    // fresh prompt first: while a command runs the terminal is back in cooked mode, where the
    // kernel's line discipline, not rustyline, takes a Ctrl-D (CI lost one that way).
    tmux.wait("t", t, fresh_prompt_after("alice> msg bob hello half done"));
    tmux.keys("t", &["C-d"]);
    tmux.wait("t", t, |s| {
        s.contains("detached; your client keeps running")
    });
    let history = std::fs::read_to_string(lan.home().join("state/slcp/history-alice")).unwrap();
    assert!(history.contains("msg bob hello half done"), "{history}");
    tmux.start("t2", &repl_command(&lan, "alice", "SLCP_BELL=true"));
    tmux.wait("t2", t, |s| s.contains("alice>"));
    tmux.keys("t2", &["Up"]);
    tmux.wait("t2", t, |s| s.contains("alice> msg bob hello half done"));
    assert!(!tmux.bell("t2"));
    bob.cmd("MSG alice ring").unwrap();
    tmux.wait("t2", t, |s| s.contains("bob: ring"));
    // The bell follows the text in the same write; allow tmux a moment to have read all of it.
    let deadline = Instant::now() + t;
    while !tmux.bell("t2") {
        assert!(
            Instant::now() < deadline,
            "an incoming message did not ring the bell"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_large_image_draws_a_progress_bar_that_gives_way_to_the_final_line() {
    let mut lan = Lan::new("bell = false\ntransfer_timeout = 30");
    let img = workspace_plugin("img");
    lan.with_plugins(&[(&img, "libslcp_plugin_img.so")]);
    lan.start_discovery();
    lan.add_user("alice");
    lan.start_client("alice");
    let fake = FakePeer::join("fake", lan.user("alice").port);
    let mut a = lan.ipc("alice");
    assert!(a.wait_peers(&["fake"], Duration::from_secs(2)));
    drop(a);
    let files = lan.home().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let src = make_file(&files, "big.png", b"\x89PNG\r\n\x1a\n", 64 << 20);

    let tmux = Tmux::new("bar");
    tmux.start("t", &repl_command(&lan, "alice", ""));
    let t = Duration::from_secs(10);
    tmux.wait("t", t, |s| s.contains("alice>"));
    tmux.keys("t", &[&format!("IMG fake {}", src.display()), "Enter"]);
    assert_eq!(fake.recv_udp(t).as_deref(), Some("IMG alice 67108864\n"));
    let mut conn = fake.accept(t);
    conn.set_read_timeout(Some(t)).unwrap();
    // This receiver trickles (256 KiB every 20 ms) until the bar has been seen, so the
    // transfer lasts long enough for a screen to catch it; then it takes the rest at once.
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0usize;
            while !seen.load(std::sync::atomic::Ordering::Relaxed) {
                let n = conn.read(&mut buf).unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut rest = Vec::new();
            total + conn.read_to_end(&mut rest).unwrap()
        })
    };
    let is_bar = |l: &str| l.starts_with("[#") && l.contains("% ") && l.contains("of 64.0 MiB");
    let s = tmux.wait("t", t, |s| s.lines().any(is_bar));
    seen.store(true, std::sync::atomic::Ordering::Relaxed);
    let bar = s.lines().find(|l| is_bar(l)).unwrap().to_string();
    assert!(!bar.contains("100%"), "the bar never showed a part: {bar}");
    assert_eq!(
        reader.join().unwrap(),
        (64 << 20) + "IMG alice 67108864\n".len()
    );
    // The final line, then a fresh prompt under it (drawn a moment later).
    let s = tmux.wait(
        "t",
        t,
        fresh_prompt_after("sent big.png to fake: 64.0 MiB in "),
    );
    assert!(
        !s.lines().any(is_bar),
        "the bar stayed after the final line:\n{s}"
    );
}

#[test]
fn ctrl_c_cancels_a_running_command_and_keeps_the_prompt_and_its_history() {
    let mut lan = Lan::new("bell = false");
    lan.start_all(&["alice", "bob"]);
    let t = Duration::from_secs(10);
    let tmux = Tmux::new("ctrlc");
    tmux.start("c", &repl_command(&lan, "alice", ""));
    tmux.wait("c", t, |s| s.contains("alice>"));
    tmux.keys("c", &["WAIT message bob 60", "Enter"]);
    tmux.wait("c", t, |s| s.contains("alice> WAIT message bob 60"));
    let started = Instant::now();
    tmux.keys("c", &["C-c"]);
    // (The terminal echoes ^C in front of the line.)
    tmux.wait("c", t, |s| {
        let l: Vec<&str> = s.lines().collect();
        l.iter()
            .position(|l| l.contains("error: WAIT cancelled"))
            .is_some_and(|i| l[i + 1..].iter().any(|l| l.trim_end() == "alice>"))
    });
    assert!(started.elapsed() < Duration::from_secs(5));
    // The line was written to this handle's history when it was entered.
    let history = std::fs::read_to_string(lan.home().join("state/slcp/history-alice")).unwrap();
    assert!(history.contains("WAIT message bob 60"), "{history}");
    // The prompt is alive and works.
    tmux.keys("c", &["STATUS", "Enter"]);
    tmux.wait("c", t, |s| s.contains("handle    alice"));
}

#[test]
fn a_query_conversation_with_times_colours_unread_counts_and_actions() {
    let mut lan = Lan::new("bell = false");
    lan.start_all(&["alice", "bob", "carol"]);
    let mut b = lan.ipc("bob");
    let mut c = lan.ipc("carol");
    let s2 = Duration::from_secs(2);
    assert!(b.wait_peers(&["alice"], s2) && c.wait_peers(&["alice"], s2));
    let t = Duration::from_secs(10);
    let tmux = Tmux::new("query");
    // Colours on (NO_COLOR empty).
    tmux.start("q", &repl_command(&lan, "alice", "NO_COLOR="));
    tmux.wait("q", t, |s| s.contains("alice>"));
    tmux.keys("q", &["/query bob", "Enter"]);
    tmux.wait("q", t, |s| {
        s.contains("talking to bob") && s.contains("alice→bob>")
    });
    // A plain line goes to bob, and shows back with its time.
    tmux.keys("q", &["hello bob", "Enter"]);
    assert!(
        b.wait_event(
            t,
            |e| matches!(e, Event::Message { text, .. } if text == "hello bob")
        )
        .is_some()
    );
    let clock = |l: &str| l.len() > 6 && l.as_bytes()[2] == b':' && l.as_bytes()[5] == b' ';
    tmux.wait("q", t, |s| {
        s.lines()
            .any(|l| clock(l) && l.trim_end().ends_with("you → bob: hello bob"))
    });
    // bob answers: a line with its time and bob in his colour; carol's message counts as
    // unread in the prompt while alice talks to bob.
    b.cmd("MSG alice hi alice").unwrap();
    tmux.wait("q", t, |s| {
        s.lines().any(|l| clock(l) && l.contains("bob: hi alice"))
    });
    let colored = tmux.screen_colored("q");
    let line = colored
        .lines()
        .find(|l| l.contains("hi alice"))
        .unwrap()
        .to_string();
    assert!(line.contains("\x1b[3"), "no colour on {line:?}");
    c.cmd("MSG alice psst").unwrap();
    tmux.wait("q", t, |s| s.contains("carol: psst"));
    tmux.keys("q", &["Enter"]);
    tmux.wait("q", t, |s| s.contains("alice→bob (1 unread)>"));
    // An action, and the end of the conversation.
    tmux.keys("q", &["/me waves", "Enter"]);
    assert!(
        b.wait_event(
            t,
            |e| matches!(e, Event::Message { text, .. } if text == "* alice waves")
        )
        .is_some()
    );
    tmux.keys("q", &["/query", "Enter"]);
    tmux.wait("q", t, |s| s.contains("no longer talking to bob"));
    tmux.keys("q", &["STATUS", "Enter"]);
    tmux.wait("q", t, |s| s.contains("handle    alice"));
}

#[test]
fn after_a_detach_and_a_kill_9_the_prompt_shows_what_came_with_its_time() {
    let mut lan = Lan::new("bell = false");
    lan.start_all(&["alice", "bob"]);
    let mut b = lan.ipc("bob");
    let t = Duration::from_secs(10);
    assert!(b.wait_peers(&["alice"], t));
    let tmux = Tmux::new("recap");
    tmux.start("r", &repl_command(&lan, "alice", ""));
    tmux.wait("r", t, |s| s.contains("alice>"));
    tmux.keys("r", &["MSG bob before the crash", "Enter"]);
    tmux.wait(
        "r",
        t,
        fresh_prompt_after("alice> MSG bob before the crash"),
    );
    tmux.keys("r", &["C-d"]);
    tmux.wait("r", t, |s| s.contains("detached"));
    // The prompt's process is gone (its connection closed) before bob writes.
    tmux.wait("r", t, |_| tmux.dead("r"));
    b.cmd("MSG alice while you were away").unwrap();
    // Written down by alice's client (nobody attached), then the client is killed.
    let db = lan.home().join("data/slcp/history/alice.sqlite3");
    let reader = slcp_core::history::Store::open(&db).unwrap();
    let deadline = Instant::now() + t;
    while reader
        .conversations()
        .unwrap()
        .first()
        .is_none_or(|c| c.unread < 1)
    {
        assert!(Instant::now() < deadline, "never written down");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(reader);
    lan.kill_client("alice", "KILL");
    lan.start_client("alice");
    tmux.start("r2", &repl_command(&lan, "alice", ""));
    let s = tmux.wait("r2", t, |s| s.contains("bob: while you were away"));
    assert!(s.contains("earlier, you → bob: before the crash"), "{s}");
    assert!(
        s.contains("1 unread while you were away (1 from bob)"),
        "{s}"
    );
    let line = s
        .lines()
        .find(|l| l.contains("bob: while you were away"))
        .unwrap();
    assert_eq!(line.as_bytes()[2], b':', "no time on {line:?}");
}

#[test]
fn encrypted_messages_are_marked_at_the_terminal() {
    let mut lan = Lan::new("bell = false\nencryption = \"prefer\"");
    lan.start_all(&["alice", "bob"]);
    let mut bob = lan.ipc("bob");
    bob.wait_who("alice", "encrypted", Duration::from_secs(10));
    let tmux = Tmux::new("e2e");
    tmux.start("t", &repl_command(&lan, "alice", ""));
    let t = Duration::from_secs(10);
    tmux.wait("t", t, |s| s.contains("alice>"));
    bob.cmd("MSG alice sealed hello").unwrap();
    // `HH:MM [e2e] bob: sealed hello`
    tmux.wait("t", t, |s| {
        s.lines()
            .any(|l| l.trim_end().ends_with("[e2e] bob: sealed hello"))
    });
    tmux.keys("t", &["verify bob", "Enter"]);
    tmux.wait("t", t, |s| s.contains("is marked verified"));
    bob.cmd("MSG alice and verified").unwrap();
    tmux.wait("t", t, |s| {
        s.lines()
            .any(|l| l.trim_end().ends_with("[e2e ✓] bob: and verified"))
    });
    tmux.keys("t", &["who", "Enter"]);
    tmux.wait("t", t, |s| {
        s.lines()
            .any(|l| l.starts_with("bob ") && l.contains("verified"))
    });
}
