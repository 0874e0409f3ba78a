//! The table of config keys: name, documentation, parser and printer of each.
//!
//! One table drives the file parser, the `SLCP_*` variables, `--set`, `slcp config` and the
//! commented default file, so a key can't be documented and parsed differently.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use slcp_core::Handle;

use crate::{Config, Raw};

#[path = "values.rs"]
mod values;
use values::*;

/// One config key.
pub struct Key {
    /// The key as written in the file (`SLCP_` + upper case in the environment).
    pub name: &'static str,
    /// What it means and what it takes; shown in the default file.
    pub doc: &'static str,
    /// Validates a raw value and stores it; the error says what is allowed.
    pub apply: fn(&mut Config, &Raw) -> Result<(), String>,
    /// The current value as TOML.
    pub show: fn(&Config) -> String,
}

/// Every key, in the order `slcp config` prints them.
pub static KEYS: &[Key] = &[
    Key {
        name: "handle",
        doc: "Your name in the chat: 1-32 characters, no spaces, no ',' and no '\"'.\n\
              Default: your login name.",
        apply: |c, r| {
            let s = text(r).ok_or_else(|| HANDLE_RULE.to_string())?;
            c.handle = Handle::new(&s).map_err(|e| format!("a valid handle ({e})"))?;
            Ok(())
        },
        show: |c| toml_str(c.handle.as_str()),
    },
    Key {
        name: "port",
        doc: "The port this client receives on (UDP for messages, TCP for images): a number, or\n\
              a range [low, high] of which the first free port is taken.",
        apply: |c, r| {
            c.port = port_range(r).ok_or_else(|| {
                "a port (1-65535) or a range [low, high] with 1 <= low <= high <= 65535".to_string()
            })?;
            Ok(())
        },
        show: |c| {
            if c.port.low == c.port.high {
                c.port.low.to_string()
            } else {
                format!("[{}, {}]", c.port.low, c.port.high)
            }
        },
    },
    Key {
        name: "whoisport",
        doc: "The UDP port of the discovery service on every host of the LAN.",
        apply: |c, r| {
            c.whoisport = port(r).ok_or_else(|| PORT_RULE.to_string())?;
            Ok(())
        },
        show: |c| c.whoisport.to_string(),
    },
    Key {
        name: "autoreply",
        doc: "The automatic reply sent while you are AWAY (sent as \"[auto] <text>\").",
        apply: |c, r| {
            let s = text(r)
                .filter(|s| !s.contains('\n') && s.len() <= 400)
                .ok_or_else(|| "a one-line text of at most 400 bytes".to_string())?;
            c.autoreply = s;
            Ok(())
        },
        show: |c| toml_str(&c.autoreply),
    },
    Key {
        name: "imagepath",
        doc: "The folder received images are saved in (created if missing).",
        apply: |c, r| {
            c.imagepath = path(r).ok_or_else(|| "a folder path".to_string())?;
            Ok(())
        },
        show: |c| toml_str(&c.imagepath.display().to_string()),
    },
    Key {
        name: "downloadpath",
        doc: "The folder received files (FILE) are saved in, under their own names made safe.\n\
              Default: your download folder + slcp/.",
        apply: |c, r| {
            c.downloadpath = path(r).ok_or_else(|| "a folder path".to_string())?;
            Ok(())
        },
        show: |c| toml_str(&c.downloadpath.display().to_string()),
    },
    Key {
        name: "broadcast",
        doc: "Addresses JOIN, LEAVE, WHO, AWAY and BACK are sent to besides the interfaces'\n\
              broadcast addresses. 127.255.255.255 reaches every slcp on this machine.",
        apply: |c, r| {
            c.broadcast = list(r)
                .and_then(|v| v.iter().map(|s| s.parse::<IpAddr>().ok()).collect())
                .ok_or_else(|| {
                    "a list of IP addresses, e.g. [\"127.255.255.255\", \"192.168.1.255\"]"
                        .to_string()
                })?;
            Ok(())
        },
        show: |c| {
            let v: Vec<String> = c
                .broadcast
                .iter()
                .map(|a| toml_str(&a.to_string()))
                .collect();
            format!("[{}]", v.join(", "))
        },
    },
    Key {
        name: "interfaces",
        doc: "Also broadcast on every up, non-loopback IPv4 interface (true or false).",
        apply: |c, r| {
            c.interfaces = boolean(r).ok_or_else(|| BOOL_RULE.to_string())?;
            Ok(())
        },
        show: |c| c.interfaces.to_string(),
    },
    Key {
        name: "interface",
        doc: "Broadcast only on this interface (e.g. \"eth0\"); empty: on every up IPv4 interface.",
        apply: |c, r| {
            let s = text(r)
                .filter(|s| s.len() <= 15 && !s.contains(['/', ' ']))
                .ok_or_else(|| "an interface name such as \"eth0\", or \"\" for all".to_string())?;
            c.interface = s;
            Ok(())
        },
        show: |c| toml_str(&c.interface),
    },
    Key {
        name: "peers",
        doc: "Hosts (IP addresses) whose discovery gets your JOIN, LEAVE, WHO, AWAY and BACK\n\
              directly, for networks that drop broadcast.",
        apply: |c, r| {
            c.peers = list(r)
                .and_then(|v| v.iter().map(|s| s.parse::<IpAddr>().ok()).collect())
                .ok_or_else(|| "a list of IP addresses, e.g. [\"192.168.1.20\"]".to_string())?;
            Ok(())
        },
        show: |c| {
            let v: Vec<String> = c.peers.iter().map(|a| toml_str(&a.to_string())).collect();
            format!("[{}]", v.join(", "))
        },
    },
    Key {
        name: "history",
        doc: "Keep every message in and out (and images by path) in a database of yours\n\
              (<data dir>/slcp/history/<handle>.sqlite3), for HISTORY, SEARCH and the unread ones.",
        apply: |c, r| {
            c.history = boolean(r).ok_or_else(|| BOOL_RULE.to_string())?;
            Ok(())
        },
        show: |c| c.history.to_string(),
    },
    Key {
        name: "history_days",
        doc: "Days of history kept; older messages are deleted at start (0 keeps everything).",
        apply: |c, r| {
            c.history_days = uint(r)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v <= 36_500)
                .ok_or_else(|| "a number of days from 0 (keep all) to 36500".to_string())?;
            Ok(())
        },
        show: |c| c.history_days.to_string(),
    },
    Key {
        name: "bundled",
        doc: "The plugins built into slcp to use: any of \"autoreply\", \"dice\", \"img\" (a plugin\n\
              file of the same name on the plugin path is then not loaded); [] uses files only.",
        apply: |c, r| {
            let v = list(r).ok_or_else(|| BUNDLED_RULE.to_string())?;
            if let Some(bad) = v.iter().find(|n| !BUNDLED.contains(&n.as_str())) {
                return Err(format!("{bad:?} is not built in; {BUNDLED_RULE}"));
            }
            c.bundled = v;
            Ok(())
        },
        show: |c| {
            let v: Vec<String> = c.bundled.iter().map(|s| toml_str(s)).collect();
            format!("[{}]", v.join(", "))
        },
    },
    Key {
        name: "plugin_dir",
        doc: "Folders searched for plugins, before the folder of the slcp executable.",
        apply: |c, r| {
            c.plugin_dir = list(r)
                .map(|v| v.into_iter().map(PathBuf::from).collect())
                .ok_or_else(|| "a list of folder paths".to_string())?;
            Ok(())
        },
        show: |c| {
            let v: Vec<String> = c
                .plugin_dir
                .iter()
                .map(|p| toml_str(&p.display().to_string()))
                .collect();
            format!("[{}]", v.join(", "))
        },
    },
    Key {
        name: "max_image_bytes",
        doc: "The largest image accepted, in bytes.",
        apply: |c, r| {
            c.max_image_bytes = uint(r)
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v <= 1 << 40)
                .ok_or_else(|| "a size in bytes (0 to 1099511627776)".to_string())?;
            Ok(())
        },
        show: |c| c.max_image_bytes.to_string(),
    },
    Key {
        name: "max_file_bytes",
        doc: "The largest file (FILE) accepted, in bytes; a larger one is refused with the reason.",
        apply: |c, r| {
            c.max_file_bytes = uint(r)
                .and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v <= 1 << 50)
                .ok_or_else(|| "a size in bytes (0 to 1125899906842624)".to_string())?;
            Ok(())
        },
        show: |c| c.max_file_bytes.to_string(),
    },
    Key {
        name: "max_send_rate",
        doc: "Bytes per second one image or file send may use (0: no limit), to leave room on a\n\
              slow link.",
        apply: |c, r| {
            c.max_send_rate = uint(r)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| "a rate in bytes per second (0 for no limit)".to_string())?;
            Ok(())
        },
        show: |c| c.max_send_rate.to_string(),
    },
    Key {
        name: "transfer_timeout",
        doc: "Seconds an image transfer may stall before it is aborted.",
        apply: |c, r| set_secs(&mut c.transfer_timeout, r),
        show: |c| secs(c.transfer_timeout),
    },
    Key {
        name: "confirm_grace",
        doc: "Seconds an image send waits, after its last byte, for the receiver to close the\n\
              connection; a receiver that never closes gets \"sent (the receiver did not confirm)\".",
        apply: |c, r| set_secs(&mut c.confirm_grace, r),
        show: |c| secs(c.confirm_grace),
    },
    Key {
        name: "min_transfer_rate",
        doc: "Bytes per second an incoming transfer must average once it has run\n\
              transfer_timeout seconds; a slower one (a peer holding a slot open) is aborted.",
        apply: |c, r| {
            c.min_transfer_rate = uint(r).and_then(|v| u64::try_from(v).ok()).ok_or_else(|| {
                "a rate in bytes per second (0 to turn the check off)".to_string()
            })?;
            Ok(())
        },
        show: |c| c.min_transfer_rate.to_string(),
    },
    Key {
        name: "quota_per_sender",
        doc: "Bytes of images accepted from one sender per hour; more are refused with the reason.",
        apply: |c, r| {
            c.quota_per_sender = bytes(r)?;
            Ok(())
        },
        show: |c| c.quota_per_sender.to_string(),
    },
    Key {
        name: "quota_total",
        doc: "Bytes of images accepted from everyone together per hour.",
        apply: |c, r| {
            c.quota_total = bytes(r)?;
            Ok(())
        },
        show: |c| c.quota_total.to_string(),
    },
    Key {
        name: "forms",
        doc: "The wire forms used with a peer that has not shown its own (empty: SLCP.md's).\n\
              Words: recipient, quoted, knownusers, colon, tcp, one-datagram, no-newline,\n\
              named-img, ready-img, or \"reference\" for the reference implementation's set.",
        apply: |c, r| {
            c.forms = forms(r)?;
            Ok(())
        },
        show: |c| forms_toml(&c.forms),
    },
    Key {
        name: "peer_forms",
        doc: "Wire forms of particular peers: a table from a handle or an IP address to a list of\n\
              forms (the discovery reads the addresses: which hosts read KNOWNUSERS, ...).",
        apply: |c, r| {
            let mut out = BTreeMap::new();
            for (k, v) in table(r).ok_or_else(|| FORMS_TABLE_RULE.to_string())? {
                out.insert(
                    k.clone(),
                    forms(&Raw::Toml(v)).map_err(|e| format!("{k}: {e}"))?,
                );
            }
            c.peer_forms = out;
            Ok(())
        },
        show: |c| {
            let v: Vec<String> = c
                .peer_forms
                .iter()
                .map(|(k, f)| format!("{} = {}", toml_str(k), forms_toml(f)))
                .collect();
            format!("{{ {} }}", v.join(", "))
        },
    },
    Key {
        name: "image_ports",
        doc: "TCP ports where particular peers take images: a table from a handle to a port, for\n\
              peers whose image port is not their JOIN port (the reference implementation's).",
        apply: |c, r| {
            let rule = || "a table of handle = port, e.g. { fab = 6001 }".to_string();
            let mut out = BTreeMap::new();
            for (k, v) in table(r).ok_or_else(rule)? {
                let p = port(&Raw::Toml(v)).ok_or_else(rule)?;
                Handle::new(&k).map_err(|e| format!("{k:?} is not a handle ({e})"))?;
                out.insert(k, p);
            }
            c.image_ports = out;
            Ok(())
        },
        show: |c| {
            let v: Vec<String> = c
                .image_ports
                .iter()
                .map(|(k, p)| format!("{} = {p}", toml_str(k)))
                .collect();
            format!("{{ {} }}", v.join(", "))
        },
    },
    Key {
        name: "heartbeat",
        doc: "Seconds between the JOIN and WHO a client re-sends to stay listed.",
        apply: |c, r| set_secs(&mut c.heartbeat, r),
        show: |c| secs(c.heartbeat),
    },
    Key {
        name: "expiry",
        doc: "Seconds after which a user not heard from is dropped (longer than heartbeat).",
        apply: |c, r| set_secs(&mut c.expiry, r),
        show: |c| secs(c.expiry),
    },
    Key {
        name: "who_wait",
        doc: "Seconds WHO waits for the discovery services' answers.",
        apply: |c, r| set_secs(&mut c.who_wait, r),
        show: |c| secs(c.who_wait),
    },
    Key {
        name: "bell",
        doc: "Ring the terminal bell when a message arrives (true or false).",
        apply: |c, r| {
            c.bell = boolean(r).ok_or_else(|| BOOL_RULE.to_string())?;
            Ok(())
        },
        show: |c| c.bell.to_string(),
    },
    Key {
        name: "notify",
        doc: "How you hear that a message, image or file arrived: \"bell\" (the prompt's bell),\n\
              \"desktop\" (a desktop notification), \"both\" or \"off\". None for the conversation\n\
              you are typing in; at most one popup per sender every 5 s.",
        apply: |c, r| {
            c.notify = text(r)
                .and_then(|s| slcp_core::client::NotifyMode::parse(&s))
                .ok_or_else(|| "one of \"bell\", \"desktop\", \"both\", \"off\"".to_string())?;
            Ok(())
        },
        show: |c| toml_str(c.notify.as_str()),
    },
    Key {
        name: "encryption",
        doc: "End-to-end encryption with slcp peers: \"prefer\" (encrypt with every slcp peer,\n\
              plain SLCP with the others), \"require\" (send nothing in the clear) or \"off\".",
        apply: |c, r| {
            c.encryption = text(r)
                .and_then(|s| slcp_core::client::Encryption::parse(&s))
                .ok_or_else(|| "one of \"prefer\", \"require\", \"off\"".to_string())?;
            Ok(())
        },
        show: |c| toml_str(c.encryption.as_str()),
    },
    Key {
        name: "backlog",
        doc: "How many received messages the client keeps while no REPL is attached.",
        apply: |c, r| {
            c.backlog = uint(r)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|v| *v <= 1_000_000)
                .ok_or_else(|| "a count from 0 to 1000000".to_string())?;
            Ok(())
        },
        show: |c| c.backlog.to_string(),
    },
    Key {
        name: "auto_away",
        doc: "Minutes without a command after which you go AWAY by yourself (0: never).\n\
              The next command brings you BACK.",
        apply: |c, r| {
            let v = match r {
                Raw::Toml(toml::Value::Integer(i)) => *i as f64,
                Raw::Toml(toml::Value::Float(f)) => *f,
                Raw::Text(s) => s.trim().parse::<f64>().map_err(|_| AWAY_RULE.to_string())?,
                _ => return Err(AWAY_RULE.into()),
            };
            if !(0.0..=10_080.0).contains(&v) {
                return Err(AWAY_RULE.into());
            }
            c.auto_away = (v > 0.0).then(|| Duration::from_secs_f64(v * 60.0));
            Ok(())
        },
        show: |c| match c.auto_away {
            None => "0".into(),
            Some(d) => {
                let m = d.as_secs_f64() / 60.0;
                if m.fract() == 0.0 {
                    format!("{m:.0}")
                } else {
                    format!("{m}")
                }
            }
        },
    },
    Key {
        name: "history_size",
        doc: "How many lines of command history the REPL keeps.",
        apply: |c, r| {
            c.history_size = uint(r)
                .and_then(|v| usize::try_from(v).ok())
                .filter(|v| *v <= 1_000_000)
                .ok_or_else(|| "a count from 0 to 1000000".to_string())?;
            Ok(())
        },
        show: |c| c.history_size.to_string(),
    },
];

const HANDLE_RULE: &str = "a handle (1-32 characters, no spaces, no ',' and no '\"')";
const PORT_RULE: &str = "a port (1-65535)";
const BOOL_RULE: &str = "true or false";
const FORMS_RULE: &str = "a list of forms: recipient, quoted, knownusers, colon, tcp, one-datagram, no-newline, named-img, ready-img, reference";
const AWAY_RULE: &str = "a number of minutes from 0 (never) to 10080";
const SECS_RULE: &str = "a number of seconds from 0.01 to 86400";
const FORMS_TABLE_RULE: &str =
    "a table of handle or IP address = list of forms, e.g. { \"10.0.0.7\" = [\"knownusers\"] }";

/// The plugins the slcp binary has built in (repl/src/bundled.rs; a test there checks the two
/// agree).
pub const BUNDLED: &[&str] = &["autoreply", "dice", "img"];
const BUNDLED_RULE: &str = "a list of built-in plugins: \"autoreply\", \"dice\", \"img\"";

/// The key called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
