//! Finding and loading plugin files: every `*.so` of the plugin folders is checked (a regular
//! file, a complete ELF shared object for this machine) before the dynamic loader sees it, then
//! its declaration is read and checked (ABI version, size, every pointer) before anything in it
//! is called. Each file that cannot be used gets one line, and the others still load.

use std::path::{Path, PathBuf};

use libloading::Library;
use log::debug;
use slcp_plugin_api::{ABI_VERSION, ENTRY_SYMBOL, EventC, HostApi, PluginDecl, QueryFn, RStr, arg};
use std::ffi::c_void;

use super::{Failure, Found, elf};
use crate::ipc::{ArgKind, CommandInfo};

/// A plugin's entry points, all checked non-null at load.
#[derive(Clone, Copy)]
pub(super) struct Entries {
    pub create: extern "C" fn(host: *const HostApi) -> *mut c_void,
    pub on_command:
        extern "C" fn(inst: *mut c_void, host: *const HostApi, word: RStr, args: RStr) -> i32,
    pub on_event: extern "C" fn(inst: *mut c_void, host: *const HostApi, ev: *const EventC) -> i32,
    pub on_query: QueryFn,
    pub destroy: extern "C" fn(inst: *mut c_void),
}

/// Most commands one plugin may declare, and arguments one command may.
const MAX_COMMANDS: usize = 64;
const MAX_ARGS: usize = 16;

/// A plugin linked into the binary: registered through the same declaration (and the same
/// checks) as a file.
#[derive(Clone, Copy)]
pub struct Bundled {
    /// Its name, as the `bundled` config key lists it.
    pub name: &'static str,
    /// Its declaration (what a plugin file's `slcp_plugin_v1` returns).
    pub declaration: fn() -> *const PluginDecl,
}

/// The plugins built in (first), then every `*.so` entry of `dirs`, in order, checked and loaded.
/// A plugin name seen twice is taken from the first place only (the second gets a line saying
/// so); a folder, a dangling link or a damaged file named `*.so` gets a line too.
pub fn scan(dirs: &[PathBuf], bundled: &[Bundled]) -> (Vec<Found>, Vec<Failure>) {
    let mut found: Vec<Found> = Vec::new();
    let mut failed = Vec::new();
    for b in bundled {
        match from_decl((b.declaration)(), Path::new("")) {
            Ok(mut f) => {
                f.builtin = true;
                found.push(f);
            }
            Err(why) => failed.push(Failure {
                path: PathBuf::from(format!("built-in {}", b.name)),
                why,
            }),
        }
    }
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                failed.push(Failure {
                    path: dir.clone(),
                    why: format!("cannot read the plugin folder: {e}"),
                });
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "so"))
            .collect();
        files.sort();
        for path in files {
            match elf::check(&path).and_then(|()| load(&path)) {
                Ok(f) => {
                    if let Some(prev) = found.iter().find(|p| p.name == f.name) {
                        debug!("{}: plugin {} already loaded", path.display(), f.name);
                        let from = if prev.builtin {
                            "built in".to_string()
                        } else {
                            format!("loaded from {}", prev.path.display())
                        };
                        failed.push(Failure {
                            why: format!("plugin {} is already {from}; this copy is not", f.name),
                            path,
                        });
                        continue;
                    }
                    found.push(f);
                }
                Err(why) => failed.push(Failure { path, why }),
            }
        }
    }
    (found, failed)
}

/// Reads a string the plugin declared; `what` names it in the error.
fn decl_str(s: RStr, what: &str) -> Result<String, String> {
    // SAFETY: declaration strings point into the plugin's 'static data or its never-dropped
    // declaration storage; the library is never unloaded. A null pointer is refused by
    // `to_str`.
    unsafe { s.to_str() }
        .map(str::to_owned)
        .ok_or_else(|| format!("its {what} is not UTF-8 (or a null pointer)"))
}

fn load(path: &Path) -> Result<Found, String> {
    // SAFETY: loading runs the library's initialisers. We load only `*.so` files from the
    // folders the user configured and the folder of the slcp executable itself (that is the
    // trust boundary of a plugin system, the same as a shell's PATH), and only once `elf::check`
    // found a complete shared object for this machine (a truncated one faults in the loader).
    let lib = unsafe { Library::new(path) }.map_err(|e| {
        let why = std::error::Error::source(&e).map_or(e.to_string(), |s| s.to_string());
        format!("not a loadable library ({why})")
    })?;
    // SAFETY: the symbol's type is the one `export_plugin!` defines; a library that exports a
    // symbol of this name with another type is not an slcp plugin and breaks the contract.
    let entry = unsafe { lib.get::<extern "C" fn() -> *const PluginDecl>(ENTRY_SYMBOL) }
        .map_err(|_| "not an slcp plugin (no slcp_plugin_v1 symbol)".to_string())?;
    let ptr = entry();
    // Never unloaded: the declaration and the code must outlive every use.
    std::mem::forget(lib);
    from_decl(ptr, path)
}

/// Checks a declaration (from a file, or built in) before anything in it is used.
fn from_decl(ptr: *const PluginDecl, path: &Path) -> Result<Found, String> {
    if ptr.is_null() {
        return Err("slcp_plugin_v1 returned nothing (it panicked, or has no declaration)".into());
    }
    if !ptr.cast::<u32>().is_aligned() {
        return Err("its declaration is not aligned".into());
    }
    // SAFETY: every ABI version starts the declaration with two u32 (version, struct size), so
    // reading them is valid whatever the version; nothing else is read before they match.
    let (abi, size) = unsafe {
        let head = ptr as *const u32;
        (*head, *head.add(1))
    };
    if abi != ABI_VERSION {
        return Err(format!(
            "built for plugin ABI {abi}, this slcp speaks ABI {ABI_VERSION}; rebuild it against this slcp-plugin-api"
        ));
    }
    if size as usize != size_of::<PluginDecl>() {
        return Err(format!(
            "its declaration is {size} bytes, ABI {ABI_VERSION} has {}; rebuild it against this slcp-plugin-api",
            size_of::<PluginDecl>()
        ));
    }
    if !ptr.is_aligned() {
        return Err("its declaration is not aligned".into());
    }
    // SAFETY: version and size match and the pointer is aligned, so `ptr` is a `PluginDecl` of
    // this ABI, and it lives as long as the library, which is never unloaded. Every field that
    // could be null is an `Option` or a pointer checked below before use.
    let decl: &'static PluginDecl = unsafe { &*ptr };
    let missing = |what: &str| format!("its declaration has no {what} entry point");
    let entries = Entries {
        create: decl.create.ok_or_else(|| missing("create"))?,
        on_command: decl.on_command.ok_or_else(|| missing("on_command"))?,
        on_event: decl.on_event.ok_or_else(|| missing("on_event"))?,
        on_query: decl.on_query.ok_or_else(|| missing("on_query"))?,
        destroy: decl.destroy.ok_or_else(|| missing("destroy"))?,
    };
    let name = decl_str(decl.name, "name")?;
    let version = decl_str(decl.version, "version")?;
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("its name {name:?} is empty or has blanks"));
    }
    if decl.ncommands > MAX_COMMANDS {
        return Err(format!(
            "it declares {} commands (at most {MAX_COMMANDS})",
            decl.ncommands
        ));
    }
    if decl.ncommands > 0 && (decl.commands.is_null() || !decl.commands.is_aligned()) {
        return Err("its command list is a null (or misaligned) pointer".into());
    }
    let mut commands = Vec::new();
    for i in 0..decl.ncommands {
        // SAFETY: `commands` is non-null and aligned (checked) and points to `ncommands`
        // declarations (see `declaration` in the API).
        let c = unsafe { &*decl.commands.add(i) };
        let word = decl_str(c.word, "command word")?;
        if word.is_empty()
            || !word
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
        {
            return Err(format!("its command word {word:?} is not A-Z, 0-9 and _"));
        }
        if c.nargs > MAX_ARGS || (c.nargs > 0 && (c.args.is_null() || !c.args.is_aligned())) {
            return Err(format!(
                "{word}: its argument list is bad (null or over {MAX_ARGS})"
            ));
        }
        let args = (0..c.nargs)
            // SAFETY: `args` is non-null and aligned (checked) and points to `nargs` u32 values.
            .map(|j| match unsafe { *c.args.add(j) } {
                arg::HANDLE => ArgKind::Handle,
                arg::PATH => ArgKind::Path,
                _ => ArgKind::Text,
            })
            .collect();
        commands.push(CommandInfo {
            word,
            usage: decl_str(c.usage, "usage")?,
            help: decl_str(c.help, "help")?,
            args,
        });
    }
    Ok(Found {
        path: path.to_owned(),
        builtin: false,
        name,
        version,
        commands,
        entries,
    })
}
