//! Sends that commands start, in the shell: IMG (a plugin's image sends, announced by UDP
//! first) and FILE commands: the file checked once, one transfer per recipient, and one reply
//! to the prompt when every transfer has ended (who got it, who did not and why).

use std::collections::HashMap;
use std::time::Instant;

use log::{debug, warn};
use mio::Registry;
use mio::net::UdpSocket;

use super::chat::{Chat, ConnId, FileJob};
use super::transfer;
use super::transfer::{Outcome, Transfers};
use crate::plugin::CallOut;

/// The FILE commands waiting for their transfers.
#[derive(Default)]
pub struct Jobs {
    open: HashMap<(ConnId, u64), Job>,
}

struct Job {
    left: usize,
    ok: Vec<String>,
    failed: Vec<String>,
}

/// The regular file at `path` and its metadata, or the one-line reason it cannot be sent.
fn check(path: &std::path::Path) -> Result<std::fs::Metadata, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("no such file: {}", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            " (it is a folder)"
        } else {
            ""
        };
        return Err(format!("{} is not a regular file{what}", path.display()));
    }
    Ok(meta)
}

impl Jobs {
    /// Starts the FILE commands the chat asked for.
    pub fn start(&mut self, chat: &mut Chat, transfers: &mut Transfers, registry: &Registry) {
        for job in std::mem::take(&mut chat.out.files) {
            let FileJob {
                conn,
                id,
                path,
                to,
                mut failed,
            } = job;
            let meta = match check(&path) {
                Ok(m) => m,
                Err(e) => {
                    chat.finish_command(conn, id, Err(e));
                    continue;
                }
            };
            let me = chat.handle().clone();
            let mut left = 0;
            for (h, addr) in to {
                let keys = match chat.transfer_keys(&h) {
                    Ok(k) => k,
                    Err(e) => {
                        failed.push(format!("{h}: {e}"));
                        continue;
                    }
                };
                match transfers.start_file_send(
                    registry,
                    addr,
                    &me,
                    h.as_str(),
                    &path,
                    &meta,
                    (conn, id),
                    Instant::now(),
                    keys.as_ref(),
                ) {
                    Ok(()) => left += 1,
                    Err(e) => failed.push(format!("{h}: {e}")),
                }
            }
            if left == 0 {
                chat.finish_command(conn, id, Err(failed.join("; ")));
                continue;
            }
            self.open.insert(
                (conn, id),
                Job {
                    left,
                    ok: Vec::new(),
                    failed,
                },
            );
            transfers.kick();
        }
    }

    /// Takes the outcome of a send that belongs to a FILE command; gives it back otherwise.
    pub fn outcome(&mut self, chat: &mut Chat, o: Outcome) -> Option<Outcome> {
        let (reply, result) = match &o {
            Outcome::Sent { reply, line, .. } => (*reply, Ok(line.clone())),
            Outcome::SendFailed { reply, error } => (*reply, Err(error.clone())),
            _ => return Some(o),
        };
        // An image's send (no FILE job of that command) goes back to the shell.
        let Some(job) = self.open.get_mut(&reply) else {
            return Some(o);
        };
        if let Outcome::Sent { to, path, .. } = &o {
            chat.file_sent(to, path);
        }
        match result {
            Ok(line) => job.ok.push(line),
            Err(e) => job.failed.push(e),
        }
        job.left -= 1;
        if job.left > 0 {
            return None;
        }
        let Some(job) = self.open.remove(&reply) else {
            warn!("a FILE job vanished");
            return None;
        };
        let r = if job.ok.is_empty() {
            Err(job.failed.join("; "))
        } else {
            let mut lines = job.ok;
            lines.extend(job.failed.into_iter().map(|f| format!("not sent: {f}")));
            Ok(lines)
        };
        chat.finish_command(reply.0, reply.1, r);
        None
    }
}

/// Starts the image sends a plugin asked for; the command's reply waits for the transfer.
pub fn start_images(
    chat: &mut Chat,
    call: Option<(ConnId, u64)>,
    out: &mut CallOut,
    udp: &UdpSocket,
    transfers: &mut Transfers,
    registry: &Registry,
) {
    for (to, path, size) in std::mem::take(&mut out.images) {
        let Some((addr, forms)) = chat.image_target(&to) else {
            out.error = Some(if to == *chat.handle() {
                "that is you; IMG someone else".to_string()
            } else {
                format!("nobody called {to} is here; WHO lists who is")
            });
            continue;
        };
        let keys = match chat.transfer_keys(&to) {
            Ok(k) => k,
            Err(e) => {
                out.error = Some(e);
                continue;
            }
        };
        // A send's outcome needs someone to tell; one started by an event has nobody.
        let Some(reply) = call else {
            warn!("a plugin sent an image outside a command; ignored");
            continue;
        };
        // SLCP.md: the UDP announcement first, then the TCP stream; so it leaves now,
        // before the connect below sends its SYN.
        // (An encrypted send announces nothing in the clear: its key speaks for it.)
        if keys.is_none() {
            chat.announce_image(&to, size);
        }
        for (a, b) in chat.out.udp.drain(..) {
            if let Err(e) = udp.send_to(&b, a) {
                debug!("announcement to {a}: {e}");
            }
        }
        let form = transfer::SendForm {
            named: forms.named_img,
            ready: forms.ready_img,
            recipient: forms.recipient,
        };
        let me = chat.handle().clone();
        match transfers.start_send(
            registry,
            addr,
            &me,
            to.as_str(),
            &path,
            size,
            form,
            reply,
            Instant::now(),
            keys.as_ref(),
        ) {
            Ok(()) => out.deferred = true,
            Err(e) => out.error = Some(e),
        }
    }
}
