//! Keys on disk: this user's static key pair (`<handle>.key`) and the keys pinned for peers
//! (`<handle>.known_peers`, one `handle key [verified]` per line, like OpenSSH's
//! `known_hosts`), both 0600 in a 0700 folder of the data dir. Read and written by the shell;
//! `Chat` gets the values and asks for the writes.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Keys, generate};

/// A key pinned for a handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The peer's static public key.
    pub key: Vec<u8>,
    /// Compared in person (VERIFY).
    pub verified: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn private_dir(dir: &Path) -> Result<(), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // A folder made earlier by someone else's umask: only we may list it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))
}

/// Writes `text` to `path` (0600) through a temporary file and a rename: a crash leaves the old
/// file or the new one, never half of one.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    r.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Where `stem`'s key files live in `dir`.
pub fn paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.known_peers")),
    )
}

/// The key pair in `path`, created (0600, folder 0700) at first start.
pub fn load_or_create(path: &Path) -> Result<Keys, String> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777);
            if mode.is_ok_and(|m| m & 0o077 != 0) {
                return Err(format!(
                    "{} is readable by others; chmod 600 it (or delete it for a new key)",
                    path.display()
                ));
            }
            let mut private = None;
            let mut public = None;
            for l in text.lines() {
                match l.split_once(' ') {
                    Some(("private", v)) => private = unhex(v.trim()),
                    Some(("public", v)) => public = unhex(v.trim()),
                    _ => {}
                }
            }
            match (private, public) {
                (Some(private), Some(public)) => Ok(Keys { private, public }),
                _ => Err(format!(
                    "{} is not a key file (lines `private <hex>` and `public <hex>`); move it away for a new key",
                    path.display()
                )),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = generate();
            write_private(
                path,
                &format!("private {}\npublic {}\n", hex(&k.private), hex(&k.public)),
            )?;
            Ok(k)
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// The pinned keys in `path` (none when it does not exist); lines that do not parse are skipped.
pub fn load_pins(path: &Path) -> BTreeMap<String, Pin> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (h, k) = (f.next()?, unhex(f.next()?)?);
            let verified = f.next() == Some("verified");
            Some((h.to_owned(), Pin { key: k, verified }))
        })
        .collect()
}

/// Saves the pinned keys.
pub fn save_pins(path: &Path, pins: &BTreeMap<String, Pin>) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let mut text = String::from("# slcp known peers: handle, X25519 public key, verified\n");
    for (h, p) in pins {
        text.push_str(&format!(
            "{h} {}{}\n",
            hex(&p.key),
            if p.verified { " verified" } else { "" }
        ));
    }
    write_private(path, &text)
}
