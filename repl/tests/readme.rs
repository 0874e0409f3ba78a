//! README's run command, exactly as written, from a clean target folder: the chat it starts has
//! every bundled plugin (IMG and AUTOREPLY work with no plugin file anywhere).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// The first line of the first shell block of README.md: the run command.
fn readme_run_command() -> String {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("a sh block in README");
    let line = block.lines().next().unwrap();
    line.split('#').next().unwrap().trim().to_string()
}

#[test]
fn the_readme_run_command_gives_every_bundled_plugin() {
    let run = readme_run_command();
    assert_eq!(
        run, "cargo run --release",
        "README's run command changed; update this test"
    );
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("target");
    let (whoisport, alice_port, bob_port) = (free_port(), free_port(), free_port());
    let img = make_file(home.path(), "cat.png", b"\x89PNG\r\n\x1a\n", 20_000);
    // Isolated like every test here: its own HOME, ports chosen now, loopback only.
    let env = |c: &mut Command, handle: &str, port: u16| {
        let h = home.path();
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", h)
            .env("USER", "tester")
            .env("XDG_RUNTIME_DIR", h.join("run"))
            .env("XDG_STATE_HOME", h.join("state"))
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env("XDG_DATA_HOME", h.join("data"))
            .env("SLCP_HANDLE", handle)
            .env("SLCP_PORT", port.to_string())
            .env("SLCP_WHOISPORT", whoisport.to_string())
            .env("SLCP_INTERFACES", "false")
            .env("SLCP_BROADCAST", "127.255.255.255")
            .env("SLCP_IMAGEPATH", h.join(format!("img-{handle}")));
    };
    // alice: the README's command, in this workspace, with a clean target folder; it builds,
    // starts discovery and client, and runs this script at its prompt.
    let mut words = run.split_whitespace();
    let mut alice =
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| words.next().unwrap().to_string()));
    if std::env::var("CARGO").is_ok() {
        words.next();
    }
    alice.args(words).current_dir(workspace());
    env(&mut alice, "alice", alice_port);
    // Cargo's own variables stay out of it, but its home and toolchain must be found.
    for k in ["CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN"] {
        if let Ok(v) = std::env::var(k) {
            alice.env(k, v);
        }
    }
    alice.env("CARGO_TARGET_DIR", &target);
    let script = format!(
        "WAIT peer bob 300\nIMG bob {}\nAUTOREPLY\nAWAY\n",
        img.display()
    );
    let alice =
        std::thread::spawn(move || run_with_input(alice, &script, Duration::from_secs(900)));

    // bob: the binary that command built, once it is there.
    let bin: PathBuf = target.join("release/slcp");
    // Whatever happens, the processes the launcher started detached are stopped.
    let _stop = StopAll(bin.clone());
    let deadline = Instant::now() + Duration::from_secs(900);
    while !bin.exists() {
        assert!(
            Instant::now() < deadline,
            "cargo run --release built nothing"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut bob = Command::new(&bin);
    bob.arg("client");
    env(&mut bob, "bob", bob_port);
    let bob = spawn_ready(bob, &home.path().join("bob.log"), "bob's client");
    let _bob = Guard(bob);

    let out = alice.join().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("sent cat.png to bob"),
        "IMG is built in: {stdout}"
    );
    assert!(
        stdout.contains("autoreply: I am away right now"),
        "AUTOREPLY is built in: {stdout}"
    );
    let saved: Vec<_> = std::fs::read_dir(home.path().join("img-bob"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(
        std::fs::read(saved[0].path()).unwrap(),
        std::fs::read(&img).unwrap()
    );
}

/// Kills the child when dropped, even when an assertion fails.
struct Guard(std::process::Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops every process of the built binary (alice's discovery and client run detached).
struct StopAll(PathBuf);

impl Drop for StopAll {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-f", &self.0.display().to_string()])
            .status();
    }
}
