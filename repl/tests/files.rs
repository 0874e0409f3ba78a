//! FILE end to end: real clients, real files, a 200 MiB transfer compared by SHA-256, hostile
//! names sent by a peer this test plays, a transfer killed half-way that resumes, refusals with
//! their reason on both sides, and a plain SLCP peer that is never sent a file.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slcp_core::ipc::Event;
use support::*;

const S: Duration = Duration::from_secs(1);
const MIB: usize = 1 << 20;

fn sha256(p: &Path) -> Vec<u8> {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    let mut b = vec![0u8; MIB];
    loop {
        let n = f.read(&mut b).unwrap();
        if n == 0 {
            return h.finalize().to_vec();
        }
        h.update(&b[..n]);
    }
}

/// A LAN whose users save files in `<home>/dl-<handle>` (the support's default).
fn file_lan(extra: &str, users: &[&str]) -> Lan {
    let mut lan = Lan::new(extra);
    lan.start_all(users);
    lan
}

#[test]
fn a_200_mib_file_arrives_whole_under_its_own_name_made_safe() {
    let lan = file_lan("", &["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.wait_who("bob", "slcpx:", 10 * S);
    let src_dir = lan.home().join("src");
    std::fs::create_dir_all(&src_dir).unwrap();
    // A right-to-left override makes `a\u{202e}gpj.exe` look like `aexe.jpg` on screen.
    let src = make_file(&src_dir, "a\u{202e}gpj.exe", b"MZ", 200 * MIB);
    let lines = a
        .cmd(&format!("FILE bob {}", src.display()))
        .expect("FILE to bob");
    assert!(
        lines[0].starts_with("sent a\u{202e}gpj.exe to bob: 200.0 MiB in"),
        "{lines:?}"
    );
    let got = b.wait_event(30 * S, |e| matches!(e, Event::File { .. }));
    let Some(Event::File { from, size, path }) = got else {
        panic!("no file event: {got:?}")
    };
    assert_eq!((from.as_str(), size), ("alice", 200 * MIB as u64));
    let dl = lan.home().join("dl-bob");
    assert_eq!(PathBuf::from(&path), dl.join("agpj.exe"));
    assert_eq!(sha256(&src), sha256(Path::new(&path)));
    assert_eq!(
        entries(&dl),
        vec!["agpj.exe".to_string()],
        "nothing else left"
    );
    // The history keeps both sides.
    let h = a.cmd("HISTORY bob").unwrap();
    assert!(
        h.iter()
            .any(|l| l.contains("agpj") || l.contains("gpj.exe")),
        "{h:?}"
    );
}

/// Sends a file from a peer this test plays: the FILE header with `name`, then `body`.
fn fake_send(port: u16, handle: &str, id: &str, name: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(10 * S)).unwrap();
    s.write_all(format!("FILE {handle} {} {id} {name}\n", body.len()).as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let mut c = [0u8; 1];
    while !answer.ends_with(b"\n") {
        if s.read(&mut c).unwrap() == 0 {
            break;
        }
        answer.push(c[0]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    if answer.starts_with("FILEOK 0") {
        s.write_all(body).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // The receiver's close says it kept the file.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    answer
}

#[test]
fn hostile_names_from_the_wire_become_safe_names_that_never_overwrite() {
    let lan = file_lan("", &["bob"]);
    let mut b = lan.ipc("bob");
    let fake = FakePeer::join("mallory", lan.user("bob").port);
    assert!(b.wait_peers(&["mallory"], 5 * S));
    let port = lan.user("bob").port;
    let long = format!("{}.txt", "x".repeat(300));
    for (i, (name, want)) in [
        ("../../etc/passwd", "passwd".to_string()),
        (".bashrc", "bashrc".to_string()),
        (".bashrc", "bashrc-1".to_string()),
        (long.as_str(), format!("{}.txt", "x".repeat(116))),
        ("a\u{202e}gpj.exe", "agpj.exe".to_string()),
    ]
    .into_iter()
    .enumerate()
    {
        // The first one is 200 MiB: a hostile name on a large file changes nothing.
        let body = if i == 0 {
            (0..200 * MIB as u64)
                .map(|k| (k * 31 % 251) as u8)
                .collect()
        } else {
            format!("file {i}\n").into_bytes()
        };
        let answer = fake_send(port, "mallory", &format!("{i:04x}"), name, &body);
        assert_eq!(answer, "FILEOK 0\n", "{name:?}");
        let got = b.wait_event(5 * S, |e| matches!(e, Event::File { .. }));
        let Some(Event::File { path, .. }) = got else {
            panic!(
                "{name:?}: {got:?} {:?} {}",
                b.events,
                lan.log("client-bob.log")
            )
        };
        let dl = lan.home().join("dl-bob");
        assert_eq!(PathBuf::from(&path), dl.join(&want), "{name:?}");
        assert_eq!(
            sha256(Path::new(&path)),
            Sha256::digest(&body).to_vec(),
            "{name:?}"
        );
    }
    assert!(!lan.home().join("etc").exists());
    // A stranger (no JOIN) is refused, with the reason on the wire.
    drop(fake);
    let answer = fake_send(port, "nobody", "0001", "x.txt", b"hi");
    assert!(
        answer.starts_with("FILENO ") && answer.contains("not a known peer"),
        "{answer}"
    );
}

#[test]
fn a_transfer_killed_half_way_resumes_where_it_stopped() {
    // 40 MiB/s: 200 MiB take five seconds, time enough to kill the sender half-way.
    let mut lan = file_lan("max_send_rate = 41943040", &["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.wait_who("bob", "slcpx:", 10 * S);
    let src = make_file(lan.home(), "big.bin", b"", 200 * MIB);
    a.c.send(&format!("FILE bob {}", src.display())).unwrap();
    let dl = lan.home().join("dl-bob");
    let partial = |dl: &Path| {
        entries(dl)
            .into_iter()
            .find(|n| n.starts_with(".slcp-partial-"))
            .map(|n| std::fs::metadata(dl.join(n)).map_or(0, |m| m.len()))
    };
    let deadline = Instant::now() + 30 * S;
    while partial(&dl).unwrap_or(0) < 100 * MIB as u64 {
        assert!(Instant::now() < deadline, "the transfer never got half-way");
        std::thread::sleep(Duration::from_millis(5));
    }
    lan.kill_client("alice", "KILL");
    let kept = b.wait_event(
        10 * S,
        |e| matches!(e, Event::Error { text } if text.contains("kept for resuming")),
    );
    assert!(
        kept.is_some(),
        "bob did not keep the partial: {:?}",
        b.events
    );
    let had = partial(&dl).expect("the partial file stays");
    assert!(had >= 100 * MIB as u64 && had < 200 * MIB as u64, "{had}");
    assert_eq!(
        entries(&dl).len(),
        1,
        "only the hidden partial: {:?}",
        entries(&dl)
    );

    lan.start_client("alice");
    let mut a = lan.ipc("alice");
    a.wait_who("bob", "slcpx:", 10 * S);
    let lines = a.cmd(&format!("FILE bob {}", src.display())).unwrap();
    assert!(lines[0].contains("(resumed: "), "{lines:?}");
    let got = b.wait_event(30 * S, |e| matches!(e, Event::File { .. }));
    let Some(Event::File { path, .. }) = got else {
        panic!("{got:?}")
    };
    assert_eq!(sha256(&src), sha256(Path::new(&path)));
    // What went the second time: the rest only.
    let sent_again = 200 * MIB as u64 - had;
    eprintln!(
        "killed at {had} of {} bytes; sent again: {sent_again} ({:.1} %)",
        200 * MIB,
        100.0 * sent_again as f64 / (200 * MIB) as f64
    );
    assert!(
        (sent_again as f64) < 0.6 * (200 * MIB) as f64,
        "{sent_again} bytes sent again"
    );
    let log = lan.log("client-bob.log");
    assert!(log.contains(&format!("resuming at {had}")), "{log}");
    assert_eq!(entries(&dl), vec!["big.bin".to_string()]);
}

#[test]
fn too_big_files_are_refused_with_the_reason_on_both_sides_and_plain_peers_get_none() {
    let mut lan = Lan::new("");
    lan.start_discovery();
    for u in ["alice", "bob"] {
        lan.add_user(u);
    }
    lan.set_key("bob", "max_file_bytes", "1000");
    lan.start_client("alice");
    lan.start_client("bob");
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.wait_who("bob", "slcpx:", 10 * S);
    let src = make_file(lan.home(), "report.pdf", b"%PDF", 5000);
    let e = a.cmd(&format!("FILE bob {}", src.display())).unwrap_err();
    assert!(
        e.contains("bob refused it") && e.contains("max_file_bytes"),
        "{e}"
    );
    let got = b.wait_event(
        5 * S,
        |e| matches!(e, Event::Error { text } if text.contains("max_file_bytes")),
    );
    assert!(got.is_some(), "{:?}", b.events);
    assert!(entries(&lan.home().join("dl-bob")).is_empty());

    // A plain SLCP peer: FILE says so, and sends it nothing.
    let fake = FakePeer::join("plain", lan.user("alice").port);
    assert!(a.wait_peers(&["plain"], 5 * S));
    let e = a.cmd(&format!("FILE plain {}", src.display())).unwrap_err();
    assert!(e.contains("IMG sends it images"), "{e}");
    let e = a.cmd("FILE nobody /etc/hostname").unwrap_err();
    assert!(e.contains("nobody called nobody is here"), "{e}");
    let e = a.cmd("FILE bob /no/such/file").unwrap_err();
    assert!(e.contains("no such file"), "{e}");
    drop(fake);
}

/// A tmpfs of `mib` MiB mounted at `dir`, unmounted on drop; `None` (said loudly) without root.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, mib: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a small tmpfs (not root?)");
            return None;
        }
        Some(SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_file_larger_than_the_free_space_is_refused_before_a_byte_moves() {
    let mut lan = Lan::new("");
    lan.start_discovery();
    lan.add_user("bob");
    let dl = lan.home().join("dl-bob");
    let Some(_disk) = SmallDisk::mount(&dl, 100) else {
        return;
    };
    lan.start_client("bob");
    let mut b = lan.ipc("bob");
    let _fake = FakePeer::join("mallory", lan.user("bob").port);
    assert!(b.wait_peers(&["mallory"], 5 * S));
    // The header says 200 MiB; the answer comes before any byte is sent.
    let mut s = TcpStream::connect(("127.0.0.1", lan.user("bob").port)).unwrap();
    s.set_read_timeout(Some(5 * S)).unwrap();
    s.write_all(format!("FILE mallory {} 00aa big.iso\n", 200 * MIB).as_bytes())
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("FILENO not enough space for big.iso: 200.0 MiB to go"),
        "{answer}"
    );
    let e = b.wait_event(5 * S, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&e, Some(Event::Error { text }) if text.contains("not enough space")),
        "{e:?}"
    );
    assert!(entries(&dl).is_empty(), "{:?}", entries(&dl));
}

#[test]
fn a_relative_path_at_the_prompt_is_the_prompts_own_folder() {
    let lan = file_lan("", &["alice", "bob"]);
    let (mut a, mut b) = lan.pair("alice", "bob");
    a.wait_who("bob", "slcpx:", 10 * S);
    // The client runs elsewhere; the prompt runs in `work`.
    let work = lan.home().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("notes.txt"), "from the prompt's folder\n").unwrap();
    let mut cmd = lan.cmd();
    cmd.current_dir(&work).args([
        "repl",
        "--config",
        lan.user("alice").config.to_str().unwrap(),
    ]);
    let out = run_with_input(cmd, "FILE bob notes.txt\n", 20 * S);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = b.wait_event(5 * S, |e| matches!(e, Event::File { .. }));
    let Some(Event::File { path, .. }) = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "from the prompt's folder\n"
    );
}

#[test]
fn a_sender_may_leave_only_a_few_unfinished_files() {
    let lan = file_lan("", &["bob"]);
    let mut b = lan.ipc("bob");
    let _fake = FakePeer::join("mallory", lan.user("bob").port);
    assert!(b.wait_peers(&["mallory"], 5 * S));
    let port = lan.user("bob").port;
    let start = |id: usize| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(5 * S)).unwrap();
        s.write_all(format!("FILE mallory 100 {id:04x} part.bin\n").as_bytes())
            .unwrap();
        let mut answer = [0u8; 64];
        let n = s.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        if answer.starts_with("FILEOK") {
            // One byte, then gone: an unfinished file.
            s.write_all(b"x").unwrap();
        }
        answer
    };
    for id in 0..16 {
        assert_eq!(start(id), "FILEOK 0\n");
        let kept = b.wait_event(
            5 * S,
            |e| matches!(e, Event::Error { text } if text.contains("kept for resuming")),
        );
        assert!(kept.is_some(), "{id}: {:?}", b.events);
    }
    let answer = start(16);
    assert!(
        answer.starts_with("FILENO ") && answer.contains("16 unfinished files"),
        "{answer}"
    );
    let dl = lan.home().join("dl-bob");
    assert_eq!(entries(&dl).len(), 16, "{:?}", entries(&dl));
}
