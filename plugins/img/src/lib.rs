//! slcp-plugin-img: the IMG command, and on the receiving side the decision to take an image and
//! the name of the saved file (`<sender>-<UTC timestamp>.<ext>`, the extension from the magic
//! bytes; never a name from the wire).
//!
//! The transfer itself (UDP announcement, TCP stream, temporary file, rename) is the host's.

use std::time::SystemTime;

use slcp_plugin_api::names::default_name;
use slcp_plugin_api::{ArgKind, Command, Host, Plugin, Query};

/// The plugin (no state).
pub struct Img;

/// Splits `IMG` arguments into the handle and the path: the path is the rest of the line, so it
/// may hold spaces; surrounding quotes are dropped and `~/` means the home folder.
pub fn parse_args(args: &str, home: Option<&str>) -> Result<(String, String), String> {
    slcp_plugin_api::args::target_and_path(args, home, "usage: IMG <handle> <path>")
}

impl Plugin for Img {
    const NAME: &'static str = "img";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const COMMANDS: &'static [Command] = &[Command {
        word: "IMG",
        usage: "IMG <handle> <path>",
        help: "send an image file",
        args: &[ArgKind::Handle, ArgKind::Path],
    }];

    fn create(_host: &Host<'_>) -> Self {
        Img
    }

    fn command(&mut self, host: &Host<'_>, _word: &str, args: &str) -> Result<(), String> {
        let home = std::env::var("HOME").ok();
        let (to, path) = parse_args(args, home.as_deref())?;
        host.send_image(&to, &path)
    }

    fn query(&mut self, _host: &Host<'_>, query: &Query<'_>) -> Option<Result<String, String>> {
        match query {
            // The host has checked the sender and the size limit already.
            Query::ImageOffer { .. } => Some(Ok(String::new())),
            Query::ImageName { from, head, .. } => {
                Some(Ok(default_name(from, head, SystemTime::now())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        assert_eq!(
            parse_args("bob /tmp/a b.png", None),
            Ok(("bob".into(), "/tmp/a b.png".into()))
        );
        assert_eq!(
            parse_args("bob \"/tmp/x.png\"", None),
            Ok(("bob".into(), "/tmp/x.png".into()))
        );
        assert_eq!(
            parse_args("bob ~/p.png", Some("/home/b/")),
            Ok(("bob".into(), "/home/b/p.png".into()))
        );
        assert!(parse_args("bob", None).is_err());
        assert!(parse_args("", None).is_err());
    }
}
