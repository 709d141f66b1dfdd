//! Browser sessions for the dashboard: the token is typed into the login form once and traded
//! for a random session id in an `HttpOnly; SameSite=Strict` cookie, so the token never sits in
//! a URL (history, logs) or in page script.
//!
//! The ids live only in this process (a restart logs everyone out), at most
//! [`MAX_SESSIONS`] at once (the oldest is dropped) and each for at most [`SESSION_TTL`].

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};

use super::{ControlError, generate_token};

/// The cookie's name.
pub(crate) const COOKIE: &str = "espsim_session";

/// Sessions held at once; a new login beyond it drops the oldest session.
pub(crate) const MAX_SESSIONS: usize = 32;

/// A session ends this long after its login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The live session ids, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    live: Mutex<VecDeque<(Secret, Instant)>>,
}

/// A session id: never printed by `Debug`.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Sessions {
    /// Starts a session; returns its id (128 random bits as hex).
    pub(crate) fn open(&self) -> Result<String, ControlError> {
        let id = generate_token()?;
        let mut live = self.lock();
        prune(&mut live);
        while live.len() >= MAX_SESSIONS {
            live.pop_front();
        }
        live.push_back((Secret(id.clone()), Instant::now()));
        Ok(id)
    }

    /// Whether `id` is a live session. Compares with every id in constant time per id.
    pub(crate) fn is_valid(&self, id: &str) -> bool {
        let mut live = self.lock();
        prune(&mut live);
        live.iter().fold(false, |found, (s, _)| {
            found | super::layers::same(s.0.as_bytes(), id.as_bytes())
        })
    }

    /// Ends the session `id` (if it exists).
    pub(crate) fn close(&self, id: &str) {
        self.lock()
            .retain(|(s, _)| !super::layers::same(s.0.as_bytes(), id.as_bytes()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Secret, Instant)>> {
        // A panic while holding this lock leaves a valid list: keep using it.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn prune(live: &mut VecDeque<(Secret, Instant)>) {
    live.retain(|(_, born)| born.elapsed() < SESSION_TTL);
}

/// The session id in the request's `Cookie` headers, if any.
pub(crate) fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// `Set-Cookie` for a new session.
pub(crate) fn set_cookie(id: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    ))
    .ok()
}

/// `Set-Cookie` that makes the browser forget the session.
pub(crate) fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("espsim_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_open_check_and_close() {
        let s = Sessions::default();
        let a = s.open().expect("random");
        let b = s.open().expect("random");
        assert_ne!(a, b);
        assert!(s.is_valid(&a) && s.is_valid(&b));
        assert!(!s.is_valid("nope"));
        s.close(&a);
        assert!(!s.is_valid(&a) && s.is_valid(&b));
    }

    #[test]
    fn the_oldest_session_goes_beyond_the_cap() {
        let s = Sessions::default();
        let first = s.open().expect("random");
        for _ in 0..MAX_SESSIONS {
            s.open().expect("random");
        }
        assert!(!s.is_valid(&first));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; espsim_session=abc ; b=2"),
        );
        assert_eq!(cookie_of(&h).as_deref(), Some("abc"));
        assert_eq!(cookie_of(&HeaderMap::new()), None);
    }
}
