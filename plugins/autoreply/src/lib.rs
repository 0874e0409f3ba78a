//! slcp-plugin-autoreply: the AUTOREPLY command and the SLCP auto-reply rule.
//!
//! While you are AWAY, each sender gets one `[auto] <text>` per away period; a message that is
//! itself an automatic reply (`[auto] ...`, or another implementation's `(Autoreply): ...`) is
//! never answered, nor are your own messages, nor a sender whose address does not hold the
//! handle it names (the host shows those as `?name@address`).

use std::collections::HashSet;

use slcp_plugin_api::markers::{AUTO_PREFIX as PREFIX, is_auto_reply};
use slcp_plugin_api::{ArgKind, Command, Event, Host, Level, Plugin, toml_string};

/// The plugin's state.
pub struct AutoReply {
    text: String,
    away: bool,
    answered: HashSet<String>,
}

/// Whether a message from `from` saying `text` gets an automatic reply.
pub fn should_reply(
    away: bool,
    reply: &str,
    me: &str,
    from: &str,
    text: &str,
    answered: &HashSet<String>,
) -> bool {
    away && !reply.is_empty()
        && !is_auto_reply(text)
        && from != me
        && !from.starts_with('?')
        && !answered.contains(from)
}

impl Plugin for AutoReply {
    const NAME: &'static str = "autoreply";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const COMMANDS: &'static [Command] = &[Command {
        word: "AUTOREPLY",
        usage: "AUTOREPLY [text...]",
        help: "show, or set (and save in the config), the reply sent while you are away",
        args: &[ArgKind::Text],
    }];

    fn create(host: &Host<'_>) -> Self {
        AutoReply {
            text: host.get("autoreply").unwrap_or_default(),
            away: host.is_away(),
            answered: HashSet::new(),
        }
    }

    fn command(&mut self, host: &Host<'_>, _word: &str, args: &str) -> Result<(), String> {
        let t = args.trim();
        let t = t
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(t);
        if t.is_empty() {
            host.print(&format!("autoreply: {}", self.text));
            return Ok(());
        }
        host.set_config("autoreply", &toml_string(t))?;
        self.text = t.to_string();
        host.print(&format!("autoreply set: {t}"));
        Ok(())
    }

    fn event(&mut self, host: &Host<'_>, event: &Event<'_>) {
        match event {
            Event::SelfAway => {
                self.away = true;
                self.answered.clear();
            }
            Event::SelfBack => {
                self.away = false;
                self.answered.clear();
            }
            Event::Message { from, text } => {
                let me = host.handle();
                if !should_reply(self.away, &self.text, &me, from, text, &self.answered) {
                    return;
                }
                match host.send_msg(from, &format!("{PREFIX}{}", self.text)) {
                    Ok(()) => {
                        self.answered.insert(from.to_string());
                        host.print(&format!("auto-replied to {from}"));
                    }
                    Err(e) => host.log(Level::Warn, &format!("no auto-reply to {from}: {e}")),
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_rule() {
        let none = HashSet::new();
        let bob: HashSet<String> = ["bob".to_string()].into();
        assert!(should_reply(true, "away", "me", "bob", "hi", &none));
        assert!(
            !should_reply(false, "away", "me", "bob", "hi", &none),
            "not away"
        );
        assert!(
            !should_reply(true, "", "me", "bob", "hi", &none),
            "no text set"
        );
        assert!(
            !should_reply(true, "away", "me", "bob", "[auto] x", &none),
            "an auto-reply"
        );
        assert!(
            !should_reply(true, "away", "me", "me", "hi", &none),
            "ourselves"
        );
        assert!(
            !should_reply(true, "away", "me", "bob", "hi", &bob),
            "answered already"
        );
        assert!(
            !should_reply(
                true,
                "away",
                "me",
                "fab",
                "(Autoreply): Ich bin gerade nicht da",
                &none
            ),
            "another implementation's auto-reply"
        );
        assert!(
            !should_reply(true, "away", "me", "?bob@10.0.0.9:6000", "hi", &none),
            "a sender that does not hold the handle it names"
        );
        assert!(
            should_reply(true, "away", "me", "bob", "auto reply, please", &none),
            "only a marker at the start counts"
        );
    }
}
