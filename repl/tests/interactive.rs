//! The interactive prompt in a real terminal: tmux runs `slcp repl`, send-keys types, capture-pane
//! reads the screen.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use slcp_core::ipc::Event;
use support::*;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("slcp-test-{name}-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux must be installed (CI installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "t"];
        a.extend_from_slice(keys);
        self.run(&a);
    }

    /// Waits until the screen satisfies `f`. tmux has no change notification a test could
    /// await, so this re-reads the screen every 20 ms, bounded by `t`.
    fn wait_screen(&self, t: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + t;
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "screen never matched:\n{s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

fn repl_command(lan: &Lan, handle: &str) -> String {
    let h = lan.home().display().to_string();
    format!(
        "env -i PATH=/usr/bin:/bin HOME={h} TERM=xterm-256color NO_COLOR=1 XDG_RUNTIME_DIR={h}/run XDG_STATE_HOME={h}/state XDG_CONFIG_HOME={h}/config {} repl --config {}",
        lan.bin.display(),
        lan.user(handle).config.display()
    )
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
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "100",
        "-y",
        "20",
        &repl_command(&lan, "alice"),
    ]);
    let t = Duration::from_secs(10);
    // Keep the pane (and the server) when the prompt exits, to read its last words.
    tmux.run(&["set-option", "-t", "t", "remain-on-exit", "on"]);
    // capture-pane drops trailing blanks: "alice> " reads as "alice>".
    tmux.wait_screen(t, |s| s.contains("alice>"));

    // A plugin's command completes too, and its first argument as the handle it declares.
    tmux.keys(&["di", "Tab"]);
    tmux.wait_screen(t, |s| s.contains("alice> dice"));
    tmux.keys(&["be", "Tab"]);
    tmux.wait_screen(t, |s| s.contains("alice> dice bernd"));
    tmux.keys(&["C-u"]);
    tmux.wait_screen(t, |s| s.lines().any(|l| l.trim_end() == "alice>"));

    // The command word completes, then the handle ("bo" is unique; "b" is not). The space
    // each completion adds shows once the next word is typed.
    tmux.keys(&["ms", "Tab"]);
    tmux.wait_screen(t, |s| s.contains("alice> msg"));
    tmux.keys(&["bo", "Tab"]);
    tmux.wait_screen(t, |s| s.contains("alice> msg bob"));
    tmux.keys(&["hello half"]);
    tmux.wait_screen(t, |s| s.contains("alice> msg bob hello half"));

    bob.cmd("MSG alice incoming while you type").unwrap();
    let s = tmux.wait_screen(t, |s| s.contains("bob: incoming while you type"));
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

    // Finishing the line sends it.
    tmux.keys(&[" done", "Enter"]);
    let got = bob.wait_event(t, |e| matches!(e, Event::Message { .. }));
    assert_eq!(
        got,
        Some(Event::Message {
            from: "alice".into(),
            text: "hello half done".into()
        })
    );

    // Ctrl-D detaches; the history survives into the next session.
    tmux.keys(&["C-d"]);
    tmux.wait_screen(t, |s| s.contains("detached; your client keeps running"));
    let history = std::fs::read_to_string(lan.home().join("state/slcp/history")).unwrap();
    assert!(history.contains("msg bob hello half done"), "{history}");
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "t2",
        "-x",
        "100",
        "-y",
        "20",
        &repl_command(&lan, "alice"),
    ]);
    let wait2 = |f: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + t;
        loop {
            let s = tmux.run(&["capture-pane", "-p", "-t", "t2"]);
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "screen never matched:\n{s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait2(&|s: &str| s.contains("alice>"));
    tmux.run(&["send-keys", "-t", "t2", "Up"]);
    wait2(&|s: &str| s.contains("alice> msg bob hello half done"));
}
