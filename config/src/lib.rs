//! slcp-config: the `config.toml` schema, its defaults, validation and layering, and the paths slcp uses.
//!
//! Precedence, highest first: command-line flag > `SLCP_*` environment variable > file > default.
//! Every value remembers where it came from so `slcp config` can say so.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slcp_core::Handle;
use slcp_core::codec::Forms;
use thiserror::Error;

pub mod keys;
pub mod paths;
mod save;
pub use save::save_key;

pub use keys::KEYS;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A config file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, as written.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(v) => write!(f, "environment {v}"),
            Source::Flag(s) => write!(f, "flag {s}"),
        }
    }
}

/// An inclusive range of ports; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// The first port tried.
    pub low: u16,
    /// The last port tried.
    pub high: u16,
}

impl PortRange {
    /// Every port of the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + use<> {
        self.low..=self.high
    }

    /// Whether `p` lies in the range.
    pub fn contains(&self, p: u16) -> bool {
        (self.low..=self.high).contains(&p)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This user's handle.
    pub handle: Handle,
    /// The ports the client may take (UDP and TCP, the first free one).
    pub port: PortRange,
    /// The UDP port of every host's discovery service.
    pub whoisport: u16,
    /// The text of automatic replies while away.
    pub autoreply: String,
    /// Where received images are saved.
    pub imagepath: PathBuf,
    /// Where received files (FILE) are saved.
    pub downloadpath: PathBuf,
    /// Extra broadcast (or unicast) addresses for JOIN/LEAVE/WHO/AWAY/BACK.
    pub broadcast: Vec<IpAddr>,
    /// Whether to broadcast on every up IPv4 interface as well.
    pub interfaces: bool,
    /// Only this interface's broadcast address (empty: every interface).
    pub interface: String,
    /// Hosts whose discovery gets JOIN/LEAVE/WHO/AWAY/BACK directly (networks that drop
    /// broadcast).
    pub peers: Vec<IpAddr>,
    /// Folders searched for plugins before the executable's own folder.
    pub plugin_dir: Vec<PathBuf>,
    /// The largest image accepted, in bytes.
    pub max_image_bytes: u64,
    /// The largest file (FILE) accepted, in bytes.
    pub max_file_bytes: u64,
    /// Bytes per second an image or file send may use (0: as fast as the network goes).
    pub max_send_rate: u64,
    /// How the user hears that something arrived: bell, desktop, both or off.
    pub notify: slcp_core::client::NotifyMode,
    /// Whether to encrypt with slcp peers: prefer, require or off.
    pub encryption: slcp_core::client::Encryption,
    /// How long a transfer may stall before it is aborted.
    pub transfer_timeout: Duration,
    /// How often a client re-sends JOIN and WHO.
    pub heartbeat: Duration,
    /// How long an entry lives without being refreshed.
    pub expiry: Duration,
    /// How long WHO (and a MSG to an unknown handle) waits for discovery answers.
    pub who_wait: Duration,
    /// Ring the terminal bell on an incoming message.
    pub bell: bool,
    /// How many received messages are kept while no REPL is attached.
    pub backlog: usize,
    /// Go AWAY after this long without a command (None: never).
    pub auto_away: Option<Duration>,
    /// How many lines of command history are kept.
    pub history_size: usize,
    /// How long an image send waits for the receiver to close after the last byte.
    pub confirm_grace: Duration,
    /// Bytes per second an incoming transfer must average once it has run `transfer_timeout`.
    pub min_transfer_rate: u64,
    /// Bytes accepted from one sender per hour.
    pub quota_per_sender: u64,
    /// Bytes accepted from everyone per hour.
    pub quota_total: u64,
    /// The forms sent to peers that have shown none (empty: SLCP.md's).
    pub forms: Forms,
    /// Forms of particular peers, by handle or IP address.
    pub peer_forms: BTreeMap<String, Forms>,
    /// Image ports of peers that take images elsewhere than on their JOIN port, by handle.
    pub image_ports: BTreeMap<String, u16>,
    /// The built-in plugins to register.
    pub bundled: Vec<String>,
    /// Keep every message in the history database.
    pub history: bool,
    /// Days of messages kept (0: all).
    pub history_days: u32,
}

/// A configuration error: one line naming where, which key, what was found and what is allowed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        why: String,
    },
    /// The file is not TOML.
    #[error("{path}: line {line}: {why}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        why: String,
    },
    /// A key nobody knows.
    #[error("{origin}: {key}: unknown key{hint}")]
    UnknownKey {
        /// The file, variable or flag.
        origin: String,
        /// The key as written.
        key: String,
        /// "; did you mean `x`?" or a list of keys.
        hint: String,
    },
    /// A value outside what the key allows.
    #[error("{origin}: {key}: {found} is not {allowed}")]
    BadValue {
        /// The file, variable or flag.
        origin: String,
        /// The key.
        key: String,
        /// The value, as found.
        found: String,
        /// What the key takes.
        allowed: String,
    },
    /// Keys that are fine alone but not together.
    #[error("{origin}: {why}")]
    Conflict {
        /// Where the last of the conflicting values came from.
        origin: String,
        /// What conflicts.
        why: String,
    },
}

/// A raw value before validation: TOML from a file, text from the environment or a flag.
#[derive(Debug, Clone)]
pub enum Raw {
    /// A value parsed from a TOML file.
    Toml(toml::Value),
    /// Text from an environment variable or a flag.
    Text(String),
}

impl Raw {
    fn shown(&self) -> String {
        match self {
            Raw::Toml(v) => {
                let s = v.to_string();
                if s.chars().count() > 60 {
                    format!("{}...", s.chars().take(57).collect::<String>())
                } else {
                    s
                }
            }
            Raw::Text(s) => format!("{s:?}"),
        }
    }
}

/// The configuration with the origin of every key.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The values.
    pub config: Config,
    /// Key → where its value came from.
    pub sources: BTreeMap<&'static str, Source>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// What the caller knows beyond the environment: the `--config` path and `--set`-style flags.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`: read this file, and fail if it cannot be read.
    pub file: Option<PathBuf>,
    /// `(flag as written, key, value)` from the command line, applied last.
    pub flags: Vec<(String, String, String)>,
}

impl Config {
    /// The built-in defaults; the handle is the login name, made valid.
    pub fn defaults() -> Config {
        Config {
            handle: default_handle(),
            port: PortRange {
                low: 5000,
                high: 5099,
            },
            whoisport: 4000,
            autoreply: "I am away right now".into(),
            imagepath: paths::default_imagepath(),
            downloadpath: paths::default_downloadpath(),
            max_file_bytes: 4 << 30,
            max_send_rate: 0,
            notify: slcp_core::client::NotifyMode::Bell,
            encryption: slcp_core::client::Encryption::Prefer,
            broadcast: vec!["127.255.255.255".parse().unwrap()],
            interfaces: true,
            interface: String::new(),
            peers: Vec::new(),
            plugin_dir: Vec::new(),
            max_image_bytes: 64 << 20,
            transfer_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            expiry: Duration::from_secs(35),
            who_wait: Duration::from_millis(300),
            bell: true,
            backlog: 1000,
            auto_away: None,
            history_size: 1000,
            confirm_grace: Duration::from_secs(2),
            min_transfer_rate: 4096,
            quota_per_sender: 1 << 30,
            quota_total: 4 << 30,
            forms: Forms::default(),
            peer_forms: BTreeMap::new(),
            image_ports: BTreeMap::new(),
            bundled: keys::BUNDLED.iter().map(|s| s.to_string()).collect(),
            history: true,
            history_days: 0,
        }
    }

    /// Loads the effective configuration from the defaults, the file, `SLCP_*` variables of
    /// `env` and `overrides.flags`, in that order.
    pub fn load(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut cfg = Config::defaults();
        let mut sources: BTreeMap<&'static str, Source> =
            KEYS.iter().map(|k| (k.name, Source::Default)).collect();

        let (path, required) = match &overrides.file {
            Some(p) => (Some(p.clone()), true),
            None => (paths::default_config_file(), false),
        };
        let mut file = None;
        if let Some(path) = path {
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    cfg.apply_file(&path, &text, &mut sources)?;
                    file = Some(path);
                }
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ConfigError::Read {
                        path,
                        why: e.to_string(),
                    });
                }
            }
        }

        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("SLCP_") && !paths::NON_KEY_VARS.contains(&k.as_str()))
            .collect();
        env.sort();
        for (var, value) in env {
            let key = var["SLCP_".len()..].to_ascii_lowercase();
            let origin = var.clone();
            let k = keys::find(&key).ok_or_else(|| unknown_key(&origin, &key, "SLCP_"))?;
            let raw = Raw::Text(value);
            (k.apply)(&mut cfg, &raw).map_err(|allowed| ConfigError::BadValue {
                origin: origin.clone(),
                key: k.name.into(),
                found: raw.shown(),
                allowed,
            })?;
            sources.insert(k.name, Source::Env(var));
        }

        for (flag, key, value) in &overrides.flags {
            let k = keys::find(key).ok_or_else(|| unknown_key(flag, key, ""))?;
            (k.apply)(&mut cfg, &Raw::Text(value.clone())).map_err(|allowed| {
                ConfigError::BadValue {
                    origin: flag.clone(),
                    key: k.name.into(),
                    found: format!("{value:?}"),
                    allowed,
                }
            })?;
            sources.insert(k.name, Source::Flag(flag.clone()));
        }

        cfg.check(&sources)?;
        Ok(Loaded {
            config: cfg,
            sources,
            file,
        })
    }

    /// Parses `text` (the contents of `path`) over `self`.
    pub fn apply_file(
        &mut self,
        path: &Path,
        text: &str,
        sources: &mut BTreeMap<&'static str, Source>,
    ) -> Result<(), ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
                .unwrap_or(1);
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                why: e.message().trim().replace('\n', " "),
            }
        })?;
        let origin = path.display().to_string();
        for (key, value) in table {
            let k = keys::find(&key).ok_or_else(|| unknown_key(&origin, &key, ""))?;
            let raw = Raw::Toml(value);
            (k.apply)(self, &raw).map_err(|allowed| ConfigError::BadValue {
                origin: origin.clone(),
                key: k.name.into(),
                found: raw.shown(),
                allowed,
            })?;
            sources.insert(k.name, Source::File(path.to_owned()));
        }
        Ok(())
    }

    fn check(&self, sources: &BTreeMap<&'static str, Source>) -> Result<(), ConfigError> {
        if self.port.contains(self.whoisport) {
            let origin = sources
                .get("port")
                .filter(|s| **s != Source::Default)
                .or_else(|| sources.get("whoisport"))
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(ConfigError::Conflict {
                origin,
                why: format!(
                    "port range {} contains whoisport {}; choose ports apart from the discovery port",
                    self.port, self.whoisport
                ),
            });
        }
        if self.expiry <= self.heartbeat {
            let origin = ["expiry", "heartbeat"]
                .iter()
                .filter_map(|k| sources.get(k))
                .find(|s| **s != Source::Default)
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(ConfigError::Conflict {
                origin,
                why: format!(
                    "expiry ({:?}) must be longer than heartbeat ({:?}), or every entry expires between two heartbeats",
                    self.expiry, self.heartbeat
                ),
            });
        }
        Ok(())
    }

    /// This configuration as TOML, one `key = value` line per key, each followed by a comment
    /// saying where it came from.
    pub fn to_annotated_toml(&self, sources: &BTreeMap<&'static str, Source>) -> String {
        let mut out = String::new();
        let width = KEYS.iter().map(|k| k.name.len()).max().unwrap_or(0);
        for k in KEYS {
            let line = format!("{:width$} = {}", k.name, (k.show)(self));
            let src = sources.get(k.name).cloned().unwrap_or(Source::Default);
            out.push_str(&format!("{line:44} # {src}\n"));
        }
        out
    }

    /// Every key's value: strings as plain text, anything else in TOML syntax (what plugins read).
    pub fn values(&self) -> BTreeMap<String, String> {
        KEYS.iter()
            .map(|k| {
                let shown = (k.show)(self);
                let plain = match toml::from_str::<toml::Table>(&format!("v = {shown}")) {
                    Ok(t) => match t.get("v") {
                        Some(toml::Value::String(s)) => s.clone(),
                        _ => shown,
                    },
                    Err(_) => shown,
                };
                (k.name.to_string(), plain)
            })
            .collect()
    }

    /// A complete config file with every key commented out at its default and documented.
    pub fn default_file() -> String {
        let d = Config::defaults();
        let mut out = String::from(
            "# slcp configuration. Every key is optional; shown here at its default.\n\
             # Precedence: command-line flag > SLCP_<KEY> environment variable > this file > default.\n",
        );
        for k in KEYS {
            out.push('\n');
            for line in k.doc.lines() {
                out.push_str("# ");
                out.push_str(line);
                out.push('\n');
            }
            let value = if k.name == "handle" {
                "\"your-login-name\"".to_string()
            } else {
                (k.show)(&d)
            };
            out.push_str(&format!("# {} = {}\n", k.name, value));
        }
        out
    }
}

fn unknown_key(origin: &str, key: &str, prefix: &str) -> ConfigError {
    let best = KEYS
        .iter()
        .map(|k| (edit_distance(key, k.name), k.name))
        .min()
        .filter(|(d, _)| *d <= 3);
    let hint = match best {
        Some((_, name)) => format!(
            "; did you mean `{}{}`?",
            prefix,
            if prefix.is_empty() {
                name.to_string()
            } else {
                name.to_ascii_uppercase()
            }
        ),
        None => format!(
            "; known keys: {}",
            KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        ),
    };
    ConfigError::UnknownKey {
        origin: origin.into(),
        key: key.into(),
        hint,
    }
}

/// Levenshtein distance, for suggesting the nearest known key.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The login name made into a valid handle, or `user`.
pub fn default_handle() -> Handle {
    let name = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_default();
    let cleaned: String = name
        .chars()
        .filter(|c| !(c.is_whitespace() || c.is_control() || *c == ',' || *c == '"'))
        .take(slcp_core::codec::MAX_HANDLE_CHARS)
        .collect();
    Handle::new(&cleaned).unwrap_or_else(|_| Handle::new("user").unwrap())
}

#[cfg(test)]
mod tests;
