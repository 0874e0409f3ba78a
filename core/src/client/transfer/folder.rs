//! The folder received images go to: checked before anything is received, and cleared of the
//! temporary files a killed client left in it.

use std::path::Path;

use log::{info, warn};

use super::io_reason;

/// Whether received images can be saved in `dir` (created 0700 when missing): the error says
/// which folder and why, and what to do.
pub fn check_imagepath(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let probe = dir.join(format!(".slcp-probe-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|_| std::fs::write(&probe, b""))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "imagepath {} is not writable ({}): images sent to you will be refused until it is; fix it or set imagepath",
                dir.display(),
                io_reason(&e)
            )
        })
}

/// Removes the temporary files a killed client left in `dir` (those of a client that still runs,
/// sharing the folder, are left alone).
pub(super) fn remove_leftovers(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".slcp-incoming-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !name.ends_with(".part") {
            continue;
        }
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            match std::fs::remove_file(e.path()) {
                Ok(()) => info!("removed {name}, left by a client that was killed"),
                Err(err) => warn!("cannot remove {name}: {err}"),
            }
        }
    }
}
