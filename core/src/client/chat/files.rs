//! FILE: any file, with its name, to slcp peers that announced the `file` extension (a plain
//! SLCP peer is told so at the prompt: IMG remains the way to send it an image).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Chat, ConnId, State};
use crate::client::transfer::human_bytes;
use crate::codec::Handle;
use crate::ipc::Event;

/// A FILE command the shell carries out: one send per recipient, one reply when all ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileJob {
    /// The prompt that asked.
    pub conn: ConnId,
    /// Its request.
    pub id: u64,
    /// The file.
    pub path: PathBuf,
    /// Who gets it, and where.
    pub to: Vec<(Handle, SocketAddr)>,
    /// Recipients that cannot get it, with the reason.
    pub failed: Vec<String>,
}

/// Splits `FILE` arguments into the recipient and the path (the rest of the line, so it may
/// hold spaces; surrounding quotes are dropped, `~/` is the home folder).
pub fn parse_file_args(args: &str, home: Option<&str>) -> Result<(String, PathBuf), String> {
    let usage = "usage: FILE <handle|@group|h1,h2|*> <path>";
    slcp_plugin_api::args::target_and_path(args, home, usage).map(|(to, p)| (to, PathBuf::from(p)))
}

impl Chat {
    /// FILE <who> <path>: checks the recipients; the shell checks the file and sends.
    pub(super) fn cmd_file(&mut self, conn: ConnId, id: u64, rest: &str) {
        if self.state != State::Joined {
            return self.reply(conn, id, Err("you are not in the chat; JOIN first".into()));
        }
        let home = std::env::var("HOME").ok();
        let (target, path) = match parse_file_args(rest, home.as_deref()) {
            Ok(x) => x,
            Err(e) => return self.reply(conn, id, Err(e)),
        };
        let rcpt = if target == "*" || target.starts_with('@') || target.contains(',') {
            match self.recipients(&target) {
                Ok((_, r)) => r,
                Err(e) => return self.reply(conn, id, Err(e)),
            }
        } else {
            match Handle::new(&target) {
                Ok(h) if h == self.me => {
                    return self.reply(conn, id, Err("that is you; FILE someone else".into()));
                }
                Ok(h) => vec![h],
                Err(e) => {
                    return self.reply(conn, id, Err(format!("{target:?} is not a handle: {e}")));
                }
            }
        };
        let (mut to, mut failed) = (Vec::new(), Vec::new());
        for h in rcpt {
            match self.peers.get(&h) {
                None => failed.push(format!("{h}: nobody called {h} is here; WHO lists who is")),
                Some(p) if p.exts.is_some_and(|e| e.file) => to.push((h, p.addr)),
                Some(_) => failed.push(format!(
                    "{h}: its client does not take files (a plain SLCP client, without slcp's FILE extension); IMG sends it images"
                )),
            }
        }
        if to.is_empty() {
            let e = if failed.is_empty() {
                "nobody else is here".to_string()
            } else {
                failed.join("; ")
            };
            return self.reply(conn, id, Err(e));
        }
        self.out.files.push(FileJob {
            conn,
            id,
            path,
            to,
            failed,
        });
    }

    /// A file was saved: tell the prompts and keep it in the history.
    pub fn file_received(&mut self, from: String, size: u64, path: String) {
        self.record(&from, true, "file", &path, "received");
        let name = std::path::Path::new(&path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let what = format!("sent a file: {name} ({})", human_bytes(size));
        self.attend(&from, &from, &what);
        self.event(Event::File { from, size, path });
    }

    /// A file this client sent arrived.
    pub fn file_sent(&mut self, to: &str, path: &str) {
        self.record(to, false, "file", path, "sent");
    }
}
