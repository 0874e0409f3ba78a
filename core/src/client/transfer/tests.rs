//! Unit tests of the transfer helpers: safe file names, reservations, human sizes.

use super::names::*;

#[test]
fn without_hard_links_a_reservation_keeps_saves_atomic_and_never_overwrites() {
    let dir = tempfile_dir();
    let tmp = dir.join(".t");
    std::fs::write(&tmp, "whole").unwrap();
    let taken = dir.join("taken.png");
    std::fs::write(&taken, "mine").unwrap();
    let e = place_by_reservation(&tmp, &taken).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "mine");
    place_by_reservation(&tmp, &dir.join("free.png")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("free.png")).unwrap(),
        "whole"
    );
    assert!(!tmp.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
use super::*;

#[test]
fn names_are_safe_and_never_overwrite() {
    assert!(!is_safe_name("../x") && !is_safe_name(".hidden") && !is_safe_name(""));
    assert!(is_safe_name("bob-20261124-131015.png"));
    let dir = tempfile_dir();
    let mk = |n: &str| {
        let p = dir.join(n);
        std::fs::write(&p, n).unwrap();
        p
    };
    let first = place(&mk(".t1"), &dir, "a.png").unwrap();
    let second = place(&mk(".t2"), &dir, "a.png").unwrap();
    assert_eq!(first, dir.join("a.png"));
    assert_eq!(second, dir.join("a-1.png"));
    assert_eq!(std::fs::read_to_string(&first).unwrap(), ".t1");
    assert!(!dir.join(".t1").exists() && !dir.join(".t2").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "slcp-place-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn human_sizes() {
    assert_eq!(human_bytes(0), "0 bytes");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(200 << 20), "200.0 MiB");
}
