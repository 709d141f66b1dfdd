//! The captive-portal answerer: turns one well-formed query into one response.
//!
//! Per question it asks [`decision::decide`] what to answer and the fault plan
//! (`FaultPlan::on_dns`) whether a DNS fault replaces or delays that answer, builds the records
//! (question name echoed as asked, class echoed, TTL 300), sends the response through the
//! transport's [`Reply`] and records one `DnsQuery` event per question, plus one
//! `FaultApplied` per question a fault hit. While the device is down (`Outage` other than
//! `None`: rebooting, AP down) nothing is answered at all.
//!
//! [`CaptiveDns::plan`] does everything but the sending, so the UDP receive loop can encode a
//! whole batch of answers, send them in one system call and only then record each query with
//! what became of its reply ([`Recording::sent`]); [`CaptiveDns::answer`] is plan, wait (a
//! `delay` fault), send and record in one, for TCP and for answers held back.

use std::net::{IpAddr, SocketAddr};
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
use crate::events::{EventKind, EventLog};

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

/// What one query gets, decided before anything is sent.
#[derive(Debug)]
pub(crate) enum Plan<'r> {
    /// Nothing is sent (outage, `no_reply`): record with [`Recording::unanswered`].
    Silent(Recording),
    /// A response to send, possibly after a `delay` fault.
    Respond(Response<'r>),
}

/// A response ready to encode, and the record of its query.
#[derive(Debug)]
pub(crate) struct Response<'r> {
    /// Header fields: ID, opcode, RD/CD echoed, the response code.
    pub(crate) metadata: Metadata,
    /// The questions, echoed as asked.
    pub(crate) queries: Vec<&'r Query>,
    /// Our OPT record, when the query had one.
    pub(crate) edns: Option<Edns>,
    /// How long a `delay` fault holds the reply back (zero without one).
    pub(crate) delay: Duration,
    /// The events to record once the reply is sent (or not); it holds the answers.
    pub(crate) recording: Recording,
}

impl Response<'_> {
    /// The answer records of every question, in question order.
    pub(crate) fn answers(&self) -> impl Iterator<Item = &Record> {
        self.recording.answers.iter().flatten()
    }
}

/// The `DnsQuery` events of one query, waiting to learn whether its reply went out.
#[derive(Debug)]
pub(crate) struct Recording {
    /// Who asked.
    client: SocketAddr,
    /// Over which transport.
    protocol: Protocol,
    /// Each question's name and type as events show them.
    questions: Vec<Question>,
    /// One answer list per question, so each event lists its own question's answers.
    answers: Vec<Vec<Record>>,
}

impl Recording {
    /// Records one `DnsQuery` per question with the response code sent (`None`: nothing was).
    pub(crate) fn sent(self, events: &EventLog, rcode: Option<ResponseCode>) {
        let transport = transport_name(self.protocol);
        let rcode = rcode.map(|rc| format!("{rc:?}"));
        for (q, records) in self.questions.into_iter().zip(self.answers) {
            events.emit(EventKind::DnsQuery {
                transport: transport.clone(),
                client: self.client,
                name: q.name,
                qtype: q.qtype,
                rcode: rcode.clone(),
                answers: records.iter().map(|r| r.data.to_string()).collect(),
            });
        }
    }

    /// Records each question as unanswered: no response code, no answers.
    pub(crate) fn unanswered(mut self, events: &EventLog) {
        self.answers.iter_mut().for_each(Vec::clear);
        self.sent(events, None);
    }
}

impl CaptiveDns {
    /// A handler answering with `handles.device_ip`, recording into `handles.events`.
    pub(crate) fn new(handles: Arc<Handles>) -> Self {
        CaptiveDns { handles }
    }

    /// Answers `request` through `reply` (or not at all: outage, `no_reply`) and records it.
    pub(crate) async fn answer(&self, request: &Request, reply: Reply) {
        match self.plan(request) {
            Plan::Silent(recording) => recording.unanswered(&self.handles.events),
            Plan::Respond(response) => self.deliver(response, reply).await,
        }
    }

    /// Sends a planned `response` through `reply`, after its delay if a fault holds it back
    /// (unless the device goes down or the emulator stops meanwhile), and records the query.
    pub(crate) async fn deliver(&self, response: Response<'_>, reply: Reply) {
        let events = &self.handles.events;
        if !response.delay.is_zero() {
            tokio::select! {
                () = self.handles.lifecycle.cancel.cancelled() => {
                    return response.recording.unanswered(events);
                }
                () = tokio::time::sleep(response.delay) => {}
            }
            if self.is_down() {
                // The device went down while the reply was held back.
                return response.recording.unanswered(events);
            }
        }
        let sent = reply.send(&response).await;
        let rcode = match sent {
            Ok(rcode) => Some(rcode),
            Err(e) => {
                let client = response.recording.client;
                tracing::warn!(%client, error = %e, "dns reply not sent");
                None
            }
        };
        response.recording.sent(events, rcode);
    }

    /// Decides what `request` gets: nothing (outage, `no_reply`) or a response, with the fault
    /// plan asked (and `FaultApplied` recorded) once per question. Sends and records nothing
    /// else; the caller sends the response, then records through its [`Recording`].
    pub(crate) fn plan<'r>(&self, request: &'r Request) -> Plan<'r> {
        let mode = self.handles.internet.get();
        let queries: Vec<&Query> = request
            .queries
            .queries()
            .iter()
            .map(|q| q.original())
            .collect();
        let questions: Vec<Question> = queries.iter().map(|q| Question::new(q)).collect();
        let mut recording = Recording {
            client: request.src(),
            protocol: request.protocol(),
            answers: vec![Vec::new(); questions.len()],
            questions,
        };
        if self.is_down() {
            // The chip is rebooting or its AP is gone: the query never reaches a server.
            return Plan::Silent(recording);
        }
        let elapsed = self.handles.events.elapsed();
        let mut delay = Duration::ZERO;
        let decisions: Vec<DnsDecision> = queries
            .iter()
            .zip(&recording.questions)
            .map(|(query, q)| {
                let normal = decision::decide(query, mode, self.handles.device_ip);
                let (decision, wait) = self.apply_fault(q, normal, elapsed);
                delay = delay.max(wait);
                decision
            })
            .collect();
        if decisions.contains(&DnsDecision::NoReply) {
            return Plan::Silent(recording);
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
        if rcode == ResponseCode::NoError {
            recording.answers = queries
                .iter()
                .zip(&decisions)
                .map(|(q, d)| records(q, d))
                .collect();
        }

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
        Plan::Respond(Response {
            metadata,
            queries,
            edns,
            delay,
            recording,
        })
    }

    /// True while the chip is rebooting or its AP is down: no query is answered.
    fn is_down(&self) -> bool {
        *self.handles.device.outage().borrow() != Outage::None
    }

    /// Asks the fault plan about one question; when a rule fires, records it and returns the
    /// faulted decision and its delay, else `normal` unchanged.
    fn apply_fault(
        &self,
        question: &Question,
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
}

/// One question by the names events and fault rules know it by, computed once.
#[derive(Debug)]
struct Question {
    /// As asked, without the root's dot (`Example.COM`).
    name: String,
    /// `A`, `AAAA`, …
    qtype: String,
}

impl Question {
    fn new(query: &Query) -> Self {
        Question {
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
