//! `slcp web` end to end: a real headless chromium driven over WebDriver talks to bob at his
//! IPC (as a REPL would): messages both ways, an image and a file both ways, a hostile message
//! shown as text, a browser notification while the page is hidden, away, search and history. And
//! without a browser: every request that is not from its user's page is refused.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use slcp_core::ipc::Event;
use support::browser::{Page, Web, click, js, until};
use support::*;

const S: Duration = Duration::from_secs(1);
/// A 1x1 PNG image.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// alice (web) and bob (IPC), with the img and autoreply plugins, both started.
fn lan() -> Lan {
    let mut lan = Lan::new("");
    let img = workspace_plugin("img");
    let auto = workspace_plugin("autoreply");
    lan.with_plugins(&[
        (&img, "libslcp_plugin_img.so"),
        (&auto, "libslcp_plugin_autoreply.so"),
    ]);
    lan.start_all(&["alice", "bob"]);
    lan
}

/// One raw HTTP/1.1 request; returns the status code and the whole answer.
fn http(port: u16, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(5 * S)).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

#[test]
fn only_its_users_page_gets_in() {
    let lan = lan();
    let web = Web::start(&lan, "alice");
    let port = web.port();
    let host = format!("127.0.0.1:{port}");
    let token = web.url.split("token=").nth(1).unwrap().to_string();
    let get = |path: &str, headers: &str| {
        http(
            port,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"),
        )
    };

    let (code, body) = get("/", "");
    assert_eq!(code, 401, "no token: {body}");
    assert!(body.contains("refused: no token"), "{body}");
    let (code, _) = get("/?token=0123", "");
    assert_eq!(code, 401, "a wrong token");
    let (code, body) = get(&format!("/?token={token}"), "");
    assert_eq!(code, 303, "{body}");
    let cookie = format!("slcp_{port}={token}");
    assert!(
        body.contains(&format!(
            "set-cookie: {cookie}; Path=/; HttpOnly; SameSite=Strict"
        )),
        "{body}"
    );
    assert!(body.contains("location: /\r\n"), "{body}");

    let with = format!("Cookie: {cookie}\r\n");
    let (code, page) = get("/", &with);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{page}"
    );
    assert!(page.contains("x-content-type-options: nosniff"), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");

    // DNS rebinding: the right cookie and a name that resolves here, but another Host.
    let (code, body) = http(
        port,
        &format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n{with}\r\n"),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Host header"), "{body}");
    // Another site posting a command with the user's cookie.
    let cmd = r#"{"line":"MSG bob from another site"}"#;
    let post = |origin: &str| {
        http(
            port,
            &format!(
                "POST /api/cmd HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{with}{origin}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{cmd}",
                cmd.len()
            ),
        )
    };
    let (code, body) = post("Origin: http://evil.example\r\n");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("another site"), "{body}");
    let (code, _) = post("");
    assert_eq!(code, 403, "a POST without Origin");
    // The live channel from another site.
    let (code, _) = get(
        "/ws",
        &format!(
            "{with}Origin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        ),
    );
    assert_eq!(code, 403);
    // Only received images and files are served, not the user's other files.
    let (code, body) = get("/media?path=/etc/passwd", &with);
    assert_eq!(code, 403, "{body}");
    let secret = lan.home().join("alice.toml");
    let (code, _) = get(&format!("/media?path={}", secret.display()), &with);
    assert_eq!(code, 403);
    // And from the page's own origin, with the cookie, a command runs.
    let (code, body) = post(&format!("Origin: http://{host}\r\n"));
    assert_eq!(code, 200, "{body}");
    let mut bob = lan.ipc("bob");
    bob.expect_event(
        5 * S,
        Event::Message {
            from: "alice".into(),
            text: "from another site".into(),
        },
    );
}

/// The text of every drawn message row.
async fn rows(c: &fantoccini::Client) -> Vec<String> {
    let v = js(
        c,
        "return [...document.querySelectorAll('#log .msg')].map(m => m.textContent)",
    )
    .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap_or_default().to_string())
        .collect()
}

fn sha(p: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(p).unwrap()).to_vec()
}

#[tokio::test(flavor = "current_thread")]
async fn a_browser_user_and_a_prompt_user_chat() {
    let lan = lan();
    let (mut bob, _) = lan.pair("bob", "alice");
    // Keeps slcp web, the driver and the profile until the end of the test.
    let page = Page::open(&lan, "alice").await;
    let (c, web) = (page.c.clone(), &page.web);
    // The token left the address bar at once.
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{}/", web.origin())
    );
    assert!(
        until(
            &c,
            "document.querySelector('#people [data-handle=bob]')",
            5 * S
        )
        .await,
        "bob is not listed"
    );

    // Every control has a name a screen reader reads, and can be reached with Tab.
    let unnamed = js(
        &c,
        "return [...document.querySelectorAll('button, input, a[href], [tabindex]')]
           .filter(e => !e.closest('[hidden]') && e.type !== 'file')
           .filter(e => !((e.getAttribute('aria-label') || '').trim()
             || [...(e.labels || [])].some(l => l.textContent.trim())
             || (e.textContent || '').trim() || e.title || e.placeholder))
           .map(e => e.outerHTML)",
    )
    .await;
    assert_eq!(unnamed, serde_json::json!([]), "controls without a name");
    assert_eq!(
        js(&c, "return [...document.querySelectorAll('button, input')].filter(e => e.tabIndex < 0 && e.type !== 'file').length").await,
        0
    );

    // A hostile message, from bob's prompt (a piped `slcp`), is shown as its characters.
    let evil = "<img src=x onerror=alert(1)> hi";
    let bob_cfg = lan.user("bob").config.clone();
    let out = lan.run_script(
        &["--config", bob_cfg.to_str().unwrap()],
        &format!("MSG alice {evil}\n"),
        10 * S,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        until(
            &c,
            "document.querySelector('#convs [data-conv=bob] .badge')",
            5 * S
        )
        .await,
        "no unread count for bob"
    );
    click(&c, "#convs [data-conv=bob]").await;
    assert!(
        until(
            &c,
            "document.querySelectorAll('#log .msg').length >= 1",
            5 * S
        )
        .await
    );
    let r = rows(&c).await;
    assert!(
        r.iter().any(|x| x.ends_with(&format!("bob:{evil}"))),
        "{r:?}"
    );
    assert_eq!(
        js(&c, "return document.querySelectorAll('#log img').length").await,
        0
    );
    assert!(c.get_alert_text().await.is_err(), "an alert ran");

    // alice types; bob gets it, then an action.
    let text = c.find(fantoccini::Locator::Id("text")).await.unwrap();
    text.send_keys("hello bob\u{e007}").await.unwrap();
    bob.expect_event(
        5 * S,
        Event::Message {
            from: "alice".into(),
            text: "hello bob".into(),
        },
    );
    text.send_keys("/me waves\u{e007}").await.unwrap();
    bob.expect_event(
        5 * S,
        Event::Message {
            from: "alice".into(),
            text: "* alice waves".into(),
        },
    );
    assert!(until(&c, "[...document.querySelectorAll('#log .msg.action')].some(m => m.textContent.includes('* alice waves'))", 5 * S).await);

    // bob sends an image and a file: a thumbnail that loads, and a download link that works.
    let files = lan.home().join("files");
    std::fs::create_dir_all(&files).unwrap();
    // The picture: what the page looks like now (a real PNG of 1200 pixels' width).
    let png = files.join("screen.png");
    std::fs::write(&png, c.screenshot().await.unwrap()).unwrap();
    bob.cmd(&format!("IMG alice {}", png.display())).unwrap();
    assert!(
        until(&c, "[...document.querySelectorAll('#log .thumb img')].some(i => i.complete && i.naturalWidth === 1200)", 10 * S).await,
        "the image is not shown"
    );
    // A click shows it at full size.
    click(&c, "#log .thumb").await;
    assert_eq!(
        js(&c, "return document.getElementById('viewer').open").await,
        true
    );
    js(&c, "document.getElementById('viewer').close()").await;
    let dot = files.join("dot.png");
    std::fs::write(&dot, PNG).unwrap();
    let doc = make_file(&files, "report.pdf", b"%PDF-", 300_000);
    bob.cmd(&format!("FILE alice {}", doc.display())).unwrap();
    assert!(until(&c, "document.querySelector('#log a[download]')", 10 * S).await);
    let size = c
        .execute_async(
            "const done = arguments[0]; fetch(document.querySelector('#log a[download]').href).then(r => r.arrayBuffer()).then(b => done(b.byteLength), e => done(String(e)))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(size, 300_000);

    // alice sends an image and a file from the page: bob gets the same bytes.
    for (src, is_img) in [(&dot, true), (&doc, false)] {
        let input = c.find(fantoccini::Locator::Id("file")).await.unwrap();
        input.send_keys(src.to_str().unwrap()).await.unwrap();
        let got = bob
            .wait_event(10 * S, |e| match e {
                Event::Image { .. } => is_img,
                Event::File { .. } => !is_img,
                _ => false,
            })
            .unwrap_or_else(|| panic!("bob did not get {}", src.display()));
        let (Event::Image { path, .. } | Event::File { path, .. }) = got else {
            unreachable!()
        };
        if !is_img {
            assert!(path.ends_with("/report.pdf"), "{path}");
        }
        assert_eq!(sha(Path::new(&path)), sha(src));
    }

    // Hidden tab: the next message asks for a browser notification.
    js(
        &c,
        "window.__notes = [];
         window.Notification = class { constructor(t, o) { window.__notes.push([t, o.body]); } };
         window.Notification.permission = 'granted';
         Object.defineProperty(document, 'visibilityState', { get: () => 'hidden', configurable: true });
         Object.defineProperty(document, 'hidden', { get: () => true, configurable: true });",
    )
    .await;
    bob.cmd("MSG alice are you there?").unwrap();
    assert!(
        until(&c, "window.__notes.length === 1", 5 * S).await,
        "no notification"
    );
    assert_eq!(
        js(&c, "return window.__notes[0]").await,
        serde_json::json!(["bob", "are you there?"])
    );

    // Away, seen by bob; then search and history after a reload.
    click(&c, "#away").await;
    bob.expect_event(
        5 * S,
        Event::Away {
            handle: "alice".into(),
        },
    );
    c.refresh().await.unwrap();
    assert!(until(&c, "document.body.dataset.ready === 'true'", 10 * S).await);
    assert_eq!(
        js(&c, "return document.getElementById('away').checked").await,
        true
    );
    click(&c, "#convs [data-conv=bob]").await;
    assert!(
        until(&c, "[...document.querySelectorAll('#log .msg')].some(m => m.textContent.includes('hello bob'))", 5 * S).await,
        "the history did not come back: {:?}",
        rows(&c).await
    );
    let search = c
        .find(fantoccini::Locator::Id("search-words"))
        .await
        .unwrap();
    search.send_keys("there\u{e007}").await.unwrap();
    assert!(
        until(&c, "[...document.querySelectorAll('#results-list button')].some(b => b.textContent.includes('are you there?'))", 5 * S).await
    );
    // A message to everyone lands in the Everyone conversation, with the sender's name.
    bob.cmd("ALL lunch at noon?").unwrap();
    assert!(
        until(
            &c,
            "document.querySelector('#convs [data-conv=\"*\"] .badge')",
            5 * S
        )
        .await,
        "no unread count on Everyone"
    );
    click(&c, "#convs [data-conv=\"*\"]").await;
    assert!(until(&c, "[...document.querySelectorAll('#log .msg')].some(m => m.textContent.endsWith('bob:lunch at noon?'))", 5 * S).await);
    click(&c, "#convs [data-conv=bob]").await;
    let shot = c.screenshot().await.unwrap();
    std::fs::write(lan.home().join("web.png"), &shot).unwrap();
    if let Ok(p) = std::env::var("SLCP_WEB_SCREENSHOT") {
        std::fs::write(p, &shot).unwrap();
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_messages_open_and_scroll_with_few_nodes() {
    let mut lan = Lan::new("");
    lan.start_discovery();
    lan.add_user("alice");
    // carol's 10 000 messages, in alice's real database before her client starts.
    let db = lan.home().join("data/slcp/history/alice.sqlite3");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let mut store = slcp_core::history::Store::open(&db).unwrap();
    let t0 = 1_700_000_000_000i64;
    let texts: Vec<String> = (0..10_000)
        .map(|i| {
            // Some long ones, so that rows have different heights.
            let long = if i % 7 == 0 {
                " and more words".repeat(30)
            } else {
                String::new()
            };
            format!("m{i:05} from carol{long}")
        })
        .collect();
    store
        .add_many(texts.iter().enumerate().map(|(i, t)| {
            (
                t0 + i as i64 * 1000,
                "carol",
                slcp_core::history::Dir::In,
                t.as_str(),
            )
        }))
        .unwrap();
    drop(store);
    lan.start_client("alice");
    // Keeps slcp web, the driver and the profile until the end.
    let page = Page::open(&lan, "alice").await;
    let c = page.c.clone();
    assert!(
        until(
            &c,
            "document.querySelector('#convs [data-conv=carol]')",
            10 * S
        )
        .await
    );
    click(&c, "#convs [data-conv=carol]").await;
    assert!(
        until(&c, "[...document.querySelectorAll('#log .msg')].some(m => m.textContent.includes('m09999'))", 10 * S).await,
        "the newest message is not in view"
    );
    // Scroll to the top again and again, as a reader would, until the first message shows;
    // count the rows drawn on the way.
    c.update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
        None,
        None,
        Some(60 * S),
    ))
    .await
    .unwrap();
    let r = c
        .execute_async(
            "const done = arguments[0]; const log = document.getElementById('log');
             let most = 0, frames = 0;
             const step = () => {
               const rows = log.querySelectorAll('.msg');
               most = Math.max(most, rows.length);
               if (rows.length && rows[0].textContent.includes('m00000')) return done({ most, frames });
               if (++frames > 5000) return done({ most, frames, stuck: rows[0] && rows[0].textContent });
               log.scrollTop = 0;
               requestAnimationFrame(step);
             };
             step();",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        r.get("stuck").is_none(),
        "never reached the first message: {r}"
    );
    let most = r["most"].as_u64().unwrap();
    assert!(most < 120, "{most} rows drawn at once for 10 000 messages");
    let first = rows(&c).await;
    assert!(
        first[0].contains("m00000") && first[1].contains("m00001"),
        "{first:?}"
    );
    c.close().await.unwrap();
}
