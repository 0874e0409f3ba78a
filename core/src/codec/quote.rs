//! MSG text on the wire: bare by default, quoted only where bare text cannot carry it.

/// Whether `text` must travel quoted: bare text cannot hold a line break (the line would end),
/// cannot be empty (the field would be missing), and one that itself begins and ends with `"`
/// would lose those quotes at the receiver. Everything else goes bare, as SLCP.md's "Text" says.
pub fn needs_quotes(text: &str) -> bool {
    text.is_empty() || text.contains(['\n', '\r']) || is_quoted(text)
}

/// Appends `text` as SLCP.md says: bare unless [`needs_quotes`], quoted when `always`.
pub(crate) fn text_into(out: &mut String, text: &str, always: bool) {
    if always || needs_quotes(text) {
        quote_into(out, text);
    } else {
        out.push_str(text);
    }
}

/// Puts `text` in double quotes, escaping `"`, `\` and line breaks as SLCP.md says.
pub fn quote_into(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether `raw` is a quoted text (begins and ends with `"`, at least two characters).
pub fn is_quoted(raw: &str) -> bool {
    raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"')
}

/// Undoes [`quote_into`] when `raw` begins and ends with `"`; otherwise returns `raw` verbatim.
///
/// Unknown escapes and stray inner quotes are kept as they are: other implementations do not
/// always escape, and losing characters of a message would be worse than showing a backslash.
pub fn unquote(raw: &str) -> String {
    if !is_quoted(raw) {
        return raw.to_owned();
    }
    let inner = &raw[1..raw.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}
