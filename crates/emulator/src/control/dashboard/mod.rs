//! The live dashboard: a page served at `/` that logs in once and then shows and steers the
//! running emulator through the same endpoints scripts use (`/state`, `/events`, `/faults`,
//! `/reset`, `/internet`, `/button`), so the page adds no second source of truth.
//!
//! The page and its assets are compiled into the binary and served without authentication:
//! they hold no data. Without a session the page shows only the login form; `POST /login`
//! trades the token (form field `token`, never a URL) for a session cookie.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::ControlState;
use super::error::ApiError;
use super::session;

const INDEX_HTML: &str = include_str!("index.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard.css");

/// The content security policy of every asset: nothing but this origin, no inline script, no
/// framing (the button must not be clickable through someone else's page).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` is one of the page's assets (served without authentication).
pub(crate) fn is_asset(path: &str) -> bool {
    matches!(path, "/" | "/dashboard.js" | "/dashboard.css")
}

/// The page, its assets, login and logout.
pub(crate) fn routes(state: Arc<ControlState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_JS) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", DASHBOARD_CSS) }),
        )
        .route("/login", post(login))
        .route("/logout", post(logout))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The login form's body (`application/x-www-form-urlencoded`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginForm {
    token: String,
}

/// The answer to login and logout.
#[derive(Debug, Serialize)]
struct SessionAnswer {
    logged_in: bool,
}

/// Login and logout change the browser's state: from a browser (an `Origin` is present) only
/// the dashboard's own page may send them. `Origin` values of other allowed origins passed the
/// outer check, so this is the narrower one.
fn same_origin_or_script(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get(header::ORIGIN).is_none() || super::layers::is_same_origin(headers) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "log in from the dashboard's own page (same Origin)",
        ))
    }
}

async fn login(
    State(st): State<Arc<ControlState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    same_origin_or_script(&headers)?;
    let Some(token) = &st.settings.token else {
        // No token configured (`--control-insecure`): nothing to log in to.
        return Ok(Json(SessionAnswer { logged_in: true }).into_response());
    };
    if !super::layers::same(form.token.trim().as_bytes(), token.0.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong token (espsim run prints it as control_token in its ready line)",
        ));
    }
    let id = st
        .sessions
        .open()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let cookie = session::set_cookie(&id).ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "session id is not a header value",
        )
    })?;
    tracing::info!("dashboard login");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(SessionAnswer { logged_in: true }),
    )
        .into_response())
}

async fn logout(
    State(st): State<Arc<ControlState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    same_origin_or_script(&headers)?;
    if let Some(id) = session::cookie_of(&headers) {
        st.sessions.close(&id);
    }
    let clear: HeaderValue = session::clear_cookie();
    Ok((
        [(header::SET_COOKIE, clear)],
        Json(SessionAnswer { logged_in: false }),
    )
        .into_response())
}
