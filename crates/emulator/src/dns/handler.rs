//! The hickory [`RequestHandler`]: turns one well-formed query into one response.
//!
//! Per question it asks [`decision::decide`] what to answer and the fault plan
//! (`FaultPlan::on_dns`) whether a DNS fault replaces or delays that answer, builds the records
//! (question name echoed as asked, class echoed, TTL 300), sends the response through the
//! transport's [`ResponseHandler`] and records one `DnsQuery` event per question, plus one
//! `FaultApplied` per question a fault hit. While the device is down (`Outage` other than
//! `None`: rebooting, AP down) nothing is answered at all.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use espsim_faults::{DnsFault, DnsInfo};
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::decision::{self, ANSWER_TTL, DnsDecision};
use crate::context::{Outage, Shared};
use crate::events::EventKind;

/// The UDP payload size we advertise in our OPT record: the DNS Flag Day 2020 value, which
/// avoids IP fragmentation on every common path.
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

/// The only EDNS version there is; a query with a higher one gets BADVERS (RFC 6891 §6.1.3).
const EDNS_VERSION: u8 = 0;

/// The captive-portal answerer. Reads the internet mode on every query, so a run-time switch
/// applies to the next query.
#[derive(Debug, Clone)]
pub(crate) struct CaptiveDns {
    shared: Arc<Shared>,
}

impl CaptiveDns {
    /// A handler answering with `shared.device_ip`, recording into `shared.events`.
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        CaptiveDns { shared }
    }
}

#[async_trait]
impl RequestHandler for CaptiveDns {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mode = self.shared.internet.get();
        let questions: Vec<&Query> = request
            .queries
            .queries()
            .iter()
            .map(|q| q.original())
            .collect();
        if *self.shared.outage.borrow() != Outage::None {
            // The chip is rebooting or its AP is gone: the query never reaches a server.
            return self.unanswered(request, &questions);
        }
        let elapsed = self.shared.events.elapsed();
        let mut delay = Duration::ZERO;
        let decisions: Vec<DnsDecision> = questions
            .iter()
            .map(|q| {
                let normal = decision::decide(q, mode, self.shared.device_ip);
                let (decision, wait) = self.apply_fault(q, normal, elapsed);
                delay = delay.max(wait);
                decision
            })
            .collect();
        if decisions.contains(&DnsDecision::NoReply) {
            return self.unanswered(request, &questions);
        }
        if !delay.is_zero() {
            tokio::select! {
                () = self.shared.cancel.cancelled() => return self.unanswered(request, &questions),
                () = tokio::time::sleep(delay) => {}
            }
            if *self.shared.outage.borrow() != Outage::None {
                // The device went down while the reply was held back.
                return self.unanswered(request, &questions);
            }
        }

        let client_edns_version = request.edns.as_ref().map(Edns::version);
        let rcode = if request.metadata.op_code != OpCode::Query {
            ResponseCode::NotImp
        } else if client_edns_version.is_some_and(|v| v > EDNS_VERSION) {
            ResponseCode::BADVERS
        } else {
            decisions
                .iter()
                .map(DnsDecision::rcode)
                .find(|rc| *rc != ResponseCode::NoError)
                .unwrap_or(ResponseCode::NoError)
        };

        // One answer list per question, so each event lists its own question's answers.
        let answers: Vec<Vec<Record>> = if rcode == ResponseCode::NoError {
            questions
                .iter()
                .zip(&decisions)
                .map(|(q, d)| records(q, d))
                .collect()
        } else {
            vec![Vec::new(); questions.len()]
        };

        // Like ESP-IDF: QR set, ID/opcode/RD (and CD) echoed, AA=0, RA=0.
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = rcode;
        let edns = client_edns_version.map(|_| {
            let mut edns = Edns::new();
            edns.set_version(EDNS_VERSION)
                .set_max_payload(EDNS_PAYLOAD)
                .set_dnssec_ok(false);
            edns
        });
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            answers.iter().flatten(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        let sent = response_handle.send_response(response).await;

        let transport = transport_name(request.protocol());
        let rcode_sent = match &sent {
            Ok(info) => Some(format!("{:?}", info.response_code)),
            Err(e) => {
                tracing::warn!(client = %request.src(), error = %e, "dns reply not sent");
                None
            }
        };
        for (q, records) in questions.iter().zip(&answers) {
            self.shared.emit(EventKind::DnsQuery {
                transport: transport.clone(),
                client: request.src(),
                name: display_name(q),
                qtype: q.query_type().to_string(),
                rcode: rcode_sent.clone(),
                answers: records.iter().map(|r| r.data.to_string()).collect(),
            });
        }

        sent.unwrap_or_else(|_| not_sent(request))
    }
}

impl CaptiveDns {
    /// Asks the fault plan about one question; when a rule fires, records it and returns the
    /// faulted decision and its delay, else `normal` unchanged.
    fn apply_fault(
        &self,
        query: &Query,
        normal: DnsDecision,
        elapsed: Duration,
    ) -> (DnsDecision, Duration) {
        let name = display_name(query);
        let qtype = query.query_type().to_string();
        let Some(applied) = self.shared.faults.on_dns(DnsInfo {
            name: &name,
            qtype: &qtype,
            elapsed,
        }) else {
            return (normal, Duration::ZERO);
        };
        let (decision, delay) = decision::with_fault(normal, &applied.fault);
        let what = match &applied.fault {
            DnsFault::Nxdomain | DnsFault::Servfail | DnsFault::Refused => {
                format!("answered {:?}", decision.rcode())
            }
            DnsFault::NoReply => "no reply sent".to_owned(),
            DnsFault::WrongAddress(w) => format!("answered {} instead of the device ip", w.ip),
            DnsFault::Delay(d) => {
                format!("reply held back {}", humantime::format_duration(d.delay))
            }
        };
        self.shared.emit(EventKind::FaultApplied {
            conn: None,
            rule: applied.rule.0,
            fault: serde_json::to_value(&applied.fault).unwrap_or_default(),
            detail: format!("dns {name} {qtype}: {what}"),
        });
        (decision, delay)
    }

    /// Sends nothing and records each question as unanswered (`rcode: None`).
    fn unanswered(&self, request: &Request, questions: &[&Query]) -> ResponseInfo {
        let transport = transport_name(request.protocol());
        for q in questions {
            self.shared.emit(EventKind::DnsQuery {
                transport: transport.clone(),
                client: request.src(),
                name: display_name(q),
                qtype: q.query_type().to_string(),
                rcode: None,
                answers: Vec::new(),
            });
        }
        not_sent(request)
    }
}

/// What the handler reports for a reply it did not send (the transport ignores it).
fn not_sent(request: &Request) -> ResponseInfo {
    let mut failed = Metadata::response_from_request(&request.metadata);
    failed.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata: failed,
        counts: HeaderCounts::default(),
    })
}

/// The answer records for one question: owner name and class as asked, TTL 300.
fn records(query: &Query, decision: &DnsDecision) -> Vec<Record> {
    let DnsDecision::Answer(addrs) = decision else {
        return Vec::new();
    };
    addrs
        .iter()
        .filter_map(|addr| {
            let rdata = match (query.query_type(), addr) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(*v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(*v6)),
                // An address of the other family cannot answer this type.
                _ => return None,
            };
            let mut record = Record::from_rdata(query.name().clone(), ANSWER_TTL, rdata);
            record.dns_class = query.query_class();
            Some(record)
        })
        .collect()
}

/// `udp` / `tcp`, as events name transports.
pub(crate) fn transport_name(protocol: Protocol) -> String {
    protocol.to_string()
}

/// The question name as received, without the root's trailing dot (`Example.COM`).
fn display_name(query: &Query) -> String {
    let name = query.name();
    if name.is_root() {
        return ".".to_owned();
    }
    let ascii = name.to_ascii();
    ascii.strip_suffix('.').unwrap_or(&ascii).to_owned()
}
