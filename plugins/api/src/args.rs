//! Splitting a command's arguments the way IMG and FILE take them: a recipient, then a path that
//! is the rest of the line (it may hold spaces; surrounding quotes are dropped, `~/` is the home
//! folder).

/// `(recipient, path)` from `args`, or `usage` as the error.
pub fn target_and_path(
    args: &str,
    home: Option<&str>,
    usage: &str,
) -> Result<(String, String), String> {
    let (to, path) = args.trim().split_once(char::is_whitespace).ok_or(usage)?;
    let path = path.trim();
    let path = path
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .unwrap_or(path);
    if path.is_empty() {
        return Err(usage.into());
    }
    let path = match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => format!("{}/{rest}", h.trim_end_matches('/')),
        _ => path.to_string(),
    };
    Ok((to.to_string(), path))
}
