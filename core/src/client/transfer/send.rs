//! The sending side of transfers: connect, the header in the receiver's form (SLCP's, the
//! reference implementation's, or the READY handshake), the file in slices, the verdict.

use super::*;

/// What every send begins with: its connection's encryption (with `keys`), the open file, and
/// its name as the user named it.
pub(super) fn open_send(
    me: &Handle,
    path: &Path,
    keys: Option<&TcpKeys>,
) -> Result<(secure::Wire, File, String), String> {
    let wire = match keys {
        Some(k) => secure::Wire::initiator(me.as_str(), k)?,
        None => secure::Wire::default(),
    };
    let file = File::open(path)
        .map_err(|e| format!("cannot open {}: {}", path.display(), io_reason(&e)))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok((wire, file, file_name))
}

impl Transfers {
    /// Starts sending `path` (`size` bytes) to `addr`, announced as from `me`.
    #[allow(clippy::too_many_arguments)]
    pub fn start_send(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        me: &Handle,
        to: &str,
        path: &Path,
        size: u64,
        form: SendForm,
        reply: (ConnId, u64),
        now: Instant,
        keys: Option<&TcpKeys>,
    ) -> Result<(), String> {
        let (wire, file, file_name) = open_send(me, path, keys)?;
        // A file name on the wire is one field: no blanks, no control characters.
        let wire_name: String = file_name
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let handle = if form.recipient {
            Handle::new(to).map_err(|e| e.to_string())?
        } else {
            me.clone()
        };
        let header = if form.ready {
            format!("IMG {wire_name} {size}\n").into_bytes()
        } else if form.named {
            // The reference implementation reads up to the fourth space: no newline.
            format!("IMG {handle} {wire_name} {size} ").into_bytes()
        } else {
            codec::encode(&Message::Img {
                handle,
                size,
                name: None,
            })
            .map_err(|e| e.to_string())?
        };
        let stream = self.connect(registry, addr, to)?;
        let id = self.next_id - 1;
        info!(
            "sending {} ({size} bytes) to {to} at {addr}",
            path.display()
        );
        self.sends.insert(
            id,
            Send {
                path: path.display().to_string(),
                lines: false,
                wait_hs: wire.is_secure(),
                wire,
                wait_ready: form.ready,
                file_name,
                file: Some(file),
                size,
                reply,
                ..Send::new(to.to_owned(), addr, stream, header, now)
            },
        );
        Ok(())
    }

    pub(super) fn connect(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        to: &str,
    ) -> Result<TcpStream, String> {
        let mut stream = TcpStream::connect(addr)
            .map_err(|e| format!("cannot connect to {to} at {addr}: {e}"))?;
        let id = self.next_id;
        self.next_id += 1;
        registry
            .register(
                &mut stream,
                token(id),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("cannot watch the connection to {to}: {e}"))?;
        Ok(stream)
    }

    /// Sends SLCP lines to a peer without UDP, on a connection of their own.
    pub fn send_lines(
        &mut self,
        registry: &Registry,
        addr: SocketAddr,
        bytes: Vec<u8>,
        now: Instant,
    ) {
        let stream = match self.connect(registry, addr, &addr.to_string()) {
            Ok(s) => s,
            Err(e) => return warn!("{e}"),
        };
        let id = self.next_id - 1;
        self.sends
            .insert(id, Send::new(addr.to_string(), addr, stream, bytes, now));
    }

    pub(super) fn sent_line(&self, id: u64, now: Instant) -> String {
        let s = &self.sends[&id];
        let secs = now.duration_since(s.started).as_secs_f64().max(1e-6);
        let moved = s.size - s.resumed;
        let resumed = if s.resumed > 0 {
            format!(
                " (resumed: {} were there, {} sent now)",
                human_bytes(s.resumed),
                human_bytes(moved)
            )
        } else {
            String::new()
        };
        format!(
            "sent {} to {}: {} in {:.2} s ({}/s){resumed}",
            s.file_name,
            s.to,
            human_bytes(s.size),
            secs,
            human_bytes((moved as f64 / secs) as u64)
        )
    }

    pub(super) fn close_send(&mut self, id: u64, registry: &Registry) {
        if let Some(mut s) = self.sends.remove(&id) {
            let _ = registry.deregister(&mut s.stream);
        }
    }

    /// Closes send `id` as delivered, `line` being what the prompt hears.
    pub(super) fn succeed_send(&mut self, id: u64, registry: &Registry, line: String) -> Outcome {
        let s = &self.sends[&id];
        let (reply, to, path) = (s.reply, s.to.clone(), s.path.clone());
        self.close_send(id, registry);
        Outcome::Sent {
            reply,
            line,
            to,
            path,
        }
    }

    pub(super) fn fail_send(&mut self, id: u64, registry: &Registry, why: String) -> Outcome {
        let s = &self.sends[&id];
        if s.lines {
            let addr = s.addr;
            warn!("lines to {addr} over TCP not sent: {why}");
            self.close_send(id, registry);
            return Outcome::Reached { addr, ok: true };
        }
        let reply = s.reply;
        let kind = if s.is_file { "file" } else { "image" };
        let error = format!("{kind} {} to {} failed: {why}", s.file_name, s.to);
        warn!("{error}");
        self.close_send(id, registry);
        Outcome::SendFailed { reply, error }
    }

    /// One turn of a send; `true` when it stopped for the budget, not for the socket.
    pub(super) fn send_turn(
        &mut self,
        id: u64,
        registry: &Registry,
        now: Instant,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let max_rate = self.max_rate;
        let s = self.sends.get_mut(&id).expect("send");
        if !s.connected {
            match s.stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    let refused = e.kind() == io::ErrorKind::ConnectionRefused;
                    if refused {
                        out.push(Outcome::Reached {
                            addr: s.addr,
                            ok: false,
                        });
                    }
                    let why = if refused {
                        format!(
                            "{} accepts no TCP connection at {} (connection refused): its client is not running, or it cannot receive images",
                            s.to, s.addr
                        )
                    } else {
                        format!("cannot connect: {e}")
                    };
                    out.push(self.fail_send(id, registry, why));
                    return false;
                }
                Ok(None) => {}
            }
            match s.stream.peer_addr() {
                Ok(_) => {
                    s.connected = true;
                    out.push(Outcome::Reached {
                        addr: s.addr,
                        ok: true,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return false,
                Err(e) => {
                    out.push(self.fail_send(id, registry, format!("cannot connect: {e}")));
                    return false;
                }
            }
        }
        if s.wait_hs {
            // An encrypted send: the handshake before anything of the transfer.
            match s.wire.handshake(&mut s.stream) {
                Ok(true) => {
                    s.wait_hs = false;
                    s.last_io = now;
                }
                Ok(false) => return false,
                Err(e) => {
                    out.push(self.fail_send(id, registry, format!("encrypted connection: {e}")));
                    return false;
                }
            }
        }
        if s.done_writing {
            // Waiting for the receiver's verdict: EOF is yes, a reset is no.
            let mut b = [0u8; 64];
            loop {
                match s.stream.read(&mut b) {
                    Ok(0) => {
                        let line = self.sent_line(id, now);
                        info!("{line}");
                        out.push(self.succeed_send(id, registry, line));
                        return false;
                    }
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        let why = format!(
                            "{} refused or aborted the {} after receiving it",
                            s.to,
                            if s.is_file { "file" } else { "image" }
                        );
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                }
            }
        }
        if s.wait_file && s.header_off == s.header.len() {
            // The receiver says where to start (or why not).
            match self.file_answer(id, registry, now, out) {
                Some(true) => {}
                _ => return false,
            }
        }
        let s = self.sends.get_mut(&id).expect("send");
        if s.wait_ready && s.header_off == s.header.len() {
            // The receiver writes READY when it wants the bytes.
            let mut b = [0u8; 64];
            loop {
                match s.stream.read(&mut b) {
                    Ok(0) => {
                        let why = format!("{} closed the connection instead of READY", s.to);
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                    Ok(n) => {
                        s.ready_buf.extend_from_slice(&b[..n]);
                        if s.ready_buf
                            .windows(5)
                            .any(|w| w.eq_ignore_ascii_case(b"READY"))
                        {
                            s.wait_ready = false;
                            s.last_io = now;
                            break;
                        }
                        if s.ready_buf.len() > 256 {
                            let why = format!("{} answered something other than READY", s.to);
                            out.push(self.fail_send(id, registry, why));
                            return false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        out.push(self.fail_send(id, registry, format!("waiting for READY: {e}")));
                        return false;
                    }
                }
            }
        }
        let mut moved = 0u64;
        loop {
            if moved >= TURN_BUDGET {
                return true;
            }
            if (s.wait_ready || s.wait_file) && s.header_off == s.header.len() {
                return true;
            }
            let res = if s.header_off < s.header.len() {
                s.wire
                    .write(&mut s.stream, &s.header[s.header_off..])
                    .inspect(|n| {
                        s.header_off += n;
                    })
            } else if s.buf_off < s.buf.len() {
                s.wire
                    .write(&mut s.stream, &s.buf[s.buf_off..])
                    .inspect(|n| {
                        s.buf_off += n;
                        s.sent += *n as u64;
                    })
            } else if s.lines {
                // Lines need no verdict: done once written.
                let _ = s.stream.shutdown(Shutdown::Write);
                debug!("sent lines to {} over TCP", s.addr);
                self.close_send(id, registry);
                return false;
            } else if s.sent < s.size {
                if max_rate > 0 {
                    let done = s.sent - s.resumed;
                    let due = s.started + Duration::from_secs_f64(done as f64 / max_rate as f64);
                    if due > now {
                        s.throttled = Some(due);
                        return false;
                    }
                }
                let want = CHUNK.min((s.size - s.sent) as usize);
                s.buf.resize(want, 0);
                let Some(file) = s.file.as_mut() else {
                    return false;
                };
                match file.read(&mut s.buf) {
                    Ok(0) => {
                        let why = format!("the file shrank to {} bytes while being sent", s.sent);
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                    Ok(n) => {
                        s.buf.truncate(n);
                        s.buf_off = 0;
                        continue;
                    }
                    Err(e) => {
                        let why = format!("reading the file: {}", io_reason(&e));
                        out.push(self.fail_send(id, registry, why));
                        return false;
                    }
                }
            } else {
                // An encrypted send may still hold its last frame.
                match s.wire.flush(&mut s.stream) {
                    Ok(true) => {}
                    Ok(false) => return false,
                    Err(e) => {
                        out.push(self.fail_send(id, registry, format!("sending: {e}")));
                        return false;
                    }
                }
                let _ = s.stream.shutdown(Shutdown::Write);
                s.done_writing = true;
                s.last_io = now;
                // The verdict may already be there.
                return true;
            };
            match res {
                Ok(0) => {
                    out.push(self.fail_send(id, registry, "the connection closed".into()));
                    return false;
                }
                Ok(n) => {
                    moved += n as u64;
                    s.last_io = now;
                    s.told_stall = false;
                    if now.duration_since(s.last_progress) >= PROGRESS_EVERY {
                        s.last_progress = now;
                        out.push(Outcome::Progress {
                            reply: s.reply,
                            sent: s.sent,
                            size: s.size,
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let why = match e.kind() {
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => format!(
                            "{} closed the connection early, after {} of {} bytes (refused, or out of space?)",
                            s.to, s.sent, s.size
                        ),
                        _ => format!("sending: {e}"),
                    };
                    out.push(self.fail_send(id, registry, why));
                    return false;
                }
            }
        }
    }
}
