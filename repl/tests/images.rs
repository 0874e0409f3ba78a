//! Images end to end: real clients with the img plugin, real files, and fake peers (this test
//! process) that misbehave on the TCP image port on purpose.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use slcp_core::ipc::{Event, ServerMsg};
use support::*;

const S: Duration = Duration::from_secs(1);

fn image_lan(extra: &str, with_img: bool) -> Lan {
    let mut lan = Lan::new(extra);
    let img = workspace_plugin("img");
    if with_img {
        lan.with_plugins(&[(&img, "libslcp_plugin_img.so")]);
    } else {
        let dice = workspace_plugin("dice");
        lan.with_plugins(&[(&dice, "libslcp_plugin_dice.so")]);
    }
    lan.start_all(&["alice", "bob"]);
    lan
}

/// Whether two files hold the same bytes (streamed, so 200 MiB costs no memory).
fn same_file(a: &Path, b: &Path) -> bool {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    if fa.metadata().unwrap().len() != fb.metadata().unwrap().len() {
        return false;
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return true;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            return false;
        }
    }
}

fn image_event(ipc: &mut Ipc, t: Duration) -> (String, u64, PathBuf) {
    match ipc.wait_event(t, |e| matches!(e, Event::Image { .. })) {
        Some(Event::Image { from, size, path }) => (from, size, PathBuf::from(path)),
        other => panic!("no image event: {other:?}"),
    }
}

#[test]
fn images_of_every_size_arrive_intact_and_are_named_by_their_magic() {
    let lan = image_lan("max_image_bytes = 268435456", true);
    let (mut a, mut b) = lan.pair("alice", "bob");
    let files = lan.home().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let cases = [
        ("empty.png", &b""[..], 0usize, "bin"),
        ("one.gif", &b"G"[..], 1, "bin"),
        ("photo.jpg", &b"\xff\xd8\xff\xe0"[..], 100 * 1024, "jpg"),
        ("big.png", &b"\x89PNG\r\n\x1a\n"[..], 200 << 20, "png"),
        ("anim.gif", &b"GIF89a"[..], 1000, "gif"),
        ("pic.webp", &b"RIFF\x10\0\0\0WEBPVP8 "[..], 2000, "webp"),
        ("old.bmp", &b"BM"[..], 3000, "bmp"),
    ];
    for (name, magic, n, ext) in cases {
        let src = make_file(&files, name, magic, n);
        let reply = a.cmd(&format!("IMG bob {}", src.display())).unwrap();
        assert!(
            reply[0].starts_with(&format!("sent {name} to bob: ")),
            "{reply:?}"
        );
        let (from, size, path) = image_event(&mut b, 10 * S);
        assert_eq!((from.as_str(), size), ("alice", n as u64));
        let fname = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            fname.starts_with("alice-2") && fname.ends_with(&format!(".{ext}")),
            "{fname}"
        );
        assert_eq!(path.parent().unwrap(), lan.home().join("img-bob"));
        assert!(same_file(&src, &path), "{name} arrived different");
        std::fs::remove_file(&src).unwrap();
    }
    // Two images within one second get two names; nothing is overwritten; no temporary left.
    let names = entries(&lan.home().join("img-bob"));
    assert_eq!(names.len(), cases.len(), "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn several_transfers_at_once_in_both_directions() {
    let lan = image_lan("", true);
    let (mut a, mut b) = lan.pair("alice", "bob");
    let files = lan.home().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let f1 = make_file(&files, "a1.png", b"\x89PNG\r\n\x1a\n", 20 << 20);
    let f2 = make_file(&files, "a2.jpg", b"\xff\xd8\xff", 15 << 20);
    let f3 = make_file(&files, "b1.gif", b"GIF87a", 25 << 20);
    // Three prompts, three commands in flight at the same time.
    let mut a2 = lan.ipc("alice");
    let id1 = a.c.send(&format!("IMG bob {}", f1.display())).unwrap();
    let id2 = a2.c.send(&format!("IMG bob {}", f2.display())).unwrap();
    let id3 = b.c.send(&format!("IMG alice {}", f3.display())).unwrap();
    let _ = (id1, id2, id3);
    let mut got_b = Vec::new();
    let mut got_a = Vec::new();
    for _ in 0..2 {
        got_b.push(image_event(&mut b, 20 * S));
    }
    got_a.push(image_event(&mut a, 20 * S));
    got_b.sort_by_key(|x| x.1);
    assert!(same_file(&f2, &got_b[0].2) && same_file(&f1, &got_b[1].2));
    assert!(same_file(&f3, &got_a[0].2));
}

#[test]
fn a_sending_client_keeps_chatting_while_its_transfer_is_held_up() {
    let lan = image_lan("max_image_bytes = 268435456\ntransfer_timeout = 20", true);
    let mut a = lan.ipc("alice");
    let alice_port = lan.user("alice").port;
    let fake = FakePeer::join("fake", alice_port);
    assert!(a.wait_peers(&["fake"], 2 * S));
    let files = lan.home().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let src = make_file(&files, "big.png", b"\x89PNG\r\n\x1a\n", 200 << 20);
    a.c.send(&format!("IMG fake {}", src.display())).unwrap();
    // The UDP announcement, then the TCP connection.
    assert_eq!(
        fake.recv_udp(2 * S).as_deref(),
        Some("IMG alice 209715200\n")
    );
    let mut conn = fake.accept(2 * S);
    conn.set_read_timeout(Some(10 * S)).unwrap();
    let mut first = vec![0u8; 1 << 20];
    conn.read_exact(&mut first).unwrap();
    // We read no more for now: alice's socket fills up and her send has to wait. Her loop
    // must go on serving messages both ways meanwhile.
    fake.udp
        .send_to(b"MSG fake \"while you send\"\n", ("127.0.0.1", alice_port))
        .unwrap();
    let got = a.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
    assert_eq!(
        got,
        Some(Event::Message {
            from: "fake".into(),
            text: "while you send".into()
        })
    );
    let id = a.c.send("MSG fake and back").unwrap();
    let _ = id;
    assert_eq!(
        fake.recv_udp(2 * S).as_deref(),
        Some("MSG alice \"and back\"\n")
    );
    // Now take the rest and compare with the file: header line, then exactly the bytes.
    let mut rest = Vec::with_capacity(201 << 20);
    conn.read_to_end(&mut rest).unwrap();
    let mut all = first;
    all.extend_from_slice(&rest);
    let header = b"IMG alice 209715200\n";
    assert_eq!(&all[..header.len()], header);
    assert_eq!(all.len() - header.len(), 200 << 20);
    assert!(all[header.len()..] == std::fs::read(&src).unwrap()[..]);
    drop(conn);
    let reply = a.cmd("STATUS").unwrap();
    assert!(reply.iter().any(|l| l.starts_with("msg out")));
}

#[test]
fn a_receiving_client_keeps_chatting_while_a_transfer_to_it_is_held_up() {
    let lan = image_lan("max_image_bytes = 268435456\ntransfer_timeout = 20", true);
    let mut b = lan.ipc("bob");
    let bob_port = lan.user("bob").port;
    let fake = FakePeer::join("fake", bob_port);
    assert!(b.wait_peers(&["fake"], 2 * S));
    // TCP only, no UDP announcement (a tolerance rule), written slowly by us.
    let size: usize = 200 << 20;
    let mut conn = TcpStream::connect(("127.0.0.1", bob_port)).unwrap();
    conn.write_all(format!("IMG fake {size}\n").as_bytes())
        .unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    conn.write_all(&chunk).unwrap();
    fake.udp
        .send_to(b"MSG fake \"mid-transfer\"\n", ("127.0.0.1", bob_port))
        .unwrap();
    let got = b.wait_event(2 * S, |e| matches!(e, Event::Message { .. }));
    assert_eq!(
        got,
        Some(Event::Message {
            from: "fake".into(),
            text: "mid-transfer".into()
        })
    );
    b.cmd("MSG fake got it").unwrap();
    assert_eq!(
        fake.recv_udp(2 * S).as_deref(),
        Some("MSG bob \"got it\"\n")
    );
    for _ in 1..200 {
        conn.write_all(&chunk).unwrap();
    }
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    let (from, n, path) = image_event(&mut b, 20 * S);
    assert_eq!((from.as_str(), n), ("fake", size as u64));
    assert!(path.to_string_lossy().ends_with(".bin"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size as u64);
    // The receiver closes normally: that is the sender's sign the image was kept.
    conn.set_read_timeout(Some(5 * S)).unwrap();
    let mut b1 = [0u8; 1];
    assert_eq!(conn.read(&mut b1).unwrap(), 0);
}

/// Connects to `port` from `source` and sends `bytes`, then closes (or keeps the connection open
/// when `hold`); returns the connection when held.
fn raw_transfer(source: &str, port: u16, bytes: &[u8], hold: bool) -> Option<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((source.parse::<std::net::Ipv4Addr>().unwrap(), 0)).into())
        .unwrap();
    sock.connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    let mut s: TcpStream = sock.into();
    let reset = |r: &std::io::Result<()>| matches!(r, Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe));
    let wrote = s.write_all(bytes);
    if hold {
        return Some(s);
    }
    let shut = s.shutdown(std::net::Shutdown::Write);
    // Wait for the receiver's verdict: a reset means refused. The reset may surface on the
    // write, the shutdown or the read, whichever comes after it arrived.
    s.set_read_timeout(Some(5 * S)).unwrap();
    let mut b = [0u8; 16];
    let read = s.read(&mut b).map(|_| ());
    assert!(
        reset(&wrote) || reset(&shut) || reset(&read),
        "the receiver did not reset a refused transfer: {wrote:?} {shut:?} {read:?}"
    );
    None
}

#[test]
fn bad_transfers_are_refused_and_leave_no_file() {
    let lan = image_lan("max_image_bytes = 1000000\ntransfer_timeout = 1", true);
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 2 * S));
    let port = lan.user("bob").port;
    let imgdir = lan.home().join("img-bob");
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "announces more than it sends",
            "127.0.0.1",
            [&b"IMG alice 1000\n"[..], &[7u8; 500]].concat(),
            "closed after 500 of 1000 bytes",
        ),
        (
            "closes right after the header",
            "127.0.0.1",
            b"IMG alice 1000\n".to_vec(),
            "closed after 0 of 1000 bytes",
        ),
        (
            "sends more than it announces",
            "127.0.0.1",
            [&b"IMG alice 10\n"[..], &[7u8; 500]].concat(),
            "more than the 10 bytes announced",
        ),
        (
            "comes from an unknown sender",
            "127.0.0.2",
            b"IMG mallory 10\n0123456789".to_vec(),
            "mallory at 127.0.0.2 is not a known peer",
        ),
        (
            "is over the size limit",
            "127.0.0.1",
            b"IMG alice 1000001\n".to_vec(),
            "over the limit of 1000000 bytes",
        ),
        ("is garbage", "127.0.0.1", vec![0xAB; 5000], "no IMG header"),
        (
            "is another command where an IMG header belongs",
            "127.0.0.1",
            b"IMG\tWHO\n".to_vec(),
            "bad IMG header",
        ),
        (
            "has a bad header",
            "127.0.0.1",
            b"IMG alice lots\n".to_vec(),
            "bad IMG header",
        ),
    ];
    for (what, source, bytes, why) in cases {
        eprintln!("case: {what}");
        raw_transfer(source, port, &bytes, false);
        let e = b.wait_event(5 * S, |e| matches!(e, Event::Error { .. }));
        match e {
            Some(Event::Error { text }) => assert!(text.contains(why), "{what}: {text}"),
            other => panic!("{what}: no error event: {other:?}"),
        }
        assert!(
            entries(&imgdir).is_empty(),
            "{what}: left {:?}",
            entries(&imgdir)
        );
    }
    // A stalled transfer is aborted after transfer_timeout, and leaves nothing either.
    let held = raw_transfer(
        "127.0.0.1",
        port,
        &[&b"IMG alice 1000\n"[..], &[1u8; 100]].concat(),
        true,
    );
    let e = b.wait_event(5 * S, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&e, Some(Event::Error { text }) if text.contains("stalled after 100 of 1000 bytes")),
        "{e:?}"
    );
    drop(held);
    assert!(entries(&imgdir).is_empty(), "{:?}", entries(&imgdir));
    // Bob is fine: a good image still arrives.
    let mut a = lan.ipc("alice");
    let f = make_file(lan.home(), "ok.png", b"\x89PNG\r\n\x1a\n", 5000);
    a.cmd(&format!("IMG bob {}", f.display())).unwrap();
    let (_, _, path) = image_event(&mut b, 5 * S);
    assert!(same_file(&f, &path));
    assert_eq!(entries(&imgdir).len(), 1);
}

#[test]
fn the_sender_refuses_what_it_cannot_send_and_sends_nothing() {
    // No heartbeat during the test, so bob's datagram count can only move if alice sends.
    let lan = image_lan(
        "max_image_bytes = 1000\nheartbeat = 3600\nexpiry = 7200",
        true,
    );
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob"], 2 * S));
    // Whatever alice sent bob on meeting him (a greeting) is in before this message is.
    a.cmd("MSG bob sync").unwrap();
    assert!(
        b.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "sync")
        )
        .is_some()
    );
    let before = b.cmd("STATUS").unwrap();
    let big = make_file(lan.home(), "big.png", b"\x89PNG", 1001);
    let dir = lan.home().join("a folder");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            format!("IMG bob {}", dir.display()),
            format!("{} is not a regular file (it is a folder)", dir.display()),
        ),
        (
            "IMG bob /no/such/file.png".to_string(),
            "no such file: /no/such/file.png".to_string(),
        ),
        (
            format!("IMG bob {}", big.display()),
            format!(
                "{} is 1001 bytes, over the limit of 1000 bytes (max_image_bytes)",
                big.display()
            ),
        ),
        (
            "IMG nobody /etc/hostname".to_string(),
            "nobody called nobody is here; WHO lists who is".to_string(),
        ),
        (
            "IMG alice /etc/hostname".to_string(),
            "that is you; IMG someone else".to_string(),
        ),
        (
            "IMG bob".to_string(),
            "usage: IMG <handle> <path>".to_string(),
        ),
    ];
    for (cmd, want) in cases {
        assert_eq!(a.cmd(&cmd).unwrap_err(), want);
    }
    // Nothing reached bob: not a datagram more than before (STATUS counts them).
    assert_eq!(b.cmd("STATUS").unwrap(), before);
    assert!(entries(&lan.home().join("img-bob")).is_empty());
}

#[test]
fn a_send_to_a_dead_client_fails_with_the_cause() {
    let mut lan = image_lan("", true);
    let mut a = lan.ipc("alice");
    assert!(a.wait_peers(&["bob"], 2 * S));
    lan.kill_client("bob", "KILL");
    let f = make_file(lan.home(), "x.png", b"\x89PNG", 100);
    let e = a.cmd(&format!("IMG bob {}", f.display())).unwrap_err();
    assert!(
        e.contains("bob accepts no TCP connection at 127.0.0.1:")
            && e.contains("connection refused"),
        "{e}"
    );
}

#[test]
fn a_receiver_that_stops_reading_fails_the_send_after_the_timeout() {
    let lan = image_lan("max_image_bytes = 268435456\ntransfer_timeout = 1", true);
    let mut a = lan.ipc("alice");
    let fake = FakePeer::join("fake", lan.user("alice").port);
    assert!(a.wait_peers(&["fake"], 2 * S));
    // More than any socket buffer holds: the send must wait on the receiver.
    let f = make_file(lan.home(), "big.png", b"\x89PNG", 64 << 20);
    let id = a.c.send(&format!("IMG fake {}", f.display())).unwrap();
    // The connection is accepted, then left open and unread.
    let _conn = fake.accept(2 * S);
    a.c.set_timeout(Some(10 * S)).unwrap();
    let mut told = None;
    let err = loop {
        match a.c.recv().unwrap().expect("client closed") {
            ServerMsg::Reply {
                id: got,
                lines,
                error,
            } if got == id => break error.unwrap_or_else(|| panic!("sent: {lines:?}")),
            ServerMsg::Event {
                event: Event::Notice { text },
                ..
            } => told = Some(text),
            _ => {}
        }
    };
    // Told while it stalls, long before it is given up, in sizes a person reads.
    let told = told.expect("no word while the transfer stalled");
    assert!(
        told.starts_with("big.png to fake has not moved for ") && told.contains(" MiB, "),
        "{told}"
    );
    assert!(
        err.starts_with("image big.png to fake failed: stalled for 1s after "),
        "{err}"
    );
    assert!(err.contains("64.0 MiB"), "{err}");
    // The client is whole: it still answers.
    a.cmd("STATUS").unwrap();
}

#[test]
fn without_the_img_library_img_is_unknown_and_images_are_refused() {
    let lan = image_lan("", false);
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob"], 2 * S));
    assert_eq!(
        a.cmd("IMG bob /etc/hostname").unwrap_err(),
        "unknown command IMG; HELP lists the commands, PLUGINS the plugins that loaded"
    );
    // An image sent anyway (by another implementation) is refused, and nothing is kept.
    raw_transfer(
        "127.0.0.1",
        lan.user("bob").port,
        b"IMG alice 3\nabc",
        false,
    );
    let e = b.wait_event(5 * S, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&e, Some(Event::Error { text }) if text.contains("no plugin receives images")),
        "{e:?}"
    );
    assert!(entries(&lan.home().join("img-bob")).is_empty());
    // The chat works.
    a.cmd("MSG bob still fine").unwrap();
    assert!(
        b.wait_event(
            2 * S,
            |e| matches!(e, Event::Message { text, .. } if text == "still fine")
        )
        .is_some()
    );
}

#[test]
fn an_unwritable_imagepath_is_reported_on_both_sides() {
    let mut lan = Lan::new("");
    let img = workspace_plugin("img");
    lan.with_plugins(&[(&img, "libslcp_plugin_img.so")]);
    lan.start_discovery();
    lan.add_user("alice");
    lan.add_user("bob");
    // bob's imagepath lies under a regular file: it can never be created.
    let blocker = lan.home().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    lan.set_key(
        "bob",
        "imagepath",
        &format!("\"{}/images\"", blocker.display()),
    );
    lan.start_client("alice");
    lan.start_client("bob");
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    // bob hears of it when his client starts, before any image comes.
    let early = b.wait_event(2 * S, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&early, Some(Event::Error { text }) if text.contains("is not writable") && text.contains("set imagepath")),
        "{early:?}"
    );
    assert!(a.wait_peers(&["bob"], 2 * S));
    let f = make_file(lan.home(), "p.png", b"\x89PNG", 300_000);
    let e = a.cmd(&format!("IMG bob {}", f.display())).unwrap_err();
    assert!(e.starts_with("image p.png to bob failed: "), "{e}");
    assert!(
        e.contains("refused") || e.contains("closed the connection early"),
        "{e}"
    );
    let got = b.wait_event(2 * S, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&got, Some(Event::Error { text }) if text.contains(&format!("imagepath {}/images is not writable", blocker.display()))),
        "{got:?}"
    );
}

/// A small tmpfs mounted over a folder for one test, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts `bytes` of tmpfs at `dir`; `None` (with a loud line) only where mounting is
    /// impossible and SLCP_SKIP_MOUNT=1 allows skipping.
    fn mount(dir: &Path, bytes: u64) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) must be installed");
        if out.status.success() {
            return Some(SmallDisk(dir.to_path_buf()));
        }
        let why = text(&out.stderr);
        if std::env::var("SLCP_SKIP_MOUNT").as_deref() == Ok("1") {
            eprintln!("\n!!! SKIPPING the disk-full test: {why}!!! (SLCP_SKIP_MOUNT=1)\n");
            return None;
        }
        panic!(
            "the disk-full test mounts a small tmpfs: {why}run as root, or set SLCP_SKIP_MOUNT=1 to skip it"
        );
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_fails_the_transfer_on_both_sides_and_leaves_no_file() {
    let lan = image_lan("", true);
    let (mut a, mut b) = lan.pair("alice", "bob");
    let dir = lan.home().join("img-bob");
    let Some(_disk) = SmallDisk::mount(&dir, 1 << 20) else {
        return;
    };
    let f = make_file(lan.home(), "big.png", b"\x89PNG\r\n\x1a\n", 4 << 20);
    let e = a.cmd(&format!("IMG bob {}", f.display())).unwrap_err();
    assert!(e.starts_with("image big.png to bob failed: "), "{e}");
    let got = b.wait_event(5 * S, |e| matches!(e, Event::Error { .. }));
    assert!(
        matches!(&got, Some(Event::Error { text }) if text.starts_with("image from alice") && text.ends_with("disk full")),
        "{got:?}"
    );
    assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
    // Once there is room again, the next image goes through.
    let small = make_file(lan.home(), "small.png", b"\x89PNG\r\n\x1a\n", 100_000);
    a.cmd(&format!("IMG bob {}", small.display())).unwrap();
    let (_, _, path) = image_event(&mut b, 5 * S);
    assert!(same_file(&small, &path));
}
