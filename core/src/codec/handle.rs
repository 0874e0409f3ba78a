//! Handles: the names users go by, valid on the wire by construction.

use std::fmt;

use thiserror::Error;

use unicode_normalization::UnicodeNormalization;

use super::MAX_HANDLE_CHARS;
use crate::render;

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
    /// An invisible or bidirectional-control character: two handles would look the same.
    #[error(
        "a handle cannot contain the invisible character U+{:04X} (zero-width, format or direction control)",
        *.0 as u32
    )]
    Invisible(char),
}

/// A user's handle; holding one proves it is valid on the wire (1 to 32 characters, no
/// whitespace, no control characters, no `,` and no `"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(compact_str::CompactString);

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
        if let Some(c) = s
            .chars()
            .find(|c| render::is_invisible(*c) || render::is_bidi_control(*c))
        {
            return Err(HandleError::Invisible(c));
        }
        let n = s.chars().count();
        if n > MAX_HANDLE_CHARS {
            return Err(HandleError::TooLong(n));
        }
        Ok(Handle(compact_str::CompactString::new(s)))
    }

    /// The handle as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The handle made a tame file-name part: separators and dots become `_`, so no handle can
    /// climb out of a directory or hide a file (the runtime file, both histories use it).
    pub fn file_stem(handle: &str) -> String {
        handle
            .chars()
            .map(|c| {
                if matches!(c, '/' | '\\' | '.') {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    }

    /// What the handle looks like, for telling look-alikes apart: the UTS 39 skeleton of its
    /// NFC form. `bob`, `bоb` (Cyrillic о) and `b\u{f6}b` vs `bo\u{308}b` share one.
    pub fn skeleton(&self) -> String {
        let nfc: String = self.0.nfc().collect();
        unicode_security::confusable_detection::skeleton(&nfc).collect()
    }

    /// Whether a human could take `self` for `other` (and they are not the same handle).
    pub fn confusable_with(&self, other: &Handle) -> bool {
        self != other && self.skeleton() == other.skeleton()
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
