//! Tolerant decoding: every variant of SLCP.md's "Tolerance" and "Dialects seen in the wild",
//! each line decoded on its own, with what it showed of its sender's forms.

use std::net::IpAddr;

use thiserror::Error;

use super::{Form, Handle, HandleError, MAX_RECEIVE, Message, UserEntry, is_quoted, unquote};

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

/// Decodes every message of one datagram (or one TCP line): one result per non-empty line, so
/// a bad line does not hide the good ones beside it. An empty datagram gives one
/// [`DecodeError::Empty`].
pub fn decode_datagram(bytes: &[u8]) -> Vec<Result<Message, DecodeError>> {
    decode_datagram_forms(bytes)
        .into_iter()
        .map(|r| r.map(|(m, _)| m))
        .collect()
}

/// [`decode_datagram`], with what each line showed of its sender's forms.
pub fn decode_datagram_forms(bytes: &[u8]) -> Vec<Result<(Message, Form), DecodeError>> {
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
        .map(decode_line_form)
        .collect();
    if out.is_empty() {
        vec![Err(DecodeError::Empty)]
    } else {
        out
    }
}

/// Decodes one line without its terminator.
pub fn decode_line(line: &str) -> Result<Message, DecodeError> {
    decode_line_form(line).map(|(m, _)| m)
}

/// Decodes one line without its terminator, with what it showed of its sender's forms.
pub fn decode_line_form(line: &str) -> Result<(Message, Form), DecodeError> {
    let line = line.trim_start_matches([' ', '\t']);
    let (word, rest) = split_word(line);
    if word.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut form = Form::default();
    let upper = word.to_ascii_uppercase();
    let m = match upper.as_str() {
        "JOIN" => {
            let mut f = Fields::new("JOIN", rest);
            let handle = f.handle()?;
            let port = f.port()?;
            f.end()?;
            Message::Join { handle, port }
        }
        "LEAVE" => Message::Leave {
            handle: one_handle("LEAVE", rest)?,
        },
        "AWAY" => Message::Away {
            handle: one_handle("AWAY", rest)?,
        },
        "BACK" => Message::Back {
            handle: one_handle("BACK", rest)?,
        },
        "WHO" => {
            Fields::new("WHO", rest).end()?;
            Message::Who
        }
        "KNOWUSERS" | "KNOWNUSERS" => {
            form.knownusers = upper == "KNOWNUSERS";
            decode_knowusers(rest, &mut form)?
        }
        "MSG" => {
            let mut f = Fields::new("MSG", rest);
            let handle = f.handle()?;
            msg(handle, f.text(), &mut form)?
        }
        "IMG" => {
            let mut f = Fields::new("IMG", rest);
            let handle = f.handle()?;
            let raw = f.next("size")?;
            // The reference implementation puts a file name before the size.
            let (name, raw) = match f.peek() {
                Some(size) => (Some(raw.to_owned()), size),
                None => (None, raw),
            };
            if name.is_some() {
                f.next("size")?;
            }
            let size = parse_digits::<u64>(raw).ok_or_else(|| DecodeError::BadSize(raw.into()))?;
            f.end()?;
            Message::Img { handle, size, name }
        }
        // `<handle>: <text>`, with no command word (a client that sends only that over TCP).
        _ if word.len() > 1 && word.ends_with(':') => {
            let h = &word[..word.len() - 1];
            let handle = Handle::new(h).map_err(|why| DecodeError::BadHandle {
                found: truncate(h, 40),
                why,
            })?;
            form.no_command = true;
            msg(handle, rest, &mut form)?
        }
        _ => return Err(DecodeError::UnknownCommand(truncate(word, 40))),
    };
    Ok((m, form))
}

fn msg(handle: Handle, raw: &str, form: &mut Form) -> Result<Message, DecodeError> {
    if raw.is_empty() {
        return Err(DecodeError::MissingField {
            command: "MSG",
            field: "text",
        });
    }
    if is_quoted(raw) {
        form.quoted = true;
    } else {
        form.bare = true;
    }
    Ok(Message::Msg {
        handle,
        text: unquote(raw),
    })
}

fn one_handle(command: &'static str, rest: &str) -> Result<Handle, DecodeError> {
    let mut f = Fields::new(command, rest);
    let h = f.handle()?;
    f.end()?;
    Ok(h)
}

/// Flags other implementations write after an entry to say the user is away.
fn is_away_flag(w: &str) -> bool {
    let inner = w
        .trim_start_matches(['[', '('])
        .trim_end_matches([']', ')']);
    ["AFK", "AWAY"]
        .iter()
        .any(|f| inner.eq_ignore_ascii_case(f))
}

fn decode_knowusers(rest: &str, form: &mut Form) -> Result<Message, DecodeError> {
    let mut entries = Vec::new();
    for part in rest.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() {
            // A trailing comma, or nothing at all.
            continue;
        }
        // `handle:ip:port`: the handle cannot hold ':'... it can, so split at the first ':' of
        // the first word and the last ':' (an IPv6 address holds colons too).
        let (first, flags) = split_word(part);
        let colon =
            first.matches(':').count() >= 2 && !flags.contains(|c: char| c.is_ascii_digit());
        let (handle, raw_ip, raw_port, flags) = if colon {
            form.colon = true;
            let (h, r) = first.split_once(':').unwrap_or((first, ""));
            let (ip, p) = r.rsplit_once(':').unwrap_or((r, ""));
            (h, ip, p, flags)
        } else {
            let mut f = Fields::new("KNOWUSERS", part);
            let h = f.next("handle")?;
            let ip = f.next("address")?;
            let p = f.next("port")?;
            (h, ip, p, f.text())
        };
        let handle = Handle::new(handle).map_err(|why| DecodeError::BadHandle {
            found: truncate(handle, 40),
            why,
        })?;
        let ip = raw_ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| DecodeError::BadAddress(truncate(raw_ip, 60)))?;
        let port = match parse_digits::<u16>(raw_port) {
            Some(p) if p != 0 => p,
            _ => return Err(DecodeError::BadPort(truncate(raw_port, 20))),
        };
        let mut away = false;
        for w in flags.split([' ', '\t']).filter(|w| !w.is_empty()) {
            if is_away_flag(w) {
                away = true;
            } else {
                return Err(DecodeError::ExtraField {
                    command: "KNOWUSERS",
                    extra: truncate(w, 40),
                });
            }
        }
        entries.push(UserEntry {
            handle,
            ip,
            port,
            away,
        });
    }
    Ok(Message::KnowUsers(entries))
}

pub(super) fn split_word(s: &str) -> (&str, &str) {
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

    /// The next field, if any, without taking it.
    fn peek(&self) -> Option<&'a str> {
        let (w, _) = split_word(self.rest.trim_start_matches([' ', '\t']));
        (!w.is_empty()).then_some(w)
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
