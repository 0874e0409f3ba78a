//! FILE beside IMG: `cargo bench --bench files` sends the same 256 MiB file on tmpfs as an image
//! and as a file between two release `slcp` clients on loopback, and copies it over a plain TCP
//! socket for the baseline, three rounds in one run; prints the medians and writes them into
//! BENCHMARKS.md between the `files` markers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slcp_core::ipc::{Event, ServerMsg};
use support::*;

const S: Duration = Duration::from_secs(1);
const SIZE: usize = 256 << 20;
const ROUNDS: usize = 3;

/// The same bytes over a plain loopback TCP socket: file → socket → file → rename.
fn raw_tcp_copy(src: &Path, dir: &Path) -> Duration {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let out = dir.to_owned();
    let t0 = Instant::now();
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let tmp = out.join(".raw.part");
        let mut f = std::fs::File::create(&tmp).unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n]).unwrap();
        }
        drop(f);
        std::fs::rename(&tmp, out.join("raw.bin")).unwrap();
        t0.elapsed()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let mut f = std::fs::File::open(src).unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).unwrap();
    }
    drop(s);
    let d = rx.join().unwrap();
    std::fs::remove_file(dir.join("raw.bin")).unwrap();
    d
}

/// Sends `line`, waits for the event `done` at the receiver and the sender's reply; the time
/// from the command to the receiver's event, and the saved file removed.
fn timed(a: &mut Ipc, b: &mut Ipc, line: &str, done: fn(&Event) -> Option<String>) -> Duration {
    let t0 = Instant::now();
    a.c.send(line).unwrap();
    let got = b.wait_event(120 * S, |e| done(e).is_some());
    let took = t0.elapsed();
    let path = got.as_ref().and_then(done).expect("nothing arrived");
    std::fs::remove_file(path).unwrap();
    loop {
        match a.c.recv().unwrap() {
            Some(ServerMsg::Reply { error: None, .. }) => break,
            Some(ServerMsg::Reply { error: Some(e), .. }) => panic!("{line}: {e}"),
            _ => {}
        }
    }
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let shm = PathBuf::from(format!("/dev/shm/slcp-files-{}", std::process::id()));
    std::fs::create_dir_all(&shm).unwrap();
    let mut lan = Lan::new("max_image_bytes = 2147483648\ntransfer_timeout = 60");
    let img = workspace_plugin("img");
    lan.with_plugins(&[(&img, "libslcp_plugin_img.so")]);
    lan.start_discovery();
    for u in ["alice", "bob"] {
        lan.add_user(u);
    }
    for (k, d) in [("imagepath", "img"), ("downloadpath", "dl")] {
        lan.set_key("bob", k, &format!("\"{}\"", shm.join(d).display()));
    }
    lan.start_client("alice");
    lan.start_client("bob");
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    let deadline = Instant::now() + 10 * S;
    while !a
        .cmd("WHO -v")
        .unwrap_or_default()
        .iter()
        .any(|r| r.starts_with("bob ") && r.contains("slcpx:"))
    {
        assert!(Instant::now() < deadline, "bob's hello never came");
    }
    let src = make_file(&shm, "src.png", b"\x89PNG\r\n\x1a\n", SIZE);
    let mbs = |d: Duration| SIZE as f64 / d.as_secs_f64() / 1e6;
    let (mut raw, mut imgs, mut files) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        eprintln!("round {}/{ROUNDS}", round + 1);
        raw.push(mbs(raw_tcp_copy(&src, &shm)));
        imgs.push(mbs(timed(
            &mut a,
            &mut b,
            &format!("IMG bob {}", src.display()),
            |e| match e {
                Event::Image { path, .. } => Some(path.clone()),
                _ => None,
            },
        )));
        files.push(mbs(timed(
            &mut a,
            &mut b,
            &format!("FILE bob {}", src.display()),
            |e| match e {
                Event::File { path, .. } => Some(path.clone()),
                _ => None,
            },
        )));
    }
    let _ = std::fs::remove_dir_all(&shm);
    let (raw, img, file) = (median(raw), median(imgs), median(files));
    let table = format!(
        "| measure | slcp | baseline (same run) | ratio |\n|---|---|---|---|\n\
         | IMG 256 MiB A → B, tmpfs, incl. rename | {img:.0} MB/s | {raw:.0} MB/s raw TCP copy | {:.2}x |\n\
         | FILE 256 MiB A → B, tmpfs, incl. rename | {file:.0} MB/s | {raw:.0} MB/s raw TCP copy | {:.2}x |\n\
         | FILE against IMG | {file:.0} MB/s | {img:.0} MB/s IMG | {:.2}x |\n",
        img / raw,
        file / raw,
        file / img
    );
    println!("\n{table}");
    let md = workspace().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&md).unwrap_or_default();
    let section = format!(
        "<!-- files -->\n## Files beside images\n\nGenerated by `cargo bench --bench files` (release builds, loopback, tmpfs): the median of {ROUNDS} rounds, each sending the same 256 MiB file as IMG, as FILE, and over a plain TCP socket, from the command to the receiver's event (the saved file renamed into place).\n\n{table}<!-- /files -->\n"
    );
    let new = match (text.find("<!-- files -->"), text.find("<!-- /files -->")) {
        (Some(x), Some(y)) => format!(
            "{}{section}{}",
            &text[..x],
            &text[y + "<!-- /files -->\n".len()..]
        ),
        _ => format!("{text}\n{section}"),
    };
    std::fs::write(&md, new).unwrap();
    eprintln!("wrote {}", md.display());
}
