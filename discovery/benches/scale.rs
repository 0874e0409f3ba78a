//! Discovery at scale, in the simulator (`slcp_discovery::sim`): `cargo bench -p
//! slcp-discovery --bench scale` runs the scenarios for LANs of one user per host, with no loss
//! and with 1 % loss, for the design before the relay ("today": every client broadcasts JOIN and
//! WHO every heartbeat) and the bounded one. Each result is kept in `target/scale/`, so a slow
//! run (today's design at 1 000 hosts simulates about 40 million datagrams a heartbeat) can be
//! made once, alone: `SCALE_DESIGN=today SCALE_HOSTS=1000 SCALE_LOSS=0`. Then the tables of every
//! result kept go into BENCHMARKS.md between the `scale` markers, and the plot of datagrams per
//! host per second against the number of hosts into `discovery/scale.svg`.
//!
//! Defaults: the bounded design at 10, 100, 200, 500 and 1 000 hosts, today's at 10 and 100,
//! and the simulator's speed (`SCALE_DESIGN=speed`: 1 000 hosts for 10 simulated minutes).
//! `SCALE_HOSTS=none` runs nothing and only writes the tables and the plot again.

use std::path::PathBuf;
use std::time::Duration;

use plotters::prelude::*;
use serde_json::{Value, json};
use slcp_discovery::sim::{Config, Figures, HOSTS_OFF, REFRESH_RATE, Sim, figures};

/// The first simulated seconds of the speed run, timed apart (the cold start).
const COLD_PART: Duration = Duration::from_secs(30);

/// Simulates `hosts` hosts (one user each, bounded design) for `span` from a cold start: how
/// long the simulator takes.
fn speed(hosts: usize, span: Duration) -> Value {
    let wall = std::time::Instant::now();
    let mut s = Sim::new(Config {
        hosts,
        ..Config::default()
    });
    for h in 0..hosts {
        let at = s.rng().upto(Duration::from_secs(1));
        s.start_client(h, 0, at);
    }
    // The cold start and the steady state cost differently; the split says where time goes.
    s.run_to(COLD_PART);
    let cold = wall.elapsed();
    let cold_received = s.metrics.datagrams_received;
    s.run_to(span);
    let took = wall.elapsed();
    json!({
        "design": "speed", "hosts": hosts, "simulated": span.as_secs_f64(),
        "wall": took.as_secs_f64(), "received": s.metrics.datagrams_received,
        "cold_wall": cold.as_secs_f64(), "cold_received": cold_received,
    })
}

fn ms(d: Option<f64>) -> String {
    match d {
        Some(s) if s < 10.0 => format!("{:.0} ms", s * 1e3),
        Some(s) => format!("{s:.1} s"),
        None => "never".into(),
    }
}

fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

fn record(design: &str, f: &Figures) -> Value {
    json!({
        "design": design, "hosts": f.hosts, "loss": f.loss,
        "cold": secs(f.cold), "cold_peak": f.cold_peak,
        "steady_per_host": f.steady_per_host, "steady_unicast": f.steady_unicast,
        "steady_lan": f.steady_lan,
        "join": secs(f.join.0), "join_dgrams": f.join.1,
        "leave": secs(f.leave.0), "leave_dgrams": f.leave.1,
        "kill": secs(f.kill.0), "kill_dgrams": f.kill.1,
        "crash": secs(f.crash.0), "crash_dgrams": f.crash.1,
        "crash_median": secs(f.crash_median),
        "simulated": f.simulated.as_secs_f64(), "wall": f.wall.as_secs_f64(),
    })
}

fn row(v: &Value) -> String {
    let t = |k: &str| ms(v[k].as_f64());
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    format!(
        "| {} | {:.0} % | {} | {} | {:.2} | {:.3} | {:.1} | {} / {} | {} / {} | {} / {} | {} / {} / {} | {:.0} s in {:.1} s |",
        v["hosts"],
        v["loss"].as_f64().unwrap_or(0.0) * 100.0,
        t("cold"),
        v["cold_peak"],
        v["steady_per_host"].as_f64().unwrap_or(0.0),
        v["steady_unicast"].as_f64().unwrap_or(0.0),
        v["steady_lan"].as_f64().unwrap_or(0.0),
        t("join"),
        n("join_dgrams"),
        t("leave"),
        n("leave_dgrams"),
        t("kill"),
        n("kill_dgrams"),
        t("crash_median"),
        t("crash"),
        n("crash_dgrams"),
        v["simulated"].as_f64().unwrap_or(0.0),
        v["wall"].as_f64().unwrap_or(0.0),
    )
}

fn list(var: &str, default: &[f64]) -> Vec<f64> {
    std::env::var(var)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let store = root.join("target/scale");
    std::fs::create_dir_all(&store).unwrap();
    let designs: Vec<String> = std::env::var("SCALE_DESIGN")
        .map(|d| d.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|_| vec!["bounded".into(), "today".into(), "speed".into()]);
    for design in &designs {
        if design == "speed" {
            for hosts in list("SCALE_HOSTS", &[1000.0]) {
                let v = speed(hosts as usize, Duration::from_secs(600));
                eprintln!("speed: {v}");
                let name = format!("speed-{hosts}.json");
                std::fs::write(store.join(name), v.to_string()).unwrap();
            }
            continue;
        }
        let default: &[f64] = if design == "today" {
            &[10.0, 100.0]
        } else {
            &[10.0, 100.0, 200.0, 500.0, 1000.0]
        };
        for hosts in list("SCALE_HOSTS", default) {
            for loss in list("SCALE_LOSS", &[0.0, 0.01]) {
                let cfg = Config {
                    hosts: hosts as usize,
                    loss,
                    relay: design != "today",
                    ..Config::default()
                };
                let f = figures(cfg, Duration::from_secs(30), Duration::from_secs(240));
                let v = record(design, &f);
                eprintln!("{design}: {}", row(&v));
                let name = format!("{design}-{}-{}.json", f.hosts, (loss * 1000.0) as u32);
                std::fs::write(store.join(name), v.to_string()).unwrap();
            }
        }
    }
    let mut all: Vec<Value> = std::fs::read_dir(&store)
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    all.sort_by_key(|v| {
        (
            v["design"].as_str().unwrap_or("").to_owned(),
            v["hosts"].as_u64().unwrap_or(0),
            (v["loss"].as_f64().unwrap_or(0.0) * 1000.0) as u64,
        )
    });
    let head = format!(
        "| hosts | loss | cold start: all know all | cold start: peak datagrams/s into one host | steady: datagrams/s into each host | of which unicast | steady: datagrams/s on the LAN | join: all know / datagrams | leave: all know / datagrams | client killed: all know / datagrams | host off: all know, median / worst of {HOSTS_OFF} / datagrams | simulated (wall) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    let table = |d: &str| {
        let rows: Vec<String> = all.iter().filter(|v| v["design"] == d).map(row).collect();
        format!("{head}{}\n", rows.join("\n"))
    };
    let (today, bounded) = (table("today"), table("bounded"));
    let speeds: Vec<String> = all
        .iter()
        .filter(|v| v["design"] == "speed")
        .map(|v| {
            format!(
                "{} hosts x 1 user, {:.0} simulated minutes (a cold start, then the steady state): {:.1} s of wall time",
                v["hosts"],
                v["simulated"].as_f64().unwrap_or(0.0) / 60.0,
                v["wall"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let speeds = if speeds.is_empty() {
        String::new()
    } else {
        format!(
            "Simulator speed (bounded design, one core of this 2-core machine): {}.\n\n",
            speeds.join("; ")
        )
    };
    println!("\ntoday\n{today}\nbounded\n{bounded}");
    plot(&all, &root.join("discovery/scale.svg"));
    let md = root.join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&md).unwrap_or_default();
    let section = format!(
        "<!-- scale -->\n## Scale\n\nGenerated by `cargo bench -p slcp-discovery --bench scale`: the deterministic LAN simulator (`slcp_discovery::sim`, seed 1) runs the real `Chat` and discovery `Table` of every host, one user per host, 150 µs latency plus up to 100 µs jitter, loss per delivery as given. Cold start: every client starts within the first second. Steady: once the cold start is over (20 s, or the hosts / 15 seconds over which each client spreads its hellos, plus 10 s, if longer), for 30 s or two refresh intervals (users / {REFRESH_RATE} per second) if longer. Join, leave, kill (the client dies, its host answers with ICMP) and host off (no ICMP): the time until every other client knows, and the datagrams put on the LAN in the seconds it took beyond the same seconds one heartbeat earlier (negative: the LAN got quieter). Host off is {HOSTS_OFF} hosts switched off one after the other, each at a random moment of one refresh interval (how long it goes unnoticed depends on where in its interval it went); the datagrams are the first one's. Broadcasts count once on the wire and once per receiving host.\n\n{speeds}![datagrams received per host per second against the number of hosts](discovery/scale.svg)\n\n### Today (every client broadcasts JOIN and WHO every heartbeat; every discovery answers every WHO)\n\n{today}\n### Bounded (discoveries speak for their hosts: README \"Discovery at scale\")\n\n{bounded}<!-- /scale -->\n"
    );
    let new = match (text.find("<!-- scale -->"), text.find("<!-- /scale -->")) {
        (Some(x), Some(y)) => format!(
            "{}{section}{}",
            &text[..x],
            &text[y + "<!-- /scale -->\n".len()..]
        ),
        _ => format!("{text}\n{section}"),
    };
    std::fs::write(&md, new).unwrap();
    eprintln!("wrote {}", md.display());
}

/// Steady datagrams received per host per second against hosts, log-log, both designs (no
/// loss).
fn plot(all: &[Value], path: &std::path::Path) {
    let series = |d: &str| -> Vec<(f64, f64)> {
        all.iter()
            .filter(|v| v["design"] == d && v["loss"].as_f64() == Some(0.0))
            .map(|v| {
                (
                    v["hosts"].as_f64().unwrap_or(1.0),
                    v["steady_per_host"].as_f64().unwrap_or(0.0).max(0.01),
                )
            })
            .collect()
    };
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "slcp discovery: datagrams into each host per second, steady state",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            (5f64..2000f64).log_scale(),
            (0.1f64..100_000f64).log_scale(),
        )
        .unwrap();
    chart
        .configure_mesh()
        .x_desc("hosts (one user each)")
        .y_desc("datagrams / s / host")
        .draw()
        .unwrap();
    for (d, color, label) in [
        ("today", RED, "every client: JOIN + WHO each heartbeat"),
        ("bounded", BLUE, "discoveries speak for their hosts"),
    ] {
        let s = series(d);
        chart
            .draw_series(LineSeries::new(s.clone(), color.stroke_width(2)))
            .unwrap()
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(s.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .unwrap();
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .unwrap();
    root.present().unwrap();
}
