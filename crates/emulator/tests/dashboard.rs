//! The dashboard's login over real sockets: the page and its assets are public but hold no
//! data; `POST /login` trades the token for an `HttpOnly; SameSite=Strict` session cookie; the
//! cookie grants the API to the dashboard's own origin only (CSRF); logout revokes it; the
//! bearer token keeps working for scripts.

mod support;

use std::net::SocketAddr;

use espsim_emulator::ControlOptions;
use serde_json::Value;
use support::{Answer, exchange, start_with_control};

/// `Host` and the dashboard's own `Origin` for `addr`.
fn host(addr: SocketAddr) -> String {
    format!("Host: {addr}")
}

fn same_origin(addr: SocketAddr) -> String {
    format!("Origin: http://{addr}")
}

/// Logs in with `token` from the dashboard's origin; the answer.
async fn login(addr: SocketAddr, token: &str) -> Answer {
    exchange(
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
    exchange(
        addr,
        &format!("GET /state HTTP/1.1\r\n{}{extra}", host(addr)),
        "",
    )
    .await
}

#[tokio::test]
async fn without_a_token_the_page_is_the_login_form_and_no_data() {
    let em = start_with_control(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let token = em.control_token().expect("a token");

    let page = exchange(addr, &format!("GET / HTTP/1.1\r\n{}", host(addr)), "").await;
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
        let a = exchange(addr, &format!("GET {asset} HTTP/1.1\r\n{}", host(addr)), "").await;
        assert_eq!(a.status, 200, "{asset}: {}", a.body);
        assert!(!a.body.contains(token), "{asset} must not carry the token");
    }
    // Every data endpoint stays closed.
    for path in ["/state", "/faults", "/events"] {
        let a = exchange(addr, &format!("GET {path} HTTP/1.1\r\n{}", host(addr)), "").await;
        assert_eq!(a.status, 401, "{path}: {}", a.body);
    }
}

#[tokio::test]
async fn a_wrong_token_is_refused_without_a_cookie() {
    let em = start_with_control(ControlOptions::loopback(0)).await;
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
    let em = start_with_control(ControlOptions::loopback(0)).await;
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
    let em = start_with_control(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let cookie = session(addr, em.control_token().expect("a token")).await;
    let out = exchange(
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
    let em = start_with_control(options).await;
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
            let a = exchange(
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
    let internet = exchange(
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
    let own = exchange(
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
    let foreign_login = exchange(
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
    let em = start_with_control(ControlOptions::loopback(0)).await;
    let addr = em.control_addr().expect("control on");
    let token = em.control_token().expect("a token");
    let state = get_state(addr, &format!("\r\nAuthorization: Bearer {token}")).await;
    assert_eq!(state.status, 200, "{}", state.body);
    let press = exchange(
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
