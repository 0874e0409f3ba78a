//! The SLCP wire codec: typed messages, byte-exact encoding and tolerant decoding, with no I/O.
//!
//! Architecture Invariant: nothing in this module touches a socket, a file or the clock, so it can
//! be tested exhaustively and never blocks the event loop.

use std::net::IpAddr;

use thiserror::Error;

mod decode;
pub mod forms;
mod handle;
pub(crate) mod quote;

pub use decode::{
    DecodeError, DecodeErrorKind, decode, decode_datagram, decode_datagram_forms, decode_line,
    decode_line_form,
};
pub use forms::{
    Form, Forms, MAX_PARTS, encode_knowusers_for, encode_msg, encode_msg_within, part_of,
    split_text, split_text_within,
};
pub use handle::{Handle, HandleError};
pub use quote::{is_quoted, needs_quotes, quote_into, unquote};

/// The largest datagram slcp sends, in bytes, terminator included.
pub const MAX_SEND: usize = 512;
/// The largest UDP payload slcp accepts (the IPv4 maximum).
pub const MAX_RECEIVE: usize = 65_507;
/// The longest handle, in characters.
pub const MAX_HANDLE_CHARS: usize = 32;

/// One entry of a KNOWUSERS answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The user's handle.
    pub handle: Handle,
    /// The address the discovery saw the user's datagrams come from.
    pub ip: IpAddr,
    /// The user's SLCP port.
    pub port: u16,
    /// Listed as away (`[AFK]` after the entry, the reference implementation's flag).
    pub away: bool,
}

impl UserEntry {
    /// An entry that is not marked away.
    pub fn new(handle: Handle, ip: IpAddr, port: u16) -> UserEntry {
        UserEntry {
            handle,
            ip,
            port,
            away: false,
        }
    }
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
    /// `IMG <handle> <size>` (or `IMG <handle> <file name> <size>`)
    Img {
        /// The sender (or, from some implementations, the recipient).
        handle: Handle,
        /// The image size in bytes.
        size: u64,
        /// The file name, in the reference implementation's `IMG <handle> <name> <size>`.
        name: Option<String>,
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
            quote::text_into(&mut out, text, false);
        }
        Message::Img { handle, size, name } => {
            out.push(' ');
            out.push_str(handle.as_str());
            if let Some(n) = name {
                out.push(' ');
                out.push_str(n);
            }
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
    encode_knowusers_for(entries, &Forms::default())
}

/// The longest text (in bytes) that fits a bare MSG from `handle`; used to tell the user the
/// real limit.
pub fn max_plain_text(handle: &Handle) -> usize {
    // "MSG " + handle + " " + "\n"
    MAX_SEND - (4 + handle.as_str().len() + 1 + 1)
}

#[cfg(test)]
mod tests;
