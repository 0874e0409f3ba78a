//! The `slcp` binary's command line: help, version, `config`, and one-line config errors.

use std::process::{Command, Output};

fn slcp(args: &[&str], home: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slcp"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("USER", "tester")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("run slcp")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_and_version() {
    let home = tempfile::tempdir().unwrap();
    let out = slcp(&["--help"], home.path());
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in ["config", "--config", "--handle", "--set"] {
        assert!(help.contains(word), "help lacks {word}: {help}");
    }
    let out = slcp(&["--version"], home.path());
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
        format!("slcp {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn config_shows_sources_and_global_config_option_works_after_the_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("my.toml");
    std::fs::write(&file, "port = 6000\n").unwrap();
    let out = slcp(
        &[
            "config",
            "--config",
            file.to_str().unwrap(),
            "--handle",
            "zoë",
        ],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.lines()
            .any(|l| l.starts_with("handle ") && l.contains("= \"zoë\"")),
        "{s}"
    );
    assert!(s.contains("# flag --handle"), "{s}");
    assert!(
        s.lines()
            .any(|l| l.starts_with("port ") && l.contains("6000") && l.contains("my.toml")),
        "{s}"
    );
    // With no file at all, the login name is the handle.
    let out = slcp(&["config"], home.path());
    assert!(text(&out.stdout).contains("\"tester\""));
}

#[test]
fn broken_config_is_one_line_and_exit_1() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config.toml");
    std::fs::write(&file, "port = 70000\n").unwrap();
    let out = slcp(&["--config", file.to_str().unwrap(), "config"], home.path());
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("config.toml: port: 70000 is not a port (1-65535)"),
        "{err}"
    );
    // The default file is still printable, and is valid once uncommented.
    let out = slcp(
        &["--config", file.to_str().unwrap(), "config", "--default"],
        home.path(),
    );
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("# whoisport = 4000"));
}

#[test]
fn help_is_one_text_and_completions_and_the_manual_are_generated() {
    let home = tempfile::tempdir().unwrap();
    let short = slcp(&["-h"], home.path());
    let long = slcp(&["--help"], home.path());
    assert_eq!(text(&short.stdout), text(&long.stdout));
    for shell in ["bash", "zsh", "fish"] {
        let out = slcp(&["completions", shell], home.path());
        assert!(out.status.success(), "{shell}");
        let script = text(&out.stdout);
        assert!(
            script.contains("discovery") && script.contains("config"),
            "{shell}"
        );
    }
    let man = slcp(&["man"], home.path());
    assert!(text(&man.stdout).starts_with(".ie") || text(&man.stdout).contains(".TH slcp 1"));
    let out = slcp(&["completions", "nosuchshell"], home.path());
    assert!(!out.status.success());
}
