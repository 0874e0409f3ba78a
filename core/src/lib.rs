//! slcp-core: the SLCP codec and the machinery of the chat client.
//!
//! The [`codec`] is pure; [`client::chat`] is the client's logic, also pure; [`client::run`]
//! and the discovery daemon are the shells that do the I/O.

pub mod client;
pub mod codec;
pub mod e2e;
pub mod ext;
pub mod history;
pub mod ipc;
pub mod logger;
pub mod net;
pub mod plugin;
pub mod render;

pub use codec::{Handle, Message};
