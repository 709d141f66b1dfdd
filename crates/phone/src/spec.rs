//! What phone to simulate: the `phone:` section of a scenario, or `espsim phone`'s flags.

use serde::{Deserialize, Serialize};

/// The phone's operating system: decides which connectivity check it sends and how it routes
/// after the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Os {
    /// AOSP NetworkMonitor: `connectivitycheck.gstatic.com/generate_204`, expects 204.
    Android,
    /// Apple captive network support: `captive.apple.com/hotspot-detect.html`, expects the
    /// `Success` page.
    Ios,
}

impl Os {
    /// The name used in events and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Android => "android",
            Os::Ios => "ios",
        }
    }
}

impl std::str::FromStr for Os {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "android" => Ok(Os::Android),
            "ios" => Ok(Os::Ios),
            other => Err(format!("unknown os `{other}` (expected android or ios)")),
        }
    }
}

/// Whether the phone has a cellular data connection besides the Wi-Fi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MobileData {
    /// Mobile data on: an `rmnet0` to a fake carrier exists and can become the default network.
    On,
    /// Mobile data off: the Wi-Fi is the only network, validated or not.
    Off,
}

impl std::str::FromStr for MobileData {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" => Ok(MobileData::On),
            "off" => Ok(MobileData::Off),
            other => Err(format!(
                "unknown mobile data setting `{other}` (expected on or off)"
            )),
        }
    }
}

/// The `phone:` section: `{ os: android, mobile_data: on, bind_wifi: false }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneSpec {
    /// The operating system.
    pub os: Os,
    /// Mobile data on or off.
    pub mobile_data: MobileData,
    /// The app binds its process to the Wi-Fi network (Android
    /// `ConnectivityManager.bindProcessToNetwork(wifi)`; on iOS, a Wi-Fi `requiredInterface`).
    #[serde(default)]
    pub bind_wifi: bool,
}

impl PhoneSpec {
    /// Whether the phone has a cellular network.
    pub fn has_cellular(&self) -> bool {
        self.mobile_data == MobileData::On
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_parses_from_yaml_with_on_and_off_as_words() {
        let spec: PhoneSpec =
            serde_saphyr::from_str("os: android\nmobile_data: on\nbind_wifi: true\n").unwrap();
        assert_eq!(
            spec,
            PhoneSpec {
                os: Os::Android,
                mobile_data: MobileData::On,
                bind_wifi: true
            }
        );
        let spec: PhoneSpec = serde_saphyr::from_str("os: ios\nmobile_data: off\n").unwrap();
        assert_eq!(spec.mobile_data, MobileData::Off);
        assert!(!spec.bind_wifi);
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        let err = serde_saphyr::from_str::<PhoneSpec>("os: android\nmobile_data: on\nwifi: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("wifi"), "{err}");
        let err = serde_saphyr::from_str::<PhoneSpec>("os: windows\nmobile_data: on\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("windows"), "{err}");
    }
}
