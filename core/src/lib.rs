//! slcp-core: the SLCP codec and the machinery of the chat client.
//!
//! The [`codec`] is pure; everything that does I/O builds on it.

pub mod codec;

pub use codec::{Handle, Message};
