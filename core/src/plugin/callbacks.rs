//! What a plugin can ask of the host during a call: the `extern "C"` callbacks of `HostApi`
//! (send a message or an image, print, fail, log, read and set config), each behind a panic
//! guard, and the context they reach through the call's `ctx` pointer.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use log::{debug, error, info, warn};
use slcp_plugin_api::{ABI_VERSION, HostApi, RStr, SinkFn, status};

use super::{CallEnv, CallOut};
use crate::codec::{self, Handle, Message};

/// What a host callback reaches through its `ctx` pointer: the call's environment, what the
/// call asks of the client, and which plugin is calling.
pub(super) struct Ctx<'a, 'b> {
    pub(super) env: &'a mut CallEnv<'b>,
    pub(super) out: CallOut,
    pub(super) plugin: &'a str,
}

/// Runs a host callback's body: a panic in it must not unwind into the plugin's C frames (that
/// aborts the process); it becomes `fallback` and a logged error.
pub(super) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
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

/// The callback table handed to a plugin for one call, pointing at `cx`.
pub(super) fn host_api(cx: &mut Ctx<'_, '_>) -> HostApi {
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
