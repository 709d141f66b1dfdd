//! The emulator's config file format: the `device:` section of a scenario file, and the file
//! `espsim run --config FILE` reads. It lives here, with the emulator it configures; the harness
//! parses scenario files (strict YAML, file/line/column errors) and re-exports these types.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use espsim_device_file::{DeviceFile, DeviceFileError};
use serde::Deserialize;

use crate::internet::InternetMode;
use crate::profile::Profile;
use crate::{DeviceSource, EmulatorConfig, ProcessSpec, WsSettings};

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
///
/// With `file: greenhouse.yaml` the device speaks the protocol a device file describes instead
/// of the built-in firmware's (the file's `websocket:` section sets the endpoint, so `ws:` must
/// be left out). With `command: [python3, device.py]` a program in any language is the device
/// (`docs/reference/device-process.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// ESP-IDF profile name (`espsim run --help` lists them).
    pub profile: Option<String>,
    /// `online`, `captive` or `offline`.
    pub internet: Option<InternetMode>,
    /// The address DNS answers with.
    pub device_ip: Option<Ipv4Addr>,
    /// WebSocket endpoint.
    pub ws: Option<WsSpec>,
    /// Token the app must present (header, `?token=` or `hello`).
    pub auth_token: Option<String>,
    /// Seed for the simulated sensors (and, with faults, for every random decision).
    pub seed: Option<u64>,
    /// A device file to run instead of the built-in firmware. Relative to the file this
    /// section is in (see [`DeviceSpec::relative_to`]).
    pub file: Option<PathBuf>,
    /// A device file written inline, in this section (the same fields as a device file).
    pub inline: Option<InlineDevice>,
    /// The file this section was read from (set by [`DeviceSpec::relative_to`]): named in an
    /// inline device's errors; a `command` runs in its directory. Not a YAML field.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// A device process to run instead of the built-in firmware: the program and its
    /// arguments, e.g. `[python3, device.py]` (protocol: `docs/reference/device-process.md`).
    /// It runs in the directory of the file this section is in.
    pub command: Option<Vec<String>>,
}

/// A device file written inside a scenario or config file (`device: { inline: { name: … } }`),
/// checked by [`DeviceSpec::device_file`].
#[derive(Debug, Clone)]
pub struct InlineDevice(pub Arc<DeviceFile>);

impl<'de> Deserialize<'de> for InlineDevice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DeviceFile::deserialize(d).map(|file| InlineDevice(Arc::new(file)))
    }
}

/// Two inline devices are equal when they are the same parsed section.
impl PartialEq for InlineDevice {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for InlineDevice {}

/// The `ws:` part of the device section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSpec {
    /// Exact-match path, default `/ws`.
    pub path: Option<String>,
    /// The one subprotocol the endpoint supports.
    pub subprotocol: Option<String>,
}

/// A device section that names something the emulator does not have.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceSpecError {
    /// `profile:` is not one of the known ESP-IDF profiles.
    #[error("unknown profile `{name}` (known: {known})")]
    UnknownProfile {
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// `ws.path:` does not start with `/`.
    #[error("the WebSocket path must start with `/` (got `{0}`)")]
    WsPath(String),
    /// `file:` and `inline:` both describe the device.
    #[error("`file:` and `inline:` cannot both be given: the device is one or the other")]
    FileAndInline,
    /// `ws:` and `file:` both set the WebSocket endpoint.
    #[error(
        "`ws:` cannot be combined with `file:` or `inline:`: the device file's `websocket:` section sets the endpoint"
    )]
    WsWithFile,
    /// The device file does not load.
    #[error(transparent)]
    DeviceFile(#[from] Box<DeviceFileError>),
    /// `file:` or `inline:`, and `command:`, both name the device.
    #[error(
        "`file:` and `inline:` cannot be combined with `command:`: the device is one or the other"
    )]
    FileWithCommand,
    /// `command:` is an empty list.
    #[error("`command:` needs at least the program, e.g. [python3, device.py]")]
    EmptyCommand,
}

impl DeviceSpec {
    /// Makes a relative `file:` relative to `config_file`'s directory, names `config_file` in an
    /// inline device's errors and runs a `command` in its directory (the scenario or config file
    /// this section was read from).
    pub fn relative_to(&mut self, config_file: &Path) {
        if let (Some(file), Some(dir)) = (&mut self.file, config_file.parent())
            && file.is_relative()
        {
            *file = dir.join(&*file);
        }
        self.source = Some(config_file.to_owned());
    }

    /// Where a `command` runs: the directory of the file this section was read from.
    fn command_dir(&self) -> Option<PathBuf> {
        let dir = self.source.as_deref()?.parent()?;
        Some(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_owned()
        })
    }

    /// Loads and checks the device file, or checks the inline device, if the section has one.
    pub fn device_file(&self) -> Result<Option<Arc<DeviceFile>>, DeviceSpecError> {
        match (&self.file, &self.inline) {
            (Some(_), Some(_)) => Err(DeviceSpecError::FileAndInline),
            (Some(path), None) => Ok(Some(Arc::new(
                espsim_device_file::load(path).map_err(Box::new)?,
            ))),
            (None, Some(InlineDevice(file))) => {
                let source = self.source.as_deref().unwrap_or(Path::new("<device>"));
                file.check_inline(source).map_err(Box::new)?;
                Ok(Some(Arc::clone(file)))
            }
            (None, None) => Ok(None),
        }
    }

    /// The emulator configuration this section describes, on loopback with ephemeral ports
    /// (callers set listen addresses, TLS and the event file). `fallback_seed` is used when the
    /// section gives no `seed`. `espsim run` and `espsim test` both build their device with it.
    pub fn emulator_config(&self, fallback_seed: u64) -> Result<EmulatorConfig, DeviceSpecError> {
        let profile = match &self.profile {
            Some(name) => Profile::by_name(name)
                .ok_or_else(|| DeviceSpecError::UnknownProfile {
                    name: name.clone(),
                    known: Profile::names().join(", "),
                })?
                .clone(),
            None => Profile::default(),
        };
        let device_file = self.device_file()?;
        if device_file.is_some() && self.ws.is_some() {
            return Err(DeviceSpecError::WsWithFile);
        }
        if (self.file.is_some() || self.inline.is_some()) && self.command.is_some() {
            return Err(DeviceSpecError::FileWithCommand);
        }
        let process = match self.command.as_deref() {
            Some([program, args @ ..]) => {
                let mut spec = ProcessSpec::new(program.clone(), args.to_vec());
                spec.dir = self.command_dir();
                Some(spec)
            }
            Some([]) => return Err(DeviceSpecError::EmptyCommand),
            None => None,
        };
        let ws = self.ws.clone().unwrap_or_default();
        let path = ws.path.unwrap_or_else(|| WsSettings::default().path);
        if !path.starts_with('/') {
            return Err(DeviceSpecError::WsPath(path));
        }
        let mut config = EmulatorConfig {
            device_ip: self.device_ip.unwrap_or(Ipv4Addr::LOCALHOST),
            profile,
            internet: self.internet.unwrap_or_default(),
            ws: WsSettings {
                path,
                subprotocol: ws.subprotocol,
            },
            seed: self.seed.unwrap_or(fallback_seed),
            ..EmulatorConfig::default()
        };
        config.device.auth_token.clone_from(&self.auth_token);
        if let Some(file) = device_file {
            config.device_logic = DeviceSource::File(file);
        }
        if let Some(spec) = process {
            config.device_logic = DeviceSource::Process(Arc::new(spec));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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
    fn bad_internet_mode_is_an_error() {
        let err = yaml::parse::<DeviceSpec>("internet: maybe\n", Path::new("d.yaml"))
            .expect_err("bad mode");
        assert_eq!(err.line_column().map(|(l, _)| l), Some(1), "{err}");
    }

    #[test]
    fn maps_to_an_emulator_config() {
        let cfg = DeviceSpec {
            profile: Some("esp-idf-v5.5".into()),
            internet: Some(InternetMode::Offline),
            ws: Some(WsSpec {
                path: Some("/socket".into()),
                subprotocol: None,
            }),
            auth_token: Some("t".into()),
            ..DeviceSpec::default()
        };
        let emu = cfg.emulator_config(42).expect("maps");
        assert_eq!(emu.profile.name, "esp-idf-v5.5");
        assert_eq!(emu.internet, InternetMode::Offline);
        assert_eq!(emu.ws.path, "/socket");
        assert_eq!(emu.device.auth_token.as_deref(), Some("t"));
        assert_eq!(emu.seed, 42);
        let bad = DeviceSpec {
            profile: Some("esp-idf-v9".into()),
            ..DeviceSpec::default()
        };
        let err = bad.emulator_config(0).expect_err("unknown profile");
        assert!(
            err.to_string().starts_with("unknown profile `esp-idf-v9`"),
            "{err}"
        );
    }

    #[test]
    fn a_command_runs_as_a_device_process_in_the_files_directory() {
        let mut cfg: DeviceSpec = yaml::parse(
            "command: [python3, device.py, --verbose]\n",
            Path::new("scenarios/lamp.yaml"),
        )
        .expect("valid");
        cfg.relative_to(Path::new("scenarios/lamp.yaml"));
        let emu = cfg.emulator_config(0).expect("maps");
        let DeviceSource::Process(spec) = &emu.device_logic else {
            panic!("a process: {:?}", emu.device_logic);
        };
        assert_eq!(spec.command_line(), "python3 device.py --verbose");
        assert_eq!(spec.dir.as_deref(), Some(Path::new("scenarios")));
        let empty = DeviceSpec {
            command: Some(Vec::new()),
            ..DeviceSpec::default()
        };
        assert!(matches!(
            empty.emulator_config(0),
            Err(DeviceSpecError::EmptyCommand)
        ));
    }

    #[test]
    fn a_ws_path_without_a_slash_is_an_error() {
        let bad = DeviceSpec {
            ws: Some(WsSpec {
                path: Some("ws".into()),
                subprotocol: None,
            }),
            ..DeviceSpec::default()
        };
        assert!(matches!(
            bad.emulator_config(0).expect_err("bad path"),
            DeviceSpecError::WsPath(p) if p == "ws"
        ));
    }
}
