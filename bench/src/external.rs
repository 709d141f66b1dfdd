//! espsim against the tools users would otherwise run: DNS (dnsperf → espsim vs dnsmasq) and
//! the HTTP connectivity check (wrk → espsim vs nginx `return 204`). Same load, same machine,
//! alternating order within each run.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::procs::{Dns, Espsim, Helper, free_port, output_of, tree_cpu_ns, wait_tcp};

/// The captive-portal answer both DNS servers give.
const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 1);
/// Offered rate of the dnsperf run that records per-query latencies.
pub(crate) const DNS_LATENCY_QPS: u32 = 5_000;

/// Names a phone asks for when it joins a softAP.
const QUERY_NAMES: &[&str] = &[
    "connectivitycheck.gstatic.com",
    "clients3.google.com",
    "captive.apple.com",
    "www.msftconnecttest.com",
    "detectportal.firefox.com",
    "esp32.local",
    "example.com",
    "api.example.org",
];

/// dnsperf's numbers for one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DnsRun {
    /// Queries per second at saturation.
    pub(crate) qps: f64,
    /// Queries lost at saturation.
    pub(crate) lost: u64,
    /// p99 latency in microseconds at [`DNS_LATENCY_QPS`].
    pub(crate) p99_us: u32,
    /// Server CPU time per answered query at saturation, µs (all threads).
    pub(crate) cpu_us: f64,
}

/// wrk's numbers for one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpRun {
    /// Requests per second.
    pub(crate) rps: f64,
    /// p99 latency in microseconds.
    pub(crate) p99_us: u32,
    /// Server CPU time per request, µs (all threads, nginx workers included).
    pub(crate) cpu_us: f64,
}

/// One DNS round: espsim and dnsmasq, each measured with the same dnsperf settings.
pub(crate) async fn dns_round(
    espsim: &Path,
    work: &Path,
    seconds: u64,
    espsim_first: bool,
) -> anyhow::Result<(DnsRun, DnsRun)> {
    let data = work.join("queries.txt");
    let lines: String = QUERY_NAMES.iter().map(|n| format!("{n} A\n")).collect();
    std::fs::write(&data, lines).context("writing the dnsperf query file")?;
    let mut espsim_run = None;
    let mut dnsmasq_run = None;
    for which in if espsim_first { [0, 1] } else { [1, 0] } {
        if which == 0 {
            let server =
                Espsim::start(espsim, Dns::Loopback, &["--device-ip", "192.168.4.1"]).await?;
            let addr = server.ready.dns.context("espsim started without DNS")?;
            check_dns(addr).await.context("espsim DNS")?;
            let pid = server.pid().context("espsim exited")?;
            espsim_run = Some(dnsperf(addr, pid, &data, seconds).await?);
            server.stop().await;
        } else {
            let port = free_port()?;
            let helper = Helper::spawn(
                "dnsmasq",
                &[
                    "--keep-in-foreground".into(),
                    "--conf-file=/dev/null".into(),
                    "--no-resolv".into(),
                    "--no-hosts".into(),
                    "--bind-interfaces".into(),
                    "--listen-address=127.0.0.1".into(),
                    format!("--port={port}"),
                    format!("--address=/#/{DEVICE_IP}"),
                    "--pid-file=".into(),
                ],
            )?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            check_dns(addr).await.context("dnsmasq")?;
            let pid = helper.pid().context("dnsmasq exited")?;
            dnsmasq_run = Some(dnsperf(addr, pid, &data, seconds).await?);
            helper.stop().await;
        }
    }
    Ok((
        espsim_run.context("espsim not measured")?,
        dnsmasq_run.context("dnsmasq not measured")?,
    ))
}

/// Waits (bounded) until `addr` answers an A query with the device IP.
async fn check_dns(addr: SocketAddr) -> anyhow::Result<()> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(addr).await?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii("connectivitycheck.gstatic.com.")?,
        RecordType::A,
    ));
    let bytes = query.to_vec()?;
    let mut buf = vec![0u8; 1500];
    for _ in 0..100 {
        // Before the server binds, a connected UDP socket gets ECONNREFUSED at once: pace retries.
        let sent = socket.send(&bytes).await;
        let received = match sent {
            Ok(_) => timeout(Duration::from_millis(100), socket.recv(&mut buf)).await,
            Err(e) => Ok(Err(e)),
        };
        let Ok(Ok(n)) = received else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let reply = Message::from_vec(buf.get(..n).unwrap_or_default())?;
        let ips: Vec<_> = reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        if ips == [DEVICE_IP] {
            return Ok(());
        }
        bail!("{addr} answered {ips:?}, expected [{DEVICE_IP}]");
    }
    bail!("{addr} did not answer a DNS query within 100 tries (about 2-12 s)")
}

/// Saturation run (queries/s) plus a fixed-rate verbose run (p99).
async fn dnsperf(addr: SocketAddr, pid: u32, data: &Path, seconds: u64) -> anyhow::Result<DnsRun> {
    let common = |extra: &[&str], secs: u64| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-s".into(),
            addr.ip().to_string(),
            "-p".into(),
            addr.port().to_string(),
            "-d".into(),
            data.display().to_string(),
            "-l".into(),
            secs.to_string(),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    let limit = Duration::from_secs(seconds * 3 + 20);
    let cpu_before = tree_cpu_ns(pid);
    let out = output_of("dnsperf", &common(&["-c", "4", "-q", "64"], seconds), limit).await?;
    let cpu_ns = tree_cpu_ns(pid).saturating_sub(cpu_before);
    let completed: f64 = field(&out, "Queries completed:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no `Queries completed` in dnsperf output")?;
    let qps = field(&out, "Queries per second:")
        .and_then(|v| v.parse().ok())
        .context("no `Queries per second` in dnsperf output")?;
    let lost = field(&out, "Queries lost:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no `Queries lost` in dnsperf output")?;
    let rate = DNS_LATENCY_QPS.to_string();
    let verbose = output_of(
        "dnsperf",
        &common(&["-c", "4", "-Q", &rate, "-v"], seconds.clamp(1, 3)),
        limit,
    )
    .await?;
    let mut latencies: Vec<u32> = verbose
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|s| (s * 1e6).round() as u32)
        .collect();
    latencies.sort_unstable();
    let p99_us = crate::stats::percentile(&latencies, 99.0)
        .context("dnsperf -v reported no query latencies")?;
    Ok(DnsRun {
        qps,
        lost,
        p99_us,
        cpu_us: cpu_ns as f64 / 1000.0 / completed.max(1.0),
    })
}

/// The text after `label` on the first line that contains it, trimmed.
fn field<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.split_once(label).map(|(_, v)| v.trim()))
}

/// One HTTP round: espsim (`--internet online`) and nginx (`return 204`), same wrk load.
pub(crate) async fn http_round(
    espsim: &Path,
    work: &Path,
    seconds: u64,
    connections: usize,
    nginx_workers: &str,
    espsim_first: bool,
) -> anyhow::Result<(HttpRun, HttpRun)> {
    let mut espsim_run = None;
    let mut nginx_run = None;
    for which in if espsim_first { [0, 1] } else { [1, 0] } {
        if which == 0 {
            let server = Espsim::start(
                espsim,
                Dns::Off,
                &["--internet", "online", "--profile", "unlimited"],
            )
            .await?;
            let addr = server.ready.http;
            check_204(addr).await.context("espsim")?;
            let pid = server.pid().context("espsim exited")?;
            espsim_run = Some(wrk(addr, pid, seconds, connections).await?);
            server.stop().await;
        } else {
            let port = free_port()?;
            let conf = nginx_conf(work, port, nginx_workers)?;
            let helper = Helper::spawn(
                "nginx",
                &[
                    "-e".into(),
                    "stderr".into(),
                    "-p".into(),
                    work.display().to_string(),
                    "-c".into(),
                    conf.display().to_string(),
                ],
            )?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            wait_tcp(addr).await.context("nginx")?;
            check_204(addr).await.context("nginx")?;
            let pid = helper.pid().context("nginx exited")?;
            nginx_run = Some(wrk(addr, pid, seconds, connections).await?);
            helper.stop().await;
        }
    }
    Ok((
        espsim_run.context("espsim not measured")?,
        nginx_run.context("nginx not measured")?,
    ))
}

/// A minimal nginx: `workers` worker processes (`auto`: one per CPU), no logs, `return 204`
/// for everything.
fn nginx_conf(work: &Path, port: u16, workers: &str) -> anyhow::Result<PathBuf> {
    let dir = work.display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {dir}/nginx.pid;\n\
         error_log stderr error;\nevents {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
           fastcgi_temp_path {dir}/fcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    location / {{ return 204; }}\n  }}\n}}\n"
    );
    let path = work.join("nginx.conf");
    std::fs::write(&path, conf).context("writing nginx.conf")?;
    Ok(path)
}

/// One connectivity check by hand: the status line must be `204`.
async fn check_204(addr: SocketAddr) -> anyhow::Result<()> {
    let mut s = timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
    s.write_all(
        b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let mut buf = vec![0u8; 512];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf)).await??;
    let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
    if !head.starts_with("HTTP/1.1 204") {
        bail!(
            "expected 204 for /generate_204, got {:?}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

/// `wrk -t1 -cN -dS --latency` on `/generate_204` with the Android check's Host header.
async fn wrk(
    addr: SocketAddr,
    pid: u32,
    seconds: u64,
    connections: usize,
) -> anyhow::Result<HttpRun> {
    let args: Vec<String> = vec![
        "-t1".into(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".into(),
        "-H".into(),
        "Host: connectivitycheck.gstatic.com".into(),
        format!("http://{addr}/generate_204"),
    ];
    let cpu_before = tree_cpu_ns(pid);
    let out = output_of("wrk", &args, Duration::from_secs(seconds * 3 + 20)).await?;
    let cpu_ns = tree_cpu_ns(pid).saturating_sub(cpu_before);
    let requests: f64 = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .context("no `N requests in` line in wrk output")?;
    if let Some(errors) = field(&out, "Socket errors:") {
        eprintln!("  wrk against {addr}: socket errors: {errors}");
    }
    if let Some(non2xx) = field(&out, "Non-2xx or 3xx responses:") {
        bail!("wrk got {non2xx} non-2xx responses from {addr}");
    }
    let rps = field(&out, "Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("no `Requests/sec` in wrk output")?;
    let p99_us = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| parse_wrk_duration(v.trim()))
        .context("no 99% line in wrk --latency output")?;
    Ok(HttpRun {
        rps,
        p99_us,
        cpu_us: cpu_ns as f64 / 1000.0 / requests.max(1.0),
    })
}

/// wrk's durations: `812.00us`, `1.23ms`, `2.01s`.
fn parse_wrk_duration(v: &str) -> Option<u32> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    let x: f64 = num.parse().ok()?;
    Some((x * scale).round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_durations() {
        assert_eq!(parse_wrk_duration("812.00us"), Some(812));
        assert_eq!(parse_wrk_duration("1.23ms"), Some(1230));
        assert_eq!(parse_wrk_duration("2.01s"), Some(2_010_000));
        assert_eq!(parse_wrk_duration("fast"), None);
    }

    #[test]
    fn field_after_label() {
        let out = "  Queries lost:         0 (0.00%)\n  Queries per second:   38236.85\n";
        assert_eq!(field(out, "Queries per second:"), Some("38236.85"));
        assert_eq!(field(out, "Queries lost:"), Some("0 (0.00%)"));
        assert_eq!(field(out, "Requests/sec:"), None);
    }
}
