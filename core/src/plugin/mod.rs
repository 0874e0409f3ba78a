//! The plugin host: finds plugin libraries, checks their ABI, and calls them on the event-loop
//! thread through the C ABI of `slcp-plugin-api`.
//!
//! Architecture Invariant: this module holds the host's `unsafe` (loading libraries and crossing
//! the C ABI), and no other module of slcp-core does. Libraries are never unloaded (dlclose and
//! Rust thread-locals do not mix); whatever a plugin returns is copied before the call ends.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::path::PathBuf;

use log::{info, warn};
use slcp_plugin_api::{EventC, QueryC, RStr, event_kind, query_kind, status};

use crate::codec::Handle;
use crate::ipc::{CommandInfo, Event};

mod callbacks;
mod elf;
mod load;
use callbacks::{Ctx, guard, host_api};
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
