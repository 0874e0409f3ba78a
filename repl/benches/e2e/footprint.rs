//! The e2e bench's footprint: resident memory of discovery, client and prompt, idle and after
//! 10 000 messages, against a `sleep` process; and the start-up of plain `slcp` to its first answer.

use super::*;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

pub(super) fn footprint(rows: &mut Vec<Row>) {
    eprintln!("Footprint...");
    let mut lan = quiet_lan("backlog = 100");
    lan.start_all(&["alice", "bob"]);
    let mut b = lan.ipc("bob");
    assert!(b.wait_peers(&["alice"], 5 * S));
    let alice_cfg = lan.user("alice").config.clone();
    let mut repl = lan
        .cmd()
        .args(["repl", "--config", alice_cfg.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = repl.stdout.take().unwrap();
    let lines = Arc::new(AtomicU64::new(0));
    let lc = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            if l.is_err() {
                break;
            }
            lc.fetch_add(1, Ordering::Relaxed);
        }
    });
    // A do-nothing process for scale.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    // Idle: let every process settle after its start.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    let disc = lan.discovery_status()["pid"].as_u64().unwrap() as u32;
    let client = lan.runtime("alice").pid;
    let base = rss_kib(sleeper.id());
    let idle = [rss_kib(disc), rss_kib(client), rss_kib(repl.id())];
    // 10 000 messages into alice's prompt.
    for i in 0..10_000 {
        b.c.send(&format!("MSG alice message number {i}")).unwrap();
        if i % 100 == 99 {
            for _ in 0..100 {
                while !matches!(b.c.recv().unwrap(), Some(ServerMsg::Reply { .. })) {}
            }
        }
    }
    let end = Instant::now() + 20 * S;
    while lines.load(Ordering::Relaxed) < 10_000 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = [rss_kib(disc), rss_kib(client), rss_kib(repl.id())];
    let seen = lines.load(Ordering::Relaxed);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let _ = repl.kill();
    let _ = repl.wait();
    for (i, (name, limit)) in [
        ("discovery", Some(4.0)),
        ("client", Some(8.0)),
        ("REPL (piped)", None),
    ]
    .iter()
    .enumerate()
    {
        let target = match limit {
            Some(l) => format!("≤ {l:.0} MiB"),
            None => String::new(),
        };
        rows.push(row(
            &format!("RSS {name} idle / after 10 000 messages"),
            format!("{} / {}", mib(idle[i]), mib(after[i])),
            format!("{} (`sleep`)", mib(base)),
            ratio(after[i] as f64, base as f64),
            &target,
            limit.map(|l| (after[i].max(idle[i]) as f64 / 1024.0) <= l),
        ));
    }
    assert!(
        seen >= 10_000,
        "the prompt printed {seen} of 10 000 messages"
    );
    drop(lan);

    // Start-up: plain `slcp` with nothing running, to the first answered command.
    let mut v = Vec::new();
    let mut base_v = Vec::new();
    for _ in 0..5 {
        let mut lan = quiet_lan("");
        let cfg = lan.add_user("alice");
        let t0 = Instant::now();
        let mut c = lan
            .cmd()
            .args(["--config", cfg.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        c.stdin.as_mut().unwrap().write_all(b"HELP MSG\n").unwrap();
        let mut l = String::new();
        BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut l)
            .unwrap();
        v.push(t0.elapsed());
        let _ = c.kill();
        let _ = c.wait();
        lan.detached
            .push(lan.discovery_status()["pid"].as_u64().unwrap() as u32);
        lan.detached.push(lan.runtime("alice").pid);
        let t1 = Instant::now();
        let out = lan.cmd().arg("--version").output().unwrap();
        assert!(out.status.success());
        base_v.push(t1.elapsed());
    }
    let (p, bp) = (pct(&mut v, 0.5), pct(&mut base_v, 0.5));
    rows.push(row(
        "`slcp` start, nothing running → first answer",
        ms(p),
        format!("{} `slcp --version`", ms(bp)),
        ratio(p.as_secs_f64(), bp.as_secs_f64()),
        "≤ 100 ms",
        Some(p <= Duration::from_millis(100)),
    ));
}
