//! The web UI's routes: the embedded page, the JSON calls the page makes (each one a command
//! line over the IPC), uploads that become IMG or FILE, received media, and the live channel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;

use super::App;
use super::bridge::Reply;
use super::guard::guard;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
const VLIST: &str = include_str!("assets/vlist.js");

/// How long an ordinary command may take (WHO waits for discovery; HANDLE for an answer).
const COMMAND_TIME: Duration = Duration::from_secs(30);
/// How long an IMG or FILE may take: it answers when the receiver has every byte.
const SEND_TIME: Duration = Duration::from_secs(6 * 3600);
/// The longest command line the page may send.
const MAX_LINE: usize = 64 * 1024;

/// Every route, behind the guard.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/vlist.js",
            get(|| async { page(VLIST, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/state", get(state))
        .route("/api/cmd", post(command))
        .route("/api/read", post(read))
        .route("/api/send", post(send).layer(DefaultBodyLimit::disable()))
        .route("/media", get(media))
        .route("/ws", get(live))
        .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn state(State(app): State<Arc<App>>) -> Response {
    Json(app.bridge.snapshot()).into_response()
}

#[derive(Deserialize)]
struct Line {
    line: String,
}

/// One command line from the page, run as if typed at a prompt.
async fn command(State(app): State<Arc<App>>, Json(l): Json<Line>) -> Response {
    if l.line.len() > MAX_LINE || l.line.contains(['\n', '\r']) {
        let why = "a command is one line of at most 64 KiB";
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let word = l.line.split_whitespace().next().unwrap_or("");
    let limit = if word.eq_ignore_ascii_case("IMG") || word.eq_ignore_ascii_case("FILE") {
        SEND_TIME
    } else {
        COMMAND_TIME
    };
    Json(app.bridge.run(&l.line, limit).await).into_response()
}

#[derive(Deserialize)]
struct Conv {
    conv: String,
}

async fn read(State(app): State<Arc<App>>, Json(c): Json<Conv>) -> StatusCode {
    app.bridge.mark_read(&c.conv);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SendTo {
    /// A handle, `@group`, `h1,h2` or `*`.
    to: String,
    /// The file's name on the sender's disk (only its last part is kept).
    name: String,
    /// `img` or `file`.
    kind: String,
}

/// An upload from the page: kept in the spool under its own name, then sent with IMG or FILE
/// like a path typed at the prompt, then removed. A refused or broken upload leaves nothing.
async fn send(State(app): State<Arc<App>>, Query(q): Query<SendTo>, body: Body) -> Response {
    let (word, max) = match q.kind.as_str() {
        "img" => ("IMG", app.max_image_bytes),
        "file" => ("FILE", app.max_file_bytes),
        _ => return (StatusCode::BAD_REQUEST, "kind is img or file").into_response(),
    };
    if q.to.is_empty() || q.to.contains(char::is_whitespace) {
        return (StatusCode::BAD_REQUEST, "to is one handle, @group or *").into_response();
    }
    let name = upload_name(&q.name);
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = app
        .spool
        .join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
    let path = dir.join(&name);
    let reply = match spool(&dir, &path, body, max).await {
        Ok(()) => {
            let line = format!("{word} {} {}", q.to, path.display());
            app.bridge.run(&line, SEND_TIME).await
        }
        Err(why) => Reply {
            lines: Vec::new(),
            error: Some(why),
        },
    };
    let _ = tokio::fs::remove_dir_all(&dir).await;
    Json(reply).into_response()
}

/// The name an upload is kept (and sent) under: its last path part, made safe the way a
/// received file's name is.
fn upload_name(name: &str) -> String {
    slcp_core::ext::names::sanitize(name)
}

async fn spool(dir: &Path, path: &Path, body: Body, max: u64) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    tokio::fs::create_dir(dir)
        .await
        .map_err(|e| format!("cannot keep the upload in {}: {e}", dir.display()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(tokio::fs::File::from_std)
        .map_err(|e| format!("cannot keep the upload in {}: {e}", path.display()))?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("the upload broke off: {e}"))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(format!(
                "too large: over {max} bytes (max_image_bytes / max_file_bytes)"
            ));
        }
        f.write_all(&chunk)
            .await
            .map_err(|e| format!("cannot keep the upload: {e}"))?;
    }
    f.flush()
        .await
        .map_err(|e| format!("cannot keep the upload: {e}"))
}

#[derive(Deserialize)]
struct MediaPath {
    path: PathBuf,
    #[serde(default)]
    download: Option<String>,
}

/// Types shown inline; anything else (SVG and HTML included) is only ever downloaded.
fn inline_type(p: &Path) -> Option<&'static str> {
    let ext = p.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        _ => return None,
    })
}

/// A received image or file, from imagepath or downloadpath and nowhere else.
async fn media(State(app): State<Arc<App>>, Query(m): Query<MediaPath>) -> Response {
    let Ok(real) = tokio::fs::canonicalize(&m.path).await else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut inside = false;
    for root in &app.media_roots {
        if let Ok(r) = tokio::fs::canonicalize(root).await {
            inside |= real.starts_with(r);
        }
    }
    if !inside {
        return (
            StatusCode::FORBIDDEN,
            "refused: only received images and files are served",
        )
            .into_response();
    }
    let Ok(f) = tokio::fs::File::open(&real).await else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let len = match f.metadata().await {
        Ok(md) if md.is_file() => md.len(),
        _ => return (StatusCode::NOT_FOUND, "not a file").into_response(),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let kind = inline_type(&real).filter(|_| m.download.is_none());
    let disposition = match kind {
        Some(_) => "inline".to_string(),
        None => format!("attachment; filename*=UTF-8''{}", percent(&name)),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            kind.unwrap_or("application/octet-stream"),
        )
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_DISPOSITION, disposition)
        .body(body)
        .unwrap_or_default()
}

/// RFC 5987 encoding of a file name for Content-Disposition.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The live channel: every client event, as JSON text, to the page.
async fn live(State(app): State<Arc<App>>, up: WebSocketUpgrade) -> Response {
    // The page only listens; what it sends is never more than a close.
    up.max_message_size(4096).on_upgrade(move |s| relay(app, s))
}

async fn relay(app: Arc<App>, mut socket: WebSocket) {
    let mut rx = app.bridge.subscribe();
    loop {
        tokio::select! {
            m = rx.recv() => {
                let text = match m {
                    Ok(t) => t,
                    // The page fell behind: it fetches its state again instead.
                    Err(RecvError::Lagged(_)) => r#"{"type":"lagged"}"#.to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_image_types_are_shown_inline() {
        assert_eq!(inline_type(Path::new("/a/b.PNG")), Some("image/png"));
        assert_eq!(inline_type(Path::new("/a/b.svg")), None);
        assert_eq!(inline_type(Path::new("/a/b.html")), None);
        assert_eq!(inline_type(Path::new("/a/b")), None);
    }

    #[test]
    fn upload_names_keep_only_a_safe_last_part() {
        assert_eq!(upload_name("../../etc/passwd"), "passwd");
        assert_eq!(upload_name(""), "file");
        assert_eq!(upload_name("a\u{202e}gpj.exe"), "agpj.exe");
        assert_eq!(percent("a b\"é.txt"), "a%20b%22%C3%A9.txt");
    }
}
