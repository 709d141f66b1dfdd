//! Layer `connectivity`: asks the device the three connectivity checks phones and laptops make
//! after joining its Wi-Fi (a captive DNS sends them there), and says what each OS concludes and
//! what that means for the app. Rules: reference §5 (AOSP NetworkMonitor, Apple CNA, Windows NCSI).

use serde::Serialize;

use super::http::{self, Response};
use super::net::Dialer;
use super::{Details, LayerResult, LayerVerdict};

/// What an OS concludes about the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OsConclusion {
    /// Internet works: the network becomes the default.
    Online,
    /// A captive portal: "Sign in to network".
    SignIn,
    /// "No internet" / "Limited".
    NoInternet,
}

impl OsConclusion {
    /// The conclusion as the user sees it.
    pub fn label(self) -> &'static str {
        match self {
            OsConclusion::Online => "online",
            OsConclusion::SignIn => "\"Sign in to network\"",
            OsConclusion::NoInternet => "\"No internet\"",
        }
    }
}

/// One OS's check.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectivityCheck {
    /// `android`, `apple` or `windows`.
    pub os: &'static str,
    /// The URL the OS requests (sent to the device with this `Host`).
    pub url: &'static str,
    /// Status received, if any.
    pub status: Option<u16>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// Transport error instead of a response.
    pub error: Option<String>,
    /// What the OS concludes.
    pub conclusion: OsConclusion,
    /// What that means for an app talking to the device.
    pub consequence: &'static str,
}

/// Layer facts.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectivityDetails {
    /// Android, Apple, Windows, in that order.
    pub checks: Vec<ConnectivityCheck>,
}

#[derive(Debug, Clone, Copy)]
enum Os {
    Android,
    Apple,
    Windows,
}

struct Check {
    os: Os,
    host: &'static str,
    path: &'static str,
    url: &'static str,
    user_agent: &'static str,
}

const CHECKS: [Check; 3] = [
    Check {
        os: Os::Android,
        host: "connectivitycheck.gstatic.com",
        path: "/generate_204",
        url: "http://connectivitycheck.gstatic.com/generate_204",
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.32 Safari/537.36",
    },
    Check {
        os: Os::Apple,
        host: "captive.apple.com",
        path: "/hotspot-detect.html",
        url: "http://captive.apple.com/hotspot-detect.html",
        user_agent: "CaptiveNetworkSupport-443.0.2 wispr",
    },
    Check {
        os: Os::Windows,
        host: "www.msftconnecttest.com",
        path: "/connecttest.txt",
        url: "http://www.msftconnecttest.com/connecttest.txt",
        user_agent: "Microsoft NCSI",
    },
];

impl Os {
    fn name(self) -> &'static str {
        match self {
            Os::Android => "android",
            Os::Apple => "apple",
            Os::Windows => "windows",
        }
    }

    /// The OS's rule, applied to the response it got.
    fn conclude(self, r: &Response) -> OsConclusion {
        let redirect = (300..=399).contains(&r.status);
        match self {
            // AOSP: 204 valid; 200 with ≤ 4 bytes failed; other 2xx/3xx portal; else failed.
            Os::Android => match r.status {
                204 => OsConclusion::Online,
                200 if r.body.len() <= 4 => OsConclusion::NoInternet,
                200..=399 => OsConclusion::SignIn,
                _ => OsConclusion::NoInternet,
            },
            // CNA: the success page, else the sheet shows whatever came back.
            Os::Apple => {
                if r.status == 200 && contains(&r.body, b"Success") {
                    OsConclusion::Online
                } else {
                    OsConclusion::SignIn
                }
            }
            // NCSI: the text; other content or a redirect → sign-in; an error → no internet.
            Os::Windows => {
                if r.status == 200 && contains(&r.body, b"Microsoft Connect Test") {
                    OsConclusion::Online
                } else if r.status == 200 || redirect {
                    OsConclusion::SignIn
                } else {
                    OsConclusion::NoInternet
                }
            }
        }
    }

    fn consequence(self, c: OsConclusion) -> &'static str {
        match (self, c) {
            (Os::Android, OsConclusion::Online) => {
                "Wi-Fi is validated and becomes the default network: the app's sockets reach the device"
            }
            (Os::Android, OsConclusion::SignIn) => {
                "shows \"Sign in to Wi-Fi network\"; the network is not validated, so with mobile data \
                 on, unbound sockets go over cellular: bind to the Wi-Fi network \
                 (ConnectivityManager.bindProcessToNetwork / Network.getSocketFactory)"
            }
            (Os::Android, OsConclusion::NoInternet) => {
                "shows \"Connected, no internet\"; with mobile data on, the app's traffic goes over \
                 cellular and never reaches the device unless the app binds to the Wi-Fi network \
                 (ConnectivityManager.bindProcessToNetwork, or WifiNetworkSpecifier on Android 10+)"
            }
            (Os::Apple, OsConclusion::Online) => "no sheet; the device is reachable on Wi-Fi",
            (Os::Apple, OsConclusion::SignIn) => {
                "the Captive Network Assistant sheet opens with the device's page; if the user \
                 cancels, iOS may leave the network unless they pick \"Use Other Network\" → \
                 \"Use Without Internet\""
            }
            (Os::Apple, OsConclusion::NoInternet) => {
                "\"No Internet Connection\" under the network; local traffic to the device still goes \
                 over Wi-Fi (iOS 14+: the app needs NSLocalNetworkUsageDescription and the user's consent)"
            }
            (Os::Windows, OsConclusion::Online) => "\"Connected, secured\"",
            (Os::Windows, OsConclusion::SignIn) => {
                "\"Action needed\": opens the browser on the device's page"
            }
            (Os::Windows, OsConclusion::NoInternet) => {
                "\"No Internet, secured\"; stays connected, local traffic to the device works"
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Layer `connectivity`: the three checks, each on its own connection.
pub(crate) async fn probe(dial: &Dialer) -> LayerResult {
    let mut checks = Vec::new();
    for check in &CHECKS {
        let result = http::get(dial, check.host, check.path, check.user_agent).await;
        let (status, location, error, conclusion) = match &result {
            Ok(r) => (
                Some(r.status),
                r.header("location").map(str::to_owned),
                None,
                check.os.conclude(r),
            ),
            // Any transport failure: every OS concludes "no internet".
            Err(e) => (None, None, Some(e.describe()), OsConclusion::NoInternet),
        };
        checks.push(ConnectivityCheck {
            os: check.os.name(),
            url: check.url,
            status,
            location,
            error,
            conclusion,
            consequence: check.os.consequence(conclusion),
        });
    }
    let all_online = checks.iter().all(|c| c.conclusion == OsConclusion::Online);
    let summary = checks
        .iter()
        .map(|c| {
            let got = match (c.status, &c.error) {
                (Some(s), _) => s.to_string(),
                (None, _) => "no answer".to_owned(),
            };
            format!("{} {} ({got})", c.os, c.conclusion.label())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let hint = checks
        .iter()
        .find(|c| c.os == "android" && c.conclusion != OsConclusion::Online)
        .or_else(|| checks.iter().find(|c| c.conclusion != OsConclusion::Online))
        .map(|c| format!("{}: {}", c.os, c.consequence));
    let verdict = if all_online {
        LayerVerdict::Pass
    } else {
        LayerVerdict::Warn
    };
    LayerResult::new(verdict, summary)
        .maybe_hint(hint)
        .details(Details::Connectivity(ConnectivityDetails { checks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            reason: String::new(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn os_rules_match_the_reference() {
        let redirect = resp(302, "Redirect to the captive portal");
        let not_found = resp(404, "Nothing matches the given URI");
        assert_eq!(Os::Android.conclude(&resp(204, "")), OsConclusion::Online);
        assert_eq!(Os::Android.conclude(&redirect), OsConclusion::SignIn);
        assert_eq!(
            Os::Android.conclude(&resp(200, "ok")),
            OsConclusion::NoInternet
        );
        assert_eq!(Os::Android.conclude(&not_found), OsConclusion::NoInternet);
        assert_eq!(Os::Apple.conclude(&not_found), OsConclusion::SignIn);
        assert_eq!(
            Os::Windows.conclude(&resp(200, "Microsoft Connect Test")),
            OsConclusion::Online
        );
        assert_eq!(Os::Windows.conclude(&redirect), OsConclusion::SignIn);
        assert_eq!(Os::Windows.conclude(&not_found), OsConclusion::NoInternet);
    }
}
