//! ESP-IDF's error pages (`httpd_resp_send_err`): status line and body per error, per version.
//!
//! The default error handler sends the page and returns failure, so the socket is closed after
//! it (IDF `src/httpd_txrx.c` `httpd_req_handle_err`).

use super::response::EspResponse;

/// An error `esp_http_server` answers with one of its built-in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EspError {
    /// Parser error, bad URL, unknown method, non-websocket `Upgrade`.
    BadRequest,
    /// No handler registered for the URI.
    NotFound,
    /// A handler exists for the URI, not for the method.
    MethodNotAllowed,
    /// A started request stalled longer than `recv_wait_timeout`.
    RequestTimeout,
    /// The request-target (or the whole request line) does not fit.
    UriTooLong,
    /// The header lines do not fit in the scratch buffer.
    HeaderFieldsTooLarge,
    /// HTTP version other than 1.x (ESP-IDF's check: major ≠ 1 and minor ≠ 1).
    VersionNotSupported,
}

impl EspError {
    /// Status code and ESP-IDF's reason phrase.
    pub(crate) fn status(self) -> (u16, &'static str) {
        match self {
            EspError::BadRequest => (400, "Bad Request"),
            EspError::NotFound => (404, "Not Found"),
            EspError::MethodNotAllowed => (405, "Method Not Allowed"),
            EspError::RequestTimeout => (408, "Request Timeout"),
            EspError::UriTooLong => (414, "URI Too Long"),
            EspError::HeaderFieldsTooLarge => (431, "Request Header Fields Too Large"),
            EspError::VersionNotSupported => (505, "Version Not Supported"),
        }
    }

    /// The page body: v5.1+ wording when `modern`, else v4.4's.
    pub(crate) fn body(self, modern: bool) -> &'static str {
        match (self, modern) {
            (EspError::BadRequest, true) => "Bad request syntax",
            (EspError::BadRequest, false) => {
                "Server unable to understand request due to invalid syntax"
            }
            (EspError::NotFound, true) => "Nothing matches the given URI",
            (EspError::NotFound, false) => "This URI does not exist",
            (EspError::MethodNotAllowed, _) => "Specified method is invalid for this resource",
            (EspError::RequestTimeout, _) => "Server closed this connection",
            (EspError::UriTooLong, _) => "URI is too long",
            (EspError::HeaderFieldsTooLarge, true) => "Header fields are too long",
            (EspError::HeaderFieldsTooLarge, false) => {
                "Header fields are too long for server to interpret"
            }
            (EspError::VersionNotSupported, _) => "HTTP version not supported by server",
        }
    }

    /// The page as it goes on the wire (`text/html`, like every ESP-IDF error page).
    pub(crate) fn response(self, modern: bool) -> EspResponse {
        let (status, reason) = self.status();
        EspResponse::html(status, reason, self.body(modern))
    }

    /// Short description for events.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            EspError::BadRequest => "bad request syntax",
            EspError::NotFound => "no handler for the URI",
            EspError::MethodNotAllowed => "method not registered for the URI",
            EspError::RequestTimeout => "request stalled longer than recv_wait_timeout",
            EspError::UriTooLong => "request-target longer than max_uri_len",
            EspError::HeaderFieldsTooLarge => "header lines longer than max_req_hdr_len",
            EspError::VersionNotSupported => "HTTP version not supported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_match_esp_idf_byte_for_byte() {
        assert_eq!(
            EspError::NotFound.response(true).to_bytes(),
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 29\r\n\r\nNothing matches the given URI"
        );
        assert_eq!(
            EspError::HeaderFieldsTooLarge.response(false).to_bytes(),
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/html\r\nContent-Length: 50\r\n\r\nHeader fields are too long for server to interpret"
        );
        assert_eq!(
            EspError::VersionNotSupported.response(true).to_bytes(),
            b"HTTP/1.1 505 Version Not Supported\r\nContent-Type: text/html\r\nContent-Length: 36\r\n\r\nHTTP version not supported by server"
        );
    }
}
