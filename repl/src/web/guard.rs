//! Who may talk to the web UI: its user alone. Every request passes here first: the `Host` and
//! `Origin` headers must name this server (DNS rebinding, other sites), and the secret token must
//! come with it, first in the URL the command opened, then as a `SameSite=Strict`, `HttpOnly`
//! cookie. Every answer gets a strict Content-Security-Policy.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;

/// Nothing but this server's own scripts, styles, images and live channel; no frames, no forms
/// posted elsewhere, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The cookie's name: one per port, so two users' web UIs in one browser do not mix.
pub fn cookie_name(port: u16) -> String {
    format!("slcp_{port}")
}

/// Equal strings, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn refuse(status: StatusCode, why: &str) -> Response {
    let mut r = (status, format!("{why}\n")).into_response();
    secure_headers(r.headers_mut());
    r
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "Cross-Origin-Opener-Policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "Cross-Origin-Resource-Policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// The token from the request's cookie, if any.
fn cookie_token<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The token in the query string (`?token=...`), if any.
fn query_token(q: Option<&str>) -> Option<&str> {
    q?.split('&').find_map(|kv| kv.strip_prefix("token="))
}

/// The middleware: refuses what does not come from this user's page.
pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let port = app.port;
    let h = req.headers();
    let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(|x| hosts.iter().any(|a| a == x)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "refused: the Host header does not name this server",
        );
    }
    let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let ours = |o: &str| hosts.iter().any(|a| o == format!("http://{a}"));
    match origin {
        Some(o) if !ours(o) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: the request comes from another site (Origin)",
            );
        }
        // A browser names the origin of every request that changes something and of every
        // WebSocket; one that does not is not our page.
        None if req.method() != Method::GET || req.uri().path() == "/ws" => {
            return refuse(StatusCode::FORBIDDEN, "refused: no Origin header");
        }
        _ => {}
    }
    let name = cookie_name(port);
    let token = app.token.as_bytes();
    if let Some(t) = query_token(req.uri().query())
        && req.uri().path() == "/"
        && req.method() == Method::GET
    {
        if !same(t.as_bytes(), token) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "refused: wrong token; open the address `slcp web` printed",
            );
        }
        // The token leaves the address bar (and the history) at once; the cookie carries it.
        let mut r = Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, "/")
            .header(
                header::SET_COOKIE,
                format!("{name}={}; Path=/; HttpOnly; SameSite=Strict", app.token),
            )
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        secure_headers(r.headers_mut());
        return r;
    }
    if !cookie_token(h, &name).is_some_and(|t| same(t.as_bytes(), token)) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "refused: no token; open the address `slcp web` printed",
        );
    }
    let mut r = next.run(req).await;
    secure_headers(r.headers_mut());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_only_under_their_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; slcp_80=abc; slcp_8=zz"),
        );
        assert_eq!(cookie_token(&h, "slcp_80"), Some("abc"));
        assert_eq!(cookie_token(&h, "slcp_8"), Some("zz"));
        assert_eq!(cookie_token(&h, "slcp_9"), None);
        assert_eq!(query_token(Some("x=1&token=t0")), Some("t0"));
        assert_eq!(query_token(Some("tokens=1")), None);
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
