//! The captive-portal answerer: turns one well-formed query into one response.
//!
//! Per question it asks [`decision::decide`] what to answer and the fault plan
//! (`FaultPlan::on_dns`) whether a DNS fault replaces or delays that answer, builds the records
//! (question name echoed as asked, class echoed, TTL 300), sends the response through the
//! transport's [`Reply`] and records one `DnsQuery` event per question, plus one
//! `FaultApplied` per question a fault hit. While the device is down (`Outage` other than
//! `None`: rebooting, AP down) nothing is answered at all.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use espsim_faults::{DnsFault, DnsInfo};
use hickory_proto::op::{Edns, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;

use super::Handles;
use super::decision::{self, ANSWER_TTL, DnsDecision};
use super::transport::Reply;
use crate::device_host::Outage;
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
    handles: Arc<Handles>,
}

impl CaptiveDns {
    /// A handler answering with `handles.device_ip`, recording into `handles.events`.
    pub(crate) fn new(handles: Arc<Handles>) -> Self {
        CaptiveDns { handles }
    }

    /// Answers `request` through `reply` (or not at all: outage, `no_reply`) and records it.
    pub(crate) async fn answer(&self, request: &Request, reply: Reply) {
        let mode = self.handles.internet.get();
        let questions: Vec<Question<'_>> = request
            .queries
            .queries()
            .iter()
            .map(|q| Question::new(q.original()))
            .collect();
        if *self.handles.device.outage().borrow() != Outage::None {
            // The chip is rebooting or its AP is gone: the query never reaches a server.
            return self.unanswered(request, questions);
        }
        let elapsed = self.handles.events.elapsed();
        let mut delay = Duration::ZERO;
        let decisions: Vec<DnsDecision> = questions
            .iter()
            .map(|q| {
                let normal = decision::decide(q.query, mode, self.handles.device_ip);
                let (decision, wait) = self.apply_fault(q, normal, elapsed);
                delay = delay.max(wait);
                decision
            })
            .collect();
        if decisions.contains(&DnsDecision::NoReply) {
            return self.unanswered(request, questions);
        }
        if !delay.is_zero() {
            tokio::select! {
                () = self.handles.lifecycle.cancel.cancelled() => return self.unanswered(request, questions),
                () = tokio::time::sleep(delay) => {}
            }
            if *self.handles.device.outage().borrow() != Outage::None {
                // The device went down while the reply was held back.
                return self.unanswered(request, questions);
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
                .map(|(q, d)| records(q.query, d))
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
        let queries: Vec<&Query> = questions.iter().map(|q| q.query).collect();
        let sent = reply
            .send(&metadata, &queries, answers.iter().flatten(), edns.as_ref())
            .await;

        let rcode_sent = match sent {
            Ok(rcode) => Some(format!("{rcode:?}")),
            Err(e) => {
                tracing::warn!(client = %request.src(), error = %e, "dns reply not sent");
                None
            }
        };
        self.record(request, questions, rcode_sent, answers);
    }

    /// Records one `DnsQuery` event per question (`rcode: None` = nothing was sent).
    fn record(
        &self,
        request: &Request,
        questions: Vec<Question<'_>>,
        rcode: Option<String>,
        answers: Vec<Vec<Record>>,
    ) {
        let transport = transport_name(request.protocol());
        for (q, records) in questions.into_iter().zip(answers) {
            self.handles.events.emit(EventKind::DnsQuery {
                transport: transport.clone(),
                client: request.src(),
                name: q.name,
                qtype: q.qtype,
                rcode: rcode.clone(),
                answers: records.iter().map(|r| r.data.to_string()).collect(),
            });
        }
    }

    /// Asks the fault plan about one question; when a rule fires, records it and returns the
    /// faulted decision and its delay, else `normal` unchanged.
    fn apply_fault(
        &self,
        question: &Question<'_>,
        normal: DnsDecision,
        elapsed: Duration,
    ) -> (DnsDecision, Duration) {
        let (name, qtype) = (&question.name, &question.qtype);
        let Some(applied) = self.handles.faults.on_dns(DnsInfo {
            name,
            qtype,
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
        self.handles.events.emit(EventKind::FaultApplied {
            conn: None,
            rule: applied.rule.0,
            fault: serde_json::to_value(&applied.fault).unwrap_or_default(),
            detail: format!("dns {name} {qtype}: {what}"),
        });
        (decision, delay)
    }

    /// Sends nothing and records each question as unanswered (`rcode: None`).
    fn unanswered(&self, request: &Request, questions: Vec<Question<'_>>) {
        let none = vec![Vec::new(); questions.len()];
        self.record(request, questions, None, none);
    }
}

/// One question with the names events and fault rules know it by, computed once.
struct Question<'q> {
    query: &'q Query,
    /// As asked, without the root's dot (`Example.COM`).
    name: String,
    /// `A`, `AAAA`, …
    qtype: String,
}

impl<'q> Question<'q> {
    fn new(query: &'q Query) -> Self {
        Question {
            query,
            name: display_name(query),
            qtype: query.query_type().to_string(),
        }
    }
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
