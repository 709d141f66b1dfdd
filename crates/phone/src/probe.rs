//! Sending the OS's connectivity check from inside the phone, bound to `wlan0`, through the
//! device's own DNS — exactly the path a phone's NetworkMonitor / captive network support
//! takes (it always probes on the Wi-Fi, whatever the default network is). Nothing leaves the
//! namespaces: the name resolves via 192.168.4.1.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::PhoneError;
use crate::netns::in_namespace;
use crate::spec::Os;
use crate::topology::{DEVICE_IP, WIFI_IF};
use crate::verdict::{HttpAnswer, ProbeOutcome, classify};

/// Wait for one DNS answer (the check asks twice).
const DNS_TIMEOUT: Duration = Duration::from_millis(1000);
/// Wait for the TCP connection to the probe host.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(2000);
/// Wait for the whole HTTP answer.
const READ_TIMEOUT: Duration = Duration::from_millis(2000);
/// The most of an answer read (headers and body).
const MAX_ANSWER: usize = 16 * 1024;

/// AOSP NetworkMonitor's default User-Agent (`DEFAULT_USER_AGENT`).
const ANDROID_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.32 Safari/537.36";
/// Apple's captive network support (commonly reported; Apple documents none).
const APPLE_UA: &str = "CaptiveNetworkSupport-481.60.2 wispr";

/// The check `os` sends: (host, path, User-Agent).
fn target(os: Os) -> (&'static str, &'static str, &'static str) {
    match os {
        Os::Android => ("connectivitycheck.gstatic.com", "/generate_204", ANDROID_UA),
        Os::Ios => ("captive.apple.com", "/hotspot-detect.html", APPLE_UA),
    }
}

/// Sends `os`'s connectivity check from namespace `phone` over `wlan0` and classifies it.
pub(crate) async fn check(phone: &str, os: Os) -> Result<ProbeOutcome, PhoneError> {
    let (host, path, ua) = target(os);
    let answer = fetch(phone, host, path, ua).await?;
    let (status, location, error, http) = match answer {
        Ok((http, location)) => (Some(http.status), location, None, Some(http)),
        Err(why) => (None, None, Some(why), None),
    };
    Ok(ProbeOutcome {
        os,
        url: format!("http://{host}{path}"),
        status,
        location,
        error,
        verdict: classify(os, http.as_ref()),
    })
}

/// The answer and its `Location`, or why there is none (an `Err` here is the probe failing,
/// which is a verdict, not an error of ours).
type Fetched = Result<(HttpAnswer, Option<String>), String>;

async fn fetch(phone: &str, host: &str, path: &str, ua: &str) -> Result<Fetched, PhoneError> {
    let udp = in_namespace(phone, "making the probe's DNS socket", || {
        let s = wifi_socket(Type::DGRAM, Protocol::UDP)?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
        Ok(std::net::UdpSocket::from(s))
    })?;
    let ip = match resolve(udp, host).await {
        Ok(ip) => ip,
        Err(why) => return Ok(Err(format!("dns: {why}"))),
    };
    let tcp = in_namespace(phone, "making the probe's TCP socket", || {
        Ok(std::net::TcpStream::from(wifi_socket(
            Type::STREAM,
            Protocol::TCP,
        )?))
    })?;
    Ok(http_get(tcp, SocketAddrV4::new(ip, 80), host, path, ua).await)
}

/// A non-blocking IPv4 socket bound to `wlan0` (`SO_BINDTODEVICE`), like Android's
/// per-network sockets for its checks.
fn wifi_socket(ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, ty, Some(proto))?;
    s.bind_device(Some(WIFI_IF.as_bytes()))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

async fn resolve(socket: std::net::UdpSocket, host: &str) -> Result<Ipv4Addr, String> {
    let socket = tokio::net::UdpSocket::from_std(socket).map_err(|e| e.to_string())?;
    socket
        .connect((DEVICE_IP, 53))
        .await
        .map_err(|e| e.to_string())?;
    let name = Name::from_ascii(host).map_err(|e| e.to_string())?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, RecordType::A));
    let id = query.metadata.id;
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let mut last = String::from("no answer");
    for _attempt in 0..2 {
        socket.send(&bytes).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 1500];
        match tokio::time::timeout(DNS_TIMEOUT, socket.recv(&mut buf)).await {
            Err(_) => last = format!("no answer within {DNS_TIMEOUT:?}"),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(len)) => {
                let reply = Message::from_vec(buf.get(..len).unwrap_or_default())
                    .map_err(|e| format!("undecodable answer: {e}"))?;
                if reply.metadata.id != id || reply.metadata.message_type != MessageType::Response {
                    last = "a reply to another query".to_owned();
                    continue;
                }
                return reply
                    .answers
                    .iter()
                    .find_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .ok_or_else(|| format!("no A record ({:?})", reply.metadata.response_code));
            }
        }
    }
    Err(last)
}

async fn http_get(
    socket: std::net::TcpStream,
    to: SocketAddrV4,
    host: &str,
    path: &str,
    ua: &str,
) -> Fetched {
    let socket = tokio::net::TcpSocket::from_std_stream(socket);
    let mut stream = match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(to.into())).await {
        Err(_) => {
            return Err(format!(
                "connect to {to}: timed out after {CONNECT_TIMEOUT:?}"
            ));
        }
        Ok(Err(e)) => return Err(format!("connect to {to}: {e}")),
        Ok(Ok(s)) => s,
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: {ua}\r\nAccept-Encoding: gzip\r\n\r\n"
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        read_answer(&mut stream).await
    };
    match tokio::time::timeout(READ_TIMEOUT, exchange).await {
        Err(_) => Err(format!("no complete answer within {READ_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("http: {e}")),
        Ok(Ok(answer)) => answer,
    }
}

/// Reads one response: the head, then `Content-Length` bytes (ESP-IDF ignores
/// `Connection: close`, so EOF cannot be the end marker), or up to EOF without one.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> std::io::Result<Fetched> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let eof = n == 0;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or(0);
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                };
                let content_length = header("content-length").and_then(|v| v.parse::<u64>().ok());
                let location = header("location");
                let body = buf.get(head_len..).unwrap_or_default();
                let complete = match content_length {
                    Some(len) => body.len() as u64 >= len || status == 204 || status == 304,
                    None => eof || status == 204 || status == 304,
                };
                if complete || buf.len() >= MAX_ANSWER {
                    let body = body.get(..MAX_ANSWER).unwrap_or(body).to_vec();
                    let answer = HttpAnswer {
                        status,
                        content_length,
                        body,
                    };
                    return Ok(Ok((answer, location)));
                }
            }
            Ok(httparse::Status::Partial) if eof => {
                return Ok(Err("the connection closed before a full answer".to_owned()));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Ok(Err(format!("not an HTTP answer: {e}"))),
        }
        if eof {
            return Ok(Err("the connection closed".to_owned()));
        }
        if buf.len() >= MAX_ANSWER {
            return Ok(Err(format!("no answer head within {MAX_ANSWER} bytes")));
        }
    }
}
