//! ESP-IDF `esp_http_server` responses, byte for byte.
//!
//! `httpd_resp_send` writes `HTTP/1.1 <status>\r\nContent-Type: …\r\nContent-Length: …\r\n`, then
//! the user headers in the order they were set, then `\r\n` and the body. There is never a
//! `Date`, `Server` or `Connection` header (IDF `src/httpd_txrx.c`).

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// A response exactly as `esp_http_server` would put it on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EspResponse {
    /// Status code, e.g. 200.
    pub(crate) status: u16,
    /// Reason phrase as ESP-IDF spells it (e.g. `Temporary Redirect` for 302).
    pub(crate) reason: &'static str,
    /// `Content-Type` value.
    pub(crate) content_type: &'static str,
    /// Headers after `Content-Length`, in order.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub(crate) body: Vec<u8>,
}

impl EspResponse {
    /// A `text/html` response (ESP-IDF's default content type).
    pub(crate) fn html(status: u16, reason: &'static str, body: impl Into<Vec<u8>>) -> Self {
        EspResponse {
            status,
            reason,
            content_type: "text/html",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The same response with a `text/plain` content type.
    pub(crate) fn plain(mut self) -> Self {
        self.content_type = "text/plain";
        self
    }

    /// Adds a header after `Content-Length`.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The exact bytes on the wire.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// Writes the response and flushes.
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(&self, w: &mut W) -> std::io::Result<()> {
        w.write_all(&self.to_bytes()).await?;
        w.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captive_redirect_matches_the_esp_idf_example_byte_for_byte() {
        let r = EspResponse::html(303, "See Other", "Redirect to the captive portal")
            .header("Location", "/");
        assert_eq!(
            r.to_bytes(),
            b"HTTP/1.1 303 See Other\r\nContent-Type: text/html\r\nContent-Length: 30\r\nLocation: /\r\n\r\nRedirect to the captive portal"
        );
    }
}
