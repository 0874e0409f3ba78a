//! The web UI's speed: `cargo bench --bench web` times, with release builds and a real headless
//! chromium, (1) `slcp web --no-open` until a page is served, with the client running and from
//! cold (discovery and client started by it), and (2) a message from the moment bob's prompt
//! sends it until its row is in the page's DOM at alice's browser, p50/p99; beside (2), the same
//! message's path to a plain IPC reader (a REPL) in the same run. Writes BENCHMARKS.md between
//! the `web` markers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slcp_core::ipc::Event;
use support::bench::write_section;
use support::browser::{Page, Web, click, js, until};
use support::*;

const S: Duration = Duration::from_secs(1);
const STARTS: usize = 10;
const MESSAGES: usize = 300;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn now_us() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as f64
        / 1e3
}

/// From spawn to the page's HTML: the ready line, the token exchange and the page itself.
fn served(lan: &Lan, handle: &str) -> Duration {
    let web = Web::start(lan, handle);
    let port = web.port();
    let token = web.url.split("token=").nth(1).unwrap().to_string();
    let get = |path: &str, extra: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra}\r\n"
        )
        .unwrap();
        let mut b = String::new();
        s.read_to_string(&mut b).unwrap();
        b
    };
    assert!(get(&format!("/?token={token}"), "").starts_with("HTTP/1.1 303"));
    let page = get("/", &format!("Cookie: slcp_{port}={token}\r\n"));
    let t = web.started.elapsed();
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("app.js"));
    t
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut lan = Lan::new("");
    lan.start_discovery();
    for u in ["alice", "bob"] {
        lan.add_user(u);
    }
    // A new user for each cold start: nothing of theirs runs yet.
    for i in 0..STARTS {
        lan.add_user(&format!("cold{i}"));
    }
    lan.start_client("alice");
    lan.start_client("bob");

    let mut warm: Vec<f64> = (0..STARTS)
        .map(|_| served(&lan, "alice").as_secs_f64() * 1e3)
        .collect();
    // From cold: the launcher starts the user's client (and finds the discovery running).
    let mut cold = Vec::new();
    for i in 0..STARTS {
        let u = format!("cold{i}");
        cold.push(served(&lan, &u).as_secs_f64() * 1e3);
        let pid = lan.runtime(&u).pid;
        lan.detached.push(pid);
    }

    let (mut bob, mut alice) = lan.pair("bob", "alice");
    // Keeps slcp web, the driver and the profile until the end.
    let page = Page::open(&lan, "alice").await;
    let c = page.c.clone();
    bob.cmd("MSG alice warm").unwrap();
    assert!(
        until(
            &c,
            "document.querySelector('#convs [data-conv=bob]')",
            5 * S
        )
        .await
    );
    click(&c, "#convs [data-conv=bob]").await;
    js(
        &c,
        "window.__seen = {};
         new MutationObserver(ms => { const t = performance.timeOrigin + performance.now();
           for (const m of ms) for (const n of m.addedNodes) {
             const x = n.textContent && n.textContent.match(/lat-(\\d+)/);
             if (x && !(x[1] in window.__seen)) window.__seen[x[1]] = t * 1000; } })
           .observe(document.getElementById('log'), { subtree: true, childList: true });",
    )
    .await;
    let mut sent = Vec::new();
    let mut repl = Vec::new();
    for i in 0..MESSAGES {
        let t = now_us();
        bob.c.send(&format!("MSG alice lat-{i}")).unwrap();
        sent.push(t);
        let want = format!("lat-{i}");
        alice
            .wait_event(
                5 * S,
                |e| matches!(e, Event::Message { text, .. } if *text == want),
            )
            .expect("alice's prompt did not get it");
        repl.push(now_us() - t);
        // One at a time: each message meets a quiet page.
        assert!(
            until(&c, &format!("'{i}' in window.__seen"), 5 * S).await,
            "lat-{i} never reached the page"
        );
    }
    let seen = js(&c, "return window.__seen").await;
    let mut dom: Vec<f64> = (0..MESSAGES)
        .map(|i| seen[i.to_string()].as_f64().unwrap() - sent[i])
        .collect();
    c.close().await.unwrap();

    let (w50, w99) = (pct(&mut warm, 0.5), pct(&mut warm, 0.99));
    let (c50, c99) = (pct(&mut cold, 0.5), pct(&mut cold, 0.99));
    let (d50, d99) = (pct(&mut dom, 0.5), pct(&mut dom, 0.99));
    let (r50, r99) = (pct(&mut repl, 0.5), pct(&mut repl, 0.99));
    let table = format!(
        "| measure | p50 | p99 |\n|---|---|---|\n\
         | `slcp web --no-open` → page served, client running ({STARTS} starts) | {w50:.0} ms | {w99:.0} ms |\n\
         | `slcp web --no-open` → page served, client started by it ({STARTS} starts) | {c50:.0} ms | {c99:.0} ms |\n\
         | MSG sent by bob's prompt → its row in alice's page DOM ({MESSAGES} messages) | {d50:.0} µs | {d99:.0} µs |\n\
         | the same MSG → alice's IPC reader (a REPL), same run, baseline | {r50:.0} µs | {r99:.0} µs |\n\
         | ratio page / REPL | {:.1}x | {:.1}x |\n",
        d50 / r50,
        d99 / r99
    );
    println!("\n{table}");
    write_section(
        "web",
        &format!(
            "## The web UI\n\nGenerated by `cargo bench --bench web` (release builds, loopback, Debian's chromium headless through chromedriver). A page counts as served when the token exchange (303 and cookie) and the page's HTML have come back. A message's time runs from bob's prompt sending `MSG alice ...` over IPC to a MutationObserver in alice's page seeing the row (both clocks are this machine's); one message at a time, the conversation open.\n\n{table}"
        ),
    );
}
