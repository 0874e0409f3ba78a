//! Piped prompts (`slcp repl` with stdin not a terminal): scripts give the same transcript each
//! run, errors go to stderr and fail the exit status, and WAIT waits for what a command caused.

mod support;

use std::time::Duration;

use slcp_core::ipc::Event;
use support::*;

const S: Duration = Duration::from_secs(1);

#[test]
fn the_same_piped_script_gives_the_same_transcript() {
    let lan = Lan::three_users("");
    let alice = lan.user("alice").config.to_str().unwrap().to_string();
    let bob = lan.user("bob").config.to_str().unwrap().to_string();
    let alice_script = "\
# a comment line, and blank lines, are skipped

WAIT peer bob 5
WAIT peer carol 5
WHO
MSG bob ping with \"quotes\" and ü
WAIT message bob 5
MSG bob \"ping 2\"
WAIT message bob 5
AWAY
BACK
HELP MSG
";
    // Every event either script prints is waited for, so none can arrive after a script ends
    // in one run and before it ends in another.
    let bob_script = "\
WAIT message alice 5
MSG alice pong
WAIT message alice 5
MSG alice pong 2
WAIT back alice 5
";
    let mut transcripts = Vec::new();
    for _ in 0..2 {
        let t = 20 * S;
        let bob_run = lan.script_thread(&["--config", &bob], bob_script, t);
        let a = lan.run_script(&["--config", &alice], alice_script, t);
        let b = bob_run.join().unwrap();
        assert!(a.status.success(), "alice: {}", text(&a.stderr));
        assert!(b.status.success(), "bob: {}", text(&b.stderr));
        transcripts.push((text(&a.stdout), text(&b.stdout)));
    }
    assert_eq!(transcripts[0], transcripts[1]);
    let (a, b) = &transcripts[0];
    let bob_port = lan.user("bob").port;
    let carol_port = lan.user("carol").port;
    let want_a = format!(
        "HANDLE  ADDRESS          STATUS  PRIVACY\n\
         bob     127.0.0.1:{bob_port}  here    plain\n\
         carol   127.0.0.1:{carol_port}  here    plain\n\
         message bob pong\n\
         message bob pong 2\n\
         you are away\n\
         you are back\n\
         MSG <handle|h1,h2|@group|*> <text...>  send a message to someone, to several people, to a group, or to everyone\n"
    );
    assert_eq!(a, &want_a);
    assert_eq!(
        b,
        "message alice ping with \"quotes\" and ü\nmessage alice ping 2\naway alice\nback alice\n"
    );
}

#[test]
fn piped_errors_go_to_stderr_and_fail_the_exit_status() {
    let lan = Lan::three_users("");
    let alice = lan.user("alice").config.to_str().unwrap().to_string();
    let out = lan.run_script(
        &["--config", &alice],
        "WAIT peer bob 5\nFROB\nMSG bob\nMSG nobody hi\nWAIT message bob 0.2\nMSG bob fine\n",
        10 * S,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert_eq!(
        lines[0],
        "error: unknown command FROB; HELP lists the commands, PLUGINS the plugins that loaded"
    );
    assert_eq!(lines[1], "error: usage: MSG <handle> <text...>");
    assert!(
        lines[2].starts_with("error: nobody called nobody is here"),
        "{err}"
    );
    assert_eq!(
        lines[3],
        "error: WAIT: no message event for bob within 0.2s"
    );
    assert_eq!(text(&out.stdout), "");
    // The command after the failures still ran.
    let mut b = lan.ipc("bob");
    assert!(
        b.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "fine")
        )
        .is_some()
    );
}

#[test]
fn wait_waits_for_what_comes_after_the_command_before_it() {
    let mut lan = Lan::new("history = false");
    lan.start_all(&["alice", "bob"]);
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 2 * S));
    // An old message from bob is waiting for alice's next prompt.
    b.cmd("MSG alice an hour ago").unwrap();
    let cfg = lan.user("alice").config.to_str().unwrap().to_string();
    // README's script: bob does not answer, so WAIT must not take the old message.
    let out = lan.run_script(
        &["repl", "--config", &cfg],
        "MSG bob ping\nWAIT message bob 1\n",
        10 * S,
    );
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("WAIT: no message event for bob within 1s"),
        "{}",
        text(&out.stderr)
    );
    // bob answers while MSG runs or after: WAIT takes the answer.
    assert!(
        b.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "ping")
        )
        .is_some()
    );
    b.events.clear();
    let waiter = lan.script_thread(
        &["repl", "--config", &cfg],
        "MSG bob ping\nWAIT message bob 5\n",
        10 * S,
    );
    assert!(
        b.wait_event(
            5 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "ping")
        )
        .is_some()
    );
    b.cmd("MSG alice pong").unwrap();
    let out = waiter.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // HELP knows the prompt's own commands and PLUGINS; an endless line is one clear error.
    let out = lan.run_script(
        &["repl", "--config", &cfg],
        &format!(
            "HELP WAIT\nHELP DOCTOR\nHELP PLUGINS\nMSG bob {}\n",
            "x".repeat(2 << 20)
        ),
        10 * S,
    );
    let o = text(&out.stdout);
    assert!(o.lines().any(|l| l.starts_with("WAIT <message")), "{o}");
    assert!(o.lines().any(|l| l.starts_with("DOCTOR ")), "{o}");
    assert!(o.lines().any(|l| l.starts_with("PLUGINS ")), "{o}");
    let e = text(&out.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("a command line of 2097160 bytes is over the limit of 65536"),
        "{e}"
    );
}
