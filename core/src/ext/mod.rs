//! slcp's extensions to SLCP, between slcp peers only: the `SLCPX` hello, group messages
//! (`GMSG`) and the header of a file transfer (`FILE`, on TCP). Pure: no I/O, no clock.
//!
//! PROTOCOL.md (beside README) is their specification, with an example of each. A plain SLCP
//! peer never receives any of them but the one hello, and drops that as an unknown command.

use crate::codec::{self, Handle, MAX_SEND};

pub mod names;

/// The extension protocol's version, the second field of the hello.
pub const VERSION: u32 = 1;
/// The most members a group message names (and a saved group holds).
pub const MAX_MEMBERS: usize = 32;
/// The longest file name a FILE header carries, in bytes (the receiver reads a header of at
/// most 600 bytes, and cuts the name shorter anyway).
const MAX_WIRE_NAME: usize = 400;
/// The most extension names a hello is read for.
const MAX_EXTS: usize = 16;

/// What a peer said it understands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exts {
    /// `file`: FILE transfers with names and resume.
    pub file: bool,
    /// `group`: GMSG.
    pub group: bool,
    /// `e2e`: Noise sessions (SLCPH, SLCPE).
    pub e2e: bool,
}

impl Exts {
    /// Everything this build speaks.
    pub const ALL: Exts = Exts {
        file: true,
        group: true,
        e2e: true,
    };

    /// `file,group`: the list a hello carries.
    pub fn list(&self) -> String {
        let mut v = Vec::new();
        if self.file {
            v.push("file");
        }
        if self.group {
            v.push("group");
        }
        if self.e2e {
            v.push("e2e");
        }
        v.join(",")
    }
}

/// Who a group message went to, as the sender named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// A named group (`@team`): its name and its members (the sender among them).
    Named(String, Vec<Handle>),
    /// Several people at once, no name (`MSG bob,carol`): its members (the sender among them).
    List(Vec<Handle>),
    /// Everyone present (`MSG *`).
    All,
}

impl To {
    /// How a prompt shows it: `@team`, `bob,carol`, `*`.
    pub fn label(&self) -> String {
        match self {
            To::Named(n, _) => format!("@{n}"),
            To::List(m) => m.iter().map(Handle::as_str).collect::<Vec<_>>().join(","),
            To::All => "*".into(),
        }
    }

    /// The members named (none for everyone).
    pub fn members(&self) -> &[Handle] {
        match self {
            To::Named(_, m) | To::List(m) => m,
            To::All => &[],
        }
    }
}

/// One extension message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ext {
    /// `SLCPX <handle> <version> <ext>,<ext>,...`
    Hello {
        /// The sender's claim (the address decides who it is).
        handle: Handle,
        /// Its extension protocol version.
        version: u32,
        /// What it speaks (unknown names are ignored).
        exts: Exts,
    },
    /// `GMSG <handle> <group> <members> <text>`
    Group {
        /// The sender's claim.
        handle: Handle,
        /// Who it went to.
        to: To,
        /// The text, unquoted.
        text: String,
    },
}

/// Whether a datagram is an extension message (its first word is one of ours).
pub fn is_ext(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SLCPX ") || bytes.starts_with(b"GMSG ")
}

/// Decodes one extension datagram; `None` when it is not a well-formed one.
pub fn decode(bytes: &[u8]) -> Option<Ext> {
    let s = std::str::from_utf8(bytes).ok()?;
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    if s.contains('\n') {
        return None;
    }
    let (word, rest) = s.split_once(' ')?;
    match word {
        "SLCPX" => {
            let mut f = rest.split(' ');
            let handle = Handle::new(f.next()?).ok()?;
            let version = f.next()?.parse().ok()?;
            let list = f.next().unwrap_or("");
            if f.next().is_some() {
                return None;
            }
            let mut exts = Exts::default();
            for e in list.split(',').take(MAX_EXTS) {
                match e {
                    "file" => exts.file = true,
                    "group" => exts.group = true,
                    "e2e" => exts.e2e = true,
                    _ => {}
                }
            }
            Some(Ext::Hello {
                handle,
                version,
                exts,
            })
        }
        "GMSG" => {
            let (h, rest) = rest.split_once(' ')?;
            let (group, rest) = rest.split_once(' ')?;
            let (members, text) = rest.split_once(' ')?;
            let handle = Handle::new(h).ok()?;
            let to = if group == "*" && members == "*" {
                To::All
            } else {
                let mut m = Vec::new();
                for x in members.split(',') {
                    if m.len() == MAX_MEMBERS {
                        return None;
                    }
                    m.push(Handle::new(x).ok()?);
                }
                match group.strip_prefix('@') {
                    Some(n) => To::Named(Handle::new(n).ok()?.to_string(), m),
                    None if group == "+" => To::List(m),
                    None => return None,
                }
            };
            Some(Ext::Group {
                handle,
                to,
                text: codec::unquote(text),
            })
        }
        _ => None,
    }
}

/// `SLCPX <me> 1 file,group\n`.
pub fn hello(me: &Handle, exts: Exts) -> Vec<u8> {
    format!("SLCPX {me} {VERSION} {}\n", exts.list()).into_bytes()
}

/// A GMSG datagram, or `None` when it would exceed 512 bytes (the sender then falls back to
/// plain MSG, which can be split into parts).
pub fn group_msg(me: &Handle, to: &To, text: &str) -> Option<Vec<u8>> {
    let mut out = format!("GMSG {me} ");
    match to {
        To::All => out.push_str("* *"),
        To::Named(_, m) | To::List(m) => {
            match to {
                To::Named(n, _) => {
                    out.push('@');
                    out.push_str(n);
                }
                _ => out.push('+'),
            }
            out.push(' ');
            let names: Vec<&str> = m.iter().map(Handle::as_str).collect();
            out.push_str(&names.join(","));
        }
    }
    out.push(' ');
    codec::quote::text_into(&mut out, text, false);
    out.push('\n');
    (out.len() <= MAX_SEND).then(|| out.into_bytes())
}

/// The header of a file transfer on TCP: `FILE <me> <size> <id> <name>\n`. The name is the rest
/// of the line; characters a line cannot carry become `_` (the receiver sanitises it again).
pub fn file_header(me: &Handle, size: u64, id: &str, name: &str) -> Vec<u8> {
    let mut out = String::new();
    for c in name.chars().map(|c| if c.is_control() { '_' } else { c }) {
        if out.len() + c.len_utf8() > MAX_WIRE_NAME {
            break;
        }
        out.push(c);
    }
    let name = out;
    format!("FILE {me} {size} {id} {name}\n").into_bytes()
}

/// A parsed FILE header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The sender's claim.
    pub handle: Handle,
    /// The whole file's size.
    pub size: u64,
    /// The sender's identity of this file (same file, same id: what makes resuming safe).
    pub id: String,
    /// The name as sent (not yet sanitised).
    pub name: String,
}

/// Parses a FILE header line (terminator excluded).
pub fn parse_file_header(line: &str) -> Result<FileHeader, String> {
    let rest = line
        .strip_prefix("FILE ")
        .ok_or("not a FILE header")?
        .trim_end_matches('\r');
    let mut f = rest.splitn(4, ' ');
    let (h, size, id, name) = (f.next(), f.next(), f.next(), f.next());
    let (Some(h), Some(size), Some(id), Some(name)) = (h, size, id, name) else {
        return Err("a FILE header needs <handle> <size> <id> <name>".into());
    };
    let handle = Handle::new(h).map_err(|e| format!("bad handle in FILE header: {e}"))?;
    let size = size
        .parse()
        .map_err(|_| format!("bad size {size:?} in FILE header"))?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("bad id in FILE header (1-64 hex digits)".into());
    }
    Ok(FileHeader {
        handle,
        size,
        id: id.to_ascii_lowercase(),
        name: name.to_owned(),
    })
}

/// The receiver's answer to a FILE header: go on from `offset`.
pub fn file_ok(offset: u64) -> Vec<u8> {
    format!("FILEOK {offset}\n").into_bytes()
}

/// The receiver's answer to a FILE header: refused, and why (one line).
pub fn file_no(why: &str) -> Vec<u8> {
    let why: String = why.chars().filter(|c| !c.is_control()).take(400).collect();
    format!("FILENO {why}\n").into_bytes()
}

/// What the receiver answered: `Ok(offset)` or `Err(reason)`; `None` while the line is not
/// complete.
pub fn parse_file_answer(buf: &[u8]) -> Option<Result<u64, String>> {
    let end = buf.iter().position(|b| *b == b'\n')?;
    let line = String::from_utf8_lossy(&buf[..end]);
    let line = line.trim_end_matches('\r');
    Some(if let Some(o) = line.strip_prefix("FILEOK ") {
        o.parse().map_err(|_| format!("a bad answer: {line:?}"))
    } else if let Some(why) = line.strip_prefix("FILENO ") {
        Err(why.to_owned())
    } else {
        Err(format!("a bad answer: {line:?}"))
    })
}

#[cfg(test)]
mod tests;
