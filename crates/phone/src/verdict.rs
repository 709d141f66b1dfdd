//! What the OS concludes from its connectivity check's answer (pure; the probe is in
//! `crate::probe`).
//!
//! Android: AOSP `NetworkMonitor` rules (`docs/fidelity.md`, "OS connectivity checks"): exactly
//! 204 → validated; 200–399 other than 204 → portal ("Sign in to network"), except a 200 whose
//! `Content-Length` is ≤ 4 or whose body is empty → failed; anything else, or no answer → no
//! internet. iOS: the `Success` page → online; any other HTTP answer → the captive sheet
//! (portal); no answer → no internet (same section).

use serde::Serialize;

use crate::spec::Os;

/// Apple's success page (`captive.apple.com/hotspot-detect.html`).
pub const APPLE_SUCCESS: &str =
    "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>";

/// The OS's conclusion about the Wi-Fi.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WifiVerdict {
    /// The check passed: the Wi-Fi has internet (Android "validated").
    Validated,
    /// A captive portal: "Sign in to network" (Android) / the sign-in sheet (iOS).
    Portal,
    /// The check failed: "No internet" / "Connected, no internet".
    NoInternet,
}

/// A connectivity check as sent and answered, with the verdict drawn from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeOutcome {
    /// The OS that sent it.
    pub os: Os,
    /// The probe URL.
    pub url: String,
    /// The HTTP status received, if any.
    pub status: Option<u16>,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
    /// Why no HTTP answer arrived (DNS, connect, read).
    pub error: Option<String>,
    /// The conclusion.
    pub verdict: WifiVerdict,
}

/// An HTTP answer as the classifier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// `Content-Length`, when sent.
    pub content_length: Option<u64>,
    /// The body received (bounded by the probe).
    pub body: Vec<u8>,
}

/// The verdict `os` draws from `answer` (`None`: DNS, connect or read failed).
pub fn classify(os: Os, answer: Option<&HttpAnswer>) -> WifiVerdict {
    let Some(a) = answer else {
        return WifiVerdict::NoInternet;
    };
    match os {
        Os::Android => match a.status {
            204 => WifiVerdict::Validated,
            200 if a.content_length.is_some_and(|n| n <= 4) => WifiVerdict::NoInternet,
            200 if a.content_length.is_none() && a.body.is_empty() => WifiVerdict::NoInternet,
            200..=399 => WifiVerdict::Portal,
            _ => WifiVerdict::NoInternet,
        },
        Os::Ios => {
            let success = a.status == 200 && a.body.trim_ascii() == APPLE_SUCCESS.as_bytes();
            if success {
                WifiVerdict::Validated
            } else {
                WifiVerdict::Portal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, with_length: bool) -> HttpAnswer {
        HttpAnswer {
            status,
            content_length: with_length.then_some(body.len() as u64),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn android_follows_aosp_classes() {
        let v = |a: &HttpAnswer| classify(Os::Android, Some(a));
        assert_eq!(v(&answer(204, "", true)), WifiVerdict::Validated);
        assert_eq!(v(&answer(302, "Redirect", true)), WifiVerdict::Portal);
        assert_eq!(v(&answer(303, "", true)), WifiVerdict::Portal);
        assert_eq!(
            v(&answer(200, "<html>portal</html>", true)),
            WifiVerdict::Portal
        );
        assert_eq!(v(&answer(200, "ok", true)), WifiVerdict::NoInternet);
        assert_eq!(v(&answer(200, "", false)), WifiVerdict::NoInternet);
        assert_eq!(
            v(&answer(404, "Nothing matches the given URI", true)),
            WifiVerdict::NoInternet
        );
        assert_eq!(classify(Os::Android, None), WifiVerdict::NoInternet);
    }

    #[test]
    fn ios_wants_the_success_page() {
        let v = |a: &HttpAnswer| classify(Os::Ios, Some(a));
        assert_eq!(v(&answer(200, APPLE_SUCCESS, true)), WifiVerdict::Validated);
        assert_eq!(v(&answer(302, "Redirect", true)), WifiVerdict::Portal);
        assert_eq!(
            v(&answer(404, "Nothing matches", true)),
            WifiVerdict::Portal
        );
        assert_eq!(v(&answer(204, "", true)), WifiVerdict::Portal);
        assert_eq!(classify(Os::Ios, None), WifiVerdict::NoInternet);
    }
}
