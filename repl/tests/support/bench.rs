//! What the benchmarks compare slcp against: the same bytes over a plain loopback TCP socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use slcp_core::ipc::{Event, ServerMsg};

use super::Ipc;

/// The same bytes over a plain loopback TCP socket: file → socket → file → rename.
pub fn raw_tcp_copy(src: &Path, dir: &Path) -> Duration {
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
pub fn timed(a: &mut Ipc, b: &mut Ipc, line: &str, done: fn(&Event) -> Option<String>) -> Duration {
    let t0 = Instant::now();
    a.c.send(line).unwrap();
    let got = b.wait_event(Duration::from_secs(120), |e| done(e).is_some());
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

/// Puts `body` into BENCHMARKS.md between `<!-- name -->` and `<!-- /name -->` (the section a
/// bench owns), or at the end when the markers are not there yet.
pub fn write_section(name: &str, body: &str) {
    let md = super::workspace().join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&md).unwrap_or_default();
    let (open, close) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let section = format!("{open}\n{body}{close}\n");
    let new = match (text.find(&open), text.find(&close)) {
        (Some(x), Some(y)) => {
            let rest = &text[y + close.len()..];
            format!(
                "{}{section}{}",
                &text[..x],
                rest.strip_prefix('\n').unwrap_or(rest)
            )
        }
        _ => format!("{text}\n{section}"),
    };
    std::fs::write(&md, new).unwrap();
    eprintln!("wrote {}", md.display());
}
