//! ESP-IDF's error pages (`httpd_resp_send_err`): status line and body per error, per version.
//!
//! The default error handler sends the page and returns failure, so the socket is closed after
//! it (IDF `src/httpd_txrx.c` `httpd_req_handle_err`).

use espsim_firmware::captive::HttpError;

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
    /// The same error as the firmware crate names it: the chip (ESP32-C3 build) sends every
    /// page but `404`, and the emulator takes status, reason and v5.1+ body from there.
    fn on_chip(self) -> Option<HttpError> {
        Some(match self {
            EspError::BadRequest => HttpError::BadRequest,
            EspError::NotFound => return None,
            EspError::MethodNotAllowed => HttpError::MethodNotAllowed,
            EspError::RequestTimeout => HttpError::RequestTimeout,
            EspError::UriTooLong => HttpError::UriTooLong,
            EspError::HeaderFieldsTooLarge => HttpError::HeaderFieldsTooLarge,
            EspError::VersionNotSupported => HttpError::VersionNotSupported,
        })
    }

    /// Status code and ESP-IDF's reason phrase.
    pub(crate) fn status(self) -> (u16, &'static str) {
        self.on_chip().map_or((404, "Not Found"), HttpError::status)
    }

    /// The page body: v5.1+ wording when `modern`, else v4.4's.
    pub(crate) fn body(self, modern: bool) -> &'static str {
        let Some(chip) = self.on_chip() else {
            return if modern {
                "Nothing matches the given URI"
            } else {
                "This URI does not exist"
            };
        };
        match (chip, modern) {
            (HttpError::BadRequest, false) => {
                "Server unable to understand request due to invalid syntax"
            }
            (HttpError::HeaderFieldsTooLarge, false) => {
                "Header fields are too long for server to interpret"
            }
            _ => chip.body(),
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
    fn every_page_has_esp_idf_status_reason_and_body_per_version() {
        use EspError::*;
        let table = [
            (
                BadRequest,
                400,
                "Bad Request",
                "Bad request syntax",
                "Server unable to understand request due to invalid syntax",
            ),
            (
                NotFound,
                404,
                "Not Found",
                "Nothing matches the given URI",
                "This URI does not exist",
            ),
            (
                MethodNotAllowed,
                405,
                "Method Not Allowed",
                "Specified method is invalid for this resource",
                "Specified method is invalid for this resource",
            ),
            (
                RequestTimeout,
                408,
                "Request Timeout",
                "Server closed this connection",
                "Server closed this connection",
            ),
            (
                UriTooLong,
                414,
                "URI Too Long",
                "URI is too long",
                "URI is too long",
            ),
            (
                HeaderFieldsTooLarge,
                431,
                "Request Header Fields Too Large",
                "Header fields are too long",
                "Header fields are too long for server to interpret",
            ),
            (
                VersionNotSupported,
                505,
                "Version Not Supported",
                "HTTP version not supported by server",
                "HTTP version not supported by server",
            ),
        ];
        for (error, status, reason, modern, legacy) in table {
            assert_eq!(error.status(), (status, reason), "{error:?}");
            assert_eq!(error.body(true), modern, "{error:?}");
            assert_eq!(error.body(false), legacy, "{error:?}");
        }
    }

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
