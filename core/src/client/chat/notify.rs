//! When something arriving deserves the user's attention now, and how: the prompt's bell, a
//! desktop notification, both, or nothing (`notify`). Never for our own messages, never for the
//! conversation a person is typing in, and rate-limited (a flood makes no flood of popups).

use std::collections::{BTreeMap, HashMap};

use log::warn;

use super::{Chat, ConnId, To};
use crate::ipc::{Event, ServerMsg};

/// How the user is told that something arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NotifyMode {
    /// The prompt's terminal bell.
    #[default]
    Bell,
    /// A desktop notification (freedesktop D-Bus service).
    Desktop,
    /// Both.
    Both,
    /// Neither.
    Off,
}

impl NotifyMode {
    /// `bell`, `desktop`, `both` or `off`.
    pub fn parse(s: &str) -> Option<NotifyMode> {
        Some(match s {
            "bell" => NotifyMode::Bell,
            "desktop" => NotifyMode::Desktop,
            "both" => NotifyMode::Both,
            "off" => NotifyMode::Off,
            _ => return None,
        })
    }

    /// The config value.
    pub fn as_str(&self) -> &'static str {
        match self {
            NotifyMode::Bell => "bell",
            NotifyMode::Desktop => "desktop",
            NotifyMode::Both => "both",
            NotifyMode::Off => "off",
        }
    }
}

/// A desktop notification for the shell to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Whose arrival it is.
    pub from: String,
    /// `alice`, `alice in @team`.
    pub summary: String,
    /// The first words of the text, or what arrived (`image cat.png, 1.2 MiB`).
    pub body: String,
}

/// One sender's notifications this close together are one.
const PER_SENDER_MS: u64 = 5_000;
/// Notifications per minute at most, from everyone.
const PER_MINUTE: u32 = 12;
/// A prompt counts as typing in its conversation this long after its last command.
const TYPING_MS: u64 = 60_000;
/// The body's length in characters at most.
const BODY_CHARS: usize = 80;

/// The state behind the decisions.
#[derive(Debug, Default)]
pub struct Attention {
    /// The conversation each person's prompt is in (QUERY), and when it last sent a command.
    focus: BTreeMap<ConnId, (String, u64)>,
    /// Prompts a person reads (they ring the bell); scripts get no alerts.
    pub people: std::collections::BTreeSet<ConnId>,
    last_from: HashMap<String, u64>,
    minute: (u64, u32),
    /// The desktop has no notification service: the bell instead.
    desktop_down: bool,
    /// Notifications not shown for the rate limit.
    pub suppressed: u64,
}

/// The first words of `text`, cut at a character boundary.
fn first_words(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= BODY_CHARS {
        return one_line;
    }
    let mut s: String = one_line.chars().take(BODY_CHARS).collect();
    if let Some(i) = s.rfind(' ').filter(|i| *i > BODY_CHARS / 2) {
        s.truncate(i);
    }
    s.push('…');
    s
}

impl Chat {
    /// A prompt says which conversation it is in (`FOCUS bob`, `FOCUS @team`, `FOCUS` alone:
    /// none).
    pub(super) fn set_focus(&mut self, conn: ConnId, conv: &str) {
        if conv.is_empty() {
            self.attention.focus.remove(&conn);
        } else {
            self.attention
                .focus
                .insert(conn, (conv.to_owned(), self.wall));
        }
    }

    /// A command from `conn`: it is typing (in its conversation, if it has one).
    pub(super) fn typed(&mut self, conn: ConnId) {
        let wall = self.wall;
        if let Some((_, t)) = self.attention.focus.get_mut(&conn) {
            *t = wall;
        }
    }

    /// The desktop has no notification service (the shell's worker found out): one warning,
    /// then the bell, starting with the notification that failed.
    pub fn desktop_unavailable(&mut self, why: &str, from: &str) {
        if self.attention.desktop_down {
            return;
        }
        self.attention.desktop_down = true;
        warn!("desktop notifications unavailable: {why}");
        self.event(Event::Error {
            text: format!(
                "desktop notifications are unavailable ({why}); ringing the bell instead (notify = \"bell\" silences this)"
            ),
        });
        self.ring(from);
    }

    fn ring(&mut self, from: &str) {
        let at = self.wall;
        let people: Vec<ConnId> = self.attention.people.iter().copied().collect();
        for c in people {
            self.out.ipc.push((
                To::Conn(c),
                ServerMsg::Event {
                    event: Event::Alert {
                        from: from.to_owned(),
                    },
                    at,
                },
            ));
        }
    }

    /// Something arrived from `from` in conversation `conv`: tell the user, if they want it
    /// and are not already looking.
    pub(super) fn attend(&mut self, from: &str, conv: &str, what: &str) {
        let mode = self.s.notify;
        if mode == NotifyMode::Off {
            return;
        }
        let wall = self.wall;
        let a = &mut self.attention;
        let typing = a
            .focus
            .values()
            .any(|(f, t)| f == conv && wall.saturating_sub(*t) < TYPING_MS);
        if typing {
            return;
        }
        // The bell rings for each arrival, as it always did; popups are rate-limited.
        if mode != NotifyMode::Desktop || a.desktop_down {
            self.ring(from);
        }
        let a = &mut self.attention;
        if !matches!(mode, NotifyMode::Desktop | NotifyMode::Both) || a.desktop_down {
            return;
        }
        if a.last_from
            .get(from)
            .is_some_and(|t| wall.saturating_sub(*t) < PER_SENDER_MS)
        {
            a.suppressed += 1;
            return;
        }
        if wall.saturating_sub(a.minute.0) >= 60_000 {
            a.minute = (wall, 0);
        }
        if a.minute.1 >= PER_MINUTE {
            a.suppressed += 1;
            return;
        }
        a.minute.1 += 1;
        if a.last_from.len() >= 1024 {
            a.last_from
                .retain(|_, t| wall.saturating_sub(*t) < PER_SENDER_MS);
        }
        a.last_from.insert(from.to_owned(), wall);
        let summary = if conv == from {
            from.to_owned()
        } else {
            format!("{from} in {conv}")
        };
        self.out.notify.push(Notification {
            from: from.to_owned(),
            summary,
            body: first_words(what),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::first_words;

    #[test]
    fn the_first_words_fit_one_line() {
        assert_eq!(first_words("hi\nthere"), "hi there");
        let long = "word ".repeat(40);
        let s = first_words(&long);
        assert!(s.chars().count() <= 81 && s.ends_with('…'), "{s}");
    }
}
