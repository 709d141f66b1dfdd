//! Layer 2: one A query over UDP, built and read with hickory-proto (no system resolver, so the
//! answer is exactly what that server says), plus a random name to spot a captive wildcard.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::Serialize;
use tokio::net::UdpSocket;

use super::{Details, LayerResult, LayerVerdict, ProbeOptions};

/// Layer 2 facts.
#[derive(Debug, Clone, Serialize)]
pub struct DnsDetails {
    /// The server asked.
    pub server: Option<SocketAddr>,
    /// `option` (`--dns`) or `resolv_conf`.
    pub server_source: &'static str,
    /// The name asked for.
    pub name: String,
    /// `NoError`, `NXDomain`, … or `null` when no answer came.
    pub rcode: Option<String>,
    /// The A records.
    pub answers: Vec<Ipv4Addr>,
    /// `true`: a random name resolved to the same address (a captive-portal DNS that answers
    /// every name); `null` when not checked.
    pub captive_wildcard: Option<bool>,
    /// The random name used for that check.
    pub wildcard_name: Option<String>,
}

/// What one query produced.
#[derive(Debug)]
enum Answer {
    Response {
        rcode: ResponseCode,
        a: Vec<Ipv4Addr>,
    },
    /// ICMP port unreachable: nothing listens on port 53 there.
    Refused,
    TimedOut,
    Error(String),
    Undecodable(String),
}

/// The first `nameserver` line of a resolv.conf text.
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        // Strip an IPv6 zone (`fe80::1%eth0`), which SocketAddr cannot hold.
        let ip = words.next()?.split('%').next()?;
        ip.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
    })
}

async fn query(server: SocketAddr, name: &str, timeout: Duration) -> Answer {
    let Ok(qname) = Name::from_ascii(name) else {
        return Answer::Error(format!("`{name}` is not a valid DNS name"));
    };
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(qname, RecordType::A));
    let id = message.metadata.id;
    let bytes = match message.to_vec() {
        Ok(b) => b,
        Err(e) => return Answer::Error(format!("cannot encode the query: {e}")),
    };
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let exchange = async {
        let socket = UdpSocket::bind(bind).await?;
        // Connected, so an ICMP port unreachable comes back as ECONNREFUSED.
        socket.connect(server).await?;
        socket.send(&bytes).await?;
        let mut buf = vec![0u8; 4096];
        // Skip stray datagrams with another id; bounded.
        for _ in 0..16 {
            let len = socket.recv(&mut buf).await?;
            let reply = buf.get(..len).unwrap_or_default();
            match Message::from_vec(reply) {
                Ok(m)
                    if m.metadata.id == id && m.metadata.message_type == MessageType::Response =>
                {
                    return Ok(Ok(m));
                }
                Ok(_) => continue,
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        Ok::<_, std::io::Error>(Err("no matching reply among 16 datagrams".to_owned()))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Answer::TimedOut,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Answer::Refused,
        Ok(Err(e)) => Answer::Error(e.to_string()),
        Ok(Ok(Err(e))) => Answer::Undecodable(e),
        Ok(Ok(Ok(m))) => Answer::Response {
            rcode: m.metadata.response_code,
            a: m.answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect(),
        },
    }
}

fn random_label() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes
        .iter()
        .fold(String::from("espsim-probe-"), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Layer 2: resolves `host`; returns the outcome and the address to connect to.
pub(crate) async fn probe(host: &str, options: &ProbeOptions) -> (LayerResult, Option<IpAddr>) {
    let (server, source) = match options.dns {
        Some(s) => (Some(s), "option"),
        None => (
            std::fs::read_to_string(&options.resolv_conf)
                .ok()
                .as_deref()
                .and_then(first_nameserver),
            "resolv_conf",
        ),
    };
    let mut details = DnsDetails {
        server,
        server_source: source,
        name: host.to_owned(),
        rcode: None,
        answers: Vec::new(),
        captive_wildcard: None,
        wildcard_name: None,
    };
    let Some(server) = server else {
        let outcome = LayerResult::new(
            LayerVerdict::Fail,
            format!("no nameserver in {}", options.resolv_conf.display()),
        )
        .hint("pass the device's DNS with --dns 192.168.4.1 (a softAP hands itself out as DNS via DHCP)")
        .details(Details::Dns(details));
        return (outcome, None);
    };
    let fail = |summary: String, hint: &str, details: DnsDetails| {
        (
            LayerResult::new(LayerVerdict::Fail, summary)
                .hint(hint)
                .details(Details::Dns(details)),
            None,
        )
    };
    let a = match query(server, host, options.timeout).await {
        Answer::Response { rcode, a } => {
            details.rcode = Some(format!("{rcode:?}"));
            if rcode == ResponseCode::NXDomain {
                return fail(
                    format!("{host}: NXDOMAIN from {server}"),
                    "the server says the name does not exist: a typo, or a resolver that is not the \
                     device's (an ESP32 captive DNS answers every name and never sends NXDOMAIN); \
                     apps see `Failed host lookup` (Dart) / `UnknownHostException` (Android)",
                    details,
                );
            }
            if rcode != ResponseCode::NoError {
                return fail(
                    format!("{host}: {rcode:?} from {server}"),
                    "the resolver failed; apps see `Temporary failure in name resolution`",
                    details,
                );
            }
            if a.is_empty() {
                return fail(
                    format!("{host}: no A record from {server}"),
                    "the name exists but has no IPv4 address; an ESP32 softAP is IPv4-only",
                    details,
                );
            }
            a
        }
        Answer::Refused => {
            return fail(
                format!("nothing answers DNS on {server} (ICMP port unreachable)"),
                "no DNS server there: a firmware without the captive-portal DNS makes phones' \
                 lookups fail fast; use the IP address in the app",
                details,
            );
        }
        Answer::TimedOut => {
            return fail(
                format!("no DNS answer from {server} within {:?}", options.timeout),
                "the server is unreachable or dropped the query (ESP-IDF's dns_server ignores \
                 queries with the AD/CD bits set and datagrams over 127 bytes)",
                details,
            );
        }
        Answer::Error(e) | Answer::Undecodable(e) => {
            return fail(
                format!("DNS query to {server} failed: {e}"),
                "the reply could not be used; ESP-IDF's old dns_server answers non-A queries with \
                 a malformed record",
                details,
            );
        }
    };
    details.answers = a.clone();
    let first = a.first().copied().map(IpAddr::V4);

    // A random name: a captive DNS answers it with the same address.
    let wildcard_name = format!("{}.invalid", random_label());
    let wildcard = match query(server, &wildcard_name, options.timeout).await {
        Answer::Response {
            rcode: ResponseCode::NoError,
            a: wa,
        } => Some(!wa.is_empty() && wa.iter().any(|ip| a.contains(ip))),
        Answer::Response { .. } => Some(false),
        _ => None,
    };
    details.captive_wildcard = wildcard;
    details.wildcard_name = Some(wildcard_name);
    let list = a
        .iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let (summary, hint) = match wildcard {
        Some(true) => (
            format!("{host} → {list} via {server} (captive wildcard: every name → {list})"),
            Some(
                "a captive DNS: phones' connectivity-check hosts also resolve to the device, so \
                 what the device answers to them decides the OS's verdict (see connectivity)"
                    .to_owned(),
            ),
        ),
        _ => (format!("{host} → {list} via {server}"), None),
    };
    (
        LayerResult::new(LayerVerdict::Pass, summary)
            .maybe_hint(hint)
            .details(Details::Dns(details)),
        first,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_nameserver_skips_comments_and_zones() {
        let conf = "# generated\nsearch lan\nnameserver fe80::1%eth0\nnameserver 10.0.0.1\n";
        assert_eq!(
            first_nameserver(conf),
            Some("[fe80::1]:53".parse().expect("addr"))
        );
        assert_eq!(first_nameserver("options ndots:1\n"), None);
    }
}
