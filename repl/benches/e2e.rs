//! End-to-end benchmarks of real `slcp` processes on loopback, each figure beside a baseline
//! measured by this program in the same run: `cargo bench --bench e2e` (`-- --big` adds 1 GiB).
//! Prints a table and writes it to BENCHMARKS.md (keeping the notes below `<!-- notes -->`);
//! `-- --history` and `-- --throughput` run one part alone and only print it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use slcp_core::ipc::{Event, ServerMsg};
use support::bench::raw_tcp_copy;
use support::*;

const S: Duration = Duration::from_secs(1);

struct Row {
    what: String,
    value: String,
    baseline: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

fn row(
    what: &str,
    value: String,
    baseline: String,
    ratio: String,
    target: &str,
    met: Option<bool>,
) -> Row {
    let r = Row {
        what: what.into(),
        value,
        baseline,
        ratio,
        target: target.into(),
        met,
    };
    eprintln!(
        "  {}: {} (baseline {}, {})",
        r.what, r.value, r.baseline, r.ratio
    );
    r
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b)
}

fn quiet_lan(extra: &str) -> Lan {
    Lan::new(&format!("heartbeat = 30\nexpiry = 90\n{extra}"))
}

// ---- baselines ------------------------------------------------------------------------------

/// One-way raw UDP on loopback: half the ping-pong round trip, `n` samples.
fn raw_udp_one_way(n: usize) -> Vec<Duration> {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 600];
        for _ in 0..n + 100 {
            let (k, _) = b.recv_from(&mut buf).unwrap();
            b.send_to(&buf[..k], aa).unwrap();
        }
    });
    let msg = b"MSG alice \"a typical short message\"\n";
    let mut buf = [0u8; 600];
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        a.send_to(msg, ba).unwrap();
        a.recv_from(&mut buf).unwrap();
        if i >= 100 {
            v.push(t.elapsed() / 2);
        }
    }
    echo.join().unwrap();
    v
}

// ---- 1. latency -----------------------------------------------------------------------------

fn latency(rows: &mut Vec<Row>) {
    eprintln!("MSG latency (10 000 messages)...");
    let mut lan = quiet_lan("");
    lan.start_all(&["alice", "bob"]);
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob"], 5 * S));
    let n = 10_000;
    let mut v = Vec::with_capacity(n);
    a.c.set_timeout(Some(10 * S)).unwrap();
    b.c.set_timeout(Some(10 * S)).unwrap();
    for i in 0..n + 200 {
        let t = Instant::now();
        a.c.send(&format!("MSG bob m{i}")).unwrap();
        loop {
            match b.c.recv().expect("bob's message within 10 s") {
                Some(ServerMsg::Event {
                    event: Event::Message { .. },
                    ..
                }) => break,
                Some(_) => {}
                None => panic!("bob closed"),
            }
        }
        if i >= 200 {
            v.push(t.elapsed());
        }
        // alice's reply, already there; read outside the timed part.
        while !matches!(
            a.c.recv().expect("alice's reply within 10 s"),
            Some(ServerMsg::Reply { .. })
        ) {}
    }
    let mut raw = raw_udp_one_way(n);
    let (p50, p99, max) = (
        pct(&mut v, 0.5),
        pct(&mut v, 0.99),
        *v.iter().max().unwrap(),
    );
    let (r50, r99, rmax) = (
        pct(&mut raw, 0.5),
        pct(&mut raw, 0.99),
        *raw.iter().max().unwrap(),
    );
    let r = p50.as_secs_f64() / r50.as_secs_f64();
    rows.push(row(
        "MSG latency p50 (IPC A → IPC B)",
        us(p50),
        format!("{} raw UDP one-way", us(r50)),
        ratio(p50.as_secs_f64(), r50.as_secs_f64()),
        "≤ 3x",
        Some(r <= 3.0),
    ));
    let r = p99.as_secs_f64() / r99.as_secs_f64();
    rows.push(row(
        "MSG latency p99",
        us(p99),
        format!("{} raw UDP one-way", us(r99)),
        ratio(p99.as_secs_f64(), r99.as_secs_f64()),
        "≤ 5x",
        Some(r <= 5.0),
    ));
    rows.push(row(
        "MSG latency max",
        us(max),
        format!("{} raw UDP one-way", us(rmax)),
        ratio(max.as_secs_f64(), rmax.as_secs_f64()),
        "",
        None,
    ));
}

// ---- 2. throughput --------------------------------------------------------------------------

#[path = "e2e/throughput.rs"]
mod throughput;
use throughput::throughput;

/// MSG latency (p50, p99) and the rate of a burst, alice → bob, with `extra` config.
fn msg_figures(extra: &str, n: usize, burst: usize) -> (Duration, Duration, f64) {
    let mut lan = quiet_lan(extra);
    lan.start_all(&["alice", "bob"]);
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob"], 5 * S));
    // Every wait is bounded: a message that never comes fails the bench, it does not hang it.
    a.c.set_timeout(Some(10 * S)).unwrap();
    b.c.set_timeout(Some(10 * S)).unwrap();
    let arrived = |b: &mut Ipc| loop {
        match b.c.recv().expect("bob's message within 10 s") {
            Some(ServerMsg::Event {
                event: Event::Message { .. },
                ..
            }) => break,
            Some(_) => {}
            None => panic!("bob closed"),
        }
    };
    let mut v = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let t = Instant::now();
        a.c.send(&format!("MSG bob m{i}")).unwrap();
        arrived(&mut b);
        if i >= 100 {
            v.push(t.elapsed());
        }
        while !matches!(
            a.c.recv().expect("alice's reply within 10 s"),
            Some(ServerMsg::Reply { .. })
        ) {}
    }
    // A burst: every message sent at once on a connection of its own (its replies drained by a
    // thread, so alice's client never drops it as a slow reader), timed until the last one is
    // at bob's prompt; a message lost on the way ends the count after 2 s without one.
    drop(a);
    let t = Instant::now();
    let info = lan.runtime("alice");
    let (w, mut replies) = slcp_core::ipc::IpcClient::attach(info.ipc_port, &info.token)
        .unwrap()
        .0
        .split();
    let drain = std::thread::spawn(move || while let Ok(Some(_)) = replies.recv() {});
    let mut w = w;
    let mut batch = Vec::new();
    for i in 0..burst {
        batch.extend_from_slice(
            format!("{{\"id\":{i},\"line\":\"MSG bob burst {i}\"}}\n").as_bytes(),
        );
    }
    w.write_all(&batch).unwrap();
    b.c.set_timeout(Some(2 * S)).unwrap();
    let (mut got, mut last) = (0usize, t.elapsed());
    while got < burst {
        match b.c.recv() {
            Ok(Some(ServerMsg::Event {
                event: Event::Message { .. },
                ..
            })) => {
                got += 1;
                last = t.elapsed();
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    if got < burst {
        eprintln!("    the burst: {got} of {burst} reached bob");
    }
    let rate = got as f64 / last.as_secs_f64();
    let _ = w.shutdown(std::net::Shutdown::Both);
    let _ = drain.join();
    (pct(&mut v, 0.5), pct(&mut v, 0.99), rate)
}

/// What keeping every message in the SQLite history costs: the same measures with it off.
fn history_cost(rows: &mut Vec<Row>) {
    eprintln!("history cost (3 000 messages and a burst of 5 000, with and without)...");
    let (off50, off99, off_rate) = msg_figures("history = false", 3000, 5000);
    let (on50, on99, on_rate) = msg_figures("history = true", 3000, 5000);
    rows.push(row(
        "MSG latency p50 with the history on",
        us(on50),
        format!("{} with it off", us(off50)),
        ratio(on50.as_secs_f64(), off50.as_secs_f64()),
        "",
        None,
    ));
    rows.push(row(
        "MSG latency p99 with the history on",
        us(on99),
        format!("{} with it off", us(off99)),
        ratio(on99.as_secs_f64(), off99.as_secs_f64()),
        "",
        None,
    ));
    rows.push(row(
        "burst of 5 000 MSG, rate with the history on",
        format!("{on_rate:.0} msg/s"),
        format!("{off_rate:.0} msg/s with it off"),
        ratio(on_rate, off_rate),
        "",
        None,
    ));
}

// ---- 3. images ------------------------------------------------------------------------------

fn shm_dir() -> PathBuf {
    let d = PathBuf::from(format!("/dev/shm/slcp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn images(rows: &mut Vec<Row>, big: bool) {
    eprintln!("Image transfer...");
    let shm = shm_dir();
    let imgdir = shm.join("img-bob");
    let mut lan = quiet_lan("max_image_bytes = 2147483648\ntransfer_timeout = 60");
    let img = workspace_plugin("img");
    lan.with_plugins(&[(&img, "libslcp_plugin_img.so")]);
    lan.start_discovery();
    lan.add_user("alice");
    lan.add_user("bob");
    lan.set_key("bob", "imagepath", &format!("\"{}\"", imgdir.display()));
    lan.start_client("alice");
    lan.start_client("bob");
    let mut a = lan.ipc("alice");
    let mut b = lan.ipc("bob");
    assert!(a.wait_peers(&["bob"], 5 * S));
    let mut sizes = vec![256usize << 20];
    if big {
        sizes.push(1 << 30);
    }
    for size in sizes {
        let src = make_file(&shm, "src.png", b"\x89PNG\r\n\x1a\n", size);
        let raw = raw_tcp_copy(&src, &shm);
        let t0 = Instant::now();
        a.c.send(&format!("IMG bob {}", src.display())).unwrap();
        let got = b.wait_event(120 * S, |e| matches!(e, Event::Image { .. }));
        let took = t0.elapsed();
        let Some(Event::Image { path, .. }) = got else {
            panic!("no image")
        };
        std::fs::remove_file(&path).unwrap();
        while !matches!(
            a.c.recv().expect("alice's reply within 10 s"),
            Some(ServerMsg::Reply { .. })
        ) {}
        let mbs = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
        let r = mbs(took) / mbs(raw);
        rows.push(row(
            &format!("Image {} MiB A → B, tmpfs, incl. rename", size >> 20),
            format!("{:.0} MB/s", mbs(took)),
            format!("{:.0} MB/s raw TCP copy", mbs(raw)),
            ratio(mbs(took), mbs(raw)),
            "≥ 0.8x",
            Some(r >= 0.8),
        ));
        std::fs::remove_file(&src).unwrap();
    }
    // 500 images of 50 KiB, 16 in flight.
    let small = make_file(&shm, "small.png", b"\x89PNG\r\n\x1a\n", 50 * 1024);
    let (mut w, mut ar) = a.c.split();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok(Some(m)) = ar.recv() {
            if let ServerMsg::Reply { error, .. } = m {
                let _ = tx.send(error);
            }
        }
    });
    let n = 500;
    let t0 = Instant::now();
    let mut inflight = 0;
    let mut done = 0;
    let mut next = 0;
    while done < n {
        while inflight < 16 && next < n {
            slcp_core::ipc::send_request(
                &mut w,
                10_000 + next as u64,
                &format!("IMG bob {}", small.display()),
            )
            .unwrap();
            next += 1;
            inflight += 1;
        }
        let e = rx.recv_timeout(30 * S).expect("image reply");
        assert!(e.is_none(), "{e:?}");
        inflight -= 1;
        done += 1;
    }
    let took = t0.elapsed();
    let mut seen = 0;
    while seen < n {
        if b.wait_event(10 * S, |e| matches!(e, Event::Image { .. }))
            .is_none()
        {
            break;
        }
        seen += 1;
    }
    assert_eq!(seen, n, "bob saw {seen} of {n} small images");
    // Baseline: the same 500 transfers as plain TCP copies, one after the other.
    let t1 = Instant::now();
    for _ in 0..n {
        raw_tcp_copy(&small, &shm);
    }
    let raw = t1.elapsed();
    let rate = n as f64 / took.as_secs_f64();
    let raw_rate = n as f64 / raw.as_secs_f64();
    rows.push(row(
        "500 images of 50 KiB",
        format!("{rate:.0} images/s"),
        format!("{raw_rate:.0}/s raw TCP copies"),
        ratio(rate, raw_rate),
        "≥ 200 images/s",
        Some(rate >= 200.0),
    ));
    let _ = std::fs::remove_dir_all(&shm);
}

// ---- 4. discovery ---------------------------------------------------------------------------

fn discovery(rows: &mut Vec<Row>, raw_rtt: Duration) {
    for n in [10usize, 50, 100] {
        eprintln!("Discovery with {n} clients...");
        let mut lan = quiet_lan("");
        lan.start_discovery();
        let names: Vec<String> = (0..n).map(|i| format!("u{i:03}")).collect();
        for h in &names {
            lan.add_user(h);
        }
        // Started together: spawn every client, then wait for their ready lines.
        let t0 = Instant::now();
        let mut children: Vec<Child> = names
            .iter()
            .map(|h| {
                let cfg = lan.user(h).config.clone();
                lan.cmd()
                    .args(["client", "--config", cfg.to_str().unwrap()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in &mut children {
            let mut l = String::new();
            BufReader::new(c.stdout.as_mut().unwrap())
                .read_line(&mut l)
                .unwrap();
        }
        let all_ready = t0.elapsed();
        for (h, c) in names.iter().zip(children.drain(..)) {
            lan.users.iter_mut().find(|u| &u.handle == h).unwrap().child = Some(c);
        }
        for h in &names {
            let others: Vec<&str> = names
                .iter()
                .filter(|o| *o != h)
                .map(|s| s.as_str())
                .collect();
            let mut ipc = lan.ipc(h);
            assert!(ipc.wait_peers(&others, 10 * S), "{h} never saw everyone");
        }
        let full = t0.elapsed();
        rows.push(row(
            &format!("{n} clients started together: all know all"),
            ms(full),
            format!("{} until all were running", ms(all_ready)),
            ratio(full.as_secs_f64(), all_ready.as_secs_f64()),
            if n == 100 { "≤ 1 s" } else { "" },
            (n == 100).then_some(full <= S),
        ));
        if n == 100 {
            // WHO → complete KNOWUSERS round trips with 100 users listed.
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(S)).unwrap();
            let mut v = Vec::new();
            let mut buf = vec![0u8; 65_536];
            for _ in 0..1000 {
                let t = Instant::now();
                s.send_to(b"WHO\n", ("127.0.0.1", lan.whoisport)).unwrap();
                let mut entries = 0;
                while entries < n {
                    let k = s.recv(&mut buf).unwrap();
                    if let Ok(slcp_core::Message::KnowUsers(e)) =
                        slcp_core::codec::decode(&buf[..k])
                    {
                        entries += e.len();
                    }
                }
                v.push(t.elapsed());
            }
            let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
            rows.push(row(
                "WHO → KNOWUSERS (100 users) p50",
                us(p50),
                format!("{} raw UDP round trip", us(raw_rtt)),
                ratio(p50.as_secs_f64(), raw_rtt.as_secs_f64()),
                "",
                None,
            ));
            rows.push(row(
                "WHO → KNOWUSERS (100 users) p99",
                us(p99),
                format!("{} raw UDP round trip", us(raw_rtt)),
                ratio(p99.as_secs_f64(), raw_rtt.as_secs_f64()),
                "",
                None,
            ));
        }
    }
}

// ---- 5. footprint ---------------------------------------------------------------------------

#[path = "e2e/footprint.rs"]
mod footprint;
use footprint::footprint;

/// The rows of a partial run, on stderr.
fn print_rows(rows: &[Row]) {
    for r in rows {
        eprintln!("{} | {} | {} | {}", r.what, r.value, r.baseline, r.ratio);
    }
}

fn main() {
    let big = std::env::args().any(|a| a == "--big");
    let mut rows = Vec::new();
    if std::env::args().any(|a| a == "--history") {
        // Only what the history costs, printed (BENCHMARKS.md is left as it is).
        latency(&mut rows);
        history_cost(&mut rows);
        return;
    }
    if std::env::args().any(|a| a == "--latency") {
        // Only the MSG latency, printed (for profiling the message path; BENCHMARKS.md is left
        // as it is).
        latency(&mut rows);
        return print_rows(&rows);
    }
    if std::env::args().any(|a| a == "--throughput") {
        // Only the MSG throughput search, printed (BENCHMARKS.md is left as it is).
        throughput(&mut rows);
        return print_rows(&rows);
    }
    let mut raw = raw_udp_one_way(5000);
    let raw_rtt = pct(&mut raw, 0.5) * 2;
    latency(&mut rows);
    history_cost(&mut rows);
    throughput(&mut rows);
    images(&mut rows, big);
    discovery(&mut rows, raw_rtt);
    footprint(&mut rows);

    let mut table = String::from(
        "| measure | slcp | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.what,
            r.value,
            r.baseline,
            r.ratio,
            r.target,
            match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            }
        ));
    }
    println!("\n{table}");
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let file = workspace().join("BENCHMARKS.md");
    let notes = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.split_once("<!-- notes -->").map(|(_, n)| n.to_string()))
        .unwrap_or_else(|| "\n".into());
    let doc = format!(
        "# Benchmarks\n\nGenerated by `cargo bench --bench e2e`{} on {cores} cores ({cpu}). Real `slcp` processes (release build) on loopback; every baseline was measured by the same program in the same run, so compare ratios, not absolute figures, across machines.\n\n{table}\n<!-- notes -->{notes}",
        if big { " -- --big" } else { "" }
    );
    std::fs::write(&file, doc).unwrap();
    eprintln!("wrote {}", file.display());
}
