//! What a TCP stream on the image port begins with, and the safe naming of saved files.

use std::io;
use std::path::{Path, PathBuf};

/// Whether the handle field of an IMG header holds a file name (`small.png`) rather than a
/// handle: the READY handshake form, `IMG <file name> <size>`.
pub fn looks_like_file_name(s: &str) -> bool {
    s.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && (1..=5).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// Whether bytes can be SLCP lines: UTF-8 (a character may be cut at the end) without NUL or
/// other control characters but tab and line breaks.
pub(super) fn is_text(b: &[u8]) -> bool {
    let valid = match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// Whether a TCP stream begins like an image header (`IMG `, any case).
pub(super) fn is_img(b: &[u8]) -> bool {
    b.len() >= 4 && b[..3].eq_ignore_ascii_case(b"IMG") && (b[3] == b' ' || b[3] == b'\t')
}

/// Where an image header ends: after its newline, or after the fourth space of the reference
/// implementation's `IMG <handle> <file name> <size> ` (no newline; the bytes follow at once).
pub(super) fn header_end(b: &[u8]) -> Option<usize> {
    let nl = b.iter().position(|c| *c == b'\n');
    let mut spaces = b
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == b' ')
        .map(|(i, _)| i);
    if let Some(fourth) = spaces.nth(3)
        && nl.is_none_or(|n| fourth < n)
    {
        let fields: Vec<&[u8]> = b[..fourth].split(|c| *c == b' ').collect();
        let digits = |f: &[u8]| !f.is_empty() && f.iter().all(u8::is_ascii_digit);
        if fields.len() == 4 && digits(fields[3]) && !fields[2].is_empty() {
            return Some(fourth + 1);
        }
    }
    nl.map(|n| n + 1)
}

/// Whether a plugin's file name can be used: one plain component, not hidden.
pub(super) fn is_safe_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 200
        && !n.starts_with('.')
        && !n.contains(['/', '\\', '\0'])
        && !n.chars().any(char::is_control)
}

/// Gives `tmp` its final name in `dir`: `name`, or `name-1`, `name-2`... before the extension;
/// never replaces an existing file (a hard link fails if the name exists).
pub(super) fn place(tmp: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (name.to_string(), String::new()),
    };
    for i in 0..1000 {
        let candidate = if i == 0 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}-{i}{ext}"))
        };
        match std::fs::hard_link(tmp, &candidate) {
            Ok(()) => {
                std::fs::remove_file(tmp)?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // A file system without hard links (FAT, some network and FUSE ones).
            Err(_) => match place_by_reservation(tmp, &candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            },
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "1000 files of that name",
    ))
}

/// Without hard links: reserve the name with an empty file created exclusively (so nobody's
/// file is replaced), then rename the complete temporary file over our own reservation (an
/// atomic replace: the name never shows a partial file).
pub(super) fn place_by_reservation(tmp: &Path, candidate: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(candidate)?;
    std::fs::rename(tmp, candidate).inspect_err(|_| {
        let _ = std::fs::remove_file(candidate);
    })
}
