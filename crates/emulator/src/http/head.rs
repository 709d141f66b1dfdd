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
    fn query_param_finds_the_token() {
        let h = head(&[], "/ws?a=1&token=s3cret");
        assert_eq!(h.query_param("token"), Some("s3cret"));
        assert_eq!(h.query_param("b"), None);
    }
}
