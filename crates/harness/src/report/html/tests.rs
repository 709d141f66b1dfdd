use espsim_emulator::events::Event;

use super::text::clip;
use super::*;

#[test]
fn file_names_are_safe_and_name_the_client_when_asked() {
    let r = RunResult {
        scenario: "lru purge/../x".to_owned(),
        scenario_file: "x.yaml".into(),
        description: String::new(),
        seed: 1,
        client: "builtin:naive".to_owned(),
        started_at: String::new(),
        elapsed_ms: 0,
        virtual_time: false,
        start_on: crate::scenario::StartOn::FirstActivity,
        clock: None,
        startup_failure: None,
        expectations: Vec::new(),
        command: None,
        client_summary: None,
        faults_fired: Vec::new(),
        events: Vec::new(),
    };
    assert_eq!(file_name(&r, false), "lru-purge-..-x.html");
    assert_eq!(file_name(&r, true), "lru-purge-..-x--builtin-naive.html");
}

/// Text as the template escapes it.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

fn count(html: &str, needle: &str) -> usize {
    html.matches(needle).count()
}

/// The fixture where four handshakes are cut: the good client backs off (passes),
/// the naive one hammers the device (fails `backoff`). Each report must show every
/// connection and every fault of its own run's event log, and the verdicts with evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_of_real_runs_show_every_connection_fault_and_verdict() {
    use crate::runner::{self, ClientSpec};
    use espsim_client::ClientProfile;

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/handshake-cut-four-times.yaml");
    let scenario = Scenario::load(&path).expect("library scenario loads");
    let good = ClientSpec::Builtin(ClientProfile::Good);
    let naive = ClientSpec::Builtin(ClientProfile::Naive);
    let (good_run, naive_run) = tokio::join!(
        runner::run(&scenario, &good, None),
        runner::run(&scenario, &naive, None)
    );
    for (run, must_pass) in [(good_run, true), (naive_run, false)] {
        let run = run.expect("the scenario runs");
        assert_eq!(run.passed(), must_pass, "{}", super::super::text(&run));
        let rerun = format!(
            "espsim test crates/harness/tests/fixtures/handshake-cut-four-times.yaml --client {} --seed {}",
            run.client, run.seed
        );
        let page = html(&run, &scenario, &rerun).expect("renders");
        let kinds = |name: &str| run.events.iter().filter(|e| e.kind.name() == name).count();
        let conns = kinds("tcp_accepted");
        let faults = kinds("fault_applied");
        assert!(
            conns >= 5 && faults >= 4,
            "{conns} connections, {faults} faults"
        );
        assert_eq!(count(&page, r#"class="row conn-row""#), conns);
        assert_eq!(count(&page, r#"class="fault-marker""#), faults);
        assert!(
            page.contains(&escaped(&rerun)),
            "the re-run command is shown"
        );
        assert!(page.contains("esp-idf-v5.4"), "the profile is shown");
        for loads in ["src=", "href=", "url(", "@import"] {
            assert!(
                !page.contains(loads),
                "nothing is loaded from elsewhere: {loads}"
            );
        }
        assert!(page.len() < 300_000, "{} bytes", page.len());
        let backoff = run
            .expectations
            .iter()
            .find(|o| o.name == "backoff")
            .expect("backoff judged");
        let section = format!(
            r#"<section class="exp {}" data-expectation="backoff""#,
            if must_pass { "pass" } else { "fail" }
        );
        assert!(page.contains(&section), "backoff shown as {section}");
        assert!(
            page.contains(&escaped(&backoff.message)),
            "its message is shown"
        );
        for e in &backoff.evidence {
            assert!(
                page.contains(&escaped(&e.note)),
                "evidence {:?} shown",
                e.note
            );
            assert!(!e.events.is_empty(), "evidence {e:?} names its events");
        }
        // The retry gaps the judgement measured are drawn, one bracket each.
        let gaps = backoff
            .evidence
            .iter()
            .filter(|e| e.since_ms.is_some())
            .count();
        assert!(gaps >= 3, "{gaps} gaps");
        let class = if must_pass {
            r#"class="gap""#
        } else {
            r#"class="gap gap-fail""#
        };
        assert!(count(&page, class) >= gaps, "{gaps} gap brackets");
    }
}

/// An event log written by hand: each `push` gets the next `seq`.
#[derive(Default)]
struct Log(Vec<Event>);

impl Log {
    fn push(&mut self, at_ms: u64, kind: EventKind) -> u64 {
        let seq = self.0.len() as u64;
        self.0.push(Event { seq, at_ms, kind });
        seq
    }
}

fn peer() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([192, 168, 4, 2], 40_000))
}

/// A report of `events`, with one expectation citing `cited` as its evidence.
fn report_of(events: Vec<Event>, cited: &[u64]) -> String {
    let scenario = Scenario::parse(
        "name: synthetic\nduration: 30s\nexpect:\n  - connected: { within: 9s }\n",
        std::path::Path::new("synthetic.yaml"),
    )
    .expect("scenario parses");
    let outcome = Outcome {
        name: "judged".to_owned(),
        parameters: String::new(),
        passed: false,
        message: "synthetic".to_owned(),
        evidence: cited
            .iter()
            .map(|s| crate::expect::Evidence {
                at_ms: None,
                conn: None,
                note: format!("event {s}"),
                since_ms: None,
                events: vec![*s],
            })
            .collect(),
    };
    let run = RunResult {
        scenario: "synthetic".to_owned(),
        scenario_file: "synthetic.yaml".into(),
        description: String::new(),
        seed: 1,
        client: "builtin:naive".to_owned(),
        started_at: String::new(),
        elapsed_ms: 30_000,
        virtual_time: false,
        start_on: crate::scenario::StartOn::FirstActivity,
        clock: None,
        startup_failure: None,
        expectations: vec![outcome],
        command: None,
        client_summary: None,
        faults_fired: Vec::new(),
        events,
    };
    html(&run, &scenario, "espsim test synthetic.yaml").expect("renders")
}

/// The opening tags of the timeline's elements whose `data-seq` lists `seq`: what lights up
/// when evidence citing `seq` is clicked.
fn highlighted_by(page: &str, seq: u64) -> Vec<&str> {
    let wanted = seq.to_string();
    page.split('<')
        .filter(|tag| {
            tag.split_once("data-seq=\"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .is_some_and(|(list, _)| list.split(' ').any(|s| s == wanted))
        })
        .collect()
}

/// The x and width of the first `<rect>` of `class`.
fn first_rect(page: &str, class: &str) -> Option<(f64, f64)> {
    let tag = page.split(&format!(r#"<rect class="{class}""#)).nth(1)?;
    let attr = |name: &str| -> Option<f64> {
        let (_, rest) = tag.split_once(&format!(r#" {name}=""#))?;
        rest.split_once('"')?.0.parse().ok()
    };
    Some((attr("x")?, attr("width")?))
}

/// The size bound of `tests/tests/report_html.rs`.
const MAX_REPORT_BYTES: usize = 300_000;

#[test]
fn a_storm_of_30000_refusals_is_aggregated_and_its_cited_events_still_light_up() {
    let mut log = Log::default();
    log.push(
        0,
        EventKind::ClockStarted {
            reason: "first_connection".to_owned(),
        },
    );
    let mut refused = Vec::new();
    for i in 0..30_000u64 {
        refused.push(log.push(
            1_000 + i,
            EventKind::TcpRefused {
                peer: peer(),
                service: "http".to_owned(),
            },
        ));
    }
    let cited = refused[12_345];
    let page = report_of(log.0, &[cited]);
    assert!(page.len() < MAX_REPORT_BYTES, "{} bytes", page.len());
    assert_eq!(count(&page, r#"class="refused""#), 0, "no tick one by one");
    let bins = count(&page, r#"<rect class="bin""#);
    let most = ((WIDTH - LABEL_WIDTH) / BUCKET_PX) as usize + 1;
    assert!((100..=most).contains(&bins), "{bins} bars");
    assert!(page.contains("refused (30000)"), "the lane counts them all");
    assert!(
        page.contains("30000 refused attempts"),
        "and so does the header"
    );
    let lit = highlighted_by(&page, cited);
    assert_eq!(lit.len(), 1, "{lit:?}");
    assert!(lit[0].starts_with(r#"rect class="bin""#), "{lit:?}");
    assert!(
        highlighted_by(&page, refused[0]).is_empty(),
        "uncited events are not listed in the bars"
    );
    // The bars' counts add up to the storm.
    let total: usize = page
        .split("<title>")
        .filter_map(|t| t.split_once(" refused ").map(|(n, _)| n))
        .filter_map(|n| n.parse::<usize>().ok())
        .sum();
    assert_eq!(total, 30_000);
}

#[test]
fn a_few_refusals_are_ticks_each_pointing_at_its_event() {
    let mut log = Log::default();
    let seqs: Vec<u64> = (0..12)
        .map(|i| {
            log.push(
                500 * i,
                EventKind::TcpRefused {
                    peer: peer(),
                    service: "http".to_owned(),
                },
            )
        })
        .collect();
    let page = report_of(log.0, &[seqs[3]]);
    assert_eq!(count(&page, r#"<line class="refused""#), 12);
    assert_eq!(count(&page, r#"class="bin""#), 0);
    let lit = highlighted_by(&page, seqs[3]);
    assert_eq!(lit.len(), 1);
    assert!(lit[0].starts_with(r#"line class="refused""#), "{lit:?}");
}

#[test]
fn the_clock_marker_is_drawn_and_the_axis_counts_from_it() {
    let mut log = Log::default();
    log.push(0, EventKind::Stopping);
    let clock = log.push(
        12_000,
        EventKind::ClockStarted {
            reason: "signal: file".to_owned(),
        },
    );
    let page = report_of(log.0, &[clock]);
    assert_eq!(count(&page, r#"<line class="clock-line""#), 1);
    assert!(page.contains("0: signal: file"), "labelled with its reason");
    let lit = highlighted_by(&page, clock);
    assert_eq!(
        lit.len(),
        3,
        "lane tick, label and the line across: {lit:?}"
    );
    let scale = TimeScale::new(30_000, LABEL_WIDTH, WIDTH - LABEL_WIDTH - 12.0);
    let zero = format!(r#"x="{}" y="13" text-anchor="middle">0s<"#, scale.x(12_000));
    assert!(page.contains(&zero), "the axis' 0 is at the clock");
    for label in [">−10s<", ">−5s<", ">5s<", ">15s<"] {
        assert!(page.contains(label), "{label}: counted from the clock");
    }
    assert!(!page.contains(">20s<"), "no raw time on the axis");
    assert!(
        page.contains(&format!("at {} after the emulator started", secs(12_000))),
        "raw time kept"
    );
}

#[test]
fn an_abandoned_connection_ends_visibly_and_its_event_lights_up() {
    let mut log = Log::default();
    log.push(
        100,
        EventKind::TcpAccepted {
            conn: 7,
            peer: peer(),
            service: "http".to_owned(),
        },
    );
    log.push(100, EventKind::TcpWaiting { conn: 7, open: 4 });
    let gave_up = log.push(
        1_600,
        EventKind::TcpAbandoned {
            conn: 7,
            waited_ms: 1_500,
        },
    );
    let page = report_of(log.0, &[gave_up]);
    assert_eq!(count(&page, r#"class="row conn-row""#), 1);
    assert!(
        page.contains(">abandoned after 1500 ms waiting<"),
        "labelled"
    );
    let lit = highlighted_by(&page, gave_up);
    let classes: Vec<&str> = lit
        .iter()
        .filter_map(|t| {
            t.split_once("class=\"")
                .and_then(|(_, r)| r.split_once('"'))
        })
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        classes,
        ["tcp", "abandoned", "close-label abandoned-label"],
        "the connection bar ends there, with a mark and its label"
    );
    let scale = TimeScale::new(30_000, LABEL_WIDTH, WIDTH - LABEL_WIDTH - 12.0);
    assert_eq!(
        first_rect(&page, "waiting"),
        Some((scale.x(100), scale.width(100, 1_600))),
        "the wait ends when the app gave up"
    );
}

#[test]
fn unobserved_refusals_get_a_notice_in_the_timeline_and_above_it() {
    let mut log = Log::default();
    let n = log.push(
        0,
        EventKind::RefusedUnobserved {
            service: "http".to_owned(),
            reason: "no CAP_NET_RAW: run as root".to_owned(),
        },
    );
    let page = report_of(log.0, &[n]);
    assert_eq!(count(&page, r#"class="row notice-row""#), 1);
    assert_eq!(count(&page, r#"<p class="notice-text">"#), 1);
    assert!(page.contains("no CAP_NET_RAW: run as root"));
    assert_eq!(highlighted_by(&page, n).len(), 2, "banner and its text");
    assert_eq!(
        count(&page, r#"class="row refused-row""#),
        0,
        "nothing refused was seen"
    );
}

#[test]
fn phone_and_app_output_lanes_appear_only_when_there_is_something_to_show() {
    let empty = report_of(
        vec![Event {
            seq: 0,
            at_ms: 0,
            kind: EventKind::Stopping,
        }],
        &[],
    );
    for lane in [
        "phone-row",
        "output-row",
        "refused-row",
        "clock-row",
        "notice-row",
    ] {
        let row = format!(r#"class="row {lane}""#);
        assert_eq!(count(&empty, &row), 0, "{lane} without its events");
    }
    use espsim_emulator::events::{CheckVerdict, PhoneNetwork};
    let mut log = Log::default();
    let verdict = log.push(
        10,
        EventKind::PhoneVerdict {
            os: "android".to_owned(),
            url: "http://connectivitycheck.gstatic.com/generate_204".to_owned(),
            status: Some(204),
            error: None,
            verdict: CheckVerdict::Online,
        },
    );
    log.push(
        11,
        EventKind::PhoneRouting {
            default_network: PhoneNetwork::Wifi,
            app_network: PhoneNetwork::Cellular,
            device_subnet: PhoneNetwork::Wifi,
            app_dns: "10.0.0.53".to_owned(),
        },
    );
    let syn = log.push(
        20,
        EventKind::CellularConnection {
            proto: "tcp".to_owned(),
            from: peer(),
            to: std::net::SocketAddr::from(([127, 0, 0, 9], 443)),
        },
    );
    log.push(
        21,
        EventKind::CellularDns {
            name: "api.example".to_owned(),
            qtype: "A".to_owned(),
            answer: Some("127.0.0.9".to_owned()),
        },
    );
    let mut lines = Vec::new();
    for i in 0..5 {
        lines.push(log.push(
            100 + i,
            EventKind::AppOutput {
                stream: "stdout".to_owned(),
                line: format!("<b>line {i}</b>"),
                truncated: false,
            },
        ));
    }
    let page = report_of(log.0, &[verdict, syn, lines[4]]);
    assert_eq!(count(&page, r#"class="row phone-row""#), 1);
    assert_eq!(count(&page, r#"<circle class="phone-verdict""#), 1);
    assert_eq!(count(&page, r#"<line class="phone-routing""#), 1);
    assert_eq!(count(&page, r#"<line class="cellular""#), 2);
    assert!(page.contains("phone (2 cellular)"));
    assert_eq!(count(&page, r#"<line class="output""#), 5);
    assert!(
        page.contains(&escaped("stdout: <b>line 4</b>")),
        "the line, escaped"
    );
    assert!(!page.contains("<b>line"), "never as markup");
    for s in [verdict, syn, lines[4]] {
        assert_eq!(highlighted_by(&page, s).len(), 1, "event {s}");
    }
}

#[test]
fn app_output_floods_are_bounded_like_refusals() {
    let mut log = Log::default();
    let mut last = 0;
    for i in 0..20_000u64 {
        last = log.push(
            i,
            EventKind::AppOutput {
                stream: "stderr".to_owned(),
                line: "x".repeat(4_000),
                truncated: true,
            },
        );
    }
    let page = report_of(log.0, &[last]);
    assert!(page.len() < MAX_REPORT_BYTES, "{} bytes", page.len());
    assert_eq!(count(&page, r#"<line class="output"#), 0);
    assert!(count(&page, r#"<rect class="bin"#) > 100);
    assert!(page.contains("app output (20000 lines)"));
    assert_eq!(highlighted_by(&page, last).len(), 1);
}

#[test]
fn axis_labels_are_short() {
    assert_eq!(secs_short(2000), "2s");
    assert_eq!(secs_short(2500), "2.5s");
    assert_eq!(secs_short(-1500), "−1.5s");
    assert_eq!(clip("abcdef", 3), "abc…");
    assert_eq!(clip("abc", 3), "abc");
    assert_eq!(seq_list([3, 4]), "3 4");
}
