//! The attacks of the trust issue as figures: `cargo bench --bench attack -- --before PATH`
//! replays each attack of `tests/support/attack.rs` against this build's release `slcp` and
//! against the binary at PATH (the one before the fixes), prints a table, and writes it into
//! BENCHMARKS.md between the `under-attack` markers (below the notes the e2e bench keeps).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::attack::*;
use support::bench::write_section;
use support::fake::{Dialect, Fake};
use support::*;

const S: Duration = Duration::from_secs(1);

fn kib(k: u64) -> String {
    format!("{:.1} MiB", k as f64 / 1024.0)
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// Every figure for one binary, in row order.
fn measure(bin: Option<&Path>) -> Vec<String> {
    let img = img_plugin();
    let extra = "transfer_timeout = 1";
    let mut out = Vec::new();

    let mut v = Victims::new(bin, &img, extra);
    let h = hijack(&mut v);
    out.push(yes(h.bob_clashed || !h.bob_status_joined));
    out.push(yes(h.msg_reached_attacker));
    out.push(
        h.discovery_lists
            .iter()
            .find(|l| l.starts_with("bob "))
            .cloned()
            .unwrap_or_else(|| "(not listed)".into()),
    );
    drop(v);

    let mut v = Victims::new(bin, &img, extra);
    let i = impersonate(&mut v);
    out.push(i.shown_as.unwrap_or_else(|| "(not shown)".into()));
    out.push(yes(i.away_believed));
    out.push(yes(i.image_saved));
    out.push(i.look_alikes_listed.len().to_string());
    drop(v);

    // Escapes in the piped output: raw control bytes that reached it.
    let mut lan = Lan::new("");
    lan.bin = bin.map_or(lan.bin.clone(), Path::to_path_buf);
    lan.legacy = bin.is_some();
    lan.start_discovery();
    lan.add_user("alice");
    lan.start_client("alice");
    let port = lan.user("alice").port;
    let eve = Fake::start(Dialect::plain("eve"), "eve", lan.whoisport, "alice", port);
    for p in INJECTIONS {
        eve.msg(p);
    }
    let cfg = lan.user("alice").config.clone();
    // Backlog is shown on attach; a WHO after gives the messages time to have arrived.
    let o = lan.run_script(
        &["repl", "--config", cfg.to_str().unwrap()],
        "WHO\n",
        10 * S,
    );
    let raw = o
        .stdout
        .iter()
        .filter(|b| matches!(b, 0x1b | 0x07 | b'\r'))
        .count();
    out.push(raw.to_string());
    drop(eve);
    drop(lan);

    let v = Victims::new(bin, &img, extra);
    let (w, j) = discovery_floods(&v);
    out.push(format!(
        "{} answers, {} bytes, {:.0} ms",
        w.answers,
        w.bytes_out,
        w.took.as_secs_f64() * 1e3
    ));
    out.push(j.users.to_string());
    out.push(format!("{} bytes ({}x)", j.bytes_out, j.bytes_out / 4));
    out.push(kib(w.rss_kib.max(j.rss_kib)));
    drop(v);

    let mut v = Victims::new(bin, &img, extra);
    let flood = img_lines_flood(v.to("bob"), 200, 100);
    let lat = msg_latencies(&mut v, 20, Duration::from_millis(100));
    let _ = flood.join();
    let p99 = lat[lat.len() - 1];
    out.push(if p99 >= 2 * S {
        "not delivered within 2 s".into()
    } else {
        format!("{:.1} ms", p99.as_secs_f64() * 1e3)
    });
    out.push(kib(rss_kib(v.pid("bob"))));
    drop(v);

    let mut v = Victims::new(bin, &img, extra);
    out.push(knowusers_flood(&mut v).to_string());
    out.push(format!("{} bytes", strangers_fill_disk(&v)));
    let (peak, parts, left) = slowloris(&v, 50, 3, 3 * S);
    out.push(format!("{peak} at the peak, {left} after, {parts} .part"));
    let (rss, open, left) = ipc_flood(&v, 1000, 5 * S);
    out.push(format!("{open} at the peak, {left} after, {}", kib(rss)));
    out
}

const ROWS: &[(&str, &str)] = &[
    (
        "hijack: bob pushed out of the chat by KNOWUSERS/LEAVE/JOIN from 127.0.0.2 (20/s, 1 s)",
        "no",
    ),
    ("hijack: alice's next `MSG bob` reached the attacker", "no"),
    ("hijack: the discovery lists bob at", "his address"),
    ("`MSG bob ...` from 127.0.0.2 shown as", "?bob@..."),
    ("`AWAY bob` from 127.0.0.2 believed", "no"),
    (
        "image announced and sent as bob's from 127.0.0.2 saved",
        "no",
    ),
    (
        "look-alike handles listed (bob+U+200B, Cyrillic о, U+202E, fullwidth ｏ)",
        "0",
    ),
    (
        "raw ESC/BEL/CR bytes in the piped output of 4 injected texts",
        "0",
    ),
    ("one 8 KB datagram of 2 000 WHO lines: answers to it", "1"),
    ("50 000 JOINs from one address: users kept", "≤ 66"),
    ("a 4-byte WHO after that: bytes answered", "bounded"),
    ("discovery RSS after these floods", "< 32 MiB"),
    (
        "MSG latency, slowest of 20 spread over 2 s of 100 000 `IMG x 1` lines/s",
        "< 50 ms",
    ),
    ("client RSS after that flood", "< 32 MiB"),
    (
        "10 000 unsolicited KNOWUSERS entries: peers alice lists",
        "1 (bob)",
    ),
    ("20 strangers x 1 MiB image: bytes written", "0"),
    (
        "50 image connections trickling 5 bytes/s: descriptors",
        "bounded, 0 after",
    ),
    (
        "1 000 IPC connections without the token: descriptors, RSS",
        "≤ 64, 0 after",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let before: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--before")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    eprintln!("after (this build: {BIN})");
    let after = measure(None);
    let before_figures = before.as_deref().map(|b| {
        eprintln!("before ({})", b.display());
        measure(Some(b))
    });
    let mut table = String::from("| attack | before | after | bound |\n|---|---|---|---|\n");
    for (i, (what, bound)) in ROWS.iter().enumerate() {
        let b = before_figures
            .as_ref()
            .map_or("—".to_string(), |f| f[i].clone());
        table.push_str(&format!("| {what} | {b} | {} | {bound} |\n", after[i]));
    }
    println!("{table}");
    write_section(
        "under-attack",
        &format!(
            "## Under attack\n\nGenerated by `cargo bench --bench attack -- --before <old slcp>` (release builds, loopback; the attacker binds 127.0.0.2, another local user's view of the same host). \"before\" is the binary before the trust fixes, \"after\" this build.\n\n{table}"
        ),
    );
}
