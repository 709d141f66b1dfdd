//! How the OS routes once it has a verdict (pure: spec + verdict → [`Routing`]).
//!
//! - Android, mobile data on: a validated Wi-Fi is the default network; an unvalidated one
//!   (portal or no internet) is not — cellular is, and unbound sockets and DNS use it. Sockets
//!   of an app bound with `bindProcessToNetwork(wifi)` use the Wi-Fi, DNS included.
//! - Android, mobile data off: the Wi-Fi is the only network and the default even unvalidated.
//! - iOS: traffic to the Wi-Fi's own subnet stays on the Wi-Fi whatever the verdict (the
//!   softAP's 192.168.4.0/24 is a directly connected route); other traffic follows the
//!   verdict like Android's (our reading of Wi-Fi Assist; Apple documents no exact rule).

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::spec::PhoneSpec;
use crate::topology::{CARRIER_RESOLVER, DEVICE_IP};
use crate::verdict::WifiVerdict;

/// One of the phone's networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// `wlan0`, the ESP32's softAP.
    Wifi,
    /// `rmnet0`, the carrier.
    Cellular,
}

impl Network {
    /// The resolver a process using this network asks.
    pub fn resolver(self) -> Ipv4Addr {
        match self {
            Network::Wifi => DEVICE_IP,
            Network::Cellular => CARRIER_RESOLVER,
        }
    }
}

/// Where the phone sends what, after a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Routing {
    /// The verdict this routing follows from.
    pub verdict: WifiVerdict,
    /// The OS's default network (what an unbound socket of any app uses).
    pub default_network: Network,
    /// What the app under test (the command) uses for the internet and for names.
    pub app_network: Network,
    /// What the app uses to reach the softAP subnet (192.168.4.0/24), e.g. 192.168.4.1.
    pub device_subnet: Network,
    /// The resolver the app asks.
    pub app_dns: Ipv4Addr,
}

/// The routing `spec`'s OS applies after `verdict`.
pub fn decide(spec: &PhoneSpec, verdict: WifiVerdict) -> Routing {
    let default_network = if !spec.has_cellular() || verdict == WifiVerdict::Validated {
        Network::Wifi
    } else {
        Network::Cellular
    };
    let app_network = if spec.bind_wifi {
        Network::Wifi
    } else {
        default_network
    };
    let device_subnet = match spec.os {
        crate::spec::Os::Ios => Network::Wifi,
        crate::spec::Os::Android => app_network,
    };
    Routing {
        verdict,
        default_network,
        app_network,
        device_subnet,
        app_dns: app_network.resolver(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{MobileData, Os};

    fn spec(os: Os, mobile_data: MobileData, bind_wifi: bool) -> PhoneSpec {
        PhoneSpec {
            os,
            mobile_data,
            bind_wifi,
        }
    }

    #[test]
    fn android_table() {
        use MobileData::{Off, On};
        use Network::{Cellular, Wifi};
        use WifiVerdict::{NoInternet, Portal, Validated};
        // (mobile data, bound, verdict) → (default, app, device subnet)
        let table = [
            (On, false, Validated, Wifi, Wifi, Wifi),
            (On, false, Portal, Cellular, Cellular, Cellular),
            (On, false, NoInternet, Cellular, Cellular, Cellular),
            (On, true, NoInternet, Cellular, Wifi, Wifi),
            (On, true, Portal, Cellular, Wifi, Wifi),
            (Off, false, NoInternet, Wifi, Wifi, Wifi),
            (Off, false, Portal, Wifi, Wifi, Wifi),
            (Off, true, Validated, Wifi, Wifi, Wifi),
        ];
        for (md, bound, verdict, default, app, subnet) in table {
            let r = decide(&spec(Os::Android, md, bound), verdict);
            assert_eq!(
                (r.default_network, r.app_network, r.device_subnet),
                (default, app, subnet),
                "{md:?} bound={bound} {verdict:?}"
            );
            assert_eq!(r.app_dns, app.resolver());
        }
    }

    #[test]
    fn ios_keeps_the_softap_subnet_on_wifi() {
        let r = decide(&spec(Os::Ios, MobileData::On, false), WifiVerdict::Portal);
        assert_eq!(r.default_network, Network::Cellular);
        assert_eq!(r.device_subnet, Network::Wifi);
        assert_eq!(r.app_dns, CARRIER_RESOLVER);
    }
}
