//! Handshake faults: what the device does instead of (or before) its normal `101`.
//!
//! Decided by [`espsim_faults::FaultPlan::on_handshake`] once the upgrade request has passed
//! ESP-IDF's checks; executed here on the raw connection:
//!
//! | fault | on the wire |
//! |---|---|
//! | `reset`, `at: after_request` | RST (SO_LINGER 0), no byte |
//! | `reset`, `at: mid_response, bytes: N` | the first N bytes of the real `101`, then RST |
//! | `close`, `at: after_request` / `mid_response` | the same with FIN |
//! | `status` | an ESP-IDF response with that status (and body), then FIN |
//! | `bad_accept` | the `101` with a wrong `Sec-WebSocket-Accept` of the right length (28) |
//! | `missing_upgrade_header` | the `101` without `Upgrade: websocket` |
//! | `delay` | the normal `101`, after the delay |
//! | `silent_close` | FIN, no byte |
//!
//! After `bad_accept`, `missing_upgrade_header` and `delay` the device believes it upgraded and
//! runs the session; the app's client is the one that gives up.

use std::time::Duration;

use espsim_faults::{CutPoint, HandshakeFault, HandshakeStatus};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::sync::CancellationToken;

use super::Transport;
use super::handshake::{Accept, response_101};
use crate::http::errors::EspError;
use crate::http::response::EspResponse;

/// Bound on writing the partial or altered response (ESP-IDF's `send_wait_timeout`).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What happens after a handshake fault.
#[derive(Debug)]
pub(crate) enum Next<S> {
    /// The `response` was written: run the session on `io`.
    Session(S),
    /// The connection is over.
    Ended,
}

/// A few words on what the fault does, for the `fault_applied` event.
pub(crate) fn describe(fault: &HandshakeFault) -> String {
    let cut = |how: &str, at: CutPoint| match at {
        CutPoint::AfterRequest => {
            format!("{how} after the upgrade request, before any response byte")
        }
        CutPoint::MidResponse { bytes } => format!("{how} after {bytes} bytes of the 101"),
    };
    match fault {
        HandshakeFault::Reset(c) => cut("reset (RST)", c.at),
        HandshakeFault::Close(c) => cut("closed (FIN)", c.at),
        HandshakeFault::Status(s) => format!("answered {} instead of 101", s.code),
        HandshakeFault::BadAccept => "101 with a wrong Sec-WebSocket-Accept".to_owned(),
        HandshakeFault::MissingUpgradeHeader => "101 without the Upgrade header".to_owned(),
        HandshakeFault::Delay(d) => format!("101 delayed by {:?}", d.delay),
        HandshakeFault::SilentClose => "closed (FIN) without a response".to_owned(),
    }
}

/// Executes `fault` on `io` for the upgrade `accept`. `stop` is cancelled on shutdown or LRU
/// purge (ends a `delay` early: the connection is then dropped).
pub(crate) async fn execute<S>(
    mut io: S,
    fault: &HandshakeFault,
    accept: &Accept,
    modern_error_bodies: bool,
    stop: &CancellationToken,
) -> Next<S>
where
    S: AsyncWrite + Transport + Unpin,
{
    let sub = accept.subprotocol.as_deref();
    match fault {
        HandshakeFault::Reset(c) => {
            if let CutPoint::MidResponse { bytes } = c.at {
                let _ = write(&mut io, prefix(&accept.response, bytes)).await;
            }
            io.abort();
            Next::Ended
        }
        HandshakeFault::Close(c) => {
            if let CutPoint::MidResponse { bytes } = c.at {
                let _ = write(&mut io, prefix(&accept.response, bytes)).await;
            }
            Next::Ended
        }
        HandshakeFault::Status(s) => {
            let _ = write(&mut io, &status_response(s, modern_error_bodies).to_bytes()).await;
            Next::Ended
        }
        HandshakeFault::BadAccept => {
            let wrong = wrong_accept(&accept.key);
            session_after(io, &response_101(&wrong, sub, true)).await
        }
        HandshakeFault::MissingUpgradeHeader => {
            let accept_value = derive_accept_key(accept.key.as_bytes());
            session_after(io, &response_101(&accept_value, sub, false)).await
        }
        HandshakeFault::Delay(d) => {
            tokio::select! {
                () = stop.cancelled() => Next::Ended,
                () = tokio::time::sleep(d.delay) => session_after(io, &accept.response).await,
            }
        }
        // Dropping `io` closes the socket with nothing written.
        HandshakeFault::SilentClose => Next::Ended,
    }
}

/// Writes `response`, then hands the connection to the session (or ends it if the write fails).
async fn session_after<S: AsyncWrite + Unpin>(mut io: S, response: &[u8]) -> Next<S> {
    match write(&mut io, response).await {
        Ok(()) => Next::Session(io),
        Err(e) => {
            tracing::debug!("writing the faulty 101 failed: {e}");
            Next::Ended
        }
    }
}

async fn write<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    let done = async {
        io.write_all(bytes).await?;
        io.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, done)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The first `bytes` bytes of `response` (all of it if it is shorter).
fn prefix(response: &[u8], bytes: usize) -> &[u8] {
    &response[..bytes.min(response.len())]
}

/// A `Sec-WebSocket-Accept` that is valid base64 of a SHA-1 (28 characters) but not the one for
/// `key`, so clients fail on the value, not on its length.
pub(crate) fn wrong_accept(key: &str) -> String {
    derive_accept_key(format!("{key}espsim-bad-accept").as_bytes())
}

/// ESP-IDF's response for `{ handshake: status }`: the given body, else ESP-IDF's own error page
/// for that status (`httpd_resp_send_err`), else the reason phrase as the body.
fn status_response(s: &HandshakeStatus, modern: bool) -> EspResponse {
    let page = [
        EspError::BadRequest,
        EspError::NotFound,
        EspError::MethodNotAllowed,
        EspError::RequestTimeout,
        EspError::UriTooLong,
        EspError::HeaderFieldsTooLarge,
        EspError::VersionNotSupported,
    ]
    .into_iter()
    .find(|e| e.status().0 == s.code);
    let reason = match page {
        Some(e) => e.status().1,
        None => StatusCode::from_u16(s.code)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("Error"),
    };
    let body = match (&s.body, page) {
        (Some(body), _) => body.clone(),
        (None, Some(e)) => e.body(modern).to_owned(),
        (None, None) => reason.to_owned(),
    };
    EspResponse::html(s.code, reason, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_accept_has_the_right_length_and_the_wrong_value() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let wrong = wrong_accept(key);
        assert_eq!(wrong.len(), 28);
        assert_ne!(wrong, derive_accept_key(key.as_bytes()));
    }

    #[test]
    fn status_uses_the_body_or_esp_idf_page_or_reason() {
        let s = |code, body: Option<&str>| HandshakeStatus {
            code,
            body: body.map(str::to_owned),
        };
        let r = status_response(&s(503, None), true);
        assert_eq!(
            String::from_utf8(r.to_bytes()).expect("ascii"),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: 19\r\n\r\nService Unavailable"
        );
        let r = status_response(&s(404, None), true);
        assert_eq!(r.body, b"Nothing matches the given URI");
        let r = status_response(&s(401, Some("token?")), true);
        assert_eq!(
            (r.status, r.reason.as_ref(), r.body.as_slice()),
            (401, "Unauthorized", &b"token?"[..])
        );
    }
}
