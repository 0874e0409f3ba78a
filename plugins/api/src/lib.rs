//! slcp-plugin-api: the C ABI shared by the slcp plugin host and plugins.

/// The version of the plugin ABI this crate describes; the host refuses any other.
pub const ABI_VERSION: u32 = 1;
