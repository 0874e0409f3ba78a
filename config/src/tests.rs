//! Tests of config layering, validation and the one-line errors, with real files on disk.

use super::*;

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let p = dir.path().join("config.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn load_file(text: &str) -> Result<Loaded, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, text);
    Config::load(
        &Overrides {
            file: Some(p),
            flags: vec![],
        },
        Vec::new(),
    )
}

fn err_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(&dir, text);
    let e = Config::load(
        &Overrides {
            file: Some(p.clone()),
            flags: vec![],
        },
        Vec::new(),
    )
    .unwrap_err()
    .to_string();
    e.replace(&p.display().to_string(), "config.toml")
}

#[test]
fn every_key_parses_from_a_file() {
    let l = load_file(
        r#"
handle = "jörg"
port = [6000, 6010]
whoisport = 4100
autoreply = "brb"
imagepath = "/tmp/imgs"
broadcast = ["127.0.0.1", "10.0.0.255"]
interfaces = false
interface = "eth1"
peers = ["10.1.2.3"]
plugin_dir = ["/opt/slcp/plugins"]
max_image_bytes = 1024
transfer_timeout = 2.5
heartbeat = 1
expiry = 3
who_wait = 0.1
bell = false
backlog = 5
auto_away = 0.5
history_size = 7
confirm_grace = 0.5
min_transfer_rate = 100
quota_per_sender = 1000
quota_total = 2000
forms = ["quoted"]
peer_forms = { fab = ["reference"], "10.0.0.7" = ["knownusers", "colon"] }
image_ports = { fab = 6001 }
bundled = ["img"]
history = false
history_days = 30
notify = "both"
downloadpath = "/tmp/dl"
max_file_bytes = 4096
max_send_rate = 1000000
encryption = "require"
"#,
    )
    .unwrap();
    let c = &l.config;
    assert_eq!(c.handle.as_str(), "jörg");
    assert_eq!(c.notify, slcp_core::client::NotifyMode::Both);
    assert_eq!(c.downloadpath, std::path::PathBuf::from("/tmp/dl"));
    assert_eq!((c.max_file_bytes, c.max_send_rate), (4096, 1_000_000));
    assert_eq!(c.encryption, slcp_core::client::Encryption::Require);
    assert_eq!(
        c.port,
        PortRange {
            low: 6000,
            high: 6010
        }
    );
    assert_eq!(c.whoisport, 4100);
    assert_eq!(c.autoreply, "brb");
    assert_eq!(c.imagepath, PathBuf::from("/tmp/imgs"));
    assert_eq!(c.broadcast.len(), 2);
    assert!(!c.interfaces);
    assert_eq!(c.interface, "eth1");
    assert_eq!(c.peers, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
    assert_eq!(c.plugin_dir, vec![PathBuf::from("/opt/slcp/plugins")]);
    assert_eq!(c.max_image_bytes, 1024);
    assert_eq!(c.transfer_timeout, Duration::from_millis(2500));
    assert_eq!(c.heartbeat, Duration::from_secs(1));
    assert_eq!(c.expiry, Duration::from_secs(3));
    assert_eq!(c.who_wait, Duration::from_millis(100));
    assert!(!c.bell);
    assert_eq!((c.backlog, c.history_size), (5, 7));
    assert_eq!(c.auto_away, Some(Duration::from_secs(30)));
    assert_eq!(c.confirm_grace, Duration::from_millis(500));
    assert_eq!(
        (c.min_transfer_rate, c.quota_per_sender, c.quota_total),
        (100, 1000, 2000)
    );
    assert_eq!(c.forms.words(), vec!["quoted"]);
    assert_eq!(
        c.peer_forms["fab"].words(),
        vec!["one-datagram", "no-newline", "named-img"]
    );
    assert_eq!(
        c.peer_forms["10.0.0.7"].words(),
        vec!["knownusers", "colon"]
    );
    assert_eq!(c.image_ports["fab"], 6001);
    assert_eq!(c.bundled, vec!["img"]);
    assert_eq!((c.history, c.history_days), (false, 30));
    assert!(
        l.sources.values().all(|s| matches!(s, Source::File(_))),
        "every key came from the file: {:?}",
        l.sources
    );
}

#[test]
fn a_single_port_is_a_range_of_one() {
    let l = load_file("port = 5005\n").unwrap();
    assert_eq!(
        l.config.port,
        PortRange {
            low: 5005,
            high: 5005
        }
    );
}

#[test]
fn precedence_is_flag_env_file_default() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "handle = \"fromfile\"\nport = 6000\nwhoisport = 4100\n",
    );
    let env = vec![
        ("SLCP_PORT".to_string(), "7000-7005".to_string()),
        ("SLCP_WHOISPORT".to_string(), "4200".to_string()),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let l = Config::load(
        &Overrides {
            file: Some(p.clone()),
            flags: vec![("--port".into(), "port".into(), "8000".into())],
        },
        env,
    )
    .unwrap();
    assert_eq!(l.config.handle.as_str(), "fromfile");
    assert_eq!(
        l.config.port,
        PortRange {
            low: 8000,
            high: 8000
        }
    );
    assert_eq!(l.config.whoisport, 4200);
    assert_eq!(l.config.heartbeat, Duration::from_secs(10));
    assert_eq!(l.sources["handle"], Source::File(p));
    assert_eq!(l.sources["port"], Source::Flag("--port".into()));
    assert_eq!(l.sources["whoisport"], Source::Env("SLCP_WHOISPORT".into()));
    assert_eq!(l.sources["heartbeat"], Source::Default);
    let shown = l.config.to_annotated_toml(&l.sources);
    assert!(shown.contains("# flag --port"), "{shown}");
    assert!(shown.contains("# environment SLCP_WHOISPORT"), "{shown}");
    // What `slcp config` prints is itself a valid config file.
    let back = load_file(&shown).unwrap();
    assert_eq!(back.config, l.config);
}

#[test]
fn bad_values_give_one_line_naming_file_key_value_and_rule() {
    let cases = [
        (
            "port = 70000",
            "config.toml: port: 70000 is not a port (1-65535) or a range [low, high] with 1 <= low <= high <= 65535",
        ),
        (
            "port = [5010, 5000]",
            "config.toml: port: [5010, 5000] is not a port (1-65535) or a range [low, high] with 1 <= low <= high <= 65535",
        ),
        (
            "port = \"x\"",
            "config.toml: port: \"x\" is not a port (1-65535) or a range [low, high] with 1 <= low <= high <= 65535",
        ),
        (
            "whoisport = 0",
            "config.toml: whoisport: 0 is not a port (1-65535)",
        ),
        (
            "handle = \"a b\"",
            "config.toml: handle: \"a b\" is not a valid handle (a handle cannot contain ' ' (no whitespace, control characters, ',' or '\"'))",
        ),
        (
            "handle = 5",
            "config.toml: handle: 5 is not a handle (1-32 characters, no spaces, no ',' and no '\"')",
        ),
        (
            "bell = \"yes\"",
            "config.toml: bell: \"yes\" is not true or false",
        ),
        (
            "notify = \"loud\"",
            "config.toml: notify: \"loud\" is not one of \"bell\", \"desktop\", \"both\", \"off\"",
        ),
        (
            "heartbeat = 0",
            "config.toml: heartbeat: 0 is not a number of seconds from 0.01 to 86400",
        ),
        (
            "broadcast = [\"nope\"]",
            "config.toml: broadcast: [\"nope\"] is not a list of IP addresses, e.g. [\"127.255.255.255\", \"192.168.1.255\"]",
        ),
        (
            "max_image_bytes = -1",
            "config.toml: max_image_bytes: -1 is not a size in bytes (0 to 1099511627776)",
        ),
        (
            "prot = 5000",
            "config.toml: prot: unknown key; did you mean `port`?",
        ),
        (
            "handel = \"x\"",
            "config.toml: handel: unknown key; did you mean `handle`?",
        ),
        (
            "port = [4000, 4001]",
            "config.toml: port range 4000-4001 contains whoisport 4000; choose ports apart from the discovery port",
        ),
        (
            "heartbeat = 40",
            "config.toml: expiry (35s) must be longer than heartbeat (40s), or every entry expires between two heartbeats",
        ),
    ];
    for (text, want) in cases {
        let got = err_of(text);
        assert_eq!(got, want, "for {text:?}");
        assert!(!got.contains('\n'));
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let got = err_of("handle = \"ok\"\nport = [5000,\n");
    assert!(got.starts_with("config.toml: line "), "{got}");
    assert!(!got.contains('\n'), "{got}");
}

#[test]
fn env_and_flag_errors_name_their_origin() {
    let e = Config::load(
        &Overrides {
            file: Some("/nonexistent/slcp.toml".into()),
            flags: vec![],
        },
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/slcp.toml: cannot read: "),
        "{e}"
    );
    let e = Config::load(
        &Overrides::default(),
        vec![("SLCP_PORT".into(), "99999".into())],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SLCP_PORT: port: \"99999\" is not a port (1-65535) or a range [low, high] with 1 <= low <= high <= 65535"
    );
    let e = Config::load(
        &Overrides::default(),
        vec![("SLCP_HANLDE".into(), "x".into())],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "SLCP_HANLDE: hanlde: unknown key; did you mean `SLCP_HANDLE`?"
    );
    let e = Config::load(
        &Overrides {
            file: None,
            flags: vec![("--set".into(), "bell".into(), "maybe".into())],
        },
        Vec::new(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "--set: bell: \"maybe\" is not true or false");
}

#[test]
fn the_default_file_is_the_defaults() {
    let text = Config::default_file();
    // Uncommenting every key (but the handle) changes nothing.
    let uncommented: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| l.contains(" = ") && !l.starts_with("handle"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(uncommented.lines().count(), KEYS.len() - 1);
    let l = load_file(&uncommented).unwrap();
    let mut want = Config::defaults();
    want.handle = l.config.handle.clone();
    assert_eq!(l.config, want);
}

#[test]
fn default_handle_is_valid() {
    let h = default_handle();
    assert!(Handle::new(h.as_str()).is_ok());
}

#[test]
fn edit_distance_basics() {
    assert_eq!(edit_distance("port", "port"), 0);
    assert_eq!(edit_distance("prot", "port"), 2);
    assert_eq!(edit_distance("", "abc"), 3);
}

#[test]
fn save_key_replaces_one_line_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        &dir,
        "# my settings\nhandle = \"me\" # me\nautoreply = \"old\"\n\nport = 6000\n",
    );
    save_key(&p, "autoreply", "\"gone \\\"fishing\\\"\"").unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(
        text,
        "# my settings\nhandle = \"me\" # me\nautoreply = \"gone \\\"fishing\\\"\"\n\nport = 6000\n"
    );
    let l = load_file(&text).unwrap();
    assert_eq!(l.config.autoreply, "gone \"fishing\"");
    // A new key is appended; a missing file is created.
    let fresh = dir.path().join("sub/new.toml");
    save_key(&fresh, "autoreply", "\"hi\"").unwrap();
    assert_eq!(
        std::fs::read_to_string(&fresh).unwrap(),
        "autoreply = \"hi\"\n"
    );
    // A bad value is refused and the file is untouched.
    let e = save_key(&p, "autoreply", "\"two\\nlines\"").unwrap_err();
    assert!(e.to_string().contains("autoreply"), "{e}");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    assert_eq!(
        Config::defaults().values()["autoreply"],
        "I am away right now"
    );
    assert_eq!(Config::defaults().values()["port"], "[5000, 5099]");
    // A value that tries to close its string and start another key stays one value (the old
    // line editor wrote `handle = "mallory"` for this one).
    let sneaky = "\"x\"\nhandle = \"mallory\"";
    assert!(save_key(&p, "autoreply", sneaky).is_err());
    let multi = "'''x\nhandle = \"mallory\"'''";
    assert!(
        save_key(&p, "autoreply", multi).is_err(),
        "a line break is refused"
    );
    let l = load_file(&std::fs::read_to_string(&p).unwrap()).unwrap();
    assert_eq!(l.config.handle.as_str(), "me");
    // A comment after the value survives an edit of that value.
    let q = write(&dir, "handle = \"me\"\nautoreply = \"a\" # keep this\n");
    save_key(&q, "autoreply", "\"b\"").unwrap();
    assert_eq!(
        std::fs::read_to_string(&q).unwrap(),
        "handle = \"me\"\nautoreply = \"b\" # keep this\n"
    );
}

#[test]
fn a_list_in_toml_form_works_from_a_flag_and_a_variable() {
    let l = Config::load(
        &Overrides {
            file: None,
            flags: vec![(
                "--set".into(),
                "broadcast".into(),
                "[\"10.0.0.255\", \"127.255.255.255\"]".into(),
            )],
        },
        vec![("SLCP_PEERS".to_string(), "[\"10.1.2.3\"]".to_string())],
    )
    .unwrap();
    assert_eq!(l.config.broadcast.len(), 2);
    assert_eq!(l.config.peers, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
}
