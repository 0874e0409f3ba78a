//! The SLCP wire codec: typed messages, byte-exact encoding and tolerant decoding, with no I/O.
//!
//! Architecture Invariant: nothing in this module touches a socket, a file or the clock, so it can
//! be tested exhaustively and never blocks the event loop.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

/// The largest datagram slcp sends, in bytes, terminator included.
pub const MAX_SEND: usize = 512;
/// The largest UDP payload slcp accepts (the IPv4 maximum).
pub const MAX_RECEIVE: usize = 65_507;
/// The longest handle, in characters.
pub const MAX_HANDLE_CHARS: usize = 32;

/// Why a string is not a valid handle.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandleError {
    /// The string is empty.
    #[error("a handle cannot be empty")]
    Empty,
    /// More than [`MAX_HANDLE_CHARS`] characters.
    #[error("a handle has at most 32 characters, this one has {0}")]
    TooLong(usize),
    /// A character that is not allowed.
    #[error("a handle cannot contain {0:?} (no whitespace, control characters, ',' or '\"')")]
    BadChar(char),
}

/// A user's handle; holding one proves it is valid on the wire (1 to 32 characters, no
/// whitespace, no control characters, no `,` and no `"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

impl Handle {
    /// Checks `s` and wraps it.
    pub fn new(s: &str) -> Result<Handle, HandleError> {
        if s.is_empty() {
            return Err(HandleError::Empty);
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == ',' || *c == '"')
        {
            return Err(HandleError::BadChar(c));
        }
        let n = s.chars().count();
        if n > MAX_HANDLE_CHARS {
            return Err(HandleError::TooLong(n));
        }
        Ok(Handle(s.to_owned()))
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Handle {
    type Err = HandleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Handle::new(s)
    }
}

/// One entry of a KNOWUSERS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The user's handle.
    pub handle: Handle,
    /// The address the discovery saw the user's datagrams come from.
    pub ip: IpAddr,
    /// The user's SLCP port.
    pub port: u16,
}

/// One SLCP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `JOIN <handle> <port>`
    Join {
        /// Who joins.
        handle: Handle,
        /// Where they receive.
        port: u16,
    },
    /// `LEAVE <handle>`
    Leave {
        /// Who leaves.
        handle: Handle,
    },
    /// `WHO`
    Who,
    /// `KNOWUSERS <h> <ip> <p>, ...`
    KnowUsers(Vec<UserEntry>),
    /// `MSG <handle> <text>`
    Msg {
        /// The sender (or, from some implementations, the recipient).
        handle: Handle,
        /// The text, unquoted.
        text: String,
    },
    /// `IMG <handle> <size>`
    Img {
        /// The sender (or, from some implementations, the recipient).
        handle: Handle,
        /// The image size in bytes.
        size: u64,
    },
    /// `AWAY <handle>`
    Away {
        /// Who is away.
        handle: Handle,
    },
    /// `BACK <handle>`
    Back {
        /// Who is back.
        handle: Handle,
    },
}

impl Message {
    /// The upper-case command word this message starts with on the wire.
    pub fn word(&self) -> &'static str {
        match self {
            Message::Join { .. } => "JOIN",
            Message::Leave { .. } => "LEAVE",
            Message::Who => "WHO",
            Message::KnowUsers(_) => "KNOWUSERS",
            Message::Msg { .. } => "MSG",
            Message::Img { .. } => "IMG",
            Message::Away { .. } => "AWAY",
            Message::Back { .. } => "BACK",
        }
    }
}

/// Why a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The datagram would exceed [`MAX_SEND`].
    #[error("message is {len} bytes on the wire, the limit is {limit} bytes")]
    TooLong {
        /// The encoded length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Encodes one message into exactly the bytes of SLCP.md, `\n` included.
///
/// A KNOWUSERS too long for one datagram is an error here; use [`encode_knowusers`] to split it.
pub fn encode(msg: &Message) -> Result<Vec<u8>, EncodeError> {
    let mut out = String::with_capacity(64);
    out.push_str(msg.word());
    match msg {
        Message::Join { handle, port } => {
            out.push(' ');
            out.push_str(handle.as_str());
            out.push(' ');
            out.push_str(&port.to_string());
        }
        Message::Leave { handle } | Message::Away { handle } | Message::Back { handle } => {
            out.push(' ');
            out.push_str(handle.as_str());
        }
        Message::Who => {}
        Message::KnowUsers(entries) => {
            for (i, e) in entries.iter().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                push_entry(&mut out, e);
            }
        }
        Message::Msg { handle, text } => {
            out.push(' ');
            out.push_str(handle.as_str());
            out.push(' ');
            quote_into(&mut out, text);
        }
        Message::Img { handle, size } => {
            out.push(' ');
            out.push_str(handle.as_str());
            out.push(' ');
            out.push_str(&size.to_string());
        }
    }
    out.push('\n');
    if out.len() > MAX_SEND {
        return Err(EncodeError::TooLong {
            len: out.len(),
            limit: MAX_SEND,
        });
    }
    Ok(out.into_bytes())
}

fn push_entry(out: &mut String, e: &UserEntry) {
    out.push_str(e.handle.as_str());
    out.push(' ');
    out.push_str(&e.ip.to_string());
    out.push(' ');
    out.push_str(&e.port.to_string());
}

/// Encodes a KNOWUSERS answer as as many datagrams as needed, each at most [`MAX_SEND`] bytes
/// and each a complete KNOWUSERS on its own. No entries give one bare `KNOWUSERS\n`.
pub fn encode_knowusers(entries: &[UserEntry]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = String::from("KNOWUSERS");
    let mut in_cur = 0usize;
    let mut entry = String::new();
    for e in entries {
        entry.clear();
        push_entry(&mut entry, e);
        let sep = if in_cur == 0 { 1 } else { 2 };
        // +1 for the final newline.
        if in_cur > 0 && cur.len() + sep + entry.len() + 1 > MAX_SEND {
            cur.push('\n');
            out.push(std::mem::replace(&mut cur, String::from("KNOWUSERS")).into_bytes());
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

/// The longest text (in bytes, before quoting) that fits a MSG from `handle` if it needs no
/// escapes; used to tell the user the real limit.
pub fn max_plain_text(handle: &Handle) -> usize {
    // "MSG " + handle + " " + quotes + "\n"
    MAX_SEND - (4 + handle.as_str().len() + 1 + 2 + 1)
}

/// Undoes [`quote_into`] when `raw` begins and ends with `"`; otherwise returns `raw` verbatim.
///
/// Unknown escapes and stray inner quotes are kept as they are: other implementations do not
/// always escape, and losing characters of a message would be worse than showing a backslash.
pub fn unquote(raw: &str) -> String {
    let inner = match raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .filter(|_| raw.len() >= 2)
    {
        Some(inner) => inner,
        None => return raw.to_owned(),
    };
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

/// The broad class of a decoding failure, for counters and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// Nothing but whitespace.
    Empty,
    /// Not UTF-8.
    InvalidUtf8,
    /// Larger than [`MAX_RECEIVE`].
    Oversize,
    /// The first word is no SLCP command.
    UnknownCommand,
    /// A required field is absent.
    MissingField,
    /// More fields than the command takes.
    ExtraField,
    /// A port that is not 1-65535.
    BadPort,
    /// A handle that breaks the handle rules.
    BadHandle,
    /// An IP address that does not parse.
    BadAddress,
    /// An image size that is not a whole number.
    BadSize,
}

/// Why received bytes are not an SLCP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Nothing but whitespace.
    #[error("empty message")]
    Empty,
    /// Not UTF-8.
    #[error("message is not valid UTF-8")]
    InvalidUtf8,
    /// Larger than [`MAX_RECEIVE`].
    #[error("message of {0} bytes exceeds {MAX_RECEIVE} bytes")]
    Oversize(usize),
    /// Unknown first word.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A required field is absent.
    #[error("{command}: missing {field}")]
    MissingField {
        /// The command word.
        command: &'static str,
        /// The field's name.
        field: &'static str,
    },
    /// Trailing fields.
    #[error("{command}: unexpected extra field {extra:?}")]
    ExtraField {
        /// The command word.
        command: &'static str,
        /// The first extra field.
        extra: String,
    },
    /// Bad port number.
    #[error("{0:?} is not a port (1-65535)")]
    BadPort(String),
    /// Bad handle.
    #[error("bad handle {found:?}: {why}")]
    BadHandle {
        /// What was received.
        found: String,
        /// The rule it breaks.
        why: HandleError,
    },
    /// Bad IP address.
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    /// Bad image size.
    #[error("{0:?} is not an image size in bytes")]
    BadSize(String),
}

impl DecodeError {
    /// The class of this error.
    pub fn kind(&self) -> DecodeErrorKind {
        match self {
            DecodeError::Empty => DecodeErrorKind::Empty,
            DecodeError::InvalidUtf8 => DecodeErrorKind::InvalidUtf8,
            DecodeError::Oversize(_) => DecodeErrorKind::Oversize,
            DecodeError::UnknownCommand(_) => DecodeErrorKind::UnknownCommand,
            DecodeError::MissingField { .. } => DecodeErrorKind::MissingField,
            DecodeError::ExtraField { .. } => DecodeErrorKind::ExtraField,
            DecodeError::BadPort(_) => DecodeErrorKind::BadPort,
            DecodeError::BadHandle { .. } => DecodeErrorKind::BadHandle,
            DecodeError::BadAddress(_) => DecodeErrorKind::BadAddress,
            DecodeError::BadSize(_) => DecodeErrorKind::BadSize,
        }
    }
}

/// Decodes a datagram that holds exactly one message (terminator optional, `\r\n` accepted).
///
/// A datagram with several lines is decoded by [`decode_datagram`]; here every line after the
/// first non-empty one makes the whole datagram an [`DecodeError::ExtraField`].
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut all = decode_datagram(bytes).into_iter();
    let first = all.next().unwrap_or(Err(DecodeError::Empty))?;
    match all.next() {
        None => Ok(first),
        Some(_) => Err(DecodeError::ExtraField {
            command: first.word(),
            extra: "second line".into(),
        }),
    }
}

/// Decodes every message of one datagram (or one TCP header line): one result per non-empty
/// line, so a bad line does not hide the good ones beside it. An empty datagram gives one
/// [`DecodeError::Empty`].
pub fn decode_datagram(bytes: &[u8]) -> Vec<Result<Message, DecodeError>> {
    if bytes.len() > MAX_RECEIVE {
        return vec![Err(DecodeError::Oversize(bytes.len()))];
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => return vec![Err(DecodeError::InvalidUtf8)],
    };
    let out: Vec<_> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .map(decode_line)
        .collect();
    if out.is_empty() {
        vec![Err(DecodeError::Empty)]
    } else {
        out
    }
}

/// Decodes one line without its terminator.
pub fn decode_line(line: &str) -> Result<Message, DecodeError> {
    let line = line.trim_start_matches([' ', '\t']);
    let (word, rest) = split_word(line);
    if word.is_empty() {
        return Err(DecodeError::Empty);
    }
    let upper = word.to_ascii_uppercase();
    match upper.as_str() {
        "JOIN" => {
            let mut f = Fields::new("JOIN", rest);
            let handle = f.handle()?;
            let port = f.port()?;
            f.end()?;
            Ok(Message::Join { handle, port })
        }
        "LEAVE" => one_handle("LEAVE", rest).map(|handle| Message::Leave { handle }),
        "AWAY" => one_handle("AWAY", rest).map(|handle| Message::Away { handle }),
        "BACK" => one_handle("BACK", rest).map(|handle| Message::Back { handle }),
        "WHO" => {
            Fields::new("WHO", rest).end()?;
            Ok(Message::Who)
        }
        "KNOWUSERS" | "KNOWNUSERS" => decode_knowusers(rest),
        "MSG" => {
            let mut f = Fields::new("MSG", rest);
            let handle = f.handle()?;
            let raw = f.text();
            if raw.is_empty() {
                return Err(DecodeError::MissingField {
                    command: "MSG",
                    field: "text",
                });
            }
            Ok(Message::Msg {
                handle,
                text: unquote(raw),
            })
        }
        "IMG" => {
            let mut f = Fields::new("IMG", rest);
            let handle = f.handle()?;
            let raw = f.next("size")?;
            let size = parse_digits::<u64>(raw).ok_or_else(|| DecodeError::BadSize(raw.into()))?;
            f.end()?;
            Ok(Message::Img { handle, size })
        }
        _ => Err(DecodeError::UnknownCommand(truncate(word, 40))),
    }
}

fn one_handle(command: &'static str, rest: &str) -> Result<Handle, DecodeError> {
    let mut f = Fields::new(command, rest);
    let h = f.handle()?;
    f.end()?;
    Ok(h)
}

fn decode_knowusers(rest: &str) -> Result<Message, DecodeError> {
    let mut entries = Vec::new();
    for part in rest.split(',') {
        if part.trim().is_empty() {
            // A trailing comma, or nothing at all.
            continue;
        }
        let mut f = Fields::new("KNOWUSERS", part);
        let handle = f.handle()?;
        let raw_ip = f.next("address")?;
        let ip = raw_ip
            .parse::<IpAddr>()
            .map_err(|_| DecodeError::BadAddress(truncate(raw_ip, 60)))?;
        let port = f.port()?;
        f.end()?;
        entries.push(UserEntry { handle, ip, port });
    }
    Ok(Message::KnowUsers(entries))
}

fn split_word(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// ASCII digits only: `u16::from_str` would accept a leading `+`, which no implementation sends.
fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A cursor over the space-separated fields of one message.
struct Fields<'a> {
    command: &'static str,
    rest: &'a str,
}

impl<'a> Fields<'a> {
    fn new(command: &'static str, rest: &'a str) -> Self {
        Fields { command, rest }
    }

    fn next(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let s = self.rest.trim_start_matches([' ', '\t']);
        let (w, rest) = split_word(s);
        if w.is_empty() {
            return Err(DecodeError::MissingField {
                command: self.command,
                field,
            });
        }
        self.rest = rest;
        Ok(w)
    }

    fn handle(&mut self) -> Result<Handle, DecodeError> {
        let raw = self.next("handle")?;
        Handle::new(raw).map_err(|why| DecodeError::BadHandle {
            found: truncate(raw, 40),
            why,
        })
    }

    fn port(&mut self) -> Result<u16, DecodeError> {
        let raw = self.next("port")?;
        match parse_digits::<u16>(raw) {
            Some(p) if p != 0 => Ok(p),
            _ => Err(DecodeError::BadPort(truncate(raw, 20))),
        }
    }

    /// Everything after the separator that follows the previous field, verbatim.
    fn text(&mut self) -> &'a str {
        std::mem::take(&mut self.rest)
    }

    fn end(&mut self) -> Result<(), DecodeError> {
        let s = self.rest.trim_matches([' ', '\t']);
        if s.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::ExtraField {
                command: self.command,
                extra: truncate(split_word(s).0, 40),
            })
        }
    }
}

#[cfg(test)]
mod tests;
