//! The `device:` section of a scenario file (also `espsim run --config FILE`). Its format is the
//! emulator's ([`espsim_emulator::config`]); this module re-exports it and pins how the strict
//! YAML reader treats it.

pub use espsim_emulator::config::{DeviceSpec, DeviceSpecError, WsSpec};

#[cfg(test)]
mod tests {
    use std::path::Path;

    use espsim_emulator::internet::InternetMode;

    use super::*;
    use crate::yaml;

    #[test]
    fn full_device_section_parses() {
        let cfg: DeviceSpec = yaml::parse(
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
        let err = yaml::parse::<DeviceSpec>(
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
    fn maps_to_an_emulator_config() {
        let cfg: DeviceSpec = yaml::parse(
            "profile: esp-idf-v5.5\ninternet: offline\nws: { path: /socket }\nauth_token: t\n",
            Path::new("d.yaml"),
        )
        .expect("valid");
        let emu = cfg.emulator_config(42).expect("maps");
        assert_eq!(emu.profile.name, "esp-idf-v5.5");
        assert_eq!(emu.internet, InternetMode::Offline);
        assert_eq!(emu.ws.path, "/socket");
        assert_eq!(emu.device.auth_token.as_deref(), Some("t"));
        assert_eq!(emu.seed, 42);
    }

    #[test]
    fn bad_internet_mode_is_an_error() {
        let err = yaml::parse::<DeviceSpec>("internet: maybe\n", Path::new("d.yaml"))
            .expect_err("bad mode");
        assert_eq!(err.line_column().map(|(l, _)| l), Some(1), "{err}");
    }
}
