//! FILE transfers, slcp's extension (PROTOCOL.md): the header with the file's own name and an
//! identity, the receiver's answer (`FILEOK <offset>`, or `FILENO <reason>`), a partial file
//! kept under a hidden name so that sending the same file again resumes, and the safe name the
//! complete file gets in `downloadpath`.

use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use sha2::{Digest, Sha256};

use super::send::open_send;
use super::*;
use crate::ext;

/// Unfinished files kept per sender at most.
const MAX_PARTIALS: usize = 16;
/// Partial files older than this are removed when the client starts.
const PARTIAL_DAYS: u64 = 7;

/// The identity of a file being sent: its path, size and modification time hashed. The same
/// file sent again has the same id (so the receiver resumes); a changed file has another.
pub fn file_id(path: &Path, meta: &std::fs::Metadata) -> String {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(canon.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(mtime.to_le_bytes());
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Space a received file must leave free on the disk of `downloadpath`.
const SPARE: u64 = 64 << 20;

/// Bytes an unprivileged user may still write in `dir` (`None` when it cannot be asked).
fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// Whether a TCP stream begins like a FILE header.
pub(super) fn is_file(b: &[u8]) -> bool {
    b.len() >= 5 && &b[..5] == b"FILE "
}

/// Removes partial files nobody resumed for a week.
pub(super) fn remove_stale_partials(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let week = Duration::from_secs(PARTIAL_DAYS * 86_400);
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with(".slcp-partial-") && name.ends_with(".part")) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > week);
        if old && std::fs::remove_file(e.path()).is_ok() {
            info!("removed {name}: a partial file nobody resumed for {PARTIAL_DAYS} days");
        }
    }
}

impl Transfers {
    /// Starts sending the file at `path` to `to` at `addr`: the header, then the bytes from
    /// where the receiver says it stands.
    #[allow(clippy::too_many_arguments)]
    pub fn start_file_send(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        me: &Handle,
        to: &str,
        path: &Path,
        meta: &std::fs::Metadata,
        reply: (ConnId, u64),
        now: Instant,
        keys: Option<&TcpKeys>,
    ) -> Result<(), String> {
        let (wire, file, file_name) = open_send(me, path, keys)?;
        let size = meta.len();
        let header = ext::file_header(me, size, &file_id(path, meta), &file_name);
        let stream = self.connect(registry, addr, to)?;
        let id = self.next_id - 1;
        info!(
            "sending file {} ({size} bytes) to {to} at {addr}",
            path.display()
        );
        self.sends.insert(
            id,
            Send {
                path: path.display().to_string(),
                lines: false,
                wait_file: true,
                is_file: true,
                wait_hs: wire.is_secure(),
                wire,
                file_name,
                file: Some(file),
                size,
                reply,
                ..Send::new(to.to_owned(), addr, stream, header, now)
            },
        );
        Ok(())
    }

    /// Reads the receiver's answer to a FILE header. `Some(true)`: go on (from its offset);
    /// `Some(false)`: the send ended (refused or broken); `None`: not there yet.
    pub(super) fn file_answer(
        &mut self,
        id: u64,
        registry: &Registry,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> Option<bool> {
        let s = self.sends.get_mut(&id).expect("send");
        let (size, to) = (s.size, s.to.clone());
        let mut b = [0u8; 512];
        let answer = loop {
            match s.wire.read(&mut s.stream, &mut b) {
                Ok(0) => break Err(format!("{} closed the connection without an answer", s.to)),
                Ok(n) => {
                    s.ready_buf.extend_from_slice(&b[..n]);
                    match ext::parse_file_answer(&s.ready_buf) {
                        Some(Ok(offset)) => break Ok(offset),
                        Some(Err(why)) => break Err(format!("{} refused it: {why}", s.to)),
                        None if s.ready_buf.len() > 512 => {
                            break Err(format!("{} answered something else", s.to));
                        }
                        None => continue,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("waiting for the answer: {e}")),
            }
        };
        let offset = match answer {
            Ok(o) if o <= size => o,
            Ok(o) => {
                let why = format!("{to} asked to resume at byte {o}, past the end");
                out.push(self.fail_send(id, registry, why));
                return Some(false);
            }
            Err(why) => {
                out.push(self.fail_send(id, registry, why));
                return Some(false);
            }
        };
        if !self.sends.contains_key(&id) {
            return Some(false);
        }
        let s = self.sends.get_mut(&id).expect("send");
        if offset > 0 {
            let sought = s.file.as_mut().map(|f| f.seek(SeekFrom::Start(offset)));
            if let Some(Err(e)) = sought {
                let why = format!("reading the file: {}", io_reason(&e));
                out.push(self.fail_send(id, registry, why));
                return Some(false);
            }
            info!(
                "{} has {offset} bytes of {} already: resuming",
                s.to, s.file_name
            );
        }
        s.sent = offset;
        s.resumed = offset;
        s.wait_file = false;
        s.started = now;
        s.last_io = now;
        Some(true)
    }

    /// A FILE is complete: it gets its own name (made safe, never overwriting) in
    /// `downloadpath`; the normal close tells the sender it was kept.
    pub(super) fn finish_file(&mut self, id: u64, registry: &Registry) -> Outcome {
        let b = self
            .recvs
            .get(&id)
            .and_then(|r| r.body.as_ref())
            .expect("body");
        let name = b.file_name.clone().unwrap_or_else(|| "file".into());
        match place(&b.tmp, &self.files.dir, &name) {
            Ok(path) => {
                let mut r = self.recvs.remove(&id).expect("recv");
                let _ = registry.deregister(&mut r.stream);
                let b = r.body.expect("body");
                info!(
                    "saved file {} bytes from {} as {} ({} resumed)",
                    b.size,
                    b.from,
                    path.display(),
                    b.resumed
                );
                Outcome::FileReceived {
                    from: b.from,
                    size: b.size,
                    path,
                }
            }
            Err(e) => {
                let why = format!("saving: {}", io_reason(&e));
                self.abort_recv(id, registry, &why)
            }
        }
    }

    /// Refuses a FILE with its reason on the connection (`FILENO`), then closes it normally
    /// (a reset could destroy the line before the sender reads it).
    pub(super) fn refuse_file(&mut self, id: u64, registry: &Registry, why: &str) -> Outcome {
        if let Some(mut r) = self.recvs.remove(&id) {
            let _ = r.wire.write(&mut r.stream, &ext::file_no(why));
            let _ = r.wire.flush(&mut r.stream);
            let _ = r.stream.shutdown(Shutdown::Write);
            let _ = registry.deregister(&mut r.stream);
            let error = format!("a file from {} was refused: {why}", r.peer);
            warn!("{error}");
            return Outcome::RecvFailed { error };
        }
        Outcome::RecvFailed { error: why.into() }
    }

    /// Checks a FILE header, finds or creates the partial file, and answers the sender.
    pub(super) fn open_file_body(
        &mut self,
        id: u64,
        header: &[u8],
        peer: SocketAddr,
        policy: &mut dyn Policy,
    ) -> Result<Body, String> {
        let line = std::str::from_utf8(header)
            .map_err(|_| "the header is not UTF-8".to_string())?
            .trim_end_matches(['\n', '\r']);
        let h = ext::parse_file_header(line)?;
        let name = ext::names::sanitize(&h.name);
        let auth = self.recvs.get(&id).and_then(|r| r.auth.clone());
        let from = match auth {
            // An encrypted transfer: its key said who it is; the header must agree.
            Some(a) if a == h.handle.as_str() => a,
            Some(a) => return Err(format!("{a}'s encrypted transfer names {}", h.handle)),
            None => policy.file_sender(&h.handle, peer.ip())?,
        };
        if h.size > self.files.max_bytes {
            return Err(format!(
                "{name} is {}, over the limit of {} (max_file_bytes)",
                human_bytes(h.size),
                human_bytes(self.files.max_bytes)
            ));
        }
        let unwritable = |e: io::Error| {
            format!(
                "downloadpath {} is not writable: {}",
                self.files.dir.display(),
                io_reason(&e)
            )
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.files.dir)
            .map_err(unwritable)?;
        let tmp = self.files.dir.join(format!(
            ".slcp-partial-{}-{}.part",
            Handle::file_stem(&from),
            h.id
        ));
        if self
            .recvs
            .values()
            .any(|r| r.body.as_ref().is_some_and(|b| b.tmp == tmp))
        {
            return Err(format!("{name} from {from} is being received already"));
        }
        // A sender may leave a few unfinished files, not a folder full of them.
        if !tmp.exists() {
            let prefix = format!(".slcp-partial-{}-", Handle::file_stem(&from));
            let unfinished = std::fs::read_dir(&self.files.dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                        .count()
                })
                .unwrap_or(0);
            if unfinished >= MAX_PARTIALS {
                return Err(format!(
                    "{from} has {unfinished} unfinished files here already; one must be resumed to the end first"
                ));
            }
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(unwritable)?;
        let mut have = file.metadata().map(|m| m.len()).unwrap_or(0);
        if have > h.size {
            // Not the file it claims to continue: start over.
            file.set_len(0).map_err(unwritable)?;
            have = 0;
        }
        // Said now, not after gigabytes: the rest must fit, with room to spare.
        if let Some(free) = free_bytes(&self.files.dir) {
            let need = (h.size - have).saturating_add(SPARE);
            if need > free {
                if have == 0 {
                    let _ = std::fs::remove_file(&tmp);
                }
                return Err(format!(
                    "not enough space for {name}: {} to go, {} free in downloadpath",
                    human_bytes(h.size - have),
                    human_bytes(free)
                ));
            }
        }
        let r = self.recvs.get_mut(&id).expect("recv");
        // A short line on a fresh connection: the socket buffer takes it whole.
        let _ = r.wire.write(&mut r.stream, &ext::file_ok(have));
        let _ = r.wire.flush(&mut r.stream);
        info!(
            "receiving file {name} ({} bytes) from {from} ({peer}){}",
            h.size,
            if have > 0 {
                format!(", resuming at {have}")
            } else {
                String::new()
            }
        );
        Ok(Body {
            started: Instant::now(),
            from,
            size: h.size,
            received: have,
            resumed: have,
            file,
            tmp,
            head: Vec::new(),
            file_name: Some(name),
            keep_partial: true,
        })
    }
}
