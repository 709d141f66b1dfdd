//! What the captive DNS answers to one question: the per-question policy.
//!
//! [`decide`] is pure (question, internet mode, device IP → [`DnsDecision`]), so the rules are
//! unit-tested without sockets. [`with_fault`] puts a DNS fault in front of it:
//! `nxdomain` / `servfail` / `refused` become [`DnsDecision::Rcode`], `no_reply` becomes
//! [`DnsDecision::NoReply`], `wrong_address` is an [`DnsDecision::Answer`] with that address,
//! and `delay` keeps the answer and returns how long the handler waits before sending.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use espsim_faults::DnsFault;

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
    /// Answer with this response code and no records (NXDOMAIN, SERVFAIL, REFUSED).
    Rcode(ResponseCode),
    /// Send nothing: the whole message goes unanswered and the app's resolver times out.
    NoReply,
}

impl DnsDecision {
    /// The response code this decision asks for; the message gets the first non-NOERROR one.
    pub(crate) fn rcode(&self) -> ResponseCode {
        match self {
            DnsDecision::Answer(_) | DnsDecision::NoReply => ResponseCode::NoError,
            DnsDecision::Rcode(rcode) => *rcode,
        }
    }
}

/// Applies a DNS fault to the normal decision: the decision to act on, and how long to wait
/// before sending the reply (zero unless the fault is `delay`).
pub(crate) fn with_fault(normal: DnsDecision, fault: &DnsFault) -> (DnsDecision, Duration) {
    let decision = match fault {
        DnsFault::Nxdomain => DnsDecision::Rcode(ResponseCode::NXDomain),
        DnsFault::Servfail => DnsDecision::Rcode(ResponseCode::ServFail),
        DnsFault::Refused => DnsDecision::Rcode(ResponseCode::Refused),
        DnsFault::NoReply => DnsDecision::NoReply,
        // Only a question of the address's type gets it (A: IPv4, AAAA: IPv6); others NODATA.
        DnsFault::WrongAddress(w) => DnsDecision::Answer(vec![w.ip]),
        DnsFault::Delay(d) => return (normal, d.delay),
    };
    (decision, Duration::ZERO)
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
    fn faults_replace_the_answer_or_delay_it() {
        let normal = DnsDecision::Answer(vec![IpAddr::V4(DEVICE)]);
        let fault = |json: &str| match serde_json::from_str(json).expect("fault parses") {
            espsim_faults::Fault::Dns(d) => d,
            other => panic!("not a dns fault: {other:?}"),
        };
        let cases = [
            (
                r#"{"dns":"nxdomain"}"#,
                DnsDecision::Rcode(ResponseCode::NXDomain),
            ),
            (
                r#"{"dns":"servfail"}"#,
                DnsDecision::Rcode(ResponseCode::ServFail),
            ),
            (
                r#"{"dns":"refused"}"#,
                DnsDecision::Rcode(ResponseCode::Refused),
            ),
            (r#"{"dns":"no_reply"}"#, DnsDecision::NoReply),
            (
                r#"{"dns":"wrong_address","ip":"10.9.8.7"}"#,
                DnsDecision::Answer(vec!["10.9.8.7".parse().expect("ip")]),
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(
                with_fault(normal.clone(), &fault(json)),
                (expected, Duration::ZERO),
                "{json}"
            );
        }
        assert_eq!(
            with_fault(normal.clone(), &fault(r#"{"dns":"delay","delay":"250ms"}"#)),
            (normal, Duration::from_millis(250))
        );
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
