//! File names for received images: `<sender>-<UTC timestamp>.<ext>`, the extension from the
//! file's magic bytes. Shared by the img plugin and the host's fallback.

use std::time::{SystemTime, UNIX_EPOCH};

/// The extension for a file starting with `head`.
pub fn extension(head: &[u8]) -> &'static str {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "png"
    } else if head.starts_with(b"\xff\xd8\xff") {
        "jpg"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "gif"
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        "webp"
    } else if head.starts_with(b"BM") {
        "bmp"
    } else {
        "bin"
    }
}

/// `<sender>-<UTC timestamp>.<ext>`, the sender's handle made safe for a file name.
pub fn default_name(from: &str, head: &[u8], now: SystemTime) -> String {
    format!(
        "{}-{}.{}",
        safe_component(from),
        timestamp(now),
        extension(head)
    )
}

/// A handle as one tame file-name component.
pub fn safe_component(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let t = t.trim_start_matches('.');
    if t.is_empty() {
        "unknown".into()
    } else {
        t.to_string()
    }
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101-000000");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_537_815); // 2026-11-24 16:30:15 UTC
        assert_eq!(timestamp(t), "20261124-163015");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "20000229-000000");
    }

    #[test]
    fn extensions_from_magic_bytes() {
        assert_eq!(extension(b"\x89PNG\r\n\x1a\n...."), "png");
        assert_eq!(extension(b"\xff\xd8\xff\xe0"), "jpg");
        assert_eq!(extension(b"GIF89a"), "gif");
        assert_eq!(extension(b"RIFF\0\0\0\0WEBPVP8 "), "webp");
        assert_eq!(extension(b"BM\0\0"), "bmp");
        assert_eq!(extension(b""), "bin");
        assert_eq!(extension(b"hello"), "bin");
    }

    #[test]
    fn safe_components() {
        assert_eq!(safe_component("../etc/passwd"), "_etc_passwd");
        assert_eq!(safe_component("..."), "unknown");
        assert_eq!(safe_component("jörg"), "jörg");
    }
}
