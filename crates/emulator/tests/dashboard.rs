//! The dashboard's login over real sockets: the page and its assets are public but hold no
//! data; `POST /login` trades the token for an `HttpOnly; SameSite=Strict` session cookie; the
//! cookie grants the API to the dashboard's own origin only (CSRF); logout revokes it; the
//! bearer token keeps working for scripts.

use std::net::SocketAddr;
use std::time::Duration;

use espsim_emulator::internet::InternetMode;
use espsim_emulator::{ControlOptions, Emulator, EmulatorConfig, RunningEmulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn start(control: ControlOptions) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        dns: None,
        internet: InternetMode::Captive,
        control: Some(control),
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// One answer as it came over the wire.
struct Answer {
    status: u16,
    /// Header lines, names lower-cased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> String {
        let json: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body));
        json["error"].as_str().expect("an error message").to_owned()
    }

    /// `name=value` of the `Set-Cookie` header (without attributes), and the attributes.
    fn cookie(&self) -> Option<(String, String)> {
        let set = self.header("set-cookie")?;
        let (pair, attrs) = set.split_once(';').unwrap_or((set, ""));
        Some((pair.trim().to_owned(), attrs.to_owned()))
    }
}

/// Sends `head` (request line and headers, without the blank line) and `body` with
/// `Connection: close` and reads the whole answer.
async fn raw(addr: SocketAddr, head: &str, body: &str) -> Answer {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connects");
    let request = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.expect("writes");
    let mut out = Vec::new();
    timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("reads");
    let text = String::from_utf8(out).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `Host` and the dashboard's own `Origin` for `addr`.
fn host(addr: SocketAddr) -> String {
    format!("Host: {addr}")
}

fn same_origin(addr: SocketAddr) -> String {
    format!("Origin: http://{addr}")
}

/// Logs in with `token` from the dashboard's origin; the answer.
async fn login(addr: SocketAddr, token: &str) -> Answer {
    raw(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\n{}\r\n{}\r\nContent-Type: application/x-www-form-urlencoded",
            host(addr),
            same_origin(addr)
        ),
        &format!("token={token}"),
    )
    .await
}

/// A session cookie (`espsim_session=…`) for a running emulator.
async fn session(addr: SocketAddr, token: &str) -> String {
    let answer = login(addr, token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.cookie().expect("a Set-Cookie").0
}

async fn get_state(addr: SocketAddr, extra: &str) -> Answer {
    raw(
        addr,
        &format!("GET /state HTTP/1.1\r\n{}{extra}", host(addr)),
        "",
    )
    .await
}

#[tokio::test]
async fn without_a_token_the_page_is_the_login_form_and_no_data() {
    let em = start(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let token = em.control_token().expect("a token");

    let page = raw(addr, &format!("GET / HTTP/1.1\r\n{}", host(addr)), "").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.header("content-type")
            .is_some_and(|v| v.starts_with("text/html")),
        "{:?}",
        page.headers
    );
    assert!(page.body.contains("id=\"login-form\""), "{}", page.body);
    assert!(
        page.header("content-security-policy")
            .is_some_and(|v| v.contains("frame-ancestors 'none'")),
        "{:?}",
        page.headers
    );
    assert!(
        !page.body.contains(token),
        "the page must not carry the token"
    );
    assert!(
        !page.body.contains("\"seed\""),
        "the page must not carry data"
    );
    for asset in ["/dashboard.js", "/dashboard.css"] {
        let a = raw(addr, &format!("GET {asset} HTTP/1.1\r\n{}", host(addr)), "").await;
        assert_eq!(a.status, 200, "{asset}: {}", a.body);
        assert!(!a.body.contains(token), "{asset} must not carry the token");
    }
    // Every data endpoint stays closed.
    for path in ["/state", "/faults", "/events"] {
        let a = raw(addr, &format!("GET {path} HTTP/1.1\r\n{}", host(addr)), "").await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_without_a_cookie() {
    let em = start(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let answer = login(addr, "not-the-token").await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(answer.error().contains("wrong token"), "{}", answer.body);
    assert!(answer.cookie().is_none(), "{:?}", answer.headers);
    let forged = get_state(addr, "\r\nCookie: espsim_session=not-the-token").await;
    assert_eq!(forged.status, 401, "{}", forged.body);
}

#[tokio::test]
async fn the_right_token_gives_a_cookie_that_grants_state() {
    let em = start(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let token = em.control_token().expect("a token");
    let answer = login(addr, token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (pair, attrs) = answer.cookie().expect("a Set-Cookie");
    let value = pair
        .strip_prefix("espsim_session=")
        .expect("the session cookie");
    assert_eq!(value.len(), 32, "{pair}");
    assert_ne!(value, token, "the cookie is a session id, not the token");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(attrs.contains(attr), "{attr} missing in {attrs}");
    }
    let state = get_state(addr, &format!("\r\nCookie: {pair}")).await;
    assert_eq!(state.status, 200, "{}", state.body);
    let json: Value = serde_json::from_str(&state.body).expect("JSON state");
    assert_eq!(json["internet"], "captive", "{json}");
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let em = start(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let cookie = session(addr, em.control_token().expect("a token")).await;
    let out = raw(
        addr,
        &format!(
            "POST /logout HTTP/1.1\r\n{}\r\n{}\r\nCookie: {cookie}",
            host(addr),
            same_origin(addr)
        ),
        "",
    )
    .await;
    assert_eq!(out.status, 200, "{}", out.body);
    let (pair, attrs) = out.cookie().expect("a clearing Set-Cookie");
    assert_eq!(pair, "espsim_session=");
    assert!(attrs.contains("Max-Age=0"), "{attrs}");
    let after = get_state(addr, &format!("\r\nCookie: {cookie}")).await;
    assert_eq!(after.status, 401, "{}", after.body);
    assert!(after.error().contains("log in again"), "{}", after.body);
}

#[tokio::test]
async fn a_cross_origin_post_with_the_cookie_is_refused() {
    let mut options = ControlOptions::loopback(0);
    options.allowed_origins = vec!["http://localhost:3000".to_owned()];
    let em = start(options).await;
    let addr = em.control_addr().expect("control on");
    let cookie = session(addr, em.control_token().expect("a token")).await;
    let form = "Content-Type: application/x-www-form-urlencoded";
    // A form on a foreign site, one on an allowed (CORS) origin that is not the dashboard,
    // and a request without any Origin all carry the cookie; none may change anything.
    for origin in [
        "\r\nOrigin: http://evil.example",
        "\r\nOrigin: http://localhost:3000",
        "\r\nOrigin: null",
        "",
    ] {
        for (path, body) in [("/button", ""), ("/faults", "fault=refuse"), ("/reset", "")] {
            let a = raw(
                addr,
                &format!(
                    "POST {path} HTTP/1.1\r\n{}\r\nCookie: {cookie}\r\n{form}{origin}",
                    host(addr)
                ),
                body,
            )
            .await;
            assert_eq!(a.status, 403, "{path} {origin:?}: {}", a.body);
        }
    }
    let internet = raw(
        addr,
        &format!(
            "PUT /internet HTTP/1.1\r\n{}\r\nCookie: {cookie}\r\nOrigin: http://localhost:3000",
            host(addr)
        ),
        r#"{"mode":"offline"}"#,
    )
    .await;
    assert_eq!(internet.status, 403, "{}", internet.body);
    // Nothing happened: no button event, still captive.
    let state = get_state(addr, &format!("\r\nCookie: {cookie}")).await;
    let json: Value = serde_json::from_str(&state.body).expect("JSON state");
    assert_eq!(json["internet"], "captive", "{json}");
    let pressed = em
        .events()
        .snapshot()
        .iter()
        .any(|e| serde_json::to_string(e).is_ok_and(|s| s.contains("\"button\"")));
    assert!(!pressed, "a refused request pressed the button");

    // The dashboard's own page may.
    let own = raw(
        addr,
        &format!(
            "POST /button HTTP/1.1\r\n{}\r\n{}\r\nCookie: {cookie}",
            host(addr),
            same_origin(addr)
        ),
        "",
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    // A login from another page is refused too.
    let foreign_login = raw(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\n{}\r\nOrigin: http://localhost:3000\r\n{form}",
            host(addr)
        ),
        &format!("token={}", em.control_token().expect("a token")),
    )
    .await;
    assert_eq!(foreign_login.status, 403, "{}", foreign_login.body);
    assert!(foreign_login.cookie().is_none());
}

#[tokio::test]
async fn the_bearer_token_still_works() {
    let em = start(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let token = em.control_token().expect("a token");
    let state = get_state(addr, &format!("\r\nAuthorization: Bearer {token}")).await;
    assert_eq!(state.status, 200, "{}", state.body);
    let press = raw(
        addr,
        &format!(
            "POST /button HTTP/1.1\r\n{}\r\nAuthorization: Bearer {token}",
            host(addr)
        ),
        "",
    )
    .await;
    assert_eq!(press.status, 200, "{}", press.body);
    let wrong = get_state(addr, "\r\nAuthorization: Bearer nope").await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
}
