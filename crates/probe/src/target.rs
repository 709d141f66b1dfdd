//! The URL an app would use, parsed, and the lint of layer 1: the mistakes that show up in
//! ESP32 app bug reports before any packet is sent.

use std::net::IpAddr;

use serde::Serialize;

use super::{Details, LayerResult, LayerVerdict};

/// The WebSocket scheme probed (`http://` and `https://` are linted and mapped to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Plain WebSocket.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

/// A parsed probe URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme as written (`ws`, `wss`, `http`, `https`), lower-case.
    pub written_scheme: String,
    /// The scheme probed.
    pub scheme: Scheme,
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port connected to (the scheme's default when absent or 0).
    pub port: u16,
    /// The port as written, if any.
    pub explicit_port: Option<u16>,
    /// Path, at least `/`.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    /// Whether the URL had a `#fragment`.
    pub fragment: bool,
}

/// Why a URL cannot be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No `scheme://`.
    #[error("`{0}` is not a URL (expected ws://host[:port]/path)")]
    NoScheme(String),
    /// A scheme no WebSocket client accepts.
    #[error("unsupported scheme `{0}` (expected ws://, wss://, http:// or https://)")]
    Scheme(String),
    /// Empty host.
    #[error("the URL has no host")]
    NoHost,
    /// Unparseable port.
    #[error("invalid port `{0}`")]
    Port(String),
    /// `[` without `]`, or junk after `]`.
    #[error("invalid IPv6 address literal `{0}`")]
    Ipv6(String),
}

impl Target {
    /// Parses `ws://host[:port][/path][?query][#fragment]` (and wss/http/https).
    pub fn parse(url: &str) -> Result<Target, UrlError> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::NoScheme(url.to_owned()))?;
        let written_scheme = scheme.to_ascii_lowercase();
        let scheme = match written_scheme.as_str() {
            "ws" | "http" => Scheme::Ws,
            "wss" | "https" => Scheme::Wss,
            _ => return Err(UrlError::Scheme(scheme.to_owned())),
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, _)) => (r, true),
            None => (rest, false),
        };
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        // Userinfo is never sent by WebSocket clients; drop it.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| UrlError::Ipv6(authority.to_owned()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| UrlError::Ipv6(authority.to_owned()))?,
                ),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        let explicit_port = match port_text {
            None | Some("") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| UrlError::Port(p.to_owned()))?),
        };
        let default_port = match scheme {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_owned())),
            None => (tail, None),
        };
        Ok(Target {
            written_scheme,
            scheme,
            host: host.to_ascii_lowercase(),
            port: explicit_port.filter(|p| *p != 0).unwrap_or(default_port),
            explicit_port,
            path: if path.is_empty() { "/" } else { path }.to_owned(),
            query,
            fragment,
        })
    }

    /// The host as an IP address, when it is one. `localhost` counts as 127.0.0.1 (RFC 6761:
    /// resolvers must not send it to DNS).
    pub fn ip_literal(&self) -> Option<IpAddr> {
        if self.host == "localhost" {
            return Some(IpAddr::from([127, 0, 0, 1]));
        }
        self.host.parse().ok()
    }

    /// The host as written in a URL (IPv6 in brackets).
    pub fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `Host` header value: the port only when not the scheme's default, as clients send it.
    pub fn host_header(&self) -> String {
        let host = self.url_host();
        let default = match self.scheme {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Request-target for the upgrade: path plus query.
    pub fn request_target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code: `implicit_port`, `port_zero`, `http_scheme`, `trailing_slash`, `root_path`,
    /// `fragment`.
    pub code: &'static str,
    /// `info` or `warn`.
    pub severity: &'static str,
    /// What it means for the app.
    pub message: String,
}

/// Layer 1 facts.
#[derive(Debug, Clone, Serialize)]
pub struct UriDetails {
    /// The scheme probed.
    pub scheme: Scheme,
    /// Host.
    pub host: String,
    /// Port connected to.
    pub port: u16,
    /// Path (exact-match on ESP-IDF).
    pub path: String,
    /// Every finding, in URL order.
    pub findings: Vec<Finding>,
}

/// Layer 1: lints `target`.
pub(crate) fn lint(target: &Target) -> LayerResult {
    let mut findings = Vec::new();
    let mut add = |code, severity, message: String| {
        findings.push(Finding {
            code,
            severity,
            message,
        });
    };
    if matches!(target.written_scheme.as_str(), "http" | "https") {
        let ws = if target.scheme == Scheme::Ws {
            "ws"
        } else {
            "wss"
        };
        add(
            "http_scheme",
            "warn",
            format!(
                "{}:// is not a WebSocket URL: Dart throws `Unsupported URL scheme '{}'`; use {ws}:// in the app (probed as {ws}://)",
                target.written_scheme, target.written_scheme
            ),
        );
    }
    match target.explicit_port {
        None if target.scheme == Scheme::Ws => add(
            "implicit_port",
            "info",
            "no explicit port: port 80 is used; Dart prints it as `:0` in errors \
             (`http://host:0/ws#`), which is cosmetic, not the cause"
                .to_owned(),
        ),
        Some(0) => add(
            "port_zero",
            "warn",
            format!(
                "port 0 is not a port: Dart silently uses {} instead, other clients fail to \
                 connect; write the real port (probed on {})",
                target.port, target.port
            ),
        ),
        _ => {}
    }
    if target.path == "/" {
        add(
            "root_path",
            "info",
            "path is `/`: ESP-IDF firmware usually registers the WebSocket on its own URI \
             (e.g. `/ws`); `/` is often the portal page"
                .to_owned(),
        );
    } else if target.path.ends_with('/') {
        add(
            "trailing_slash",
            "warn",
            format!(
                "trailing slash: ESP-IDF matches URIs exactly, so `{}` does not reach a handler \
                 registered as `{}`",
                target.path,
                target.path.trim_end_matches('/')
            ),
        );
    }
    if target.fragment {
        add(
            "fragment",
            "info",
            "the #fragment is never sent to the device".to_owned(),
        );
    }
    let warns = findings.iter().filter(|f| f.severity == "warn").count();
    let (verdict, summary) = if warns > 0 {
        (
            LayerVerdict::Warn,
            format!(
                "{warns} problem(s): {}",
                findings
                    .iter()
                    .filter(|f| f.severity == "warn")
                    .map(|f| f.code)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        (
            LayerVerdict::Pass,
            format!(
                "{}://{}:{}{}",
                match target.scheme {
                    Scheme::Ws => "ws",
                    Scheme::Wss => "wss",
                },
                target.host,
                target.port,
                target.request_target()
            ),
        )
    };
    let hint = findings
        .iter()
        .find(|f| f.severity == "warn")
        .or_else(|| findings.first())
        .map(|f| f.message.clone());
    LayerResult::new(verdict, summary)
        .maybe_hint(hint)
        .details(Details::Uri(UriDetails {
            scheme: target.scheme,
            host: target.host.clone(),
            port: target.port,
            path: target.path.clone(),
            findings,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(url: &str) -> Vec<&'static str> {
        let t = Target::parse(url).expect("parses");
        match lint(&t).details {
            Some(Details::Uri(d)) => d.findings.iter().map(|f| f.code).collect(),
            _ => panic!("uri details"),
        }
    }

    #[test]
    fn parses_host_port_path_and_query() {
        let t = Target::parse("ws://192.168.4.1:8080/ws?token=a#x").expect("parses");
        assert_eq!(t.host, "192.168.4.1");
        assert_eq!((t.port, t.explicit_port), (8080, Some(8080)));
        assert_eq!(t.request_target(), "/ws?token=a");
        assert!(t.fragment);
        let t = Target::parse("wss://[::1]/x").expect("parses");
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.host_header(), "[::1]");
        assert_eq!(Target::parse("ws://h").expect("parses").path, "/");
    }

    #[test]
    fn rejects_what_no_client_accepts() {
        assert!(matches!(
            Target::parse("ftp://h/"),
            Err(UrlError::Scheme(_))
        ));
        assert!(matches!(
            Target::parse("192.168.4.1/ws"),
            Err(UrlError::NoScheme(_))
        ));
        assert!(matches!(Target::parse("ws:///ws"), Err(UrlError::NoHost)));
        assert!(matches!(
            Target::parse("ws://h:99999/"),
            Err(UrlError::Port(_))
        ));
    }

    #[test]
    fn lints_the_usual_esp32_url_mistakes() {
        assert_eq!(codes("ws://192.168.4.1/ws"), ["implicit_port"]);
        assert_eq!(codes("ws://192.168.4.1:80/ws"), Vec::<&str>::new());
        assert_eq!(codes("ws://192.168.4.1:0/ws"), ["port_zero"]);
        assert_eq!(
            codes("http://192.168.4.1:80/ws/"),
            ["http_scheme", "trailing_slash"]
        );
        let t = Target::parse("ws://h:0/ws").expect("parses");
        assert_eq!(t.port, 80);
        assert_eq!(lint(&t).verdict, LayerVerdict::Warn);
    }
}
