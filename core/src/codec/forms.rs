//! Dialects: the forms one peer uses on the wire, learned from what it sends (or set in the
//! config), and the encoders that speak them back.
//!
//! SLCP.md's rule is "strict by default, adaptive per peer": an empty [`Forms`] is exactly
//! SLCP.md's forms; each flag is one variant of "Dialects seen in the wild" that a peer showed.

use std::fmt;

use super::{Handle, MAX_SEND, UserEntry, quote};

/// What one received line showed about its sender's forms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Form {
    /// A MSG whose text came in quotes.
    pub quoted: bool,
    /// A MSG whose text came bare.
    pub bare: bool,
    /// Spelled `KNOWNUSERS`.
    pub knownusers: bool,
    /// KNOWUSERS entries written `handle:ip:port`.
    pub colon: bool,
    /// `<handle>: <text>`, no command word.
    pub no_command: bool,
}

/// The forms a peer (or a host) uses; [`Forms::default`] is SLCP.md's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Forms {
    /// Puts the addressee, not the sender, in the handle field of MSG/IMG.
    pub recipient: bool,
    /// Quotes every text (and strips the quotes of what it receives).
    pub quoted: bool,
    /// Reads (and writes) `KNOWNUSERS`.
    pub knownusers: bool,
    /// Reads (and writes) KNOWUSERS entries as `handle:ip:port`.
    pub colon: bool,
    /// Has no UDP socket: lines go to it over TCP.
    pub tcp: bool,
    /// Keeps only the last KNOWUSERS datagram it receives and reads at most 1 024 bytes.
    pub one_datagram: bool,
    /// Sends no line terminator.
    pub no_newline: bool,
    /// Sends images as `IMG <handle> <file name> <size> ` on TCP, with no announcement.
    pub named_img: bool,
    /// Sends images as `IMG <file name> <size>` and waits for `READY` before the bytes.
    pub ready_img: bool,
}

/// The config and display words of each flag, in the order they print.
pub const FORM_WORDS: &[(&str, &str)] = &[
    (
        "recipient",
        "puts the addressee in the handle field of MSG/IMG",
    ),
    ("quoted", "quotes every text"),
    ("knownusers", "spells KNOWNUSERS"),
    ("colon", "writes KNOWUSERS entries as handle:ip:port"),
    ("tcp", "has no UDP socket; send to it over TCP"),
    (
        "one-datagram",
        "keeps only the last KNOWUSERS datagram (up to 1 024 bytes)",
    ),
    ("no-newline", "sends no line terminator"),
    ("named-img", "IMG <handle> <file name> <size> headers"),
    ("ready-img", "IMG <file name> <size>, then waits for READY"),
];

impl Forms {
    fn slot(&mut self, word: &str) -> Option<&mut bool> {
        Some(match word {
            "recipient" => &mut self.recipient,
            "quoted" => &mut self.quoted,
            "knownusers" => &mut self.knownusers,
            "colon" => &mut self.colon,
            "tcp" => &mut self.tcp,
            "one-datagram" => &mut self.one_datagram,
            "no-newline" => &mut self.no_newline,
            "named-img" => &mut self.named_img,
            "ready-img" => &mut self.ready_img,
            _ => return None,
        })
    }

    /// Parses config words (`["recipient", "quoted"]`); `"slcp"` alone is the default. The
    /// error names the first unknown word.
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Forms, String> {
        let mut f = Forms::default();
        for w in words {
            let w = w.trim();
            if w == "slcp" || w.is_empty() {
                continue;
            }
            if w == "reference" {
                // The reference implementation's whole set (SLCP.md, "R").
                f.no_newline = true;
                f.one_datagram = true;
                f.named_img = true;
                continue;
            }
            *f.slot(w).ok_or_else(|| format!("unknown form {w:?}"))? = true;
        }
        Ok(f)
    }

    /// The flags that are set, as config words.
    pub fn words(&self) -> Vec<&'static str> {
        let mut me = *self;
        FORM_WORDS
            .iter()
            .filter(|(w, _)| me.slot(w).is_some_and(|b| *b))
            .map(|(w, _)| *w)
            .collect()
    }

    /// `self` with every flag of `other` added.
    pub fn or(mut self, other: Forms) -> Forms {
        for (w, _) in FORM_WORDS {
            let mut o = other;
            let on = o.slot(w).is_some_and(|b| *b);
            if on && let Some(b) = self.slot(w) {
                *b = true;
            }
        }
        self
    }

    /// Takes in what one line showed; returns whether anything changed.
    pub fn learn(&mut self, f: &Form) -> bool {
        let before = *self;
        if f.quoted {
            self.quoted = true;
        } else if f.bare {
            self.quoted = false;
        }
        self.knownusers |= f.knownusers;
        self.colon |= f.colon;
        before != *self
    }
}

impl fmt::Display for Forms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.words();
        if w.is_empty() {
            f.write_str("slcp")
        } else {
            f.write_str(&w.join(","))
        }
    }
}

/// `MSG <handle> <text>` in `forms`: the handle field holds `to` for a peer that puts the
/// addressee there (else `from`); the text is quoted for a peer that quotes, else bare unless it
/// needs quotes; no terminator for a peer that sends none. `None` when over [`MAX_SEND`].
pub fn encode_msg(from: &Handle, to: &Handle, text: &str, forms: &Forms) -> Option<Vec<u8>> {
    encode_msg_within(from, to, text, forms, MAX_SEND)
}

/// [`encode_msg`] with another limit than [`MAX_SEND`] (a line that travels encrypted has less
/// room: the datagram carries it with a header, a tag and base64).
pub fn encode_msg_within(
    from: &Handle,
    to: &Handle,
    text: &str,
    forms: &Forms,
    limit: usize,
) -> Option<Vec<u8>> {
    let mut out = String::with_capacity(text.len() + 48);
    out.push_str("MSG ");
    out.push_str(if forms.recipient { to } else { from }.as_str());
    out.push(' ');
    quote::text_into(&mut out, text, forms.quoted);
    if !forms.no_newline || forms.tcp {
        out.push('\n');
    }
    (out.len() <= limit).then(|| out.into_bytes())
}

/// The entries of a WHO answer for a reader with `forms`: `KNOWNUSERS` or `KNOWUSERS`, entries
/// `h ip p` or `h:ip:p`; one datagram of at most 1 024 bytes (the entries that fit, in order)
/// for a reader that keeps only the last (with `[AFK]` after away users, as it writes them),
/// otherwise as many 512-byte datagrams as needed.
pub fn encode_knowusers_for(entries: &[UserEntry], forms: &Forms) -> Vec<Vec<u8>> {
    let word = if forms.knownusers {
        "KNOWNUSERS"
    } else {
        "KNOWUSERS"
    };
    let limit = if forms.one_datagram { 1024 } else { MAX_SEND };
    let mut out = Vec::new();
    let mut cur = String::from(word);
    let mut in_cur = 0usize;
    let mut entry = String::new();
    for e in entries {
        entry.clear();
        entry.push_str(e.handle.as_str());
        let sep = if forms.colon { ':' } else { ' ' };
        entry.push(sep);
        entry.push_str(&e.ip.to_string());
        entry.push(sep);
        entry.push_str(&e.port.to_string());
        if e.away && forms.one_datagram {
            // The reference implementation lists (and reads) away users this way; a strict
            // reader would drop the whole datagram for it, so only it gets the flag.
            entry.push_str(" [AFK]");
        }
        let sep_len = if in_cur == 0 { 1 } else { 2 };
        // +1 for the final newline.
        if in_cur > 0 && cur.len() + sep_len + entry.len() + 1 > limit {
            if forms.one_datagram {
                break;
            }
            cur.push('\n');
            out.push(std::mem::replace(&mut cur, String::from(word)).into_bytes());
            in_cur = 0;
        }
        cur.push_str(if in_cur == 0 { " " } else { ", " });
        cur.push_str(&entry);
        in_cur += 1;
    }
    cur.push('\n');
    out.push(cur.into_bytes());
    out
}

/// At most this many parts for one long text.
pub const MAX_PARTS: usize = 99;

/// Splits a text too long for one MSG into parts `(1/n) ...`, `(2/n) ...`, each of which fits
/// one datagram from `from` to `to` in `forms`; on character boundaries, at a blank when one is
/// near. `None` when it would take more than [`MAX_PARTS`].
pub fn split_text(from: &Handle, to: &Handle, text: &str, forms: &Forms) -> Option<Vec<String>> {
    split_text_within(from, to, text, forms, MAX_SEND)
}

/// [`split_text`] for lines of at most `limit` bytes.
pub fn split_text_within(
    from: &Handle,
    to: &Handle,
    text: &str,
    forms: &Forms,
    limit: usize,
) -> Option<Vec<String>> {
    let fits = |s: &str| encode_msg_within(from, to, s, forms, limit).is_some();
    // Room for the text: a datagram minus the rest of the line and the longest prefix, and
    // minus the quotes a peer that quotes (or a line break) needs; escapes are counted below.
    let handle = from.as_str().len().max(to.as_str().len());
    let room = limit.saturating_sub(4 + handle + 1 + 1 + "(99/99) ".len() + 2);
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut used = 0;
    for c in text.chars() {
        let cost = match c {
            '"' | '\\' | '\n' => 2,
            c => c.len_utf8(),
        };
        if used + cost > room {
            // Break at the last blank of the part's last fifth, if there is one.
            let cut = cur
                .char_indices()
                .rfind(|(i, ch)| *ch == ' ' && *i > cur.len() * 4 / 5)
                .map(|(i, _)| i + 1)
                .unwrap_or(cur.len());
            let rest = cur.split_off(cut);
            parts.push(std::mem::replace(&mut cur, rest));
            used = cur
                .chars()
                .map(|c| {
                    if matches!(c, '"' | '\\' | '\n') {
                        2
                    } else {
                        c.len_utf8()
                    }
                })
                .sum();
            if parts.len() >= MAX_PARTS {
                return None;
            }
        }
        cur.push(c);
        used += cost;
    }
    parts.push(cur);
    let n = parts.len();
    let out: Vec<String> = parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| format!("({}/{n}) {p}", i + 1))
        .collect();
    out.iter().all(|p| fits(p)).then_some(out)
}

/// `(k/n) rest` of a split text: (k, n, rest), with 1 <= k <= n and 2 <= n <= [`MAX_PARTS`].
pub fn part_of(text: &str) -> Option<(usize, usize, &str)> {
    let inner = text.strip_prefix('(')?;
    let (k, r) = inner.split_once('/')?;
    let (n, rest) = r.split_once(") ")?;
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(k) || !all_digits(n) {
        return None;
    }
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    ((1..=n).contains(&k) && (2..=MAX_PARTS).contains(&n)).then_some((k, n, rest))
}
