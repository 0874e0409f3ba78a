//! How the prompt shows what the client sends: one reader thread prints replies and events in
//! the client's order, as stable lines when piped, as people read them at a terminal (every
//! foreign string through the renderer, our colours after).

use std::io::{self, Write};
use std::sync::atomic::Ordering;

use rustyline::ExternalPrinter;
use slcp_core::client::history;
use slcp_core::client::transfer::human_bytes;
use slcp_core::ipc::{Event, Privacy};
use slcp_core::render::render;

use super::Shared;

/// Where the reader thread prints.
pub(super) enum Printer {
    Piped,
    Interactive {
        printer: Box<dyn ExternalPrinter + Send>,
        color: bool,
        bell: bool,
        /// A progress bar is on the current line (drawn with `\r`, no newline).
        bar: bool,
    },
}

impl Printer {
    pub(super) fn out(&mut self, shared: &Shared, text: String) {
        match self {
            Printer::Piped => {
                if shared.stdout_closed.load(Ordering::Relaxed) {
                    return;
                }
                let mut o = io::stdout().lock();
                if writeln!(o, "{text}").and_then(|_| o.flush()).is_err() {
                    shared.stdout_closed.store(true, Ordering::Relaxed);
                }
            }
            Printer::Interactive { printer, bar, .. } => {
                let clear = if std::mem::take(bar) { "\r\x1b[2K" } else { "" };
                let _ = printer.print(format!("{clear}{text}\n"));
            }
        }
    }

    pub(super) fn err(&mut self, text: &str) {
        match self {
            Printer::Piped => eprintln!("error: {text}"),
            Printer::Interactive {
                printer,
                color,
                bar,
                ..
            } => {
                let clear = if std::mem::take(bar) { "\r\x1b[2K" } else { "" };
                let _ = printer.print(clear.to_string());
                let t = if *color {
                    format!("\x1b[31m! {text}\x1b[0m\n")
                } else {
                    format!("! {text}\n")
                };
                let _ = printer.print(t);
            }
        }
    }

    /// Prints an event; `at` is when it happened (ms), and one from the past (a message that
    /// arrived while no prompt was attached, an earlier line) is shown with its time.
    pub(super) fn event(&mut self, shared: &Shared, e: &Event, at: u64) {
        if let Event::Progress { sent, size } = e {
            // Piped mode stays quiet; a terminal gets a bar redrawn in place. The prompt is
            // waiting for the IMG command then, so the line is ours.
            if let Printer::Interactive { printer, bar, .. } = self {
                *bar = true;
                let _ = printer.print(format!("\r{}", progress_bar(*sent, *size)));
            }
            return;
        }
        if let Event::Alert { .. } = e {
            // The client decided the user should hear of it (notify, focus, rate limit);
            // a script never rings.
            if let Printer::Interactive { printer, bell, .. } = self
                && *bell
            {
                let _ = printer.print("\x07".to_string());
            }
            return;
        }
        match self {
            Printer::Piped => self.out(shared, e.line()),
            Printer::Interactive { color, .. } => {
                let mut t = human(e, *color);
                // Every message line has its time; other lines when they come from the past.
                let old = history::now_ms().saturating_sub(at) > 60_000;
                let message = matches!(
                    e,
                    Event::Message { .. }
                        | Event::Image { .. }
                        | Event::Group { .. }
                        | Event::Private { .. }
                        | Event::File { .. }
                );
                if at > 0 && (old || message) {
                    t = format!("{} {t}", clock(at));
                }
                match e {
                    Event::Message { from, .. } => shared.message_from(from),
                    Event::Group { group, .. } => shared.message_from(group),
                    Event::Private { from, .. } => shared.message_from(from),
                    _ => {}
                }
                self.out(shared, t)
            }
        }
    }
}

/// `[#########...........] 45%  90.0 MiB of 200.0 MiB`
fn progress_bar(sent: u64, size: u64) -> String {
    const W: u64 = 30;
    let done = (sent * W).checked_div(size).unwrap_or(W);
    let pct = (sent * 100).checked_div(size).unwrap_or(100);
    format!(
        "[{}{}] {pct:3}%  {} of {}",
        "#".repeat(done as usize),
        ".".repeat((W - done) as usize),
        human_bytes(sent),
        human_bytes(size)
    )
}

/// The colour of a handle: one of six, always the same for the same handle (none without
/// colours).
pub(super) fn handle_color(handle: &str, color: bool) -> &'static str {
    const PALETTE: [&str; 6] = [
        "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m",
    ];
    if !color {
        return "";
    }
    // FNV-1a: stable across runs and machines (the std hasher is seeded per process).
    let h = handle.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    PALETTE[(h % PALETTE.len() as u64) as usize]
}

/// `HH:MM` for today, `YYYY-MM-DD HH:MM` before: the time a line shows.
pub(super) fn clock(at: u64) -> String {
    let full = history::local_time(at as i64);
    let today = history::local_time(history::now_ms() as i64);
    if full.get(..10) == today.get(..10) {
        full.get(11..).unwrap_or(&full).to_string()
    } else {
        full
    }
}

/// The mark before a message that came encrypted: `[e2e]`, `[e2e ✓]` for a key compared in
/// person, `[KEY CHANGED]` for a key that is not the one pinned.
fn lock(p: Privacy, color: bool) -> String {
    let (red, r) = if color {
        ("\x1b[31;1m", "\x1b[0m")
    } else {
        ("", "")
    };
    match p {
        Privacy::Plain => String::new(),
        Privacy::Encrypted => "[e2e] ".into(),
        Privacy::Verified => "[e2e ✓] ".into(),
        Privacy::Unverified => format!("{red}[KEY CHANGED, unverified]{r} "),
    }
}

/// An event as a person reads it: every foreign string through the renderer first, then our
/// own colours around it.
fn human(e: &Event, color: bool) -> String {
    let (b, d, r) = if color {
        ("\x1b[1m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let v = render;
    match e {
        Event::Message { from, text } => {
            // `/me waves` arrives as `* alice waves`: shown as an action.
            if let Some(action) = text.strip_prefix(&format!("* {from} ")) {
                let c = handle_color(from, color);
                return format!("{c}* {} {}{r}", v(from), v(action));
            }
            let auto = if slcp_plugin_api::markers::is_auto_reply(text) {
                format!(" {d}(automatic reply){r}")
            } else {
                String::new()
            };
            let text = v(text);
            match from.strip_prefix('?').and_then(|f| f.split_once('@')) {
                // Named a handle its source does not hold: say so, never show it as that user.
                Some((name, addr)) => {
                    let (name, addr) = (v(name), v(addr));
                    format!("? \"{name}\" from {addr} (not {name}): {text}{auto}")
                }
                None => {
                    let c = handle_color(from, color);
                    format!("{c}{b}{}{r}: {text}{auto}", v(from))
                }
            }
        }
        Event::Join { handle, addr } => format!("{d}* {} joined ({}){r}", v(handle), v(addr)),
        Event::Rename { from, to } => format!("{d}* {} is now {}{r}", v(from), v(to)),
        Event::Leave { handle } => format!("{d}* {} left{r}", v(handle)),
        Event::Away { handle } => format!("{d}* {} is away{r}", v(handle)),
        Event::Back { handle } => format!("{d}* {} is back{r}", v(handle)),
        Event::Clash { handle, addr } => format!(
            "! the handle {} is held by {}; you are not in the chat until you pick another with HANDLE <new>",
            v(handle),
            v(addr)
        ),
        Event::Handle { handle } => format!("{d}* you are now {}{r}", v(handle)),
        Event::Notice { text } => format!("{d}* {}{r}", v(text)),
        Event::Image { from, size, path } => {
            format!(
                "{}{b}{}{r} sent an image: {} saved as {}",
                handle_color(from, color),
                v(from),
                human_bytes(*size),
                v(path)
            )
        }
        Event::Group {
            from,
            group,
            text,
            privacy,
        } => {
            let c = handle_color(from, color);
            let g = handle_color(group, color);
            format!(
                "{g}[{}]{r} {}{c}{b}{}{r}: {}",
                v(group),
                lock(*privacy, color),
                v(from),
                v(text)
            )
        }
        Event::Private {
            from,
            text,
            privacy,
        } => {
            let c = handle_color(from, color);
            if let Some(action) = text.strip_prefix(&format!("* {from} ")) {
                return format!("{}{c}* {} {}{r}", lock(*privacy, color), v(from), v(action));
            }
            format!("{}{c}{b}{}{r}: {}", lock(*privacy, color), v(from), v(text))
        }
        Event::File { from, size, path } => format!(
            "{}{b}{}{r} sent a file: {} saved as {}",
            handle_color(from, color),
            v(from),
            human_bytes(*size),
            v(path)
        ),
        Event::Alert { .. } => String::new(),
        Event::Progress { sent, size } => progress_bar(*sent, *size),
        Event::Error { text } => format!("! {}", v(text)),
    }
}
