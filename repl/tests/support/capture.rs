//! A capture of what the LAN carries: the payloads of the chat's packets on one interface
//! (AF_PACKET, root only), to show what an observer of the wire sees.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The payloads of UDP and TCP packets to or from `ports` on interface `dev` while it
/// runs (AF_PACKET, root only): what an observer of the chat's traffic sees, without the IPC
/// between a prompt and its own client.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<u8>>,
}

impl Capture {
    pub fn start(dev: &str, ports: Vec<u16>) -> Capture {
        use socket2::{Domain, Protocol, Socket, Type};
        const ETH_P_ALL: u16 = 0x0003;
        let s = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )
        .expect("a packet socket (the capture needs root)");
        s.bind_device(Some(dev.as_bytes())).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 70_000];
            // After the stop, what the socket holds is still read: it ends on a read that
            // finds nothing for 50 ms.
            loop {
                match (&s).read(&mut buf) {
                    Ok(n) => {
                        if let Some(p) = payload(&buf[..n], &ports) {
                            all.extend_from_slice(p);
                        }
                    }
                    Err(_) if flag.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            all
        });
        Capture { stop, thread }
    }

    pub fn finish(self) -> Vec<u8> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The UDP or TCP payload of an Ethernet frame carrying IPv4 to or from one of `ports`.
fn payload<'a>(frame: &'a [u8], ports: &[u16]) -> Option<&'a [u8]> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let l4 = ip.get(ihl..)?;
    let port = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    if l4.len() < 20 || !(ports.contains(&port(0)) || ports.contains(&port(2))) {
        return None;
    }
    match ip[9] {
        17 => l4.get(8..),
        6 => l4.get(usize::from(l4[12] >> 4) * 4..),
        _ => None,
    }
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
