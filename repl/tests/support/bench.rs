//! What the benchmarks compare slcp against: the same bytes over a plain loopback TCP socket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

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
