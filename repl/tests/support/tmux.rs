//! tmux as a real terminal for the interactive tests: start a command in a detached session,
//! type with send-keys, read the screen with capture-pane.

use std::process::Command;
use std::time::{Duration, Instant};

use super::{Lan, text};

pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("slcp-test-{name}-{}", std::process::id()),
        }
    }

    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux must be installed (CI installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Starts `cmd` in a detached 100x20 session, kept after `cmd` exits to read its last words.
    pub fn start(&self, session: &str, cmd: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "100",
            "-y",
            "20",
            cmd,
        ]);
        self.run(&["set-option", "-t", session, "remain-on-exit", "on"]);
    }

    /// The screen with its colours (escape sequences kept).
    pub fn screen_colored(&self, session: &str) -> String {
        self.run(&["capture-pane", "-p", "-e", "-t", session])
    }

    pub fn screen(&self, session: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", session])
    }

    pub fn keys(&self, session: &str, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", session];
        a.extend_from_slice(keys);
        self.run(&a);
    }

    /// Whether the program in the session has exited (the pane is kept, dead).
    pub fn dead(&self, session: &str) -> bool {
        self.run(&["display", "-p", "-t", session, "#{pane_dead}"]) == "1\n"
    }

    /// The pane's title (what an OSC 0 sequence from the program would change).
    pub fn title(&self, session: &str) -> String {
        self.run(&["display", "-p", "-t", session, "#{pane_title}"])
    }

    /// Whether tmux saw a bell in the session's window (kept until seen, as it is detached).
    pub fn bell(&self, session: &str) -> bool {
        self.run(&["display", "-p", "-t", session, "#{window_bell_flag}"]) == "1\n"
    }

    /// Waits until `f` holds, re-checking every 20 ms (tmux has no change notification a test
    /// could await), bounded by `t`; returns the screen of `session` then.
    pub fn wait(&self, session: &str, t: Duration, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + t;
        loop {
            let s = self.screen(session);
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

/// The command line that runs `slcp repl` for `handle` of `lan` in a clean environment.
pub fn repl_command(lan: &Lan, handle: &str, env: &str) -> String {
    let h = lan.home().display().to_string();
    format!(
        "env -i PATH=/usr/bin:/bin HOME={h} TERM=xterm-256color NO_COLOR=1 XDG_RUNTIME_DIR={h}/run XDG_STATE_HOME={h}/state XDG_CONFIG_HOME={h}/config XDG_DATA_HOME={h}/data {env} {} repl --config {}",
        lan.bin.display(),
        lan.user(handle).config.display()
    )
}
