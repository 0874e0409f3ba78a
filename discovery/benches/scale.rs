//! Discovery at scale, in the simulator (`slcp_discovery::sim`): `cargo bench -p
//! slcp-discovery --bench scale` runs the scenarios for 10, 100 and 1 000 hosts of one user,
//! with no loss and with 1 % loss, prints the table and writes it into BENCHMARKS.md between the
//! `scale` markers. `SCALE_HOSTS=10,100` runs only those sizes, `SCALE_LOSS=0` only that loss.

use std::time::Duration;

use slcp_discovery::sim::{Config, Figures, figures};

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) if d < Duration::from_secs(10) => format!("{:.0} ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.1} s", d.as_secs_f64()),
        None => "never".into(),
    }
}

fn row(f: &Figures) -> String {
    format!(
        "| {} | {:.0} % | {} | {} | {:.2} | {:.1} | {} / {} | {} / {} | {} / {} | {:.0} s in {:.1} s |",
        f.hosts,
        f.loss * 100.0,
        ms(f.cold),
        f.cold_peak,
        f.steady_per_host,
        f.steady_lan,
        ms(f.join.0),
        f.join.1,
        ms(f.leave.0),
        f.leave.1,
        ms(f.crash.0),
        f.crash.1,
        f.simulated.as_secs_f64(),
        f.wall.as_secs_f64(),
    )
}

fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_HOSTS")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1000]);
    let mut rows = Vec::new();
    for &hosts in &sizes {
        let losses: Vec<f64> = std::env::var("SCALE_LOSS")
            .ok()
            .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![0.0, 0.01]);
        for &loss in &losses {
            let cfg = Config {
                hosts,
                loss,
                ..Config::default()
            };
            let f = figures(cfg, Duration::from_secs(30), Duration::from_secs(120));
            let r = row(&f);
            eprintln!("{r}");
            rows.push(r);
        }
    }
    let table = format!(
        "| hosts | loss | cold start: all know all | cold start: peak datagrams/s into one host | steady: datagrams/s into each host | steady: datagrams/s on the LAN | join: all know / datagrams | leave: all know / datagrams | crash: all know / datagrams | simulated in (wall) |\n|---|---|---|---|---|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    println!("\n{table}");
}
