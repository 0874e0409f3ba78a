//! The name a received file is saved under: the sender's name, made safe. No folder part, no
//! leading dot, no control, bidirectional or invisible character, a bounded length with the
//! extension kept; never an empty name.

use crate::render::is_unsafe;

/// The longest name kept, in characters.
pub const MAX_NAME_CHARS: usize = 120;
/// The longest extension kept when a long name is cut.
const MAX_EXT_CHARS: usize = 12;

/// `name` as a safe file name in one folder.
///
/// `../../etc/passwd` gives `passwd` (only the last component counts, as browsers do with a
/// download's name), `.bashrc` gives `bashrc`, `a\u{202e}gpj.exe` gives `agpj.exe` (the
/// override that made it look like `a.jpg` is gone, so what is shown is what it is).
pub fn sanitize(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|c| !is_unsafe(*c) && *c != '\0')
        .collect();
    let clean = clean.trim_matches(|c: char| c == '.' || c.is_whitespace());
    let clean = if clean.is_empty() { "file" } else { clean };
    if clean.chars().count() <= MAX_NAME_CHARS {
        return clean.to_owned();
    }
    let (stem, ext) = match clean.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.chars().count() <= MAX_EXT_CHARS => (s, Some(e)),
        _ => (clean, None),
    };
    let keep = MAX_NAME_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
    let mut out: String = stem.chars().take(keep).collect();
    if let Some(e) = ext {
        out.push('.');
        out.push_str(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_safe_ones() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize(".bashrc"), "bashrc");
        assert_eq!(sanitize("a\u{202e}gpj.exe"), "agpj.exe");
        assert_eq!(sanitize("x\u{1b}]0;t\u{7}.txt"), "x]0;t.txt");
        assert_eq!(sanitize(".."), "file");
        assert_eq!(sanitize(""), "file");
        assert_eq!(sanitize("dir/"), "file");
        assert_eq!(sanitize("notes.txt"), "notes.txt");
        assert_eq!(sanitize("Grüße 🚀.pdf"), "Grüße 🚀.pdf");
        let long = format!("{}.tar.gz", "n".repeat(300));
        let s = sanitize(&long);
        assert_eq!(s.chars().count(), MAX_NAME_CHARS);
        assert!(s.ends_with(".gz"), "{s}");
        let no_ext = "é".repeat(300);
        assert_eq!(sanitize(&no_ext).chars().count(), MAX_NAME_CHARS);
    }
}
