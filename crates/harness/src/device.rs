//! The `device:` section of a scenario file (also `espsim run --config FILE`).

use std::net::Ipv4Addr;

use espsim_emulator::internet::InternetMode;
use serde::Deserialize;

/// How the emulated device is set up. Every field is optional; missing ones keep the defaults.
///
/// ```yaml
/// profile: esp-idf-v5.4
/// internet: captive
/// device_ip: 192.168.4.1
/// ws: { path: /ws, subprotocol: espsim.v1 }
/// auth_token: s3cret
/// seed: 7
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// ESP-IDF profile name (`espsim run --help` lists them).
    pub profile: Option<String>,
    /// `online`, `captive` or `offline`.
    pub internet: Option<InternetMode>,
    /// The address DNS answers with.
    pub device_ip: Option<Ipv4Addr>,
    /// WebSocket endpoint.
    pub ws: Option<WsConfig>,
    /// Token the app must present (header, `?token=` or `hello`).
    pub auth_token: Option<String>,
    /// Seed for the simulated sensors (and, with faults, for every random decision).
    pub seed: Option<u64>,
}

/// The `ws:` part of the device section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsConfig {
    /// Exact-match path, default `/ws`.
    pub path: Option<String>,
    /// The one subprotocol the endpoint supports.
    pub subprotocol: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::yaml;

    #[test]
    fn full_device_section_parses() {
        let cfg: DeviceConfig = yaml::parse(
            "profile: esp-idf-v5.5\ninternet: online\ndevice_ip: 192.168.4.1\nws: { path: /socket, subprotocol: v1 }\nauth_token: no\nseed: 7\n",
            Path::new("d.yaml"),
        )
        .expect("valid");
        assert_eq!(cfg.internet, Some(InternetMode::Online));
        assert_eq!(cfg.ws.and_then(|w| w.path).as_deref(), Some("/socket"));
        // Strict booleans: `no` is the string "no", not `false`.
        assert_eq!(cfg.auth_token.as_deref(), Some("no"));
    }

    #[test]
    fn unknown_field_is_an_error_with_line_and_column() {
        let err = yaml::parse::<DeviceConfig>(
            "profile: esp-idf-v5.4\nws:\n  path: /ws\n  pth: /x\n",
            Path::new("dev.yaml"),
        )
        .expect_err("unknown field");
        assert_eq!(err.line_column().map(|(l, _)| l), Some(4), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("dev.yaml:4:"), "{text}");
        assert!(text.contains("pth"), "{text}");
    }

    #[test]
    fn bad_internet_mode_is_an_error() {
        let err = yaml::parse::<DeviceConfig>("internet: maybe\n", Path::new("d.yaml"))
            .expect_err("bad mode");
        assert_eq!(err.line_column().map(|(l, _)| l), Some(1), "{err}");
    }
}
