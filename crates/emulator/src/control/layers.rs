//! Cross-cutting layers: request tracing, the `Host`/`Origin` checks, CORS, JSON errors, the
//! bearer token, the body deadline and limit.
//!
//! Outermost first: tracing sees every request; a foreign `Host` (DNS rebinding) or an
//! `Origin` that was not allowed is refused before anything else; CORS (only with allowed
//! origins) answers browser preflights, which carry no token; errors produced anywhere below
//! (401, 404, 405, 413, extractor rejections) leave as `{"error": …}`; the token (or the
//! dashboard's session cookie) is checked before any body is read; the body has a deadline and
//! a size limit.
//!
//! The dashboard's own page is same-origin: its `Origin` is `http://` + the request's `Host`,
//! which is always accepted. A request that authenticates by cookie and changes something must
//! carry exactly that `Origin` (CSRF: browsers attach the cookie to cross-origin form posts from
//! the same site, e.g. another port on localhost).

use std::net::Ipv6Addr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::DeadlineBody;
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use super::{BODY_LIMIT, ControlState, session};

/// Wraps the routes in every layer.
pub(crate) fn wrap(routes: Router, state: Arc<ControlState>) -> Router {
    let mut app = routes
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), body_deadline))
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
        .layer(middleware::map_response(json_errors));
    let origins = &state.settings.allowed_origins;
    if !origins.is_empty() {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins.iter().cloned()))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    app.layer(middleware::from_fn_with_state(state, check_host_and_origin))
        .layer(TraceLayer::new_for_http())
}

/// Refuses (403) a request whose `Host` (or absolute-form authority) is not an IP literal,
/// `localhost` or an allowed name, and one whose `Origin` was not allowed.
async fn check_host_and_origin(
    State(st): State<Arc<ControlState>>,
    req: Request,
    next: Next,
) -> Response {
    let allowed_hosts = &st.settings.allowed_hosts;
    let hosts = req
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_owned())
        .chain(req.uri().authority().map(|a| a.as_str().to_owned()));
    for host in hosts {
        if !host_allowed(&host, allowed_hosts) {
            return forbidden(format!(
                "Host `{host}` is not allowed: use an IP address or localhost, or start espsim with --control-allow-host NAME"
            ));
        }
    }
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !st.settings.allowed_origins.contains(origin)
        && !is_same_origin(req.headers())
    {
        let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        return forbidden(format!(
            "Origin `{origin}` may not use the control API: start espsim with --control-allow-origin {origin} to allow it"
        ));
    }
    next.run(req).await
}

/// Whether `host` (a `Host` value, with or without port) names this machine by address or
/// by a name the user allowed. A rebinding page's own DNS name is neither.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        let Some((addr, port)) = v6.split_once(']') else {
            return false;
        };
        return addr.parse::<Ipv6Addr>().is_ok() && port_ok(port.strip_prefix(':'), port);
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port_ok(Some(port), port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `port` is `Some(digits)`, or the whole suffix `rest` is empty.
fn port_ok(port: Option<&str>, rest: &str) -> bool {
    match port {
        Some(p) => !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()),
        None => rest.is_empty(),
    }
}

fn forbidden(message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

/// The body must arrive completely within the head timeout of the request's head.
async fn body_deadline(State(st): State<Arc<ControlState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody::new(st.settings.limits.head_timeout, body));
    next.run(Request::from_parts(parts, body)).await
}

/// Whether the request's `Origin` is the API's own (`http://` + its `Host`): the dashboard page.
/// `Host` was checked before (an address, `localhost` or an allowed name), so a rebound name
/// never matches.
pub(super) fn is_same_origin(headers: &HeaderMap) -> bool {
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

/// Paths that need no authentication: the dashboard's page and assets (no data in them) and
/// the login/logout forms.
fn is_public(method: &Method, path: &str) -> bool {
    match *method {
        Method::GET | Method::HEAD => super::dashboard::is_asset(path),
        Method::POST => matches!(path, "/login" | "/logout"),
        _ => false,
    }
}

/// Without `Authorization: Bearer <token>` or a dashboard session cookie (when a token is set)
/// a request gets 401; a cookie-authenticated request that changes something must come from the
/// dashboard's own origin (403 otherwise).
async fn require_auth(State(st): State<Arc<ControlState>>, req: Request, next: Next) -> Response {
    let Some(token) = &st.settings.token else {
        return next.run(req).await;
    };
    if is_public(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if same(p.as_bytes(), token.0.as_bytes()) => return next.run(req).await,
        Some(_) => return unauthorized("wrong token"),
        None => {}
    }
    match session::cookie_of(req.headers()) {
        Some(id) if st.sessions.is_valid(&id) => {
            let safe = matches!(*req.method(), Method::GET | Method::HEAD);
            if safe || is_same_origin(req.headers()) {
                next.run(req).await
            } else {
                forbidden(
                    "a request authenticated by the dashboard's session cookie that changes something must come from the dashboard's own page (same Origin); scripts send Authorization: Bearer <token>"
                        .to_owned(),
                )
            }
        }
        Some(_) => unauthorized("session expired or logged out: log in again"),
        None => unauthorized(
            "missing token: send Authorization: Bearer <token> (espsim run prints a generated one as control_token in its ready line)",
        ),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without stopping at the first difference, so timing does not leak the token.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Turns any non-JSON error response (axum's 404/405, extractor rejections, tower-http's 413)
/// into `{"error": …}` with the same status and headers.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such endpoint (see docs/reference/control-api.md)".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("request body larger than {BODY_LIMIT} bytes")
        }
        other => other
            .canonical_reason()
            .unwrap_or("request failed")
            .to_ascii_lowercase(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let fresh = ApiError::new(status, message).into_response();
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.extend(fresh_parts.headers);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::{host_allowed, same};

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let allowed = ["espsim".to_owned()];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:8475",
            "192.168.4.1:80",
            "[::1]:8475",
            "[::1]",
            "localhost:8475",
            "LOCALHOST",
            "espsim:8475",
            "ESPSIM",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8475",
            "127.0.0.1.nip.io:8475",
            "localhost.evil.example",
            "espsim.evil.example",
            "[::1",
            "[evil]:80",
            "127.0.0.1:http",
            "127.0.0.1:",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
    }
}
