//! Plugins end to end: real `.so` files built from the workspace (and from outside it) loaded by
//! real clients.

mod support;

use std::path::Path;
use std::time::Duration;

use slcp_core::ipc::Event;
use support::*;

const S: Duration = Duration::from_secs(1);

fn lan_with(plugins: &[(&Path, &str)], users: &[&str]) -> Lan {
    let mut lan = Lan::new("");
    lan.with_plugins(plugins);
    lan.start_all(users);
    lan
}

fn is_auto(e: &Event) -> bool {
    matches!(e, Event::Message { text, .. } if text.starts_with("[auto] "))
}

fn is_msg(text: &str) -> impl Fn(&Event) -> bool + '_ {
    move |e| matches!(e, Event::Message { text: t, .. } if t == text)
}

/// alice sends bob a marker, which must be the next message bob gets: nothing automatic went
/// out from alice before it.
fn alice_sent_nothing_before_a_marker(a: &mut Ipc, b: &mut Ipc) {
    a.cmd("MSG bob marker").unwrap();
    let next = b.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
    assert_eq!(
        next,
        Some(Event::Message {
            from: "alice".into(),
            text: "marker".into()
        })
    );
}

#[test]
fn autoreply_answers_once_per_away_period_and_saves_its_text() {
    let auto = workspace_plugin("autoreply");
    let lan = lan_with(&[(&auto, "libslcp_plugin_autoreply.so")], &["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");

    assert_eq!(
        a.cmd("AUTOREPLY").unwrap(),
        vec!["autoreply: I am away right now"]
    );
    assert_eq!(
        a.cmd("autoreply gone \"fishing\" — back at 5").unwrap(),
        vec!["autoreply set: gone \"fishing\" — back at 5"]
    );
    // Saved in alice's config file, and read back by `slcp config`.
    let cfg = lan.user("alice").config.clone();
    let saved = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        saved.contains("autoreply = \"gone \\\"fishing\\\" — back at 5\""),
        "{saved}"
    );
    let out = lan.run_script(&["config", "--config", cfg.to_str().unwrap()], "", 10 * S);
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l.starts_with("autoreply ") && l.contains("= 'gone \"fishing\" — back at 5'")),
        "{}",
        text(&out.stdout)
    );

    // Not away: no auto-reply. Away: exactly one per sender per away period.
    b.cmd("MSG alice are you there?").unwrap();
    a.cmd("AWAY").unwrap();
    b.expect_event(
        2 * S,
        Event::Away {
            handle: "alice".into(),
        },
    );
    b.cmd("MSG alice hello?").unwrap();
    let got = b.wait_event(2 * S, is_auto);
    assert_eq!(
        got,
        Some(Event::Message {
            from: "alice".into(),
            text: "[auto] gone \"fishing\" — back at 5".into()
        })
    );
    b.cmd("MSG alice hello again?").unwrap();
    // alice's marker comes after anything her client sent in answer to "hello again?".
    assert!(a.wait_event(2 * S, is_msg("hello again?")).is_some());
    alice_sent_nothing_before_a_marker(&mut a, &mut b);
    // The user sees that an auto-reply went out.
    a.expect_event(
        2 * S,
        Event::Notice {
            text: "auto-replied to bob".into(),
        },
    );

    // A new away period answers again.
    a.cmd("BACK").unwrap();
    a.cmd("AWAY").unwrap();
    b.cmd("MSG alice and now?").unwrap();
    assert!(b.wait_event(2 * S, is_auto).is_some());
}

#[test]
fn two_away_users_exchange_exactly_one_auto_reply_each() {
    let auto = workspace_plugin("autoreply");
    let lan = lan_with(&[(&auto, "libslcp_plugin_autoreply.so")], &["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.cmd("AWAY").unwrap();
    b.cmd("AWAY").unwrap();
    a.expect_event(
        2 * S,
        Event::Away {
            handle: "bob".into(),
        },
    );
    b.expect_event(
        2 * S,
        Event::Away {
            handle: "alice".into(),
        },
    );
    a.cmd("MSG bob ping").unwrap();
    b.cmd("MSG alice pong").unwrap();
    // Markers sent after everything the two clients could have answered.
    assert!(a.wait_event(2 * S, is_msg("pong")).is_some());
    assert!(b.wait_event(2 * S, is_msg("ping")).is_some());
    let a_auto = a.wait_event(2 * S, is_auto);
    let b_auto = b.wait_event(2 * S, is_auto);
    assert!(
        a_auto.is_some() && b_auto.is_some(),
        "{a_auto:?} {b_auto:?}"
    );
    a.cmd("MSG bob end-a").unwrap();
    b.cmd("MSG alice end-b").unwrap();
    let a_rest = a.wait_event(2 * S, is_msg("end-b"));
    let b_rest = b.wait_event(2 * S, is_msg("end-a"));
    assert!(a_rest.is_some() && b_rest.is_some());
    // Nothing else automatic arrived before the markers.
    assert_eq!(
        a.events.iter().filter(|e| is_auto(e)).count(),
        0,
        "{:?}",
        a.events
    );
    assert_eq!(
        b.events.iter().filter(|e| is_auto(e)).count(),
        0,
        "{:?}",
        b.events
    );
}

#[test]
fn without_the_autoreply_library_autoreply_is_an_unknown_command() {
    let dice = workspace_plugin("dice");
    let lan = lan_with(&[(&dice, "libslcp_plugin_dice.so")], &["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    assert_eq!(
        a.cmd("AUTOREPLY hi").unwrap_err(),
        "unknown command AUTOREPLY; HELP lists the commands, PLUGINS the plugins that loaded"
    );
    assert!(
        !a.cmd("HELP")
            .unwrap()
            .iter()
            .any(|l| l.contains("AUTOREPLY"))
    );
    // Away with no plugin to answer: the message arrives, nothing answers.
    a.cmd("AWAY").unwrap();
    b.cmd("MSG alice hi").unwrap();
    assert!(a.wait_event(2 * S, is_msg("hi")).is_some());
    alice_sent_nothing_before_a_marker(&mut a, &mut b);
    // The plugin that is there works.
    let out = a.cmd("DICE bob 2d6").unwrap();
    assert!(
        out[0].starts_with("rolled 2d6: ") && out[0].ends_with("(sent to bob)"),
        "{out:?}"
    );
    let got = b.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
    assert!(matches!(got, Some(Event::Message { text, .. }) if text.starts_with("rolled 2d6: ")));
    assert_eq!(
        a.cmd("DICE nobody").unwrap_err(),
        "nobody called nobody is here; WHO lists who is"
    );
}

#[test]
fn a_panicking_plugin_a_wrong_abi_and_a_non_library_do_not_hurt_anything_else() {
    let auto = workspace_plugin("autoreply");
    let fix = fixture(false);
    let bad = fixture(true);
    let mut lan = Lan::new("");
    lan.with_plugins(&[
        (&auto, "libslcp_plugin_autoreply.so"),
        (&fix, "libslcp_plugin_fixture.so"),
        (&bad, "libslcp_plugin_badabi.so"),
    ]);
    std::fs::write(lan.home().join("bin/notalib.so"), "not a library\n").unwrap();
    std::fs::write(
        lan.home().join("bin/README.txt"),
        "not a plugin, not looked at\n",
    )
    .unwrap();
    lan.start_discovery();
    for u in ["alice", "bob"] {
        lan.add_user(u);
        lan.start_client(u);
    }
    let (mut a, mut b) = lan.pair("alice", "bob");

    let report = a.cmd("PLUGINS").unwrap();
    let bin = lan.home().join("bin");
    let want = vec![
        format!(
            "autoreply 0.1.0 from {}: AUTOREPLY",
            bin.join("libslcp_plugin_autoreply.so").display()
        ),
        format!(
            "fixture 0.1.0 from {}: PANIC, FIXTURE",
            bin.join("libslcp_plugin_fixture.so").display()
        ),
        format!(
            "failed: {}: built for plugin ABI 999, this slcp speaks ABI 1; rebuild it against this slcp-plugin-api",
            bin.join("libslcp_plugin_badabi.so").display()
        ),
        format!(
            "failed: {}: not a library (14 bytes, shorter than an ELF header)",
            bin.join("notalib.so").display(),
        ),
    ];
    assert_eq!(report, want);
    // `slcp plugins` says the same without a client.
    let alice_cfg = lan.user("alice").config.clone();
    let out = lan.run_script(
        &["plugins", "--config", alice_cfg.to_str().unwrap()],
        "",
        10 * S,
    );
    assert_eq!(text(&out.stdout), want.join("\n") + "\n");

    // A panic in a command is that command's error.
    assert_eq!(
        a.cmd("PANIC").unwrap_err(),
        "the plugin fixture panicked: fixture panic on purpose"
    );
    assert_eq!(a.cmd("FIXTURE").unwrap_err(), "usage: FIXTURE <text...>");
    // The client, the panicking plugin and the others keep working.
    assert_eq!(
        a.cmd("FIXTURE still here").unwrap(),
        vec!["fixture: still here"]
    );
    assert_eq!(
        a.cmd("AUTOREPLY").unwrap(),
        vec!["autoreply: I am away right now"]
    );
    // A panic in an event handler loses nothing: the message arrives, the autoreply plugin
    // (called after the fixture) still answers.
    a.cmd("AWAY").unwrap();
    b.cmd("MSG alice panic please").unwrap();
    assert!(a.wait_event(2 * S, is_msg("panic please")).is_some());
    assert!(b.wait_event(2 * S, is_auto).is_some());
    assert!(a.cmd("STATUS").is_ok());
    assert!(
        lan.log("client-alice.log")
            .contains("fixture panicked on an event: fixture panic in an event")
    );
}

#[test]
fn help_lists_plugin_commands_with_their_usage() {
    let auto = workspace_plugin("autoreply");
    let dice = workspace_plugin("dice");
    let lan = lan_with(
        &[
            (&auto, "libslcp_plugin_autoreply.so"),
            (&dice, "libslcp_plugin_dice.so"),
        ],
        &["alice"],
    );
    let mut a = lan.ipc("alice");
    let help = a.cmd("HELP").unwrap();
    assert!(
        help.iter().any(|l| l.starts_with("AUTOREPLY [text...]")),
        "{help:?}"
    );
    assert!(
        help.iter().any(|l| l.starts_with("DICE <handle> [NdM]")),
        "{help:?}"
    );
    assert_eq!(
        a.cmd("HELP dice").unwrap(),
        vec!["DICE <handle> [NdM]  roll dice (default 1d6) and send the result to <handle>"]
    );
}

/// The README's "Writing a plugin" section, followed to the letter in an empty folder outside the
/// workspace: its Cargo.toml and src/lib.rs blocks, with the path pointed at this checkout.
#[test]
fn a_plugin_written_from_the_readme_loads_and_works() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let section = readme
        .split("## Writing a plugin")
        .nth(1)
        .expect("README has a 'Writing a plugin' section");
    let block = |lang: &str| -> String {
        let start = section.find(&format!("```{lang}\n")).unwrap() + lang.len() + 4;
        let len = section[start..].find("```").unwrap();
        section[start..start + len].to_string()
    };
    let cargo_toml = block("toml").replace(
        "/path/to/slcp/plugins/api",
        workspace().join("plugins/api").to_str().unwrap(),
    );
    let lib_rs = block("rust");
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("slcp-shout");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("{cargo_toml}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), lib_rs).unwrap();
    let t = target_dir().join("readme-plugin");
    cargo(
        &["build", "--offline", "--target-dir", t.to_str().unwrap()],
        &krate,
    );
    let so = t.join("debug/libslcp_shout.so");

    // Installed as README says: a plugin_dir in the config.
    let mut lan = Lan::new(&format!("plugin_dir = [\"{}\"]", t.join("debug").display()));
    assert!(so.exists());
    lan.start_all(&["alice", "bob"]);
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob"], 2 * S));
    assert!(
        a.cmd("PLUGINS")
            .unwrap()
            .iter()
            .any(|l| l.starts_with("shout 0.1.0 from ") && l.ends_with(": SHOUT"))
    );
    assert_eq!(
        a.cmd("SHOUT bob hello there").unwrap(),
        vec!["shouted at bob: HELLO THERE"]
    );
    assert!(b.wait_event(2 * S, is_msg("HELLO THERE")).is_some());
}

#[test]
fn damaged_plugin_files_get_one_line_each_and_the_client_starts_with_the_others() {
    let auto = workspace_plugin("autoreply");
    let img = workspace_plugin("img");
    let mut lan = Lan::new("");
    lan.with_plugins(&[
        (&auto, "libslcp_plugin_autoreply.so"),
        (&auto, "libslcp_plugin_autoreply_copy.so"),
    ]);
    let bin = lan.home().join("bin");
    // Half a library: dlopen of it faults in the loader (SIGBUS) unless refused before.
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(bin.join("truncated.so"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::create_dir_all(bin.join("folder.so")).unwrap();
    std::os::unix::fs::symlink(bin.join("nowhere"), bin.join("dangling.so")).unwrap();
    lan.start_discovery();
    lan.add_user("alice");
    lan.start_client("alice");
    let mut a = lan.ipc("alice");
    let report = a.cmd("PLUGINS").unwrap();
    let line = |file: &str, why: &str| {
        let want = format!("failed: {}: {why}", bin.join(file).display());
        assert!(
            report.iter().any(|l| l.starts_with(&want)),
            "{want:?} not in {report:#?}"
        );
    };
    line("truncated.so", "damaged or truncated");
    line("folder.so", "a folder named like a plugin, not a library");
    line("dangling.so", "a link to nothing");
    line(
        "libslcp_plugin_autoreply_copy.so",
        &format!(
            "plugin autoreply is already loaded from {}; this copy is not",
            bin.join("libslcp_plugin_autoreply.so").display()
        ),
    );
    assert_eq!(report.len(), 5, "{report:#?}");
    assert_eq!(
        a.cmd("AUTOREPLY").unwrap(),
        vec!["autoreply: I am away right now"]
    );
    // `slcp plugins` lives through it too.
    let cfg = lan.user("alice").config.clone();
    let out = lan.run_script(&["plugins", "--config", cfg.to_str().unwrap()], "", 10 * S);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).lines().count(), 5);
}
