//! What the captive DNS answers to one question: the per-question policy.
//!
//! [`decide`] is pure (question, internet mode, device IP → [`DnsDecision`]), so the rules are
//! unit-tested without sockets and the fault injector can later put its own decision in front
//! of it: `nxdomain` / `servfail` / `refused` become a variant carrying a response code,
//! `no_reply` and `delay` variants that the handler acts on before sending, and
//! `wrong_address` is simply an [`DnsDecision::Answer`] with other addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::internet::InternetMode;

/// TTL of every answer: ESP-IDF's `ANS_TTL_SEC` in the captive-portal example.
pub(crate) const ANSWER_TTL: u32 = 300;

/// The name Windows NCSI resolves to decide it is online (its "DNS probe").
const NCSI_DNS_NAME: &str = "dns.msftncsi.com.";
/// The A answer NCSI expects for [`NCSI_DNS_NAME`].
const NCSI_DNS_V4: Ipv4Addr = Ipv4Addr::new(131, 107, 255, 255);
/// The AAAA answer NCSI expects for [`NCSI_DNS_NAME`].
const NCSI_DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd3e, 0x4f5a, 0x5b81, 0, 0, 0, 0, 0x1);

/// How one question is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DnsDecision {
    /// Answer with these addresses, each of the question's type (A: IPv4, AAAA: IPv6).
    /// Empty means NODATA: NOERROR with no answer, as the fixed ESP-IDF server does for
    /// every type but A.
    Answer(Vec<IpAddr>),
}

impl DnsDecision {
    /// The response code this decision asks for; the message gets the first non-NOERROR one.
    pub(crate) fn rcode(&self) -> ResponseCode {
        match self {
            DnsDecision::Answer(_) => ResponseCode::NoError,
        }
    }
}

/// The captive-portal rule: every A question gets the device IP. In [`InternetMode::Online`]
/// the NCSI DNS probe name gets the addresses Windows expects, so Windows believes it is
/// online. Names match case-insensitively.
pub(crate) fn decide(query: &Query, mode: InternetMode, device_ip: Ipv4Addr) -> DnsDecision {
    let ncsi = mode == InternetMode::Online && is_name(query.name(), NCSI_DNS_NAME);
    let addrs = match query.query_type() {
        RecordType::A if ncsi => vec![IpAddr::V4(NCSI_DNS_V4)],
        RecordType::A => vec![IpAddr::V4(device_ip)],
        RecordType::AAAA if ncsi => vec![IpAddr::V6(NCSI_DNS_V6)],
        _ => Vec::new(),
    };
    DnsDecision::Answer(addrs)
}

/// Case-insensitive match (`Name`'s `==` ignores case; names from the wire are fully qualified).
fn is_name(name: &Name, expected: &str) -> bool {
    Name::from_ascii(expected).is_ok_and(|expected| *name == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEVICE: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);

    fn q(name: &str, rtype: RecordType) -> Query {
        Query::query(Name::from_ascii(name).expect("valid name"), rtype)
    }

    #[test]
    fn every_a_question_gets_the_device_ip_in_every_mode() {
        for mode in InternetMode::ALL {
            for name in [
                "example.com.",
                "connectivitycheck.gstatic.com.",
                "a.b.c.d.e.",
            ] {
                assert_eq!(
                    decide(&q(name, RecordType::A), mode, DEVICE),
                    DnsDecision::Answer(vec![IpAddr::V4(DEVICE)]),
                    "{name} in {mode}"
                );
            }
        }
    }

    #[test]
    fn other_types_are_nodata() {
        for rtype in [
            RecordType::AAAA,
            RecordType::HTTPS,
            RecordType::MX,
            RecordType::TXT,
            RecordType::ANY,
        ] {
            let d = decide(&q("example.com.", rtype), InternetMode::Captive, DEVICE);
            assert_eq!(d, DnsDecision::Answer(Vec::new()), "{rtype}");
            assert_eq!(d.rcode(), ResponseCode::NoError);
        }
    }

    #[test]
    fn ncsi_name_gets_microsofts_addresses_only_when_online() {
        let a = q("DNS.MsftNCSI.com.", RecordType::A);
        let aaaa = q("dns.msftncsi.com.", RecordType::AAAA);
        assert_eq!(
            decide(&a, InternetMode::Online, DEVICE),
            DnsDecision::Answer(vec![IpAddr::V4(NCSI_DNS_V4)])
        );
        assert_eq!(
            decide(&aaaa, InternetMode::Online, DEVICE),
            DnsDecision::Answer(vec!["fd3e:4f5a:5b81::1".parse().expect("ip")])
        );
        assert_eq!(
            decide(&a, InternetMode::Captive, DEVICE),
            DnsDecision::Answer(vec![IpAddr::V4(DEVICE)])
        );
        assert_eq!(
            decide(&aaaa, InternetMode::Offline, DEVICE),
            DnsDecision::Answer(Vec::new())
        );
        // Only that exact name: a subdomain is an ordinary name.
        assert_eq!(
            decide(
                &q("x.dns.msftncsi.com.", RecordType::A),
                InternetMode::Online,
                DEVICE
            ),
            DnsDecision::Answer(vec![IpAddr::V4(DEVICE)])
        );
    }
}
