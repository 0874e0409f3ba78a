//! A look at a plugin file before the dynamic loader maps it: a regular file, an ELF shared
//! object for this machine, and complete (a truncated one makes the loader fault with SIGBUS
//! while mapping its segments, which would take the whole client down).

use std::io::Read;
use std::path::Path;

/// The ELF machine of this build.
const MACHINE: u16 = if cfg!(target_arch = "x86_64") {
    62
} else if cfg!(target_arch = "aarch64") {
    183
} else if cfg!(target_arch = "riscv64") {
    243
} else {
    0
};

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes(
        b[at..at + 4].try_into().expect("4 bytes"),
    ))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// `Ok` when `path` is a complete 64-bit little-endian ELF shared object for this machine:
/// every program header and every loadable segment lies inside the file.
pub fn check(path: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("a link to nothing (its target is gone)".into());
        }
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if meta.is_dir() {
        return Err("a folder named like a plugin, not a library".into());
    }
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let size = meta.len();
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut head = [0u8; 64];
    f.read_exact(&mut head)
        .map_err(|_| format!("not a library ({size} bytes, shorter than an ELF header)"))?;
    if &head[..4] != b"\x7fELF" {
        return Err("not a library (no ELF header)".into());
    }
    if head[4] != 2 || head[5] != 1 {
        return Err("not a library for this machine (not 64-bit little-endian ELF)".into());
    }
    if u16_at(&head, 16) != 3 {
        return Err("not a shared library (ELF, but not ET_DYN)".into());
    }
    let machine = u16_at(&head, 18) as u16;
    if MACHINE != 0 && machine != MACHINE {
        return Err(format!(
            "built for another processor (ELF machine {machine})"
        ));
    }
    let (phoff, phentsize, phnum) = (u64_at(&head, 32), u16_at(&head, 54), u16_at(&head, 56));
    let (shoff, shentsize, shnum) = (u64_at(&head, 40), u16_at(&head, 58), u16_at(&head, 60));
    let truncated = || format!("damaged or truncated ({size} bytes)");
    let ph_end = phoff.checked_add(phentsize * phnum).ok_or_else(truncated)?;
    let sh_end = shoff.checked_add(shentsize * shnum).ok_or_else(truncated)?;
    if phentsize < 56 || phnum == 0 || ph_end > size || sh_end > size {
        return Err(truncated());
    }
    let mut ph = vec![0u8; (phentsize * phnum) as usize];
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(phoff)).map_err(|_| truncated())?;
    f.read_exact(&mut ph).map_err(|_| truncated())?;
    for i in 0..phnum as usize {
        let p = &ph[i * phentsize as usize..];
        // PT_LOAD: its bytes are mapped from the file.
        if u32_at(p, 0) == 1 {
            let end = u64_at(p, 8)
                .checked_add(u64_at(p, 32))
                .ok_or_else(truncated)?;
            if end > size {
                return Err(truncated());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_files_are_told_apart_from_libraries() {
        let dir = std::env::temp_dir().join(format!("slcp-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A real shared library of this machine: the C library.
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
            "/usr/lib/libc.so.6",
        ]
        .iter()
        .map(Path::new)
        .find(|p| p.exists());
        if let Some(libc) = libc {
            assert_eq!(check(libc), Ok(()));
            let bytes = std::fs::read(libc).unwrap();
            let cut = dir.join("cut.so");
            std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
            assert!(check(&cut).unwrap_err().starts_with("damaged or truncated"));
        }
        let folder = dir.join("x.so");
        std::fs::create_dir_all(&folder).unwrap();
        assert!(check(&folder).unwrap_err().contains("folder"));
        let link = dir.join("gone.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(dir.join("nothing"), &link).unwrap();
        assert!(check(&link).unwrap_err().contains("link to nothing"));
        let text = dir.join("t.so");
        std::fs::write(&text, "not a library at all, just some text ".repeat(4)).unwrap();
        assert!(check(&text).unwrap_err().contains("no ELF header"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
