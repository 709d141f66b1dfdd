//! The captive-portal example's one real page, `GET /`: here a small page about the emulated
//! device, so whoever lands on it (the OS sign-in sheet, a browser) sees what they reached.

use espsim_firmware::captive::Portal;

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

/// The page, `200 OK` `text/html` as `httpd_resp_send` frames it: the firmware crate's page,
/// the one the ESP32-C3 build serves, with the internet mode of the moment.
pub(crate) fn page(info: &PortalInfo<'_>) -> EspResponse {
    Portal {
        device_ip: &info.device_ip,
        profile: info.profile,
        ws_url: &info.ws_url,
    }
    .page_for(info.mode.as_str())
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
