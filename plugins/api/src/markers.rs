//! Automatic replies: slcp's `[auto] ` prefix and the markers other SLCP implementations put in
//! front of theirs, so that no two clients answer each other's automatic replies forever.

/// The prefix of slcp's own automatic replies.
pub const AUTO_PREFIX: &str = "[auto] ";

/// Markers (compared without regard to case) that begin an automatic reply: slcp's and those
/// of other implementations (the reference implementation writes `(Autoreply): ...`).
pub const AUTO_MARKERS: &[&str] = &[
    "[auto]",
    "(auto)",
    "(autoreply)",
    "[autoreply]",
    "(auto-reply)",
    "[auto-reply]",
    "autoreply:",
    "auto-reply:",
    "(automatic reply)",
    "[automatic reply]",
];

/// Whether `text` is an automatic reply (of slcp or of another implementation).
pub fn is_auto_reply(text: &str) -> bool {
    let t = text.trim_start();
    AUTO_MARKERS.iter().any(|m| {
        t.len() >= m.len() && t.is_char_boundary(m.len()) && t[..m.len()].eq_ignore_ascii_case(m)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_of_every_implementation_are_recognised() {
        for t in [
            "[auto] I am away",
            "(Autoreply): Ich bin gerade nicht da",
            "  (AUTOREPLY) x",
            "Auto-Reply: gone",
        ] {
            assert!(is_auto_reply(t), "{t}");
        }
        for t in [
            "hello",
            "auto",
            "[au",
            "(Auto)matic? no: (Auto) is a marker",
        ] {
            assert_eq!(is_auto_reply(t), t.starts_with("(Auto)"), "{t}");
        }
        assert!(!is_auto_reply("ü"));
    }
}
