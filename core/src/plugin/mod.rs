//! The plugin host: finds plugin libraries, checks their ABI, and calls them on the event-loop
//! thread through the C ABI of `slcp-plugin-api`.
//!
//! Architecture Invariant: this module holds the host's `unsafe` (loading libraries and crossing
//! the C ABI), and no other module of slcp-core does. Libraries are never unloaded (dlclose and
//! Rust thread-locals do not mix); whatever a plugin returns is copied before the call ends.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};

use log::{debug, error, info, warn};
use slcp_plugin_api::{
    ABI_VERSION, EventC, HostApi, QueryC, RStr, SinkFn, event_kind, query_kind, status,
};

use crate::codec::{self, Handle, Message};
use crate::ipc::{CommandInfo, Event};

mod elf;
mod load;
pub use load::{Bundled, scan};

/// A plugin library that passed the checks.
pub struct Found {
    /// The file.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its commands.
    pub commands: Vec<CommandInfo>,
    /// Linked into the binary rather than loaded from `path`.
    pub builtin: bool,
    entries: load::Entries,
}

/// A file of a plugin folder that is not a usable plugin, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The file (or folder).
    pub path: PathBuf,
    /// One line.
    pub why: String,
}

/// An event for the plugins: what the prompts hear, plus what only plugins care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginEvent {
    /// An event of the chat, as the prompts get it.
    Chat(Event),
    /// We went away.
    SelfAway,
    /// We came back.
    SelfBack,
    /// An image was announced by UDP.
    ImageAnnounced {
        /// Sender.
        from: String,
        /// Size.
        size: u64,
    },
}

/// What the client state offers a plugin call.
pub struct CallEnv<'a> {
    /// Our handle.
    pub handle: &'a str,
    /// Whether we are away.
    pub away: bool,
    /// Whether a handle is a known peer.
    pub known: &'a dyn Fn(&str) -> bool,
    /// The config values by key (TOML syntax for non-strings, plain text for strings).
    pub config: &'a mut BTreeMap<String, String>,
    /// Saves a config key in the config file; the error is one line.
    pub persist: &'a mut dyn FnMut(&str, &str) -> Result<(), String>,
}

/// What a plugin call produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallOut {
    /// Lines printed.
    pub lines: Vec<String>,
    /// Why the command failed.
    pub error: Option<String>,
    /// Messages to send: (to, text).
    pub sends: Vec<(Handle, String)>,
    /// Images to send: (to, file, size), checked already.
    pub images: Vec<(Handle, PathBuf, u64)>,
    /// The command's outcome comes later (a transfer was started): no reply now.
    pub deferred: bool,
}

struct Ctx<'a, 'b> {
    env: &'a mut CallEnv<'b>,
    out: CallOut,
    plugin: &'a str,
}

/// Runs a host callback's body: a panic in it must not unwind into the plugin's C frames (that
/// aborts the process); it becomes `fallback` and a logged error.
fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        error!("a host callback panicked ({why}); the plugin gets an error");
        fallback
    })
}

/// Recovers the call context. Every host callback starts with it.
///
/// # Safety
/// `ctx` must be the `Ctx` the host put into the `HostApi` of the call in progress.
unsafe fn ctx<'x>(ctx: *mut c_void) -> &'x mut Ctx<'x, 'x> {
    // SAFETY: per the contract; the call is synchronous and single-threaded, so no other
    // reference to the `Ctx` exists while the plugin runs.
    unsafe { &mut *(ctx as *mut Ctx<'x, 'x>) }
}

fn give(sink: *mut c_void, put: SinkFn, s: &str) {
    put(sink, RStr::new(s));
}

extern "C" fn host_send(
    c: *mut c_void,
    to: RStr,
    text: RStr,
    sink: *mut c_void,
    put: SinkFn,
) -> i32 {
    guard(status::ERROR, || {
        // SAFETY: `c` is this call's context; the strings are valid for this callback.
        let (c, to, text) = unsafe { (ctx(c), to.to_str(), text.to_str()) };
        let (Some(to), Some(text)) = (to, text) else {
            give(sink, put, "not UTF-8");
            return status::BAD_INPUT;
        };
        let h = match Handle::new(to) {
            Ok(h) => h,
            Err(e) => {
                give(sink, put, &format!("{to:?} is not a handle: {e}"));
                return status::ERROR;
            }
        };
        if !(c.env.known)(to) {
            give(
                sink,
                put,
                &format!("nobody called {to} is here; WHO lists who is"),
            );
            return status::ERROR;
        }
        let me = Handle::new(c.env.handle).unwrap_or_else(|_| h.clone());
        if let Err(e) = codec::encode(&Message::Msg {
            handle: me,
            text: text.to_owned(),
        }) {
            give(sink, put, &format!("message too long: {e}"));
            return status::ERROR;
        }
        c.out.sends.push((h, text.to_owned()));
        status::OK
    })
}

extern "C" fn host_send_image(
    c: *mut c_void,
    to: RStr,
    path: RStr,
    sink: *mut c_void,
    put: SinkFn,
) -> i32 {
    guard(status::ERROR, || {
        // SAFETY: as in `host_send`.
        let (c, to, path) = unsafe { (ctx(c), to.to_str(), path.to_str()) };
        let (Some(to), Some(path)) = (to, path) else {
            give(sink, put, "not UTF-8");
            return status::BAD_INPUT;
        };
        match check_image(c.env, to, Path::new(path)) {
            Ok((h, size)) => {
                c.out.images.push((h, PathBuf::from(path), size));
                status::OK
            }
            Err(e) => {
                give(sink, put, &e);
                status::ERROR
            }
        }
    })
}

/// What the sender checks before anything goes out: a known peer, a regular file, the limit.
fn check_image(env: &CallEnv<'_>, to: &str, path: &Path) -> Result<(Handle, u64), String> {
    let h = Handle::new(to).map_err(|e| format!("{to:?} is not a handle: {e}"))?;
    if to == env.handle {
        return Err("that is you; IMG someone else".into());
    }
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no such file: {}", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file{}",
            path.display(),
            if meta.is_dir() {
                " (it is a folder)"
            } else {
                ""
            }
        ));
    }
    let limit: u64 = env
        .config
        .get("max_image_bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    if meta.len() > limit {
        return Err(format!(
            "{} is {} bytes, over the limit of {limit} bytes (max_image_bytes)",
            path.display(),
            meta.len()
        ));
    }
    if std::fs::File::open(path).is_err() {
        return Err(format!("cannot open {} (permissions?)", path.display()));
    }
    if !(env.known)(to) {
        return Err(format!("nobody called {to} is here; WHO lists who is"));
    }
    Ok((h, meta.len()))
}

extern "C" fn host_print(c: *mut c_void, line: RStr) {
    guard((), || {
        // SAFETY: as in `host_send`.
        let (c, line) = unsafe { (ctx(c), line.to_str()) };
        if let Some(l) = line {
            c.out.lines.push(l.to_owned());
        }
    })
}

extern "C" fn host_fail(c: *mut c_void, line: RStr) {
    guard((), || {
        // SAFETY: as in `host_send`.
        let (c, line) = unsafe { (ctx(c), line.to_str()) };
        c.out.error = Some(
            line.unwrap_or("failed (the reason was not UTF-8)")
                .to_owned(),
        );
    })
}

extern "C" fn host_log(c: *mut c_void, level: u32, line: RStr) {
    guard((), || {
        // SAFETY: as in `host_send`.
        let (c, line) = unsafe { (ctx(c), line.to_str()) };
        let line = line.unwrap_or("(not UTF-8)");
        match level {
            1 => error!("plugin {}: {line}", c.plugin),
            2 => warn!("plugin {}: {line}", c.plugin),
            3 => info!("plugin {}: {line}", c.plugin),
            _ => debug!("plugin {}: {line}", c.plugin),
        }
    })
}

extern "C" fn host_get(c: *mut c_void, key: RStr, sink: *mut c_void, put: SinkFn) -> i32 {
    guard(status::ERROR, || {
        // SAFETY: as in `host_send`.
        let (c, key) = unsafe { (ctx(c), key.to_str()) };
        let v = match key {
            Some("handle") => Some(c.env.handle.to_owned()),
            Some("away") => Some(c.env.away.to_string()),
            Some(k) => c.env.config.get(k).cloned(),
            None => None,
        };
        match v {
            Some(v) => {
                give(sink, put, &v);
                status::OK
            }
            None => status::ERROR,
        }
    })
}

extern "C" fn host_set_config(
    c: *mut c_void,
    key: RStr,
    value: RStr,
    sink: *mut c_void,
    put: SinkFn,
) -> i32 {
    guard(status::ERROR, || {
        // SAFETY: as in `host_send`.
        let (c, key, value) = unsafe { (ctx(c), key.to_str(), value.to_str()) };
        let (Some(key), Some(value)) = (key, value) else {
            give(sink, put, "not UTF-8");
            return status::BAD_INPUT;
        };
        match (c.env.persist)(key, value) {
            Ok(()) => {
                let plain = toml_plain(value);
                c.env.config.insert(key.to_owned(), plain);
                status::OK
            }
            Err(e) => {
                give(sink, put, &e);
                status::ERROR
            }
        }
    })
}

/// `"text"` (a TOML basic string) as plain text; anything else as it is.
fn toml_plain(v: &str) -> String {
    match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => codec::unquote(&format!("\"{inner}\"")),
        None => v.to_owned(),
    }
}

struct Active {
    found: Found,
    inst: *mut c_void,
}

/// The loaded plugins of one client.
pub struct PluginHost {
    active: Vec<Active>,
    /// Files that did not load, and plugins that failed to start.
    pub failures: Vec<Failure>,
}

impl PluginHost {
    /// Scans `dirs`, creates every plugin that loads, and records what failed.
    pub fn start(dirs: &[PathBuf], bundled: &[Bundled], env: &mut CallEnv<'_>) -> PluginHost {
        let (found, mut failures) = scan(dirs, bundled);
        let mut active: Vec<Active> = Vec::new();
        let builtin: Vec<String> = crate::client::chat::builtin_commands()
            .into_iter()
            .map(|c| c.word)
            .collect();
        for mut f in found {
            f.commands.retain(|c| {
                let clash = builtin.contains(&c.word)
                    || active
                        .iter()
                        .any(|a| a.found.commands.iter().any(|o| o.word == c.word));
                if clash {
                    failures.push(Failure {
                        path: f.path.clone(),
                        why: format!(
                            "command {} is taken by slcp or another plugin; skipped",
                            c.word
                        ),
                    });
                }
                !clash
            });
            let mut cx = Ctx {
                env: &mut *env,
                out: CallOut::default(),
                plugin: &f.name,
            };
            let api = host_api(&mut cx);
            let inst = (f.entries.create)(&api);
            if inst.is_null() {
                failures.push(Failure {
                    path: f.path.clone(),
                    why: format!(
                        "plugin {} failed to start (it panicked or refused the host)",
                        f.name
                    ),
                });
                continue;
            }
            info!("plugin {} {} {}", f.name, f.version, origin(&f));
            active.push(Active { found: f, inst });
        }
        for fl in &failures {
            warn!("plugin {}: {}", fl.path.display(), fl.why);
        }
        PluginHost { active, failures }
    }

    /// The commands of every loaded plugin.
    pub fn commands(&self) -> Vec<CommandInfo> {
        self.active
            .iter()
            .flat_map(|a| a.found.commands.iter().cloned())
            .collect()
    }

    /// One line per loaded plugin and per failure, for PLUGINS and `slcp plugins`.
    pub fn report(&self) -> Vec<String> {
        let found: Vec<&Found> = self.active.iter().map(|a| &a.found).collect();
        report_lines(&found, &self.failures)
    }

    /// Runs `word` if a plugin declared it; `None` otherwise.
    pub fn command(&mut self, word: &str, args: &str, env: &mut CallEnv<'_>) -> Option<CallOut> {
        let a = self
            .active
            .iter()
            .find(|a| a.found.commands.iter().any(|c| c.word == word))?;
        let mut cx = Ctx {
            env,
            out: CallOut::default(),
            plugin: &a.found.name,
        };
        let api = host_api(&mut cx);
        let code = (a.found.entries.on_command)(a.inst, &api, RStr::new(word), RStr::new(args));
        let mut out = cx.out;
        if code != status::OK && out.error.is_none() {
            out.error = Some(format!(
                "{word} failed in the plugin {} (code {code})",
                a.found.name
            ));
        }
        Some(out)
    }

    /// Gives an event to every plugin; returns what they want done.
    pub fn event(&mut self, e: &PluginEvent, env: &mut CallEnv<'_>) -> CallOut {
        let (kind, handle, text, size): (u32, &str, &str, u64) = match e {
            PluginEvent::Chat(c) => match c {
                // A message to a group is a message from its sender (an auto-reply goes to
                // the sender alone, not to the group).
                Event::Message { from, text } | Event::Group { from, text, .. } => {
                    (event_kind::MESSAGE, from, text, 0)
                }
                // A message by a key that is not the one pinned gets no auto-reply.
                Event::Private {
                    privacy: crate::ipc::Privacy::Unverified,
                    ..
                } => return CallOut::default(),
                Event::Private { from, text, .. } => (event_kind::MESSAGE, from, text, 0),
                Event::Join { handle, addr } => (event_kind::JOIN, handle, addr, 0),
                Event::Leave { handle } => (event_kind::LEAVE, handle, "", 0),
                // To a plugin, a rename is the old handle leaving and the new one joining.
                Event::Rename { from, .. } => (event_kind::LEAVE, from, "", 0),
                Event::Away { handle } => (event_kind::AWAY, handle, "", 0),
                Event::Back { handle } => (event_kind::BACK, handle, "", 0),
                Event::Handle { handle } => (event_kind::SELF_HANDLE, handle, "", 0),
                Event::Image { from, size, path } => {
                    (event_kind::IMAGE_RECEIVED, from, path, *size)
                }
                // Nothing for plugins in these.
                Event::Clash { .. }
                | Event::File { .. }
                | Event::Alert { .. }
                | Event::Progress { .. }
                | Event::Notice { .. }
                | Event::Error { .. } => return CallOut::default(),
            },
            PluginEvent::SelfAway => (event_kind::SELF_AWAY, "", "", 0),
            PluginEvent::SelfBack => (event_kind::SELF_BACK, "", "", 0),
            PluginEvent::ImageAnnounced { from, size } => {
                (event_kind::IMAGE_ANNOUNCED, from, "", *size)
            }
        };
        let ev = EventC {
            kind,
            handle: RStr::new(handle),
            text: RStr::new(text),
            size,
        };
        let mut all = CallOut::default();
        for a in &self.active {
            let mut cx = Ctx {
                env: &mut *env,
                out: CallOut::default(),
                plugin: &a.found.name,
            };
            let api = host_api(&mut cx);
            let code = (a.found.entries.on_event)(a.inst, &api, &ev);
            if code != status::OK {
                warn!("plugin {} failed on an event (code {code})", a.found.name);
            }
            all.lines.extend(cx.out.lines);
            all.sends.extend(cx.out.sends);
        }
        all
    }
}

/// A question for the plugins (see `slcp_plugin_api::query_kind`).
#[derive(Debug, Clone, Copy)]
pub enum Ask<'q> {
    /// May an image from `from` of `size` bytes be received?
    ImageOffer {
        /// Sender.
        from: &'q str,
        /// Size.
        size: u64,
    },
    /// The file name for a received image.
    ImageName {
        /// Sender.
        from: &'q str,
        /// Size.
        size: u64,
        /// Its first bytes.
        head: &'q [u8],
    },
}

impl PluginHost {
    /// Asks the plugins in order; the first that answers decides. `None`: no plugin answers.
    pub fn ask(&mut self, q: Ask<'_>, env: &mut CallEnv<'_>) -> Option<Result<String, String>> {
        let (kind, handle, size, head): (u32, &str, u64, &[u8]) = match q {
            Ask::ImageOffer { from, size } => (query_kind::IMAGE_OFFER, from, size, &[]),
            Ask::ImageName { from, size, head } => (query_kind::IMAGE_NAME, from, size, head),
        };
        let qc = QueryC {
            kind,
            handle: RStr::new(handle),
            size,
            bytes: head.as_ptr(),
            nbytes: head.len(),
        };
        for a in &self.active {
            let mut answer: Option<String> = None;
            let mut cx = Ctx {
                env: &mut *env,
                out: CallOut::default(),
                plugin: &a.found.name,
            };
            let api = host_api(&mut cx);
            let sink = &mut answer as *mut Option<String> as *mut c_void;
            let code = (a.found.entries.on_query)(a.inst, &api, &qc, sink, put_answer);
            match code {
                status::OK => return Some(Ok(answer.unwrap_or_default())),
                status::ERROR => {
                    return Some(Err(answer.unwrap_or_else(|| "refused".into())));
                }
                status::NOT_MINE => continue,
                _ => {
                    return Some(Err(format!(
                        "the plugin {} failed (code {code})",
                        a.found.name
                    )));
                }
            }
        }
        None
    }
}

extern "C" fn put_answer(sink: *mut c_void, value: RStr) {
    guard((), || {
        // SAFETY: `sink` is the `&mut Option<String>` of `PluginHost::ask`, alive during the call;
        // `value` is valid for this callback.
        let (slot, v) = unsafe { (&mut *(sink as *mut Option<String>), value.to_str()) };
        *slot = v.map(str::to_owned);
    })
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        for a in &self.active {
            (a.found.entries.destroy)(a.inst);
        }
    }
}

fn host_api(cx: &mut Ctx<'_, '_>) -> HostApi {
    HostApi {
        abi_version: ABI_VERSION,
        struct_size: size_of::<HostApi>() as u32,
        ctx: cx as *mut Ctx<'_, '_> as *mut c_void,
        send_msg: host_send,
        print: host_print,
        fail: host_fail,
        log: host_log,
        get: host_get,
        set_config: host_set_config,
        send_image: host_send_image,
    }
}

/// Where a plugin came from, as PLUGINS says it.
fn origin(f: &Found) -> String {
    if f.builtin {
        "built in".into()
    } else {
        format!("from {}", f.path.display())
    }
}

/// The lines of PLUGINS and `slcp plugins`: what loaded (built in, or from which file, with its
/// commands), then one line per file or plugin that did not.
pub fn report_lines(found: &[&Found], failures: &[Failure]) -> Vec<String> {
    let mut out = Vec::new();
    if found.is_empty() {
        out.push("no plugins loaded".to_string());
    }
    for f in found {
        let words: Vec<&str> = f.commands.iter().map(|c| c.word.as_str()).collect();
        out.push(format!(
            "{} {} {}: {}",
            f.name,
            f.version,
            origin(f),
            if words.is_empty() {
                "no commands".to_string()
            } else {
                words.join(", ")
            }
        ));
    }
    for fl in failures {
        out.push(format!("failed: {}: {}", fl.path.display(), fl.why));
    }
    out
}
