//! Writing one key back into a config file (`slcp config set`, SET from a prompt): with
//! `toml_edit`, so comments and every other line stay as they are.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{Config, ConfigError, Raw, keys, unknown_key};

/// Sets `key = value` (`value` in TOML syntax) in the config file at `path`, keeping every other
/// line (comments included) as it is; creates the file if missing. The value is checked first,
/// and the file is replaced atomically.
pub fn save_key(path: &Path, key: &str, value: &str) -> Result<(), ConfigError> {
    let origin = path.display().to_string();
    let k = keys::find(key).ok_or_else(|| unknown_key(&origin, key, ""))?;
    let parsed: toml::Table =
        toml::from_str(&format!("v = {value}")).map_err(|_| ConfigError::BadValue {
            origin: origin.clone(),
            key: key.into(),
            found: value.into(),
            allowed: "a TOML value".into(),
        })?;
    let raw = Raw::Toml(
        parsed
            .get("v")
            .cloned()
            .unwrap_or(toml::Value::Boolean(false)),
    );
    (k.apply)(&mut Config::defaults(), &raw).map_err(|allowed| ConfigError::BadValue {
        origin: origin.clone(),
        key: key.into(),
        found: raw.shown(),
        allowed,
    })?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(ConfigError::Read {
                path: path.into(),
                why: e.to_string(),
            });
        }
    };
    // Edited as a TOML document, not as lines: comments and the other keys survive, and a value
    // is one TOML value whatever it holds (a line break in it cannot start another key).
    let mut doc: toml_edit::DocumentMut =
        old.parse()
            .map_err(|e: toml_edit::TomlError| ConfigError::Read {
                path: path.into(),
                why: format!("not valid TOML: {}", e.message()),
            })?;
    let item: toml_edit::Value = value.parse().map_err(|_| ConfigError::BadValue {
        origin: origin.clone(),
        key: key.into(),
        found: value.into(),
        allowed: "a TOML value".into(),
    })?;
    match doc.get_mut(key).and_then(|i| i.as_value_mut()) {
        // Keep the decoration (the comment after the value, the spacing) of the old value.
        Some(v) => {
            let decor = v.decor().clone();
            *v = item;
            *v.decor_mut() = decor;
        }
        None => {
            doc.insert(key, toml_edit::value(item));
        }
    }
    let text = doc.to_string();
    // The result must still be a valid config before it replaces the old one.
    Config::defaults().apply_file(path, &text, &mut BTreeMap::new())?;
    let write_err = |e: std::io::Error| ConfigError::Read {
        path: path.into(),
        why: format!("cannot write: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    let tmp = path.with_extension(format!("toml.tmp{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}
