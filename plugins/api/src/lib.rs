//! slcp-plugin-api: the C ABI between the slcp client and its plugins, and the safe side of it.
//!
//! A plugin is a `cdylib` that implements [`Plugin`] and calls [`export_plugin!`]; it writes no
//! `unsafe`. The macro exports one symbol, `slcp_plugin_v1`, returning a `&'static` [`PluginDecl`]:
//! the ABI version and struct size (checked by the host before anything else), the name, version,
//! commands, and four `extern "C"` entry points. Every entry point runs the plugin inside
//! `catch_unwind`, so a panic becomes an error code, never an abort across the boundary.
//!
//! Memory rule: only borrowed byte slices ([`RStr`]) cross the boundary, valid for the duration of
//! the call. Whatever the host hands back (a config value, the handle) is copied by the plugin
//! through a sink callback; nothing allocated on one side is ever freed on the other.
//!
//! Architecture Invariant: this crate depends on std only, and its `unsafe` is confined to turning
//! the raw boundary types into safe ones.

#![allow(unsafe_code)] // The plugin boundary itself: every block says why it is sound.

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

mod abi;
pub use abi::*;

// ---- the safe side --------------------------------------------------------------------------

/// The completion kind of a command argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// A known handle.
    Handle,
    /// A file path.
    Path,
    /// Free text.
    Text,
}

/// A command a plugin provides.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// The word, upper case.
    pub word: &'static str,
    /// Usage line.
    pub usage: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Completion kind of each argument.
    pub args: &'static [ArgKind],
}

/// Something that happened in the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A message arrived.
    Message {
        /// Sender.
        from: &'a str,
        /// Text.
        text: &'a str,
    },
    /// A user appeared at `addr`.
    Join {
        /// Handle.
        handle: &'a str,
        /// `ip:port`.
        addr: &'a str,
    },
    /// A user left.
    Leave {
        /// Handle.
        handle: &'a str,
    },
    /// A user is away.
    Away {
        /// Handle.
        handle: &'a str,
    },
    /// A user is back.
    Back {
        /// Handle.
        handle: &'a str,
    },
    /// We went away.
    SelfAway,
    /// We came back.
    SelfBack,
    /// Our handle changed.
    SelfHandle {
        /// The new handle.
        handle: &'a str,
    },
    /// An image was announced.
    ImageAnnounced {
        /// Sender.
        from: &'a str,
        /// Size in bytes.
        size: u64,
    },
    /// An image was saved.
    ImageReceived {
        /// Sender.
        from: &'a str,
        /// Where it was saved.
        path: &'a str,
        /// Size in bytes.
        size: u64,
    },
}

/// A question the host asks plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query<'a> {
    /// May this image be received? Answer `Ok(_)` to accept, `Err(reason)` to refuse.
    ImageOffer {
        /// Sender.
        from: &'a str,
        /// Size in bytes.
        size: u64,
    },
    /// The file name for a received image (the host saves it in `imagepath`).
    ImageName {
        /// Sender.
        from: &'a str,
        /// Size in bytes.
        size: u64,
        /// Its first bytes (up to 16), for the magic number.
        head: &'a [u8],
    },
}

/// Log levels for [`Host::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Errors.
    Error = 1,
    /// Warnings.
    Warn = 2,
    /// Information.
    Info = 3,
    /// Debugging.
    Debug = 4,
}

/// The host, as a plugin sees it during one call.
pub struct Host<'a> {
    api: &'a HostApi,
}

extern "C" fn put_string(sink: *mut c_void, value: RStr) {
    // SAFETY: `sink` is the `&mut Option<String>` passed by `Host::fetch` below, alive for the
    // host call, and `value` is valid for the duration of this callback.
    let (slot, s) = unsafe { (&mut *(sink as *mut Option<String>), value.to_str()) };
    *slot = s.map(str::to_owned);
}

impl<'a> Host<'a> {
    /// Wraps the host table.
    ///
    /// # Safety
    /// `api` must be the valid, non-null pointer the host passed to this call.
    pub unsafe fn from_raw(api: *const HostApi) -> Option<Host<'a>> {
        // SAFETY: per the contract, `api` is null or valid for 'a.
        let api = unsafe { api.as_ref()? };
        (api.abi_version == ABI_VERSION && api.struct_size as usize == size_of::<HostApi>())
            .then_some(Host { api })
    }

    fn fetch(&self, f: impl FnOnce(*mut c_void, SinkFn) -> i32) -> (i32, Option<String>) {
        let mut out: Option<String> = None;
        let code = f(&mut out as *mut Option<String> as *mut c_void, put_string);
        (code, out)
    }

    /// Sends a message to `to` as an ordinary MSG.
    pub fn send_msg(&self, to: &str, text: &str) -> Result<(), String> {
        let (code, why) = self.fetch(|sink, put| {
            (self.api.send_msg)(self.api.ctx, RStr::new(to), RStr::new(text), sink, put)
        });
        if code == status::OK {
            Ok(())
        } else {
            Err(why.unwrap_or_else(|| format!("sending to {to} failed")))
        }
    }

    /// Prints a line for the user.
    pub fn print(&self, line: &str) {
        (self.api.print)(self.api.ctx, RStr::new(line));
    }

    /// Logs a line (to the client's log, never the transcript).
    pub fn log(&self, level: Level, line: &str) {
        (self.api.log)(self.api.ctx, level as u32, RStr::new(line));
    }

    /// The value of `key`: `handle`, `away`, or a config key.
    pub fn get(&self, key: &str) -> Option<String> {
        let (code, v) =
            self.fetch(|sink, put| (self.api.get)(self.api.ctx, RStr::new(key), sink, put));
        if code == status::OK { v } else { None }
    }

    /// Our handle.
    pub fn handle(&self) -> String {
        self.get("handle").unwrap_or_default()
    }

    /// Whether we are away.
    pub fn is_away(&self) -> bool {
        self.get("away").as_deref() == Some("true")
    }

    /// Sends the image file at `path` to `to`; the command's outcome is reported when the
    /// transfer ends (size, time and rate, or why it failed).
    pub fn send_image(&self, to: &str, path: &str) -> Result<(), String> {
        let (code, why) = self.fetch(|sink, put| {
            (self.api.send_image)(self.api.ctx, RStr::new(to), RStr::new(path), sink, put)
        });
        if code == status::OK {
            Ok(())
        } else {
            Err(why.unwrap_or_else(|| format!("cannot send {path} to {to}")))
        }
    }

    /// Sets config `key` to `value` (TOML syntax, e.g. `"\"text\""`) and saves the config file.
    pub fn set_config(&self, key: &str, value: &str) -> Result<(), String> {
        let (code, why) = self.fetch(|sink, put| {
            (self.api.set_config)(self.api.ctx, RStr::new(key), RStr::new(value), sink, put)
        });
        if code == status::OK {
            Ok(())
        } else {
            Err(why.unwrap_or_else(|| format!("cannot set {key}")))
        }
    }
}

/// `s` as a TOML basic string, for [`Host::set_config`] of a text key.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub mod args;
pub mod markers;
pub mod names;

/// What a plugin implements. The host calls it on the client's event-loop thread only.
pub trait Plugin: Sized + 'static {
    /// The plugin's name, e.g. `autoreply`.
    const NAME: &'static str;
    /// Its version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// The commands it provides.
    const COMMANDS: &'static [Command];

    /// Makes the plugin when the client starts.
    fn create(host: &Host<'_>) -> Self;

    /// Runs one of [`Plugin::COMMANDS`]; `args` is the rest of the line after the word.
    /// Print the outcome with [`Host::print`]; an `Err` is shown to the user as the error.
    fn command(&mut self, host: &Host<'_>, word: &str, args: &str) -> Result<(), String>;

    /// Takes an event. The default ignores it.
    fn event(&mut self, host: &Host<'_>, event: &Event<'_>) {
        let _ = (host, event);
    }

    /// Answers a query; `None` (the default) leaves it to other plugins.
    fn query(&mut self, host: &Host<'_>, query: &Query<'_>) -> Option<Result<String, String>> {
        let _ = (host, query);
        None
    }
}

/// The declaration a plugin's `slcp_plugin_v1` returns, with the storage its pointers point into.
/// Built once per plugin (by [`declaration`]) and never dropped.
pub struct Declaration {
    decl: PluginDecl,
    _commands: Vec<CommandDecl>,
    _args: Vec<Vec<u32>>,
}

// SAFETY: every pointer in a `Declaration` points into `'static` strings or into the heap buffers
// the `Declaration` owns, which are never mutated after construction; sharing it is sharing
// immutable data.
unsafe impl Send for Declaration {}
// SAFETY: as above.
unsafe impl Sync for Declaration {}

/// Builds (once) the declaration of `P`. Used by [`export_plugin!`]; `abi` is [`ABI_VERSION`]
/// except in the test fixture that checks the host refuses another.
pub fn declaration<P: Plugin>(slot: &'static OnceLock<Declaration>, abi: u32) -> *const PluginDecl {
    let d = slot.get_or_init(|| {
        let args: Vec<Vec<u32>> = P::COMMANDS
            .iter()
            .map(|c| {
                c.args
                    .iter()
                    .map(|a| match a {
                        ArgKind::Handle => arg::HANDLE,
                        ArgKind::Path => arg::PATH,
                        ArgKind::Text => arg::TEXT,
                    })
                    .collect()
            })
            .collect();
        let commands: Vec<CommandDecl> = P::COMMANDS
            .iter()
            .zip(&args)
            .map(|(c, a)| CommandDecl {
                word: RStr::new(c.word),
                usage: RStr::new(c.usage),
                help: RStr::new(c.help),
                args: a.as_ptr(),
                nargs: a.len(),
            })
            .collect();
        Declaration {
            decl: PluginDecl {
                abi_version: abi,
                struct_size: size_of::<PluginDecl>() as u32,
                name: RStr::new(P::NAME),
                version: RStr::new(P::VERSION),
                commands: commands.as_ptr(),
                ncommands: commands.len(),
                create: Some(create::<P>),
                on_command: Some(on_command::<P>),
                on_event: Some(on_event::<P>),
                on_query: Some(on_query::<P>),
                destroy: Some(destroy::<P>),
            },
            _commands: commands,
            _args: args,
        }
    });
    &d.decl
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

extern "C" fn create<P: Plugin>(host: *const HostApi) -> *mut c_void {
    let r = catch_unwind(|| {
        // SAFETY: the host passes a valid HostApi for the duration of this call.
        let host = unsafe { Host::from_raw(host) }?;
        Some(Box::into_raw(Box::new(P::create(&host))) as *mut c_void)
    });
    r.ok().flatten().unwrap_or(std::ptr::null_mut())
}

extern "C" fn on_command<P: Plugin>(
    inst: *mut c_void,
    host: *const HostApi,
    word: RStr,
    args: RStr,
) -> i32 {
    // SAFETY: the host passes the HostApi and the strings valid for this call.
    let (host, word, args) = match unsafe { (Host::from_raw(host), word.to_str(), args.to_str()) } {
        (Some(h), Some(w), Some(a)) => (h, w, a),
        _ => return status::BAD_INPUT,
    };
    // SAFETY: `inst` came from `create::<P>` (a `Box<P>`), the host calls one entry point at a
    // time on one thread, and only `destroy` frees it.
    let Some(plugin) = (unsafe { (inst as *mut P).as_mut() }) else {
        return status::BAD_INPUT;
    };
    match catch_unwind(AssertUnwindSafe(|| plugin.command(&host, word, args))) {
        Ok(Ok(())) => status::OK,
        Ok(Err(e)) => {
            (host.api.fail)(host.api.ctx, RStr::new(&e));
            status::ERROR
        }
        Err(p) => {
            let why = format!("the plugin {} panicked: {}", P::NAME, panic_text(&*p));
            host.log(Level::Error, &why);
            (host.api.fail)(host.api.ctx, RStr::new(&why));
            status::PANIC
        }
    }
}

extern "C" fn on_event<P: Plugin>(
    inst: *mut c_void,
    host: *const HostApi,
    ev: *const EventC,
) -> i32 {
    // SAFETY: the host passes the HostApi and the event valid for this call.
    let (host, ev) = match unsafe { (Host::from_raw(host), ev.as_ref()) } {
        (Some(h), Some(e)) => (h, e),
        _ => return status::BAD_INPUT,
    };
    // SAFETY: the event's strings are valid for this call.
    let (handle, text) = match unsafe { (ev.handle.to_str(), ev.text.to_str()) } {
        (Some(h), Some(t)) => (h, t),
        _ => return status::BAD_INPUT,
    };
    let event = match ev.kind {
        event_kind::MESSAGE => Event::Message { from: handle, text },
        event_kind::JOIN => Event::Join { handle, addr: text },
        event_kind::LEAVE => Event::Leave { handle },
        event_kind::AWAY => Event::Away { handle },
        event_kind::BACK => Event::Back { handle },
        event_kind::SELF_AWAY => Event::SelfAway,
        event_kind::SELF_BACK => Event::SelfBack,
        event_kind::SELF_HANDLE => Event::SelfHandle { handle },
        event_kind::IMAGE_ANNOUNCED => Event::ImageAnnounced {
            from: handle,
            size: ev.size,
        },
        event_kind::IMAGE_RECEIVED => Event::ImageReceived {
            from: handle,
            path: text,
            size: ev.size,
        },
        // A newer host may send kinds this plugin does not know: not an error.
        _ => return status::OK,
    };
    // SAFETY: as in `on_command`.
    let Some(plugin) = (unsafe { (inst as *mut P).as_mut() }) else {
        return status::BAD_INPUT;
    };
    match catch_unwind(AssertUnwindSafe(|| plugin.event(&host, &event))) {
        Ok(()) => status::OK,
        Err(p) => {
            host.log(
                Level::Error,
                &format!("{} panicked on an event: {}", P::NAME, panic_text(&*p)),
            );
            status::PANIC
        }
    }
}

extern "C" fn on_query<P: Plugin>(
    inst: *mut c_void,
    host: *const HostApi,
    q: *const QueryC,
    sink: *mut c_void,
    put: SinkFn,
) -> i32 {
    // SAFETY: the host passes the HostApi and the query valid for this call.
    let (host, q) = match unsafe { (Host::from_raw(host), q.as_ref()) } {
        (Some(h), Some(q)) => (h, q),
        _ => return status::BAD_INPUT,
    };
    // SAFETY: the query's string is valid for this call.
    let Some(handle) = (unsafe { q.handle.to_str() }) else {
        return status::BAD_INPUT;
    };
    let head: &[u8] = if q.nbytes == 0 || q.bytes.is_null() {
        &[]
    } else {
        // SAFETY: `bytes` points to `nbytes` readable bytes for this call.
        unsafe { std::slice::from_raw_parts(q.bytes, q.nbytes) }
    };
    let query = match q.kind {
        query_kind::IMAGE_OFFER => Query::ImageOffer {
            from: handle,
            size: q.size,
        },
        query_kind::IMAGE_NAME => Query::ImageName {
            from: handle,
            size: q.size,
            head,
        },
        _ => return status::NOT_MINE,
    };
    // SAFETY: as in `on_command`.
    let Some(plugin) = (unsafe { (inst as *mut P).as_mut() }) else {
        return status::BAD_INPUT;
    };
    match catch_unwind(AssertUnwindSafe(|| plugin.query(&host, &query))) {
        Ok(None) => status::NOT_MINE,
        Ok(Some(Ok(answer))) => {
            put(sink, RStr::new(&answer));
            status::OK
        }
        Ok(Some(Err(why))) => {
            put(sink, RStr::new(&why));
            status::ERROR
        }
        Err(p) => {
            let why = format!("{} panicked on a query: {}", P::NAME, panic_text(&*p));
            host.log(Level::Error, &why);
            status::PANIC
        }
    }
}

extern "C" fn destroy<P: Plugin>(inst: *mut c_void) {
    if inst.is_null() {
        return;
    }
    // SAFETY: `inst` is the `Box<P>` made by `create::<P>`, given back exactly once.
    let b = unsafe { Box::from_raw(inst as *mut P) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(b)));
}

/// Exports `$t` (a type implementing [`Plugin`]) as an slcp plugin: defines the
/// `slcp_plugin_v1` symbol. Use it once per plugin crate, at the top level.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        $crate::export_plugin!($t, $crate::ABI_VERSION);
    };
    ($t:ty, $abi:expr) => {
        /// The plugin's entry point, looked up by the slcp host.
        #[unsafe(no_mangle)]
        pub extern "C" fn slcp_plugin_v1() -> *const $crate::PluginDecl {
            static DECL: ::std::sync::OnceLock<$crate::Declaration> = ::std::sync::OnceLock::new();
            // A panic must not cross into the host (it would abort it): null instead.
            ::std::panic::catch_unwind(|| $crate::declaration::<$t>(&DECL, $abi))
                .unwrap_or(::std::ptr::null())
        }
    };
}
