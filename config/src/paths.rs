//! Where slcp keeps its files, from the platform's conventions (`dirs`).

use std::path::PathBuf;

/// `SLCP_*` variables that are not config keys (they are read elsewhere).
pub const NON_KEY_VARS: &[&str] = &["SLCP_CONFIG", "SLCP_LOG"];

/// `<config dir>/slcp/config.toml`, e.g. `~/.config/slcp/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("slcp").join("config.toml"))
}

/// Where REPL history and logs live: the state dir, else the local data dir, else a temp dir.
pub fn state_dir() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join("slcp")
}

/// Where a running client leaves its IPC port and token: the runtime dir, else the state dir.
pub fn runtime_dir() -> PathBuf {
    dirs::runtime_dir()
        .map(|d| d.join("slcp"))
        .unwrap_or_else(state_dir)
}

/// The default folder for received images.
pub fn default_imagepath() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("slcp")
        .join("images")
}

/// Where received files go: the platform's download folder + `slcp/` (the data dir's
/// `slcp/downloads` where there is none).
pub fn default_downloadpath() -> PathBuf {
    dirs::download_dir()
        .map(|d| d.join("slcp"))
        .unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("slcp")
                .join("downloads")
        })
}

/// This user's key pair and known peers: `<data dir>/slcp/keys/<handle>.key` and
/// `.known_peers` (the folder 0700, the files 0600).
pub fn key_files(handle: &str) -> (PathBuf, PathBuf) {
    let dir = dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("slcp")
        .join("keys");
    slcp_core::e2e::keys::paths(&dir, &slcp_core::codec::Handle::file_stem(handle))
}

/// The history database of `handle`: `<data dir>/slcp/history/<handle>.sqlite3`, one per user
/// (the handle made a safe file name).
pub fn history_file(handle: &str) -> PathBuf {
    let safe = slcp_core::codec::Handle::file_stem(handle);
    dirs::data_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("slcp")
        .join("history")
        .join(format!("{safe}.sqlite3"))
}
