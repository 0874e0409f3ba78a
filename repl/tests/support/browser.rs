//! A real browser for the web UI's tests and benches: Debian's chromium, headless, driven through
//! chromedriver with WebDriver (fantoccini), and `slcp web --no-open` started for a user.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use super::{Lan, free_port, line_within};

/// chromedriver, killed on drop.
pub struct Driver {
    child: Child,
    pub port: u16,
}

impl Drop for Driver {
    /// Kills chromedriver and every browser it started (its process group): a test that
    /// fails before closing its session leaves no chromium behind. The syscall, not kill(1):
    /// procps' kill takes only the first digit of `-KILL -12345` as the group, i.e. `kill(-1)`, which
    /// killed every process on the machine whenever chromedriver's pid began with a 1 (CI died
    /// mid-run, exit -1).
    fn drop(&mut self) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where chromium and chromedriver are (`.ci/run` installs Debian's packages).
pub fn have_chromium() -> bool {
    std::path::Path::new("/usr/bin/chromium").exists()
        && std::path::Path::new("/usr/bin/chromedriver").exists()
}

impl Driver {
    /// Starts chromedriver and waits for its "started successfully" line.
    pub fn start() -> Driver {
        assert!(
            have_chromium(),
            "the web UI tests need chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run does)"
        );
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if l.contains("started successfully") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("chromedriver did not start within 20 s");
        Driver { child, port }
    }

    /// A new headless browser session (its own empty profile), downloads into `downloads`.
    pub async fn session(&self, profile: &std::path::Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                // The closed network of the test machine: nothing in the background, no GPU.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1200,760",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

/// `slcp web --no-open` for `handle`, killed on drop; `url` is the address it printed.
pub struct Web {
    child: Child,
    pub url: String,
    pub started: Instant,
    pub ready: Duration,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Web {
    pub fn start(lan: &Lan, handle: &str) -> Web {
        let cfg = lan.user(handle).config.clone();
        let log = std::fs::File::create(lan.home().join(format!("web-{handle}.log"))).unwrap();
        let started = Instant::now();
        let mut child = lan
            .cmd()
            .args(["web", "--no-open", "--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let line = line_within(child.stdout.take().unwrap(), Duration::from_secs(20))
            .expect("slcp web printed no address");
        let ready = started.elapsed();
        let url = line
            .trim()
            .strip_prefix("slcp web: ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Web {
            child,
            url,
            started,
            ready,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        self.url.split("/?").next().unwrap().to_string()
    }

    pub fn port(&self) -> u16 {
        self.origin().rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// Waits until the JavaScript expression `cond` is true in the page, re-checking whenever the
/// page's DOM changes (a MutationObserver), for `t` at most; returns false on timeout.
pub async fn until(c: &Client, cond: &str, t: Duration) -> bool {
    let script = format!(
        r#"const done = arguments[arguments.length - 1];
        const ok = () => {{ try {{ return !!({cond}); }} catch (e) {{ return false; }} }};
        if (ok()) return done(true);
        const mo = new MutationObserver(() => {{ if (ok()) {{ mo.disconnect(); clearTimeout(tm); done(true); }} }});
        mo.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
        const tm = setTimeout(() => {{ mo.disconnect(); done(ok()); }}, {});"#,
        t.as_millis()
    );
    c.update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
        None,
        None,
        Some(t + Duration::from_secs(5)),
    ))
    .await
    .unwrap();
    matches!(
        c.execute_async(&script, vec![]).await,
        Ok(Value::Bool(true))
    )
}

/// Runs `js` in the page and returns its value.
pub async fn js(c: &Client, js: &str) -> Value {
    c.execute(js, vec![])
        .await
        .unwrap_or_else(|e| panic!("{js}: {e}"))
}

/// Clicks the element `css` selects, as a user would; the lists of the page are redrawn when an
/// event comes, so an element found just before may be gone: it is found again (3 tries).
pub async fn click(c: &Client, css: &str) {
    let mut last = None;
    for _ in 0..3 {
        match c.find(fantoccini::Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(err) => last = Some(err),
            },
            Err(err) => last = Some(err),
        }
    }
    panic!("cannot click {css}: {last:?}");
}

/// `slcp web` for a user, a browser on its page, the page ready (10 s at most).
pub struct Page {
    pub c: Client,
    pub web: Web,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Page {
    pub async fn open(lan: &Lan, handle: &str) -> Page {
        let web = Web::start(lan, handle);
        let driver = Driver::start();
        let profile = tempfile::tempdir().unwrap();
        let c = driver.session(profile.path()).await;
        c.goto(&web.url).await.unwrap();
        assert!(
            until(
                &c,
                "document.body.dataset.ready === 'true'",
                Duration::from_secs(10)
            )
            .await,
            "the page did not get ready"
        );
        Page {
            c,
            web,
            _driver: driver,
            _profile: profile,
        }
    }
}
