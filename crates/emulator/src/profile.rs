//! Device profiles: the ESP-IDF version-dependent limits and quirks the emulator reproduces.
//!
//! Every ESP-IDF number here comes from ESP-IDF's sources, listed with each fact in
//! `docs/fidelity.md`; the `esp-hal-edge` profile's numbers come from the bare-metal ESP32-C3 firmware
//! itself (`espsim_firmware::captive::EDGE_LIMITS`, which `crates/firmware/esp32c3` enforces).
//! A profile is chosen by name (`--profile`, `device.profile` in a scenario).

use std::time::Duration;

use espsim_firmware::captive::EDGE_LIMITS;
use serde::Serialize;

/// ESP-IDF's `backlog_conn` (`HTTPD_DEFAULT_CONFIG()`): the handshakes lwIP completes for the
/// server's listening socket while nobody accepts them. The listen backlog of every chip profile.
pub const ESP_IDF_BACKLOG_CONN: u32 = 5;

/// The listen backlog the `unlimited` profile asks for: Linux's `SOMAXCONN` since 5.4. The kernel
/// caps it at `net.core.somaxconn` (4096 by default since Linux 5.4, 128 before; macOS:
/// `kern.ipc.somaxconn`), so this is "as many as the host allows". A load test's connects then
/// wait in the kernel's accept queue instead of being dropped and retried a second later
/// (`wrk -c256` needs more than the 128 many servers default to).
pub const HOST_LISTEN_BACKLOG: u32 = 4096;

/// How the device answers a WebSocket upgrade that fails ESP-IDF's checks
/// (missing or wrong `Sec-WebSocket-Version`, missing or over-long `Sec-WebSocket-Key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HandshakeRejection {
    /// ESP-IDF ≤ v6.0: the socket is closed with no bytes written
    /// (Dart: "Connection closed before full header was received").
    SilentClose,
    /// ESP-IDF master with `HTTPD_WS_STRICTER_RFC6455`: `400` / `426` with a body.
    Status,
}

/// What the device does with a WebSocket message larger than it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizeHandling {
    /// The firmware answers with a protocol `error` message (`too_large`) and stays connected.
    ErrorMessage,
    /// The connection is closed with close code 1009 (message too big).
    Close1009,
}

/// A named set of ESP-IDF limits and behaviours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The profile's name, e.g. `esp-idf-v5.4`.
    pub name: &'static str,
    /// What the profile models, for `--help` and `docs/reference/profiles.md`.
    pub summary: &'static str,
    /// `HTTPD_MAX_REQ_HDR_LEN`: all header lines together (after the request line) must fit.
    pub max_req_hdr_len: usize,
    /// `HTTPD_MAX_URI_LEN`: longest request-target.
    pub max_uri_len: usize,
    /// `max_open_sockets` of `HTTPD_DEFAULT_CONFIG()`; `None` means unlimited (benchmarks).
    pub max_open_sockets: Option<usize>,
    /// `lru_purge_enable`: when full, close the least-recently-used session to admit a new one.
    pub lru_purge: bool,
    /// `recv_wait_timeout`: how long a started request may stall before `408`.
    pub recv_timeout: Duration,
    /// Status line of the captive-portal example's redirect (`302 Temporary Redirect` before
    /// ESP-IDF commit `29d1bfb9507`, `303 See Other` after).
    pub captive_redirect: (u16, &'static str),
    /// v4.4 error-page wording differs; `true` uses the v5.1+ strings.
    pub modern_error_bodies: bool,
    /// Handshake check failures: silent close or an HTTP status.
    pub handshake_rejection: HandshakeRejection,
    /// `true`: the close frame the device sends back repeats the client's code;
    /// `false` (ESP-IDF v5+): an empty close frame, so clients report 1005.
    pub echo_close_code: bool,
    /// Largest WebSocket message the device reads (the firmware's `max_len`).
    pub max_ws_message: usize,
    /// What happens to a message over `max_ws_message`.
    pub oversize: OversizeHandling,
    /// The device port's listen backlog: how many connections the kernel completes and queues
    /// while the device does not accept them. Chip profiles: [`ESP_IDF_BACKLOG_CONN`] (beyond
    /// it SYNs are dropped and connects stall, as with lwIP); `unlimited`:
    /// [`HOST_LISTEN_BACKLOG`]. Kept when the port listens again after a `refuse` window or a
    /// reboot.
    pub listen_backlog: u32,
}

impl Profile {
    /// The default: the ESP-IDF 5.x line up to v5.4 (header limit 512).
    pub const ESP_IDF_V5_4: Profile = Profile {
        name: "esp-idf-v5.4",
        summary: "ESP-IDF v5.0–v5.4: 512-byte header limit, 7 sockets, silent handshake rejection, 302 captive redirect",
        max_req_hdr_len: 512,
        max_uri_len: 512,
        max_open_sockets: Some(7),
        lru_purge: false,
        recv_timeout: Duration::from_secs(5),
        captive_redirect: (302, "Temporary Redirect"),
        modern_error_bodies: true,
        handshake_rejection: HandshakeRejection::SilentClose,
        echo_close_code: false,
        max_ws_message: espsim_protocol::MAX_MESSAGE_SIZE,
        oversize: OversizeHandling::ErrorMessage,
        listen_backlog: ESP_IDF_BACKLOG_CONN,
    };

    /// ESP-IDF v5.5 / v6.0: the header limit grew to 1024; otherwise as v5.4.
    pub const ESP_IDF_V5_5: Profile = Profile {
        name: "esp-idf-v5.5",
        summary: "ESP-IDF v5.5–v6.0: 1024-byte header limit, otherwise as v5.4",
        max_req_hdr_len: 1024,
        ..Profile::ESP_IDF_V5_4
    };

    /// ESP-IDF master (v6.1-dev) with `HTTPD_WS_STRICTER_RFC6455`: handshake errors get a status,
    /// the captive redirect is `303 See Other`.
    pub const ESP_IDF_V6_1_STRICT: Profile = Profile {
        name: "esp-idf-v6.1-strict",
        summary: "ESP-IDF master with HTTPD_WS_STRICTER_RFC6455: 400/426 on bad upgrades, 303 captive redirect, close codes echoed, 1009 on oversize",
        max_req_hdr_len: 1024,
        captive_redirect: (303, "See Other"),
        handshake_rejection: HandshakeRejection::Status,
        echo_close_code: true,
        oversize: OversizeHandling::Close1009,
        ..Profile::ESP_IDF_V5_4
    };

    /// The captive-portal example's server config: 13 sockets with LRU purge.
    pub const CAPTIVE_EXAMPLE: Profile = Profile {
        name: "captive-portal-example",
        summary: "ESP-IDF captive_portal example: max_open_sockets 13 with lru_purge_enable (oldest session closed without a close frame)",
        max_open_sockets: Some(13),
        lru_purge: true,
        ..Profile::ESP_IDF_V5_4
    };

    /// No socket limit and the host's listen backlog, for load tests and benchmarks; otherwise
    /// as the default.
    pub const UNLIMITED: Profile = Profile {
        name: "unlimited",
        summary: "as esp-idf-v5.4 but without the socket limit and with the host's listen backlog, not ESP-IDF's 5 (benchmarks, 1000-connection tests)",
        max_open_sockets: None,
        listen_backlog: HOST_LISTEN_BACKLOG,
        ..Profile::ESP_IDF_V5_4
    };

    /// The bare-metal ESP32-C3 build (`crates/firmware/esp32c3`: esp-hal, esp-radio, embassy-net,
    /// edge-http/edge-ws), whose limits are `espsim_firmware::captive::EDGE_LIMITS`: one listening
    /// socket per worker, a 4 KiB message buffer (a larger message closes with 1009). It answers
    /// HTTP with the same table and framing as ESP-IDF's captive-portal example (`302`, v5.1+
    /// error pages, silent close on a bad upgrade, an empty close frame back).
    pub const ESP_HAL_EDGE: Profile = Profile {
        name: "esp-hal-edge",
        summary: "bare-metal ESP32-C3 firmware (esp-hal + edge-http/edge-ws): 4 sockets, 1024-byte header limit, 1009 above 4 KiB messages, 302 captive redirect",
        max_req_hdr_len: EDGE_LIMITS.max_req_hdr_len,
        max_uri_len: EDGE_LIMITS.max_uri_len,
        max_open_sockets: Some(EDGE_LIMITS.max_open_sockets),
        lru_purge: false,
        recv_timeout: Duration::from_millis(EDGE_LIMITS.recv_timeout_ms),
        captive_redirect: (302, "Temporary Redirect"),
        modern_error_bodies: true,
        handshake_rejection: HandshakeRejection::SilentClose,
        echo_close_code: false,
        max_ws_message: EDGE_LIMITS.max_ws_message,
        oversize: OversizeHandling::Close1009,
        listen_backlog: ESP_IDF_BACKLOG_CONN,
    };

    /// Every built-in profile, default first.
    pub const ALL: [&'static Profile; 6] = [
        &Profile::ESP_IDF_V5_4,
        &Profile::ESP_IDF_V5_5,
        &Profile::ESP_IDF_V6_1_STRICT,
        &Profile::CAPTIVE_EXAMPLE,
        &Profile::UNLIMITED,
        &Profile::ESP_HAL_EDGE,
    ];

    /// Looks a profile up by name.
    pub fn by_name(name: &str) -> Option<&'static Profile> {
        Profile::ALL.into_iter().find(|p| p.name == name)
    }

    /// The names of every profile, for error messages.
    pub fn names() -> Vec<&'static str> {
        Profile::ALL.iter().map(|p| p.name).collect()
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile::ESP_IDF_V5_4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_found_by_its_name() {
        for p in Profile::ALL {
            assert_eq!(Profile::by_name(p.name), Some(p));
        }
        assert_eq!(Profile::by_name("esp-idf-v9"), None);
    }

    #[test]
    fn esp_hal_edge_has_the_c3_firmware_limits() {
        let p = Profile::by_name("esp-hal-edge").expect("listed");
        assert_eq!(p.max_open_sockets, Some(4));
        assert_eq!(p.max_req_hdr_len, 1024);
        assert_eq!(p.max_uri_len, 512);
        assert_eq!(p.recv_timeout, Duration::from_secs(5));
        assert_eq!(p.max_ws_message, espsim_protocol::MAX_MESSAGE_SIZE);
        assert_eq!(p.oversize, OversizeHandling::Close1009);
        assert_eq!(p.captive_redirect, (302, "Temporary Redirect"));
        assert_eq!(p.handshake_rejection, HandshakeRejection::SilentClose);
        assert!(!p.echo_close_code && !p.lru_purge && p.modern_error_bodies);
        // The firmware's own limits are where these come from.
        assert_eq!(p.max_open_sockets, Some(EDGE_LIMITS.max_open_sockets));
        assert_eq!(p.max_req_hdr_len, EDGE_LIMITS.max_req_hdr_len);
    }

    #[test]
    fn only_unlimited_leaves_the_chips_listen_backlog() {
        for p in Profile::ALL {
            let expected = if p.name == "unlimited" {
                HOST_LISTEN_BACKLOG
            } else {
                ESP_IDF_BACKLOG_CONN
            };
            assert_eq!(p.listen_backlog, expected, "{}", p.name);
        }
        // The unlimited profile's listen backlog is what a load test needs (`wrk -c256`); the
        // waiting bound of a chip profile is its listen backlog.
        const { assert!(HOST_LISTEN_BACKLOG >= 256) };
        assert_eq!(
            usize::try_from(ESP_IDF_BACKLOG_CONN).ok(),
            Some(crate::sockets::WAITING_LIMIT)
        );
    }

    #[test]
    fn default_profile_has_the_esp_idf_5_defaults() {
        let p = Profile::default();
        assert_eq!(p.max_req_hdr_len, 512);
        assert_eq!(p.max_open_sockets, Some(7));
        assert_eq!(p.recv_timeout, Duration::from_secs(5));
    }
}
