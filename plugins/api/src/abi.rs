//! The C side of the plugin ABI: the `#[repr(C)]` structs, codes and function types that cross
//! the boundary, re-exported at the crate root. The safe side is in lib.rs.

use std::ffi::c_void;

/// The plugin ABI version this crate describes. The host refuses a plugin with any other.
pub const ABI_VERSION: u32 = 1;

/// The name of the symbol every plugin exports, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL: &[u8] = b"slcp_plugin_v1\0";

/// A borrowed UTF-8 string: a pointer and a length, valid for the duration of one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RStr {
    /// The first byte (may dangle when `len` is 0).
    pub ptr: *const u8,
    /// The length in bytes.
    pub len: usize,
}

impl RStr {
    /// Borrows `s`; the result is valid while `s` is.
    pub const fn new(s: &str) -> RStr {
        RStr {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The string, if the bytes are UTF-8.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay unchanged for `'a`.
    pub unsafe fn to_str<'a>(self) -> Option<&'a str> {
        if self.len == 0 {
            return Some("");
        }
        if self.ptr.is_null() {
            return None;
        }
        // SAFETY: the caller guarantees `ptr..ptr+len` is readable for 'a.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        std::str::from_utf8(bytes).ok()
    }
}

/// Completion kinds of command arguments, as `u32` on the wire.
pub mod arg {
    /// A known handle.
    pub const HANDLE: u32 = 1;
    /// A file path.
    pub const PATH: u32 = 2;
    /// Free text.
    pub const TEXT: u32 = 3;
}

/// Event kinds, as `u32` on the wire.
pub mod event_kind {
    /// A message arrived: `handle` = sender, `text` = text.
    pub const MESSAGE: u32 = 1;
    /// A user appeared: `handle`, `text` = `ip:port`.
    pub const JOIN: u32 = 2;
    /// A user left or expired: `handle`.
    pub const LEAVE: u32 = 3;
    /// A user is away: `handle`.
    pub const AWAY: u32 = 4;
    /// A user is back: `handle`.
    pub const BACK: u32 = 5;
    /// We went away.
    pub const SELF_AWAY: u32 = 6;
    /// We came back.
    pub const SELF_BACK: u32 = 7;
    /// Our handle changed: `handle` = the new one.
    pub const SELF_HANDLE: u32 = 8;
    /// An image was announced: `handle` = sender, `size`.
    pub const IMAGE_ANNOUNCED: u32 = 9;
    /// An image was saved: `handle` = sender, `text` = path, `size`.
    pub const IMAGE_RECEIVED: u32 = 10;
}

/// Return codes of the entry points and host callbacks.
pub mod status {
    /// Done.
    pub const OK: i32 = 0;
    /// Failed; the message went through `fail`.
    pub const ERROR: i32 = 1;
    /// The plugin panicked; the host logs it and reports an error.
    pub const PANIC: i32 = 2;
    /// A string was not UTF-8 or a pointer was null.
    pub const BAD_INPUT: i32 = 3;
    /// `on_query`: this plugin does not answer that query.
    pub const NOT_MINE: i32 = 4;
}

/// Query kinds for `on_query`, as `u32` on the wire.
pub mod query_kind {
    /// May this image be received? `handle` = sender, `size`. Answer OK to accept, ERROR (with
    /// the reason) to refuse.
    pub const IMAGE_OFFER: u32 = 1;
    /// The file name for a received image: `handle` = sender, `size`, `bytes` = its first bytes
    /// (up to 16). Answer OK with the name.
    pub const IMAGE_NAME: u32 = 2;
}

/// A question the host asks plugins, borrowed for the duration of `on_query`.
#[repr(C)]
#[derive(Debug)]
pub struct QueryC {
    /// One of [`query_kind`].
    pub kind: u32,
    /// The handle it is about.
    pub handle: RStr,
    /// A size in bytes.
    pub size: u64,
    /// Raw bytes, by kind.
    pub bytes: *const u8,
    /// How many.
    pub nbytes: usize,
}

/// One command a plugin provides.
#[repr(C)]
#[derive(Debug)]
pub struct CommandDecl {
    /// The command word, upper case.
    pub word: RStr,
    /// Usage, e.g. `DICE <handle> [NdM]`.
    pub usage: RStr,
    /// One line of help.
    pub help: RStr,
    /// The completion kind of each argument ([`arg`]).
    pub args: *const u32,
    /// How many arguments.
    pub nargs: usize,
}

/// One event, borrowed for the duration of `on_event`.
#[repr(C)]
#[derive(Debug)]
pub struct EventC {
    /// One of [`event_kind`].
    pub kind: u32,
    /// The handle the event is about.
    pub handle: RStr,
    /// Text, address or path, by kind.
    pub text: RStr,
    /// A size in bytes, by kind.
    pub size: u64,
}

/// A sink the host writes a copied value into.
pub type SinkFn = extern "C" fn(sink: *mut c_void, value: RStr);

/// What the host offers a plugin. Valid for the duration of the call it is passed to.
#[repr(C)]
pub struct HostApi {
    /// [`ABI_VERSION`] of the host.
    pub abi_version: u32,
    /// `size_of::<HostApi>()` of the host.
    pub struct_size: u32,
    /// The host's context for this call; passed back to every callback.
    pub ctx: *mut c_void,
    /// Sends `text` as a MSG to `to`; [`status::OK`], or [`status::ERROR`] with the reason given
    /// to `sink`.
    pub send_msg: extern "C" fn(
        ctx: *mut c_void,
        to: RStr,
        text: RStr,
        sink: *mut c_void,
        put: SinkFn,
    ) -> i32,
    /// Prints a line for the user (the outcome of the current command, or a notice).
    pub print: extern "C" fn(ctx: *mut c_void, line: RStr),
    /// Says why the current command failed (one line).
    pub fail: extern "C" fn(ctx: *mut c_void, line: RStr),
    /// Logs a line at `level` (1 error, 2 warn, 3 info, 4 debug).
    pub log: extern "C" fn(ctx: *mut c_void, level: u32, line: RStr),
    /// Copies the value of `key` into `sink`; [`status::ERROR`] when there is none. Keys:
    /// `handle`, `away` (`true`/`false`), and every config key.
    pub get: extern "C" fn(ctx: *mut c_void, key: RStr, sink: *mut c_void, put: SinkFn) -> i32,
    /// Sets config `key` to `value` (TOML syntax) and saves it in the config file; the reason of
    /// a failure is given to `sink`.
    pub set_config: extern "C" fn(
        ctx: *mut c_void,
        key: RStr,
        value: RStr,
        sink: *mut c_void,
        put: SinkFn,
    ) -> i32,
    /// Sends the image file at `path` to `to` (UDP announcement, then TCP); the command's outcome
    /// is reported when the transfer ends. The reason of a refusal is given to `sink`.
    pub send_image: extern "C" fn(
        ctx: *mut c_void,
        to: RStr,
        path: RStr,
        sink: *mut c_void,
        put: SinkFn,
    ) -> i32,
}

/// What `slcp_plugin_v1` returns.
#[repr(C)]
pub struct PluginDecl {
    /// [`ABI_VERSION`] the plugin was built with; checked first.
    pub abi_version: u32,
    /// `size_of::<PluginDecl>()` of the plugin; checked second.
    pub struct_size: u32,
    /// The plugin's name.
    pub name: RStr,
    /// Its version.
    pub version: RStr,
    /// Its commands.
    pub commands: *const CommandDecl,
    /// How many.
    pub ncommands: usize,
    /// Makes an instance; null on failure. (Every entry point is an `Option`: the same layout
    /// as a nullable C function pointer, so a declaration with a null one is refused at load
    /// instead of being called.)
    pub create: Option<extern "C" fn(host: *const HostApi) -> *mut c_void>,
    /// Runs a command.
    pub on_command: Option<
        extern "C" fn(inst: *mut c_void, host: *const HostApi, word: RStr, args: RStr) -> i32,
    >,
    /// Takes an event.
    pub on_event:
        Option<extern "C" fn(inst: *mut c_void, host: *const HostApi, ev: *const EventC) -> i32>,
    /// Answers a query ([`query_kind`]): [`status::OK`] with the answer given to `sink`,
    /// [`status::ERROR`] with a reason, or [`status::NOT_MINE`].
    pub on_query: Option<QueryFn>,
    /// Drops an instance made by `create`.
    pub destroy: Option<extern "C" fn(inst: *mut c_void)>,
}

/// The type of [`PluginDecl::on_query`].
pub type QueryFn = extern "C" fn(
    inst: *mut c_void,
    host: *const HostApi,
    q: *const QueryC,
    sink: *mut c_void,
    put: SinkFn,
) -> i32;
