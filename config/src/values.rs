//! How the keys' raw values are read as each kind (text, port, range, seconds, bytes, list,
//! forms) and written back as TOML: the parsers and printers the key table is made of.

use std::path::PathBuf;
use std::time::Duration;

use slcp_core::codec::Forms;

use super::{FORMS_RULE, SECS_RULE};
use crate::{PortRange, Raw};

pub(super) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

pub(super) fn text(r: &Raw) -> Option<String> {
    match r {
        Raw::Toml(toml::Value::String(s)) | Raw::Text(s) => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn path(r: &Raw) -> Option<PathBuf> {
    text(r).filter(|s| !s.is_empty()).map(|s| {
        // `~/x` is what people write; expand it rather than create a folder named `~`.
        match s.strip_prefix("~/").zip(dirs::home_dir()) {
            Some((rest, home)) => home.join(rest),
            None => PathBuf::from(s),
        }
    })
}

pub(super) fn uint(r: &Raw) -> Option<i128> {
    match r {
        Raw::Toml(toml::Value::Integer(i)) => Some(i128::from(*i)).filter(|v| *v >= 0),
        Raw::Text(s) => s.trim().parse::<u64>().ok().map(i128::from),
        _ => None,
    }
}

pub(super) fn port(r: &Raw) -> Option<u16> {
    uint(r)
        .and_then(|v| u16::try_from(v).ok())
        .filter(|p| *p != 0)
}

pub(super) fn port_range(r: &Raw) -> Option<PortRange> {
    let (low, high) = match r {
        Raw::Toml(toml::Value::Array(a)) if a.len() == 2 => (
            port(&Raw::Toml(a[0].clone()))?,
            port(&Raw::Toml(a[1].clone()))?,
        ),
        Raw::Text(s) => {
            let s = s.trim().trim_start_matches('[').trim_end_matches(']');
            match s.split_once(['-', ',']) {
                Some((a, b)) => (
                    port(&Raw::Text(a.trim().into()))?,
                    port(&Raw::Text(b.trim().into()))?,
                ),
                None => {
                    let p = port(&Raw::Text(s.into()))?;
                    (p, p)
                }
            }
        }
        r => {
            let p = port(r)?;
            (p, p)
        }
    };
    (low <= high).then_some(PortRange { low, high })
}

pub(super) fn boolean(r: &Raw) -> Option<bool> {
    match r {
        Raw::Toml(toml::Value::Boolean(b)) => Some(*b),
        Raw::Text(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn list(r: &Raw) -> Option<Vec<String>> {
    match r {
        Raw::Toml(toml::Value::Array(a)) => {
            a.iter().map(|v| v.as_str().map(str::to_owned)).collect()
        }
        // `--set 'broadcast=["10.0.0.255"]'`: the TOML form the hints show works here too.
        Raw::Text(s) if s.trim_start().starts_with('[') => match toml_value(r)? {
            toml::Value::Array(a) => a.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => None,
        },
        Raw::Text(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    }
}

pub(super) fn set_secs(slot: &mut Duration, r: &Raw) -> Result<(), String> {
    let v = match r {
        Raw::Toml(toml::Value::Integer(i)) => *i as f64,
        Raw::Toml(toml::Value::Float(f)) => *f,
        Raw::Text(s) => s.trim().parse::<f64>().map_err(|_| SECS_RULE.to_string())?,
        _ => return Err(SECS_RULE.into()),
    };
    if !(0.01..=86_400.0).contains(&v) {
        return Err(SECS_RULE.into());
    }
    *slot = Duration::from_secs_f64(v);
    Ok(())
}

pub(super) fn bytes(r: &Raw) -> Result<u64, String> {
    uint(r)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v <= 1 << 50)
        .ok_or_else(|| "a size in bytes (0 to 1125899906842624)".to_string())
}

/// A TOML value from a file, or parsed from the text of a flag or variable.
pub(super) fn toml_value(r: &Raw) -> Option<toml::Value> {
    match r {
        Raw::Toml(v) => Some(v.clone()),
        Raw::Text(s) => toml::from_str::<toml::Table>(&format!("v = {s}"))
            .ok()
            .and_then(|mut t| t.remove("v")),
    }
}

pub(super) fn table(r: &Raw) -> Option<Vec<(String, toml::Value)>> {
    match toml_value(r)? {
        toml::Value::Table(t) => Some(t.into_iter().collect()),
        _ => None,
    }
}

pub(super) fn forms(r: &Raw) -> Result<Forms, String> {
    let words: Vec<String> = match toml_value(r) {
        Some(toml::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| FORMS_RULE.to_string())?,
        _ => list(r).ok_or_else(|| FORMS_RULE.to_string())?,
    };
    Forms::parse(words.iter().map(String::as_str)).map_err(|e| format!("{FORMS_RULE} ({e})"))
}

pub(super) fn forms_toml(f: &Forms) -> String {
    let v: Vec<String> = f.words().iter().map(|w| toml_str(w)).collect();
    format!("[{}]", v.join(", "))
}
