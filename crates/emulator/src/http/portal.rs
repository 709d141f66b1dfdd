//! The captive-portal example's one real page, `GET /`: here a small page about the emulated
//! device, so whoever lands on it (the OS sign-in sheet, a browser) sees what they reached.

use crate::internet::InternetMode;

use super::response::EspResponse;

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortalInfo<'a> {
    /// The device's IP (what DNS answers).
    pub(crate) device_ip: String,
    /// The profile's name.
    pub(crate) profile: &'a str,
    /// The internet mode now.
    pub(crate) mode: InternetMode,
    /// The WebSocket URL an app should use, e.g. `ws://192.168.4.1/ws`.
    pub(crate) ws_url: String,
}

/// The page, `200 OK` `text/html` as `httpd_resp_send` frames it.
pub(crate) fn page(info: &PortalInfo<'_>) -> EspResponse {
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ESP32 device</title></head>\n<body>\n<h1>ESP32 device (espsim)</h1>\n\
         <p>You are connected to the device's access point.</p>\n<ul>\n\
         <li>Device IP: {ip}</li>\n<li>Profile: {profile}</li>\n<li>Internet: {mode}</li>\n\
         <li>WebSocket: <code>{ws}</code></li>\n</ul>\n</body></html>\n",
        ip = escape(&info.device_ip),
        profile = escape(info.profile),
        mode = info.mode,
        ws = escape(&info.ws_url),
    );
    EspResponse::html(200, "OK", body)
}

/// Minimal HTML escaping for text content.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_names_the_device_and_escapes_text() {
        let r = page(&PortalInfo {
            device_ip: "192.168.4.1".into(),
            profile: "esp-idf-v5.4",
            mode: InternetMode::Captive,
            ws_url: "ws://192.168.4.1/ws?<x>".into(),
        });
        let body = String::from_utf8(r.body).expect("utf-8");
        assert!(body.contains("Device IP: 192.168.4.1"));
        assert!(body.contains("Internet: captive"));
        assert!(body.contains("ws://192.168.4.1/ws?&lt;x&gt;"));
        // Apple's check looks for "Success": the page must never contain it.
        assert!(!body.contains("Success"));
        assert_eq!(r.status, 200);
    }
}
