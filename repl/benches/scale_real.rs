//! The scale simulator's reality check: the same cold start, steady state and join with real
//! `slcp` processes on 40 network-namespace hosts (a bridge, as in the LAN tests), default
//! timing, one user per host, and then in the simulator (`slcp_discovery::sim`) with the start
//! times the real clients had. Compared: the time until every client knows every other, and the
//! datagrams every discovery and client received (their own counters: the discovery's status
//! line, the client's `STATUS --json`). Root required. `cargo bench -p slcp --bench scale_real`
//! writes the "Scale: reality check" section of BENCHMARKS.md.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use slcp_discovery::sim::{Config, Rng, Sim, handle};
use support::netns::*;
use support::*;

const S: Duration = Duration::from_secs(1);
const HOSTS: usize = 40;
/// The cold start is over (announcements, and hellos spread over 39 / 15 s) by then.
const SETTLED: Duration = Duration::from_secs(20);
/// The steady state is watched this long after that.
const STEADY: Duration = Duration::from_secs(30);

/// Datagrams received so far by host `h`'s discovery and by its client.
fn received(net: &Net, ipc: &mut Ipc, h: usize) -> (u64, u64) {
    let disc = net.discovery_status(h)["datagrams"].as_u64().unwrap();
    (disc, status(ipc, "datagrams"))
}

/// One counter of a client's `STATUS --json`.
fn status(ipc: &mut Ipc, key: &str) -> u64 {
    let lines = ipc.cmd("STATUS --json").unwrap();
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    v[key].as_u64().unwrap()
}

/// Polls every client until each knows `want` peers; the moment the last one did (since `t0`).
fn until_all_know(ipcs: &mut [Ipc], want: u64, t0: Instant, limit: Duration) -> Duration {
    let mut done = vec![false; ipcs.len()];
    let deadline = Instant::now() + limit;
    while done.iter().any(|d| !d) {
        assert!(
            Instant::now() < deadline,
            "not every client knew {want} peers within {limit:?}"
        );
        for (i, ipc) in ipcs.iter_mut().enumerate() {
            if !done[i] && status(ipc, "peers") >= want {
                done[i] = true;
            }
        }
    }
    t0.elapsed()
}

/// tcpdump on the bridge into `file`, once it says it listens (None where it cannot run). A
/// bridge device in promiscuous mode sees every frame it forwards; the capture goes to a file,
/// since a pipe nobody reads would fill and stall it. Lines start with the Unix time (`-tt`).
fn capture(net: &Net, file: &std::path::Path) -> Option<std::process::Child> {
    let mut c = std::process::Command::new("ip")
        .args(["netns", "exec", &format!("{}-sw", net.name), "tcpdump"])
        .args([
            "-i",
            "br0",
            "-n",
            "-l",
            "-q",
            "-tt",
            "--immediate-mode",
            "udp",
        ])
        .stdout(std::fs::File::create(file).ok()?)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let err = std::io::BufReader::new(c.stderr.take()?);
    let mut lines = std::io::BufRead::lines(err).take(5);
    lines
        .any(|l| l.is_ok_and(|l| l.contains("listening")))
        .then_some(c)
}

/// Stops a capture; its lines.
fn captured(mut c: std::process::Child, file: &std::path::Path) -> String {
    let _ = c.kill();
    let _ = c.wait();
    std::fs::read_to_string(file).unwrap_or_default()
}

/// The bridge's round trip between two hosts (ping: least, mean), while nothing else runs.
fn bridge_rtt(net: &Net) -> Option<(Duration, Duration)> {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &net.hosts[0].ns, "ping"])
        .args(["-q", "-c", "200", "-i", "0.002", "-W", "1", "10.99.0.2"])
        .output()
        .ok()?;
    // rtt min/avg/max/mdev = 0.031/0.052/0.210/0.020 ms
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .lines()
        .find(|l| l.contains("min/avg"))?
        .split('=')
        .nth(1)?
        .trim()
        .split(['/', ' '])
        .filter_map(|x| x.parse().ok())
        .collect();
    let ms = |x: f64| Duration::from_secs_f64(x / 1e3);
    Some((ms(*v.first()?), ms(*v.get(1)?)))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn row(what: &str, real: f64, sim: f64, unit: &str) -> String {
    let diff = 100.0 * (real - sim) / sim.max(f64::MIN_POSITIVE);
    format!("| {what} | {real:.2} {unit} | {sim:.2} {unit} | {diff:+.0} % |")
}

fn main() {
    if !netns_available() {
        return;
    }
    let mut net = Net::new(HOSTS, "");
    // The defaults (heartbeat 10 s, expiry 35 s), as the simulator's.
    net.timing = String::new();
    let rtt = bridge_rtt(&net);
    for h in 1..=HOSTS {
        net.start_discovery(h);
    }
    // Every client starts within the first second, at seeded moments, as in the simulator;
    // a start takes as long as the process needs to be ready, so the real moments are kept.
    let mut rng = Rng::new(1);
    let mut plan: Vec<Duration> = (0..HOSTS).map(|_| rng.upto(S)).collect();
    plan.sort();
    // The wire itself, where tcpdump is installed: what the bridge carries in the first 20 s
    // (a broadcast once), as the simulator counts what is put on the LAN.
    let capture_file = net.dir.path().join("wire.txt");
    let wire = capture(&net, &capture_file);
    let t0 = Instant::now();
    let mut started = Vec::new();
    for (i, at) in plan.iter().enumerate() {
        // Pacing to a planned moment, not waiting for an event.
        std::thread::sleep(at.saturating_sub(t0.elapsed()));
        net.start_client(i + 1, &handle(i, 0), "");
        started.push(t0.elapsed());
    }
    let mut ipcs: Vec<Ipc> = (0..HOSTS).map(|i| net.ipc(i + 1, &handle(i, 0))).collect();
    let real_cold = until_all_know(&mut ipcs, HOSTS as u64 - 1, t0, 30 * S);
    // (discoveries, clients)
    let total = |net: &Net, ipcs: &mut [Ipc]| -> (u64, u64) {
        (0..HOSTS)
            .map(|i| received(net, &mut ipcs[i], i + 1))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    // Pacing to the planned moments of the scenario.
    std::thread::sleep(SETTLED.saturating_sub(t0.elapsed()));
    let real_settled = total(&net, &mut ipcs);
    let on_wire = wire.map(|c| {
        let lines = captured(c, &capture_file);
        let n = |f: &dyn Fn(&str) -> bool| lines.lines().filter(|l| f(l)).count() as u64;
        (
            n(&|l| l.contains(".255.4000:")),
            n(&|l| !l.contains(".255.4000:")),
        )
    });
    let settled_at = t0.elapsed();
    std::thread::sleep((SETTLED + STEADY).saturating_sub(t0.elapsed()));
    let real_end = total(&net, &mut ipcs);
    let real_steady = real_end.0 + real_end.1 - real_settled.0 - real_settled.1;
    let steady_secs = (t0.elapsed() - settled_at).as_secs_f64();
    // One join: a new host, its discovery up first, then its user. Each client's IPC
    // connection waits for the join event on a thread of its own.
    sh(&["host", &net.name, &(HOSTS + 1).to_string(), "10.99.0.41/24"]).unwrap();
    net.add_host_entry(HOSTS + 1);
    net.start_discovery(HOSTS + 1);
    let newcomer = handle(HOSTS, 0);
    let join_file = net.dir.path().join("join.txt");
    let join_wire = capture(&net, &join_file);
    let waiters: Vec<_> =
        ipcs.drain(..)
            .map(|mut ipc| {
                let who = newcomer.clone();
                std::thread::spawn(move || {
                    ipc.wait_event(10 * S, |e| {
                    matches!(e, slcp_core::ipc::Event::Join { handle, .. } if *handle == who)
                })
                .map(|_| (Instant::now(), unix_now()))
                })
            })
            .collect();
    let spawned = Instant::now();
    net.start_client(HOSTS + 1, &newcomer, "");
    let known: Vec<(Instant, f64)> = waiters
        .into_iter()
        .map(|w| {
            w.join()
                .unwrap()
                .expect("every client hears of the newcomer")
        })
        .collect();
    let last = known.iter().map(|k| k.0).max().expect("clients");
    let last_unix = known.iter().map(|k| k.1).fold(0.0, f64::max);
    // The join timed from its first sign on the wire: the newcomer's discovery announcing it
    // (the process start-up before it is no part of discovery).
    let real_join = join_wire.and_then(|c| {
        let lines = captured(c, &join_file);
        let announced = lines
            .lines()
            .find(|l| l.contains("10.99.0.41.4000 > 10.99.0.255.4000"))?;
        let t: f64 = announced.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_secs_f64((last_unix - t).max(0.0)))
    });
    let real_join_spawn = last - spawned;

    // The simulator, with the same moments.
    // The simulated wire as fast as this bridge: the least one-way delay, and the jitter
    // that gives the mean.
    let (latency, jitter) = rtt
        .map(|(min, avg)| (min / 2, avg.saturating_sub(min)))
        .unwrap_or((Config::default().latency, Config::default().jitter));
    eprintln!("simulated latency {latency:?} + up to {jitter:?}");
    let mut sim = Sim::new(Config {
        hosts: HOSTS,
        latency,
        jitter,
        ..Config::default()
    });
    for (i, at) in started.iter().enumerate() {
        sim.start_client(i, 0, *at);
    }
    let cold = sim
        .run_until(30 * S, Duration::from_millis(1), |s| {
            s.running().count() == HOSTS && s.converged()
        })
        .expect("the simulated cold start converges");
    sim.run_to(SETTLED);
    let sim_wire = sim.metrics.sent_between(Duration::ZERO, SETTLED);
    let sim_wire_cast = sim.metrics.broadcasts_sent;
    let sim_settled = sim.metrics.datagrams_received;
    let sim_settled_disc = sim.metrics.received_by_discovery;
    sim.run_to(SETTLED + STEADY);
    let sim_steady = sim.metrics.datagrams_received - sim_settled;
    let new = sim.add_host();
    sim.start_client(new, 0, sim.now());
    let who = handle(new, 0);
    let cast = sim.metrics.broadcasts_sent;
    let sim_announced = sim
        .run_until(10 * S, Duration::from_micros(10), |s| {
            s.metrics.broadcasts_sent > cast
        })
        .expect("the newcomer's discovery announces it");
    let sim_join = sim
        .run_until(10 * S, Duration::from_micros(10), |s| {
            s.running()
                .filter(|&(h, _)| h != new)
                .all(|(h, m)| s.knows(h, m, &who))
        })
        .expect("the simulated join is known");

    let last_start = started.last().copied().unwrap_or_default();
    let rows = [
        row(
            "cold start: every client knows every other, from the first start",
            real_cold.as_secs_f64(),
            cold.as_secs_f64(),
            "s",
        ),
        row(
            "cold start: the same, from the last client's start",
            (real_cold - last_start).as_secs_f64() * 1e3,
            (cold.saturating_sub(last_start)).as_secs_f64() * 1e3,
            "ms",
        ),
        row(
            "datagrams received in the first 20 s, all discoveries and clients",
            (real_settled.0 + real_settled.1) as f64,
            sim_settled as f64,
            "",
        ),
        row(
            "of which by the discoveries",
            real_settled.0 as f64,
            sim_settled_disc as f64,
            "",
        ),
        row(
            "of which by the clients",
            real_settled.1 as f64,
            (sim_settled - sim_settled_disc) as f64,
            "",
        ),
        row(
            "steady state: datagrams received per second, all hosts",
            real_steady as f64 / steady_secs,
            sim_steady as f64 / STEADY.as_secs_f64(),
            "",
        ),
        match real_join {
            Some(real) => row(
                "one join: every other client knows the new user, from its announcement on the wire",
                real.as_secs_f64() * 1e3,
                sim_join.as_secs_f64() * 1e3,
                "ms",
            ),
            None => format!(
                "| one join: every other client knows the new user, from its client's start | (no capture: tcpdump is not installed) | {:.2} ms | |",
                (sim_announced + sim_join).as_secs_f64() * 1e3
            ),
        },
    ];
    eprintln!(
        "join from the spawn of the newcomer's process: {:.2} ms",
        real_join_spawn.as_secs_f64() * 1e3
    );
    // The simulator has no CPUs; this machine's few cores serve the discovery, the client and
    // the waiting thread of every host in turn, and a join wakes each of them once.
    let join_why = real_join.map_or(String::new(), |j| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!(
            "\n\nThe join cannot agree here: the simulator has no CPUs, and on this machine {HOSTS} discoveries, {HOSTS} clients and the bench's {HOSTS} waiting threads share {cores} cores. One join wakes each of them once, in series: {:.0} µs per wake-up. On {HOSTS} real hosts they would run side by side.",
            j.as_secs_f64() * 1e6 / (3 * HOSTS) as f64 * cores as f64
        )
    });
    let wire_row = match on_wire {
        Some((cast, uni)) => format!(
            "\n{}\n{}\n\nOn the wire (tcpdump on the bridge, from the first start to 20 s): {cast} broadcasts and {uni} unicasts.",
            row(
                "datagrams on the wire in the first 20 s (a broadcast once)",
                (cast + uni) as f64,
                sim_wire as f64,
                "",
            ),
            row("of which broadcasts", cast as f64, sim_wire_cast as f64, "",)
        ),
        None => String::new(),
    };
    let body = format!(
        "## Scale: reality check\n\nGenerated by `cargo bench -p slcp --bench scale_real` (root): {HOSTS} network-namespace hosts on one bridge, real `slcp discovery` and `slcp client` processes with the default timing (heartbeat 10 s, expiry 35 s), one user per host, started within the first second ({:.2} s to the last start, the moments kept) and then the simulator with the same start moments. Datagrams are the discoveries' and clients' own counters of what they received (the simulator's: every delivery to a running node); clients' knowledge is polled over IPC (`STATUS --json`) in the cold start, and for the join each client's join event is awaited, timed from the newcomer's announcement on the wire (the first broadcast of its discovery, from the capture's clock), since a process start-up is no part of discovery. The simulator's wire has the bridge's delay, measured before the run with ping ({latency:?} one-way plus up to {jitter:?}).\n\n| measure | real | simulator | real against simulator |\n|---|---|---|---|\n{}\n\n",
        last_start.as_secs_f64(),
        rows.join("\n") + &wire_row + &join_why
    );
    eprintln!("{body}");
    support::bench::write_section("scale-real", &body);
}
