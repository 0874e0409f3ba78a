//! The one gate for foreign text: every string from the network or a plugin (message texts,
//! handles, file names, a plugin's lines) passes through [`render`] before it reaches a terminal
//! or the piped output, so no peer can move the cursor, retitle the terminal, write the
//! clipboard, reorder a line or hide a character.
//!
//! Modelled on OpenSSH's `stravis`: what could act on a terminal is shown as an escape instead.

/// Whether `c` is a bidirectional control (it can reorder what is shown around it).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` is invisible: zero-width, a format character, a filler that draws nothing.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}'
        | '\u{206a}'..='\u{206f}' | '\u{3164}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}' | '\u{1bca0}'..='\u{1bca3}' | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e007f}')
}

/// Whether `c` acts on a terminal: C0 and C1 controls (ESC among them), DEL, and the line and
/// paragraph separators.
pub fn is_terminal_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` must be escaped when shown.
pub fn is_unsafe(c: char) -> bool {
    is_terminal_control(c) || is_bidi_control(c) || is_invisible(c)
}

fn is_emoji(c: char) -> bool {
    matches!(c, '\u{2600}'..='\u{27bf}' | '\u{1f000}'..='\u{1faff}')
}

/// `s` with every unsafe character shown as an escape: `\\` for a backslash, `\n`, `\r`, `\t`,
/// `\e` for ESC, `\u{hex}` for the rest (`\u{7}` for BEL, `\u{202e}` for RIGHT-TO-LEFT
/// OVERRIDE, `\u{200b}` for ZERO WIDTH SPACE). A zero-width joiner between two emoji (a family,
/// a flag) is kept: it joins pictures, it hides nothing. Everything else is unchanged.
pub fn render(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{200d}'
                if i > 0
                    && is_emoji(chars[i - 1])
                    && chars.get(i + 1).copied().is_some_and(is_emoji) =>
            {
                out.push(c)
            }
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The first character of `s` that [`render`] would escape (a backslash, a tab and a line
/// break are fine in a text one sends); used to refuse outgoing text that would act on the
/// receiver's terminal.
pub fn first_unsafe(s: &str) -> Option<char> {
    s.chars()
        .find(|c| !matches!(c, '\n' | '\t') && is_unsafe(*c) && *c != '\u{200d}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn attacks_are_shown_not_run() {
        let cases = [
            ("\u{1b}]0;title\u{7}", "\\e]0;title\\u{7}"),
            (
                "\u{1b}]52;c;cm0gLXJmIH4=\u{7}",
                "\\e]52;c;cm0gLXJmIH4=\\u{7}",
            ),
            ("\u{1b}[1A\u{1b}[2Kgone", "\\e[1A\\e[2Kgone"),
            ("bob\rmallory", "bob\\rmallory"),
            ("a\u{0}b\u{7f}c\u{9b}d", "a\\u{0}b\\u{7f}c\\u{9b}d"),
            ("evil\u{202e}gpj.exe", "evil\\u{202e}gpj.exe"),
            ("b\u{200b}ob", "b\\u{200b}ob"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("C:\\path", "C:\\\\path"),
            ("Grüße \"quoted\" 🚀", "Grüße \"quoted\" 🚀"),
            ("👨\u{200d}👩\u{200d}👧", "👨\u{200d}👩\u{200d}👧"),
            ("a\u{200d}b", "a\\u{200d}b"),
        ];
        for (input, shown) in cases {
            assert_eq!(render(input), shown, "{input:?}");
        }
        assert_eq!(first_unsafe("hi\tthere\nfriend"), None);
        assert_eq!(first_unsafe("hi \u{1b}[2J"), Some('\u{1b}'));
    }

    proptest! {
        #[test]
        fn nothing_unsafe_survives(s in any::<String>()) {
            let r = render(&s);
            let bad = r.chars().any(|c| is_terminal_control(c) || is_bidi_control(c));
            prop_assert!(!bad);
            let zwj = '\u{200d}';
            prop_assert!(!r.chars().any(|c| is_invisible(c) && c != zwj));
            // Only escapes are added: removing them gives back the safe characters in order.
            let kept: String = s.chars().filter(|c| !is_unsafe(*c) && *c != '\\').collect();
            let visible: String = r.chars().filter(|c| *c != '\\').collect();
            let mut it = visible.chars();
            prop_assert!(kept.chars().all(|k| it.any(|v| v == k)));
        }

        #[test]
        fn printable_text_is_unchanged(s in "[a-zA-Z0-9 äöüß€🚀.,:;!?'\"()-]{0,40}") {
            prop_assert_eq!(render(&s), s);
        }
    }
}
