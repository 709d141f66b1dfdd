//! A parsed HTTP request head, as the device's routing sees it.

/// The request line and headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    /// Method as sent, e.g. `GET`.
    pub(crate) method: String,
    /// Request-target as sent, e.g. `/ws?token=x`.
    pub(crate) target: String,
    /// Target up to `?` (ESP-IDF matches URIs on this, exactly).
    pub(crate) path: String,
    /// Text after `?`, if any.
    pub(crate) query: Option<String>,
    /// HTTP/1.x minor version: 0 or 1.
    pub(crate) minor_version: u8,
    /// Header names and values as sent, in order (values decoded lossily as UTF-8).
    pub(crate) headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first header named `name` (ASCII case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Host` header without a port, lower-cased.
    pub(crate) fn host_name(&self) -> Option<String> {
        let host = self.header("host")?.trim();
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        Some(name.to_ascii_lowercase())
    }

    /// The value of query parameter `key`, if present (no percent-decoding: tokens are opaque).
    #[allow(dead_code, reason = "used by the ws module (the `?token=` query)")]
    pub(crate) fn query_param(&self, key: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }
}

/// Written in events in place of a secret.
pub(crate) const REDACTED: &str = "<redacted>";

impl RequestHead {
    /// The request-target as events show it: the values of secret-looking query parameters
    /// (`token`, `access_token`, `password`, …) and every occurrence of the device's own token
    /// (`secret`) replaced by [`REDACTED`]. Events reach `GET /events`, event files and CI
    /// logs; a token an app puts in `?token=` must not.
    pub(crate) fn target_for_events(&self, secret: Option<&str>) -> String {
        redact_target(&self.target, secret)
    }
}

/// Whether a query parameter named `key` carries a credential.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "auth"
        || ["token", "secret", "password", "passwd", "key", "signature"]
            .iter()
            .any(|s| key.contains(s))
}

/// See [`RequestHead::target_for_events`].
fn redact_target(target: &str, secret: Option<&str>) -> String {
    let mut out = match target.split_once('?') {
        None => target.to_owned(),
        Some((path, rest)) => {
            let (query, fragment) = match rest.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (rest, None),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !v.is_empty() && is_secret_key(k) => format!("{k}={REDACTED}"),
                    _ => pair.to_owned(),
                })
                .collect();
            let mut out = format!("{path}?{}", pairs.join("&"));
            if let Some(f) = fragment {
                out.push('#');
                out.push_str(f);
            }
            out
        }
    };
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        out = out.replace(secret, REDACTED);
    }
    out
}

#[cfg(test)]
impl RequestHead {
    /// An HTTP/1.1 request head for unit tests: `target` is split at `?` as the parser does.
    pub(crate) fn for_test(method: &str, target: &str, headers: &[(&str, &str)]) -> RequestHead {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.to_owned(), None),
        };
        RequestHead {
            method: method.into(),
            target: target.into(),
            path,
            query,
            minor_version: 1,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)], target: &str) -> RequestHead {
        RequestHead::for_test("GET", target, headers)
    }

    #[test]
    fn host_name_drops_the_port_and_case() {
        let h = head(&[("HOST", "ConnectivityCheck.gstatic.com:80")], "/");
        assert_eq!(
            h.host_name().as_deref(),
            Some("connectivitycheck.gstatic.com")
        );
        let h = head(&[("Host", "[::1]:8080")], "/");
        assert_eq!(h.host_name().as_deref(), Some("::1"));
    }

    #[test]
    fn secrets_in_the_target_are_redacted_for_events() {
        let h = head(&[], "/ws/?a=1&token=s3cret&Access_Token=x&empty=#frag");
        assert_eq!(
            h.target_for_events(None),
            "/ws/?a=1&token=<redacted>&Access_Token=<redacted>&empty=#frag"
        );
        // The device token is removed wherever it appears, not only under a known name.
        let h = head(&[], "/s3cret/x?t=s3cret&token=");
        assert_eq!(
            h.target_for_events(Some("s3cret")),
            "/<redacted>/x?t=<redacted>&token="
        );
        assert_eq!(head(&[], "/plain").target_for_events(Some("")), "/plain");
    }

    #[test]
    fn query_param_finds_the_token() {
        let h = head(&[], "/ws?a=1&token=s3cret");
        assert_eq!(h.query_param("token"), Some("s3cret"));
        assert_eq!(h.query_param("b"), None);
    }
}
