//! HTTP requests the device logic answers (a device file's routes, a user's own logic).
//!
//! The host asks the logic after its own table's first rows: the WebSocket path and, online, the
//! connectivity checks stay the host's; everything else (the portal page, the captive redirect,
//! ESP-IDF's 404) is the fallback when the logic answers `None`. The logic's answer is framed
//! as `esp_http_server` frames every response ([`EspResponse`]).

use std::borrow::Cow;

use espsim_firmware::HttpResponse;

use super::response::EspResponse;

/// Largest request body read for the device logic; a longer one gets `400` and the connection
/// closes. An ESP32 handler reads the body into a fixed buffer; 16 KiB is far above what
/// provisioning or a REST call sends.
pub(crate) const MAX_DEVICE_BODY: u64 = 16 * 1024;

/// The logic's answer as ESP-IDF frames it: `Content-Type` from the logic's headers (default
/// `text/html`, httpd's default), the other headers after `Content-Length` in order, and the
/// standard reason phrase for the status.
pub(crate) fn esp_response(answer: HttpResponse) -> EspResponse {
    let mut content_type = Cow::Borrowed("text/html");
    let mut headers = Vec::with_capacity(answer.headers.len());
    for (name, value) in answer.headers {
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Cow::Owned(value);
        } else {
            headers.push((Cow::Owned(name), value));
        }
    }
    let reason = axum::http::StatusCode::from_u16(answer.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    EspResponse {
        status: answer.status,
        reason: Cow::Borrowed(reason),
        content_type,
        headers,
        body: answer.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_answer_is_framed_like_httpd_resp_send() {
        let answer = HttpResponse {
            status: 201,
            headers: vec![
                ("X-Device".to_owned(), "greenhouse".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ],
            body: br#"{"ok":true}"#.to_vec(),
            label: "POST /wifi".to_owned(),
        };
        assert_eq!(
            String::from_utf8(esp_response(answer).to_bytes()).unwrap(),
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\
             X-Device: greenhouse\r\n\r\n{\"ok\":true}"
        );
    }
}
