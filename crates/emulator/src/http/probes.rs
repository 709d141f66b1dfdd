//! OS connectivity checks: which request is which OS's probe, what the real server answers
//! when the internet is reachable, and what each OS concludes from the answer it gets.
//!
//! Sources: `docs/fidelity.md`, "OS connectivity checks" (AOSP NetworkMonitor, Apple CNA,
//! Windows NCSI, Firefox, NetworkManager, ChromeOS shill). The verdict is computed from the
//! response actually sent, whatever produced it (success page, captive redirect, portal page,
//! ESP-IDF's 404).

use crate::events::CheckVerdict;

use super::head::RequestHead;
use super::response::EspResponse;

/// Apple's success page (`captive.apple.com/hotspot-detect.html`).
pub(crate) const APPLE_SUCCESS: &str =
    "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>";
/// Firefox's `canonical.html` body.
pub(crate) const FIREFOX_CANONICAL: &str =
    r#"<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>"#;
/// NetworkManager's default expected response.
pub(crate) const NM_ONLINE: &str = "NetworkManager is online";

/// The operating system (family) a probe belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    /// AOSP NetworkMonitor and vendor builds (Xiaomi, Huawei, Vivo, GrapheneOS).
    Android,
    /// ChromeOS shill.
    ChromeOs,
    /// iOS / macOS captive network assistant.
    Apple,
    /// Windows NCSI.
    Windows,
    /// Firefox's captive-portal and connectivity services.
    Firefox,
    /// NetworkManager (GNOME, Ubuntu).
    NetworkManager,
}

impl Platform {
    /// Name used in events.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::ChromeOs => "chromeos",
            Platform::Apple => "apple",
            Platform::Windows => "windows",
            Platform::Firefox => "firefox",
            Platform::NetworkManager => "networkmanager",
        }
    }
}

/// What a probe expects, which decides both the success answer and the verdict rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// `generate_204`: AOSP rules.
    Android204,
    /// `generate_204` as ChromeOS shill reads it.
    ChromeOs204,
    /// Apple's success page.
    AppleSuccess,
    /// Windows NCSI: the body must contain this text.
    Windows(&'static str),
    /// Firefox `canonical.html` (captive-portal service).
    FirefoxCanonical,
    /// Firefox `success.txt` (connectivity service: no portal concept).
    FirefoxSuccess,
    /// NetworkManager: `X-NetworkManager-Status: online`, or a body starting with
    /// `NetworkManager is online`. `with_body`: the real server also sends that body.
    NetworkManager {
        /// Whether the real server's answer has the text body (GNOME) or is a 204 (Ubuntu).
        with_body: bool,
    },
}

/// One known probe URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The OS.
    pub(crate) os: Platform,
    /// `Host`, lower-case, without port.
    pub(crate) host: &'static str,
    /// Paths (query excluded) on that host.
    pub(crate) paths: &'static [&'static str],
    /// The rule.
    pub(crate) check: Check,
}

const GEN_204: &[&str] = &["/generate_204", "/gen_204"];

const fn android(host: &'static str) -> Probe {
    Probe {
        os: Platform::Android,
        host,
        paths: GEN_204,
        check: Check::Android204,
    }
}

const fn chromeos(host: &'static str) -> Probe {
    Probe {
        os: Platform::ChromeOs,
        host,
        paths: &["/generate_204"],
        check: Check::ChromeOs204,
    }
}

/// Every probe the emulator recognizes (host and path; see the module docs for sources).
pub(crate) const PROBES: &[Probe] = &[
    // AOSP default HTTP URL, HTTPS host (also probed over HTTP as fallback), fallbacks, older.
    android("connectivitycheck.gstatic.com"),
    android("www.google.com"),
    android("play.googleapis.com"),
    android("clients3.google.com"),
    android("connectivitycheck.android.com"),
    // Vendor builds.
    android("connect.rom.miui.com"),
    android("connectivitycheck.platform.hicloud.com"),
    android("wifi.vivo.com.cn"),
    android("connectivitycheck.grapheneos.network"),
    // ChromeOS-only fallbacks (its primary URL is Android's, told apart by User-Agent).
    chromeos("www.gstatic.com"),
    chromeos("safebrowsing.google.com"),
    chromeos("www.googleapis.com"),
    chromeos("www.play.googleapis.com"),
    Probe {
        os: Platform::Apple,
        host: "captive.apple.com",
        paths: &["/hotspot-detect.html"],
        check: Check::AppleSuccess,
    },
    Probe {
        os: Platform::Apple,
        host: "www.apple.com",
        paths: &["/library/test/success.html"],
        check: Check::AppleSuccess,
    },
    Probe {
        os: Platform::Windows,
        host: "www.msftconnecttest.com",
        paths: &["/connecttest.txt"],
        check: Check::Windows("Microsoft Connect Test"),
    },
    Probe {
        os: Platform::Windows,
        host: "ipv6.msftconnecttest.com",
        paths: &["/connecttest.txt"],
        check: Check::Windows("Microsoft Connect Test"),
    },
    Probe {
        os: Platform::Windows,
        host: "www.msftncsi.com",
        paths: &["/ncsi.txt"],
        check: Check::Windows("Microsoft NCSI"),
    },
    Probe {
        os: Platform::Firefox,
        host: "detectportal.firefox.com",
        paths: &["/canonical.html"],
        check: Check::FirefoxCanonical,
    },
    Probe {
        os: Platform::Firefox,
        host: "detectportal.firefox.com",
        paths: &["/success.txt"],
        check: Check::FirefoxSuccess,
    },
    Probe {
        os: Platform::NetworkManager,
        host: "nmcheck.gnome.org",
        paths: &["/check_network_status.txt"],
        check: Check::NetworkManager { with_body: true },
    },
    Probe {
        os: Platform::NetworkManager,
        host: "connectivity-check.ubuntu.com",
        paths: &["/"],
        check: Check::NetworkManager { with_body: false },
    },
];

/// A request recognized as a connectivity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recognized {
    /// Who sent it.
    pub(crate) os: Platform,
    /// The rule to apply.
    pub(crate) check: Check,
}

/// Recognizes a probe by `Host` and path (query ignored). ChromeOS sends Android's URLs; its
/// User-Agent contains `CrOS`.
pub(crate) fn recognize(head: &RequestHead) -> Option<Recognized> {
    let host = head.host_name()?;
    let host = host.strip_suffix('.').unwrap_or(&host);
    let probe = PROBES
        .iter()
        .find(|p| p.host == host && p.paths.contains(&head.path.as_str()))?;
    let cros = head
        .header("user-agent")
        .is_some_and(|ua| ua.contains("CrOS"));
    Some(match probe.check {
        Check::Android204 if cros => Recognized {
            os: Platform::ChromeOs,
            check: Check::ChromeOs204,
        },
        check => Recognized {
            os: probe.os,
            check,
        },
    })
}

impl Check {
    /// What the real server answers when the internet is reachable.
    pub(crate) fn success(self) -> EspResponse {
        match self {
            Check::Android204 | Check::ChromeOs204 => EspResponse::html(204, "No Content", ""),
            Check::AppleSuccess => EspResponse::html(200, "OK", APPLE_SUCCESS),
            Check::Windows(text) => EspResponse::html(200, "OK", text).plain(),
            Check::FirefoxCanonical => EspResponse::html(200, "OK", FIREFOX_CANONICAL),
            Check::FirefoxSuccess => EspResponse::html(200, "OK", "success\n").plain(),
            Check::NetworkManager { with_body: true } => {
                EspResponse::html(200, "OK", format!("{NM_ONLINE}\n"))
                    .plain()
                    .header("X-NetworkManager-Status", "online")
            }
            Check::NetworkManager { with_body: false } => {
                EspResponse::html(204, "No Content", "").header("X-NetworkManager-Status", "online")
            }
        }
    }

    /// What the OS concludes from `response` (a response was received; transport failures are
    /// "no internet" for every OS and never reach this function).
    pub(crate) fn verdict(self, response: &EspResponse) -> CheckVerdict {
        let status = response.status;
        let body = response.body.as_slice();
        let redirect = (300..=399).contains(&status);
        match self {
            // AOSP: 204 → valid; 200–399 except 204 → portal, but a 200 with ≤ 4 bytes of
            // content counts as failed; anything else failed.
            Check::Android204 => match status {
                204 => CheckVerdict::Online,
                200 if body.len() <= 4 => CheckVerdict::NoInternet,
                200..=399 => CheckVerdict::SignIn,
                _ => CheckVerdict::NoInternet,
            },
            // shill: 204 or empty 200 → online; redirect or 200 with content → portal.
            Check::ChromeOs204 => match status {
                204 => CheckVerdict::Online,
                200 if body.is_empty() => CheckVerdict::Online,
                200 => CheckVerdict::SignIn,
                _ if redirect => CheckVerdict::SignIn,
                _ => CheckVerdict::NoInternet,
            },
            // CNA: the success page → online; any other answer → the sheet shows that page.
            Check::AppleSuccess => {
                if status == 200 && contains(body, b"Success") {
                    CheckVerdict::Online
                } else {
                    CheckVerdict::SignIn
                }
            }
            // NCSI: expected text → online; a redirect or other content → sign-in;
            // an error status → no internet.
            Check::Windows(text) => {
                if status == 200 && contains(body, text.as_bytes()) {
                    CheckVerdict::Online
                } else if status == 200 || redirect {
                    CheckVerdict::SignIn
                } else {
                    CheckVerdict::NoInternet
                }
            }
            // Redirects are not followed; anything but the exact body is a portal.
            Check::FirefoxCanonical => {
                if status == 200 && body == FIREFOX_CANONICAL.as_bytes() {
                    CheckVerdict::Online
                } else {
                    CheckVerdict::SignIn
                }
            }
            Check::FirefoxSuccess => {
                if status == 200 && body == b"success\n" {
                    CheckVerdict::Online
                } else {
                    CheckVerdict::NoInternet
                }
            }
            // NetworkManager: the status header or the expected body prefix → full; any other
            // answer → portal (only transport failures give "limited").
            Check::NetworkManager { .. } => {
                let header = response.headers.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case("X-NetworkManager-Status") && v == "online"
                });
                if header || body.starts_with(NM_ONLINE.as_bytes()) {
                    CheckVerdict::Online
                } else {
                    CheckVerdict::SignIn
                }
            }
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::errors::EspError;

    fn head(host: &str, target: &str, ua: Option<&str>) -> RequestHead {
        let mut headers = vec![("Host", host)];
        if let Some(ua) = ua {
            headers.push(("User-Agent", ua));
        }
        RequestHead::for_test("GET", target, &headers)
    }

    fn redirect() -> EspResponse {
        EspResponse::html(302, "Temporary Redirect", "Redirect to the captive portal")
            .header("Location", "/")
    }

    #[test]
    fn every_probe_is_recognized_and_online_with_its_own_success_answer() {
        for p in PROBES {
            for path in p.paths {
                let r = recognize(&head(p.host, path, None)).expect("recognized");
                assert_eq!(r.os, p.os, "{}{}", p.host, path);
                assert_eq!(
                    r.check.verdict(&r.check.success()),
                    CheckVerdict::Online,
                    "{}{path}",
                    p.host
                );
            }
        }
    }

    #[test]
    fn recognition_uses_host_without_port_and_path_without_query() {
        let r = recognize(&head(
            "DetectPortal.Firefox.com:80",
            "/success.txt?ipv4",
            None,
        ));
        assert_eq!(r.map(|r| r.check), Some(Check::FirefoxSuccess));
        assert_eq!(recognize(&head("192.168.4.1", "/generate_204", None)), None);
        assert_eq!(recognize(&head("captive.apple.com", "/other", None)), None);
        let cros = recognize(&head(
            "connectivitycheck.gstatic.com",
            "/generate_204",
            Some("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0)"),
        ));
        assert_eq!(cros.map(|r| r.os), Some(Platform::ChromeOs));
    }

    #[test]
    fn captive_redirect_means_sign_in_except_for_firefox_connectivity() {
        for p in PROBES {
            let want = if p.check == Check::FirefoxSuccess {
                CheckVerdict::NoInternet
            } else {
                CheckVerdict::SignIn
            };
            assert_eq!(p.check.verdict(&redirect()), want, "{}", p.host);
        }
    }

    #[test]
    fn esp_404_verdicts_per_os() {
        let not_found = EspError::NotFound.response(true);
        let v = |c: Check| c.verdict(&not_found);
        assert_eq!(v(Check::Android204), CheckVerdict::NoInternet);
        assert_eq!(v(Check::ChromeOs204), CheckVerdict::NoInternet);
        assert_eq!(
            v(Check::Windows("Microsoft Connect Test")),
            CheckVerdict::NoInternet
        );
        assert_eq!(v(Check::FirefoxSuccess), CheckVerdict::NoInternet);
        // These show whatever page came back.
        assert_eq!(v(Check::AppleSuccess), CheckVerdict::SignIn);
        assert_eq!(v(Check::FirefoxCanonical), CheckVerdict::SignIn);
        assert_eq!(
            v(Check::NetworkManager { with_body: true }),
            CheckVerdict::SignIn
        );
    }

    #[test]
    fn android_special_cases() {
        let tiny = EspResponse::html(200, "OK", "ok");
        assert_eq!(Check::Android204.verdict(&tiny), CheckVerdict::NoInternet);
        let page = EspResponse::html(200, "OK", "<html>portal</html>");
        assert_eq!(Check::Android204.verdict(&page), CheckVerdict::SignIn);
        let empty = EspResponse::html(200, "OK", "");
        assert_eq!(Check::ChromeOs204.verdict(&empty), CheckVerdict::Online);
        assert_eq!(Check::ChromeOs204.verdict(&page), CheckVerdict::SignIn);
    }
}
