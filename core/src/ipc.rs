//! The REPL ↔ client IPC: JSON lines over TCP on 127.0.0.1, the token file, and a blocking
//! client used by the REPL, the tests and the benchmarks.
//!
//! A connection first sends `{"token": "..."}`; the client answers `hello` (or `denied` and
//! closes). Then the REPL sends `{"id": N, "line": "MSG bob hi"}` and gets a `reply` with the same
//! id; `event`s are pushed at any time.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::render::render;

/// The longest IPC line either side accepts.
pub const MAX_LINE: usize = 1 << 20;

/// The first line a REPL sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Auth {
    /// The token from the runtime file.
    pub token: String,
    /// A person reads this prompt: on attach it wants the last lines of each recent
    /// conversation and a count of what came meanwhile (a script wants neither).
    #[serde(default)]
    pub recap: bool,
}

/// A command line for the client to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the reply.
    pub id: u64,
    /// The command as the user typed it.
    pub line: String,
}

/// What kind of completion a command argument wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgKind {
    /// A known handle.
    Handle,
    /// A file path.
    Path,
    /// Anything.
    Text,
}

/// A command the client understands, for HELP and completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// The command word, upper case.
    pub word: String,
    /// Usage, e.g. `MSG <handle> <text...>`.
    pub usage: String,
    /// One line of help.
    pub help: String,
    /// The completion kind of each argument.
    pub args: Vec<ArgKind>,
}

/// How a message travelled (slcp's end-to-end encryption, PROTOCOL.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// In the clear (a plain SLCP peer, or encryption off).
    #[default]
    Plain,
    /// Encrypted and authenticated by the key pinned for the sender.
    Encrypted,
    /// Encrypted, by a key compared in person (VERIFY).
    Verified,
    /// Encrypted, but by a key other than the one pinned for that handle: not trusted.
    Unverified,
}

impl Privacy {
    /// `plain`, `encrypted`, `verified`, `unverified`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Privacy::Plain => "plain",
            Privacy::Encrypted => "encrypted",
            Privacy::Verified => "verified",
            Privacy::Unverified => "unverified",
        }
    }
}

/// Something that happened, pushed to every attached REPL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A message arrived.
    Message {
        /// The sender's handle (or address, when unknown).
        from: String,
        /// The text.
        text: String,
    },
    /// A user appeared.
    Join {
        /// Their handle.
        handle: String,
        /// Where they receive, `ip:port`.
        addr: String,
    },
    /// A user now goes by another handle (a JOIN of a new handle from the old one's address).
    Rename {
        /// The old handle.
        from: String,
        /// The new handle.
        to: String,
    },
    /// A user left or expired.
    Leave {
        /// Their handle.
        handle: String,
    },
    /// A user is away.
    Away {
        /// Their handle.
        handle: String,
    },
    /// A user is back.
    Back {
        /// Their handle.
        handle: String,
    },
    /// Somebody else holds our handle.
    Clash {
        /// The handle.
        handle: String,
        /// The other holder, `ip:port`.
        addr: String,
    },
    /// Our own handle changed (another REPL did HANDLE).
    Handle {
        /// The new handle.
        handle: String,
    },
    /// An image was saved.
    Image {
        /// Sender.
        from: String,
        /// Size in bytes.
        size: u64,
        /// Where it was saved.
        path: String,
    },
    /// A message arrived encrypted (slcp's end-to-end encryption).
    Private {
        /// The sender's handle: the one whose session decrypted it.
        from: String,
        /// The text.
        text: String,
        /// Which key vouches for it.
        privacy: Privacy,
    },
    /// A message to several people (a group, a list, everyone) arrived.
    Group {
        /// The sender's handle (or address, when unknown).
        from: String,
        /// Who it went to: `@team`, `alice,bob,carol`, or `*` for everyone.
        group: String,
        /// The text.
        text: String,
        /// How it travelled.
        #[serde(default)]
        privacy: Privacy,
    },
    /// A file was saved (FILE, with its own name made safe).
    File {
        /// Sender.
        from: String,
        /// Size in bytes.
        size: u64,
        /// Where it was saved.
        path: String,
    },
    /// Something arrived that the user should notice now: a prompt rings its bell (notify is
    /// `bell` or `both`, or the desktop has no notification service).
    Alert {
        /// Who it is from.
        from: String,
    },
    /// A send this prompt started is under way.
    Progress {
        /// Bytes sent.
        sent: u64,
        /// Of.
        size: u64,
    },
    /// Something a plugin wants the user to know.
    Notice {
        /// One line.
        text: String,
    },
    /// A problem the user should hear about.
    Error {
        /// One line.
        text: String,
    },
}

impl Event {
    /// The stable one-line form used in piped mode and documented in README:
    /// `<kind> <handle> [<rest>]`, every foreign string through [`render`] (so `\` is `\\`, a
    /// line break `\n`, ESC `\e`, other controls and invisible characters `\u{hex}`).
    pub fn line(&self) -> String {
        let r = render;
        match self {
            Event::Message { from, text } => format!("message {} {}", r(from), r(text)),
            Event::Join { handle, addr } => format!("join {} {}", r(handle), r(addr)),
            Event::Rename { from, to } => format!("rename {} {}", r(from), r(to)),
            Event::Leave { handle } => format!("leave {}", r(handle)),
            Event::Away { handle } => format!("away {}", r(handle)),
            Event::Back { handle } => format!("back {}", r(handle)),
            Event::Clash { handle, addr } => format!("clash {} {}", r(handle), r(addr)),
            Event::Handle { handle } => format!("handle {}", r(handle)),
            Event::Image { from, size, path } => {
                format!("image {} {size} {}", r(from), r(path))
            }
            Event::Private {
                from,
                text,
                privacy,
            } => format!("private {} {} {}", r(from), privacy.as_str(), r(text)),
            Event::Group {
                from,
                group,
                text,
                privacy: Privacy::Plain,
            } => format!("group {} {} {}", r(group), r(from), r(text)),
            Event::Group {
                from,
                group,
                text,
                privacy,
            } => format!(
                "group {} {} ({}) {}",
                r(group),
                r(from),
                privacy.as_str(),
                r(text)
            ),
            Event::File { from, size, path } => {
                format!("file {} {size} {}", r(from), r(path))
            }
            Event::Alert { from } => format!("alert {}", r(from)),
            Event::Progress { sent, size } => format!("progress {sent} {size}"),
            Event::Notice { text } => format!("notice {}", r(text)),
            Event::Error { text } => format!("error {}", r(text)),
        }
    }

    /// The handle the event is about, if any.
    pub fn handle(&self) -> Option<&str> {
        match self {
            Event::Message { from, .. }
            | Event::Private { from, .. }
            | Event::Image { from, .. }
            | Event::Group { from, .. }
            | Event::File { from, .. }
            | Event::Alert { from } => Some(from),
            Event::Join { handle, .. }
            | Event::Leave { handle }
            | Event::Away { handle }
            | Event::Back { handle }
            | Event::Clash { handle, .. }
            | Event::Handle { handle } => Some(handle),
            Event::Rename { to, .. } => Some(to),
            Event::Progress { .. } | Event::Notice { .. } | Event::Error { .. } => None,
        }
    }

    /// The kind word of [`Event::line`].
    pub fn kind(&self) -> &'static str {
        match self {
            // WAIT message waits for either.
            Event::Message { .. } | Event::Private { .. } => "message",
            Event::Join { .. } => "join",
            Event::Leave { .. } => "leave",
            Event::Rename { .. } => "rename",
            Event::Away { .. } => "away",
            Event::Back { .. } => "back",
            Event::Clash { .. } => "clash",
            Event::Handle { .. } => "handle",
            Event::Image { .. } => "image",
            Event::Group { .. } => "group",
            Event::File { .. } => "file",
            Event::Alert { .. } => "alert",
            Event::Progress { .. } => "progress",
            Event::Notice { .. } => "notice",
            Event::Error { .. } => "error",
        }
    }
}

/// Shows a foreign text safely on one line: [`render`].
pub fn escape(text: &str) -> String {
    render(text)
}

/// A line from the client to a REPL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Sent once the token is accepted.
    Hello {
        /// Our handle.
        handle: String,
        /// Our SLCP port.
        port: u16,
        /// Handles of the known peers, for completion.
        peers: Vec<String>,
        /// Every command the client runs.
        commands: Vec<CommandInfo>,
    },
    /// The token was wrong; the connection closes.
    Denied {
        /// Why.
        error: String,
    },
    /// The outcome of a request.
    Reply {
        /// The request's id.
        id: u64,
        /// Lines to show.
        lines: Vec<String>,
        /// Set when the command failed: one line, what to do.
        error: Option<String>,
    },
    /// Something happened.
    Event {
        /// What.
        event: Event,
        /// When it happened, in milliseconds since the Unix epoch (0 when unknown); a message
        /// shown after a detach keeps the time it arrived.
        #[serde(default, skip_serializing_if = "is_zero")]
        at: u64,
    },
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// What a running client leaves in the runtime dir so REPLs can find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The client's process id.
    pub pid: u32,
    /// The IPC port on 127.0.0.1.
    pub ipc_port: u16,
    /// The SLCP port.
    pub port: u16,
    /// The secret a REPL presents first.
    pub token: String,
}

impl RuntimeInfo {
    /// The runtime file of the client started for `handle` in `dir`.
    pub fn path(dir: &Path, handle: &str) -> PathBuf {
        // Handles may hold any non-separator character; keep the file name tame.
        let safe = crate::codec::Handle::file_stem(handle);
        dir.join(format!("client-{safe}.json"))
    }

    /// Writes the file with mode 0600, atomically (a reader never sees half of it).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(self)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Reads the file; `None` when there is none.
    pub fn read(path: &Path) -> io::Result<Option<RuntimeInfo>> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A fresh random token (128 bits from the OS).
pub fn new_token() -> io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Why attaching to a client failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Nothing listens on the port.
    #[error("cannot connect to the client's IPC port {port}: {source}")]
    Connect {
        /// The port.
        port: u16,
        /// The OS error.
        source: io::Error,
    },
    /// The client refused the token.
    #[error("the client refused the IPC token ({0}); stop it and start slcp again")]
    Denied(String),
    /// Something else went wrong talking to it.
    #[error("IPC with the client failed: {0}")]
    Io(#[from] io::Error),
    /// It answered something that is not IPC.
    #[error("the client answered something unexpected: {0}")]
    Protocol(String),
}

/// A blocking IPC connection: send requests, read server lines.
pub struct IpcClient {
    writer: TcpStream,
    reader: IpcReader,
    next_id: u64,
}

impl IpcClient {
    /// Connects to `127.0.0.1:port`, presents `token` and returns the client's hello.
    pub fn attach(port: u16, token: &str) -> Result<(IpcClient, ServerMsg), AttachError> {
        IpcClient::attach_as(port, token, false)
    }

    /// [`IpcClient::attach`] for a prompt a person reads (`recap`: see [`Auth::recap`]).
    pub fn attach_as(
        port: u16,
        token: &str,
        recap: bool,
    ) -> Result<(IpcClient, ServerMsg), AttachError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|source| AttachError::Connect { port, source })?;
        s.set_nodelay(true)?;
        let mut c = IpcClient {
            writer: s.try_clone()?,
            reader: IpcReader {
                reader: BufReader::new(s),
                line: String::new(),
            },
            next_id: 1,
        };
        c.send_json(&Auth {
            token: token.to_owned(),
            recap,
        })?;
        c.set_timeout(Some(Duration::from_secs(5)))?;
        let hello = c.recv()?.ok_or_else(|| {
            AttachError::Protocol("the connection closed before the hello".into())
        })?;
        c.set_timeout(None)?;
        match hello {
            ServerMsg::Hello { .. } => Ok((c, hello)),
            ServerMsg::Denied { error } => Err(AttachError::Denied(error)),
            other => Err(AttachError::Protocol(format!("{other:?}"))),
        }
    }

    fn send_json<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        let mut b = serde_json::to_vec(v)?;
        b.push(b'\n');
        self.writer.write_all(&b)
    }

    /// Sends a command line; returns its id.
    pub fn send(&mut self, line: &str) -> io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_json(&Request {
            id,
            line: line.to_owned(),
        })?;
        Ok(id)
    }

    /// Reads the next line from the client; `None` when it closed the connection.
    pub fn recv(&mut self) -> Result<Option<ServerMsg>, AttachError> {
        self.reader.recv()
    }

    /// Sets how long [`IpcClient::recv`] may block (`None`: forever).
    pub fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.reader.reader.get_ref().set_read_timeout(t)
    }

    /// A second handle on the socket for a writer thread.
    pub fn split(self) -> (TcpStream, IpcReader) {
        (self.writer, self.reader)
    }
}

/// The reading half of an [`IpcClient`].
pub struct IpcReader {
    reader: BufReader<TcpStream>,
    line: String,
}

impl IpcReader {
    /// Reads the next line from the client; `None` when it closed the connection.
    pub fn recv(&mut self) -> Result<Option<ServerMsg>, AttachError> {
        self.line.clear();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_line(&mut self.line)?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(self.line.trim_end())
            .map(Some)
            .map_err(|e| AttachError::Protocol(format!("{e}: {}", self.line.trim_end())))
    }
}

/// Writes a request on the writing half of a split [`IpcClient`].
pub fn send_request(w: &mut TcpStream, id: u64, line: &str) -> io::Result<()> {
    let mut b = serde_json::to_vec(&Request {
        id,
        line: line.to_owned(),
    })?;
    b.push(b'\n');
    w.write_all(&b)
}
