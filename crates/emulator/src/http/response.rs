//! ESP-IDF `esp_http_server` responses, byte for byte.
//!
//! `httpd_resp_send` writes `HTTP/1.1 <status>\r\nContent-Type: …\r\nContent-Length: …\r\n`, then
//! the user headers in the order they were set, then `\r\n` and the body. There is never a
//! `Date`, `Server` or `Connection` header (IDF `src/httpd_txrx.c`).
//!
//! The type is the firmware crate's [`Answer`](espsim_firmware::captive::Answer), the one the
//! ESP32-C3 build sends, so the emulator frames responses exactly as the chip does.

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// A response exactly as `esp_http_server` would put it on the wire.
pub(crate) use espsim_firmware::captive::Answer as EspResponse;

/// Writes `response` and flushes.
pub(crate) async fn write<W: AsyncWrite + Unpin>(
    response: &EspResponse,
    w: &mut W,
) -> std::io::Result<()> {
    w.write_all(&response.to_bytes()).await?;
    w.flush().await
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
