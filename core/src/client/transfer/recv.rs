//! The receiving side of transfers: tell an image from SLCP lines on the TCP port, check the
//! header and the sender, write a hidden temporary file, and name it only when complete (or
//! take a whole image from one UDP datagram).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use super::*;
use crate::render::render;

impl Transfers {
    /// An image sent as one UDP datagram right after its announcement: the announcement from
    /// that exact address with exactly this size makes it one; `None` when it is not.
    pub fn udp_image(
        &mut self,
        src: SocketAddr,
        bytes: &[u8],
        policy: &mut dyn Policy,
        now: Instant,
    ) -> Option<Outcome> {
        let timeout = self.timeout;
        let a = self.take_announcement(src.ip(), |a| {
            a.src == src && a.size == bytes.len() as u64 && now.duration_since(a.at) <= timeout
        })?;
        let size = bytes.len() as u64;
        let from = a.handle;
        let r = (|| -> Result<PathBuf, String> {
            if size > self.max_bytes {
                return Err(format!(
                    "{from} offered {size} bytes, over the limit of {} bytes (max_image_bytes)",
                    self.max_bytes
                ));
            }
            policy.offer(&from, size)?;
            self.quota.charge(&from, size, now)?;
            let opened = self.open_tmp(u64::MAX - self.next_id);
            self.next_id += 1;
            let (tmp, mut file) = opened.inspect_err(|_| self.quota.refund(&from, size, now))?;
            let written = file.write_all(bytes).and_then(|_| file.sync_data());
            drop(file);
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!(
                    "writing to {}: {}",
                    self.imagepath.display(),
                    io_reason(&e)
                ));
            }
            let head = &bytes[..bytes.len().min(16)];
            let name = policy
                .name(&from, size, head)
                .ok()
                .filter(|n| is_safe_name(n))
                .unwrap_or_else(|| default_name(&from, head, SystemTime::now()));
            place(&tmp, &self.imagepath, &name).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                format!("saving: {}", io_reason(&e))
            })
        })();
        Some(match r {
            Ok(path) => {
                info!(
                    "saved {size} bytes from {from} (one UDP datagram) as {}",
                    path.display()
                );
                Outcome::Received { from, size, path }
            }
            Err(why) => {
                let error = format!("image from {from} ({src}) not received: {why}");
                warn!("{error}");
                Outcome::RecvFailed { error }
            }
        })
    }

    pub(super) fn abort_recv(&mut self, id: u64, registry: &Registry, why: &str) -> Outcome {
        let Some(mut r) = self.recvs.remove(&id) else {
            return Outcome::RecvFailed { error: why.into() };
        };
        let who = match &r.body {
            Some(b) => format!("{} ({})", b.from, r.peer),
            None => r.peer.to_string(),
        };
        let mut what = "image";
        let mut kept = String::new();
        if let Some(b) = r.body.take() {
            drop(b.file);
            if let Some(name) = &b.file_name {
                what = "file";
                if b.keep_partial && b.received > 0 {
                    // Hidden, under no real name: sending the same file again resumes here.
                    kept = format!(
                        "; {name}: {} kept for resuming when it is sent again",
                        progress_of(b.received, b.size)
                    );
                } else if let Err(e) = std::fs::remove_file(&b.tmp) {
                    warn!("removing {}: {e}", b.tmp.display());
                }
            } else {
                self.quota.refund(&b.from, b.size, Instant::now());
                if let Err(e) = std::fs::remove_file(&b.tmp) {
                    warn!("removing {}: {e}", b.tmp.display());
                }
            }
        }
        // A reset, not a close: that is how the sender learns the image was not kept.
        let _ = socket2::SockRef::from(&r.stream).set_linger(Some(Duration::ZERO));
        let _ = registry.deregister(&mut r.stream);
        let error = format!("{what} from {who} not received: {why}{kept}");
        warn!("{error}");
        Outcome::RecvFailed { error }
    }

    /// One turn of a receive; `true` when it stopped for the budget, not for the socket.
    pub(super) fn recv_turn(
        &mut self,
        id: u64,
        registry: &Registry,
        policy: &mut dyn Policy,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let mut moved = 0u64;
        loop {
            if moved >= TURN_BUDGET {
                return true;
            }
            let r = self.recvs.get_mut(&id).expect("recv");
            let n = match r.wire.read(&mut r.stream, &mut self.buf) {
                Ok(0) => {
                    let lines = r.lines
                        || (r.body.is_none()
                            && !r.header.is_empty()
                            && !is_img(&r.header)
                            && !is_file(&r.header));
                    if lines {
                        self.close_lines(id, registry, out);
                        return false;
                    }
                    let why = match &r.body {
                        Some(b) => format!(
                            "the connection closed after {} of {} bytes",
                            b.received, b.size
                        ),
                        None if r.header.is_empty() => {
                            "the connection closed before a header".into()
                        }
                        None => "the connection closed inside the header".into(),
                    };
                    out.push(self.abort_recv(id, registry, &why));
                    return false;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.push(self.abort_recv(id, registry, &format!("receiving: {e}")));
                    return false;
                }
            };
            moved += n as u64;
            r.last_io = now;
            if r.body.is_some() {
                let data = std::mem::take(&mut self.buf);
                let go_on = self.body_data(id, &data[..n], registry, policy, out);
                self.buf = data;
                if !go_on {
                    return false;
                }
                continue;
            }
            r.header.extend_from_slice(&self.buf[..n]);
            // `SLCPT <handle>\n` opens an encrypted transfer (only on a plain connection).
            if !r.wire.is_secure() && r.header.starts_with(b"SLCPT ") {
                let Some(nl) = r.header.iter().position(|b| *b == b'\n') else {
                    if r.header.len() > 64 {
                        out.push(self.abort_recv(id, registry, "a bad SLCPT line"));
                        return false;
                    }
                    continue;
                };
                let line = String::from_utf8_lossy(&r.header[6..nl]).into_owned();
                let rest = r.header.split_off(nl + 1);
                let keys = Handle::new(line.trim_end_matches('\r'))
                    .ok()
                    .and_then(|h| policy.tcp_keys(&h).map(|k| (h, k)));
                let Some((h, k)) = keys else {
                    let why = format!(
                        "an encrypted transfer from {} ({}), whose key is not pinned here",
                        render(&line),
                        r.peer
                    );
                    out.push(self.abort_recv(id, registry, &why));
                    return false;
                };
                let r = self.recvs.get_mut(&id).expect("recv");
                match secure::Wire::responder(&k, &rest) {
                    Ok(w) => {
                        r.wire = w;
                        r.auth = Some(h.to_string());
                        r.header.clear();
                    }
                    Err(e) => {
                        out.push(self.abort_recv(id, registry, &e));
                        return false;
                    }
                }
                continue;
            }
            let starts = |p: &[u8]| r.header.len() < p.len() && p.starts_with(&r.header);
            let maybe_file = starts(b"FILE ") || starts(b"SLCPT ");
            if !r.lines
                && (r.header.len() >= 4 || r.header.contains(&b'\n'))
                && !is_img(&r.header)
                && !is_file(&r.header)
                && !maybe_file
            {
                if !is_text(&r.header) {
                    out.push(self.abort_recv(
                        id,
                        registry,
                        "no IMG header (garbage on the image port)",
                    ));
                    return false;
                }
                // Not an image: a peer that speaks SLCP over TCP.
                r.lines = true;
            }
            if r.lines {
                if let Some(end) = r.header.iter().rposition(|b| *b == b'\n') {
                    let bytes: Vec<u8> = r.header.drain(..=end).collect();
                    out.push(Outcome::Lines {
                        from: r.peer,
                        bytes,
                    });
                }
                if r.header.len() > MAX_TCP_LINE {
                    out.push(self.abort_recv(id, registry, "a line over 64 KiB on the TCP port"));
                    return false;
                }
                continue;
            }
            // A FILE header ends at its newline only (its name may hold spaces and digits).
            let end = if is_file(&r.header) {
                r.header.iter().position(|c| *c == b'\n').map(|n| n + 1)
            } else {
                header_end(&r.header)
            };
            let Some(end) = end else {
                if r.header.len() > MAX_HEADER {
                    out.push(self.abort_recv(
                        id,
                        registry,
                        "no IMG header (garbage on the image port)",
                    ));
                    return false;
                }
                continue;
            };
            let mut header = std::mem::take(&mut r.header);
            let rest = header.split_off(end);
            let peer = r.peer;
            if is_file(&header) {
                match self.open_file_body(id, &header, peer, policy) {
                    Ok(b) => self.recvs.get_mut(&id).expect("recv").body = Some(b),
                    Err(why) => {
                        out.push(self.refuse_file(id, registry, &why));
                        return false;
                    }
                }
                if !self.body_data(id, &rest, registry, policy, out) {
                    return false;
                }
                continue;
            }
            match self.open_body(id, &header, peer, policy) {
                Ok((b, handshake, named)) => {
                    out.push(Outcome::Forms {
                        from: b.from.clone(),
                        named,
                        ready: handshake,
                    });
                    let r = self.recvs.get_mut(&id).expect("recv");
                    r.body = Some(b);
                    if handshake && rest.is_empty() {
                        // It waits for our word before it sends the bytes.
                        let _ = r.stream.write_all(b"READY\n");
                        r.readied = true;
                    }
                }
                Err(why) => {
                    out.push(self.abort_recv(id, registry, &why));
                    return false;
                }
            }
            if !self.body_data(id, &rest, registry, policy, out) {
                return false;
            }
        }
    }

    /// Writes image bytes that arrived; false when the receive ended (saved or aborted).
    pub(super) fn body_data(
        &mut self,
        id: u64,
        data: &[u8],
        registry: &Registry,
        policy: &mut dyn Policy,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let r = self.recvs.get_mut(&id).expect("recv");
        let b = r.body.as_mut().expect("body");
        if data.len() as u64 > b.size - b.received {
            b.keep_partial = false;
            let why = format!("more than the {} bytes announced", b.size);
            out.push(self.abort_recv(id, registry, &why));
            return false;
        }
        if b.head.len() < 16 {
            let k = (16 - b.head.len()).min(data.len());
            b.head.extend_from_slice(&data[..k]);
        }
        if let Err(e) = b.file.write_all(data) {
            let why = format!("writing to {}: {}", self.imagepath.display(), io_reason(&e));
            out.push(self.abort_recv(id, registry, &why));
            return false;
        }
        b.received += data.len() as u64;
        if b.received == b.size && b.file_name.is_some() {
            out.push(self.finish_file(id, registry));
            return false;
        }
        if b.received == b.size {
            out.push(self.finish_recv(id, registry, policy));
            return false;
        }
        true
    }

    /// Checks a header and opens the temporary file; also says whether the header was the
    /// handshake form (answered with READY) and whether it carried a file name.
    pub(super) fn open_body(
        &mut self,
        id: u64,
        header: &[u8],
        peer: SocketAddr,
        policy: &mut dyn Policy,
    ) -> Result<(Body, bool, bool), String> {
        let line = std::str::from_utf8(header)
            .map_err(|_| "the header is not UTF-8".to_string())?
            .trim_end_matches(['\n', '\r', ' ']);
        let (named, size, file_name) = match codec::decode_line(line) {
            Ok(Message::Img { handle, size, name }) => (handle, size, name),
            Ok(other) => {
                return Err(format!(
                    "a {} line where an IMG header belongs",
                    other.word()
                ));
            }
            Err(e) => return Err(format!("bad IMG header: {e}")),
        };
        // `IMG <file name> <size>` (a handshake sender): the field names no handle anyone has.
        let known = policy.knows(&named);
        let handshake = !known && file_name.is_none() && looks_like_file_name(named.as_str());
        let auth = self.recvs.get(&id).and_then(|r| r.auth.clone());
        let from = match (auth, policy.sender(&named, peer.ip())) {
            // An encrypted transfer: its key said who it is; the header must agree.
            (Some(a), _) if a == named.as_str() => a,
            (Some(a), _) => return Err(format!("{a}'s encrypted transfer names {named}")),
            (None, Ok(f)) => f,
            // A UDP announcement from that address, of that size, by a holder of its handle.
            (None, Err(e)) => self
                .take_announcement(peer.ip(), |a| a.size == size)
                .map(|a| a.handle)
                .ok_or(e)?,
        };
        if size > self.max_bytes {
            return Err(format!(
                "{from} offered {size} bytes, over the limit of {} bytes (max_image_bytes)",
                self.max_bytes
            ));
        }
        policy.offer(&from, size)?;
        let now = Instant::now();
        self.quota.charge(&from, size, now)?;
        let (tmp, file) = self
            .open_tmp(id)
            .inspect_err(|_| self.quota.refund(&from, size, now))?;
        info!("receiving {size} bytes from {from} ({peer})");
        let b = Body {
            started: now,
            from,
            size,
            received: 0,
            resumed: 0,
            file,
            tmp,
            head: Vec::new(),
            file_name: None,
            keep_partial: false,
        };
        Ok((b, handshake, file_name.is_some()))
    }

    /// A new hidden temporary file in `imagepath`, renamed into place only when complete.
    pub(super) fn open_tmp(&self, id: u64) -> Result<(PathBuf, File), String> {
        let unwritable = |e: io::Error| {
            format!(
                "imagepath {} is not writable: {}",
                self.imagepath.display(),
                io_reason(&e)
            )
        };
        // Only this user reads what peers sent: the folder we create is 0700, the files 0600.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.imagepath)
            .map_err(unwritable)?;
        let tmp = self
            .imagepath
            .join(format!(".slcp-incoming-{}-{id}.part", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(unwritable)?;
        Ok((tmp, file))
    }

    pub(super) fn finish_recv(
        &mut self,
        id: u64,
        registry: &Registry,
        policy: &mut dyn Policy,
    ) -> Outcome {
        let b = self
            .recvs
            .get(&id)
            .and_then(|r| r.body.as_ref())
            .expect("body");
        let name = policy
            .name(&b.from, b.size, &b.head)
            .ok()
            .filter(|n| is_safe_name(n))
            .unwrap_or_else(|| default_name(&b.from, &b.head, SystemTime::now()));
        match place(&b.tmp, &self.imagepath, &name) {
            Ok(path) => {
                let mut r = self.recvs.remove(&id).expect("recv");
                let _ = registry.deregister(&mut r.stream);
                let b = r.body.expect("body");
                info!(
                    "saved {} bytes from {} as {}",
                    b.size,
                    b.from,
                    path.display()
                );
                // Dropping the stream closes it normally: the sender's sign that we kept it.
                Outcome::Received {
                    from: b.from,
                    size: b.size,
                    path,
                }
            }
            Err(e) => self.abort_recv(id, registry, &format!("saving: {}", io_reason(&e))),
        }
    }
}
