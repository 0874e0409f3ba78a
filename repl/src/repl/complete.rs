//! Tab completion at the prompt: command words (built in, local and the plugins'), then each
//! argument by the kind its command declares (a handle from the shared cache, a file path).

use std::sync::Arc;

use rustyline::completion::{Completer, FilenameCompleter, Pair};
use rustyline::{Helper, Highlighter, Hinter, Validator};
use slcp_core::ipc::{ArgKind, CommandInfo};

use super::Shared;

#[derive(Helper, Hinter, Validator, Highlighter)]
pub(super) struct SlcpHelper {
    pub(super) shared: Arc<Shared>,
    pub(super) commands: Vec<CommandInfo>,
    pub(super) files: FilenameCompleter,
}

impl Completer for SlcpHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(char::is_whitespace)
            .map(|i| i + before[i..].chars().next().map_or(1, char::len_utf8))
            .unwrap_or(0);
        let current = &before[start..];
        let words: Vec<&str> = before[..start].split_whitespace().collect();
        let pair = |s: String| Pair {
            display: s.clone(),
            replacement: format!("{s} "),
        };
        if words.is_empty() {
            // The command word, in the case the user started typing it.
            let slash = if current.starts_with('/') { "/" } else { "" };
            let typed = &current[slash.len()..];
            let lower = !typed.is_empty() && typed.chars().all(|c| !c.is_uppercase());
            let up = typed.to_ascii_uppercase();
            let c = self
                .commands
                .iter()
                .filter(|c| c.word.starts_with(&up))
                .map(|c| {
                    let w = if lower {
                        c.word.to_ascii_lowercase()
                    } else {
                        c.word.clone()
                    };
                    pair(format!("{slash}{w}"))
                })
                .collect();
            return Ok((start, c));
        }
        let word = words[0].trim_start_matches('/').to_ascii_uppercase();
        let Some(cmd) = self.commands.iter().find(|c| c.word == word) else {
            return Ok((start, Vec::new()));
        };
        let idx = words.len() - 1;
        let kind = cmd
            .args
            .get(idx)
            .or_else(|| cmd.args.last().filter(|k| **k == ArgKind::Text));
        match kind {
            Some(ArgKind::Handle) => {
                let peers = self.shared.peers.lock().unwrap();
                let c = peers
                    .iter()
                    .filter(|h| h.starts_with(current))
                    .map(|h| pair(h.clone()))
                    .collect();
                Ok((start, c))
            }
            Some(ArgKind::Path) => self.files.complete(line, pos, _ctx),
            _ => Ok((start, Vec::new())),
        }
    }
}
