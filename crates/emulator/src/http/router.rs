//! Which handler answers a parsed request: the URI table of the emulated firmware.
//!
//! ESP-IDF matches handlers by exact path (query excluded) and method; a path with no handler
//! goes to the 404 handler, a path with handlers but not for this method gets `405`. The table
//! depends on the internet mode:
//!
//! | mode | `/` | WebSocket path | probe URLs | anything else |
//! |---|---|---|---|---|
//! | online | portal page | upgrade | each OS's success answer | `404`, close |
//! | captive | portal page | upgrade | redirect to `/` | redirect to `/` (keep-alive) |
//! | offline | `404`, close | upgrade | `404`, close | `404`, close |
//!
//! Captive is the ESP-IDF captive-portal example (`GET /` plus a custom 404 handler that
//! redirects and returns `ESP_OK`, so the socket stays open). Offline is a plain firmware with
//! only its WebSocket URI registered. Online answers probes as the real servers would (framed
//! like every response of the device) and otherwise behaves like a plain firmware with a page.

use crate::WsSettings;
use crate::events::CheckVerdict;
use crate::internet::InternetMode;
use crate::profile::Profile;

use super::errors::EspError;
use super::head::RequestHead;
use super::portal::{self, PortalInfo};
use super::probes::{self, Recognized};
use super::response::EspResponse;

/// What the router needs to know besides the request.
#[derive(Debug, Clone)]
pub(crate) struct RouteCtx<'a> {
    /// Internet mode for this request.
    pub(crate) mode: InternetMode,
    /// The WebSocket endpoints (their paths are WebSocket URIs).
    pub(crate) ws: &'a [WsSettings],
    /// ESP-IDF version quirks.
    pub(crate) profile: &'a Profile,
    /// The device's IP, for the portal page.
    pub(crate) device_ip: &'a str,
    /// The WebSocket URL shown on the portal page.
    pub(crate) ws_url: &'a str,
}

impl RouteCtx<'_> {
    /// Whether `path` is one of the WebSocket endpoints' (exact match, as ESP-IDF registers them).
    fn is_ws_path(&self, path: &str) -> bool {
        self.ws.iter().any(|e| e.path == path)
    }
}

/// The routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The WebSocket URI with GET: the `ws` module takes the connection.
    WebSocket,
    /// An HTTP answer.
    Reply(Reply),
}

/// An HTTP answer and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    /// The response.
    pub(crate) response: EspResponse,
    /// ESP-IDF closes the socket after this response (default error handler).
    pub(crate) close: bool,
    /// The connectivity check it answered and that OS's verdict.
    pub(crate) probe: Option<(Recognized, CheckVerdict)>,
}

/// Whether the host's own table answers this request before any device logic is asked: the
/// WebSocket path, and online, a recognized connectivity check (`GET`).
pub(crate) fn host_answers(head: &RequestHead, ctx: &RouteCtx<'_>) -> bool {
    ctx.is_ws_path(&head.path)
        || (ctx.mode == InternetMode::Online
            && head.method == "GET"
            && probes::recognize(head).is_some())
}

/// Routes one request.
pub(crate) fn route(head: &RequestHead, ctx: &RouteCtx<'_>) -> Route {
    let get = head.method == "GET";
    let modern = ctx.profile.modern_error_bodies;
    let error = |e: EspError| (e.response(modern), true);
    if ctx.is_ws_path(&head.path) {
        if get {
            return Route::WebSocket;
        }
        let (response, close) = error(EspError::MethodNotAllowed);
        return Route::Reply(Reply {
            response,
            close,
            probe: None,
        });
    }
    let probe = probes::recognize(head);
    let (response, close) = match (ctx.mode, probe) {
        (InternetMode::Online, Some(p)) if get => (p.check.success(), false),
        (InternetMode::Online | InternetMode::Captive, _) if head.path == "/" => {
            if get {
                let info = PortalInfo {
                    device_ip: ctx.device_ip.to_owned(),
                    profile: ctx.profile.name,
                    mode: ctx.mode,
                    ws_url: ctx.ws_url.to_owned(),
                };
                (portal::page(&info), false)
            } else {
                error(EspError::MethodNotAllowed)
            }
        }
        (InternetMode::Captive, _) => (captive_redirect(ctx.profile), false),
        _ => error(EspError::NotFound),
    };
    let probe = probe.map(|p| (p, p.check.verdict(&response)));
    Route::Reply(Reply {
        response,
        close,
        probe,
    })
}

/// The captive-portal example's 404 handler: status per profile, `Location: /`, and a body
/// ("iOS requires content in the response to detect a captive portal").
pub(crate) fn captive_redirect(profile: &Profile) -> EspResponse {
    let (status, reason) = profile.captive_redirect;
    espsim_firmware::captive::redirect_to_portal(status, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::probes::Platform;

    fn head(method: &str, host: &str, target: &str) -> RequestHead {
        RequestHead {
            method: method.into(),
            target: target.into(),
            path: target.split('?').next().unwrap_or(target).into(),
            query: target.split_once('?').map(|(_, q)| q.into()),
            minor_version: 1,
            headers: vec![("Host".into(), host.into())],
        }
    }

    fn reply(r: Route) -> Reply {
        match r {
            Route::Reply(r) => r,
            Route::WebSocket => panic!("expected a reply"),
        }
    }

    static WS: std::sync::LazyLock<[WsSettings; 1]> =
        std::sync::LazyLock::new(|| [WsSettings::default()]);

    fn ctx(mode: InternetMode) -> RouteCtx<'static> {
        RouteCtx {
            mode,
            ws: &*WS,
            profile: &Profile::ESP_IDF_V5_4,
            device_ip: "192.168.4.1",
            ws_url: "ws://192.168.4.1/ws",
        }
    }

    #[test]
    fn the_ws_path_matches_exactly_and_only_for_get() {
        let c = ctx(InternetMode::Captive);
        assert_eq!(
            route(&head("GET", "x", "/ws?token=1"), &c),
            Route::WebSocket
        );
        let slash = reply(route(&head("GET", "x", "/ws/"), &c));
        assert_eq!(slash.response.status, 302);
        let post = reply(route(&head("POST", "x", "/ws"), &c));
        assert_eq!((post.response.status, post.close), (405, true));
    }

    #[test]
    fn modes_decide_root_probes_and_unknown_uris() {
        let android = head("GET", "connectivitycheck.gstatic.com", "/generate_204");
        let online = reply(route(&android, &ctx(InternetMode::Online)));
        assert_eq!(online.response.status, 204);
        assert_eq!(
            online.probe.map(|(p, v)| (p.os, v)),
            Some((Platform::Android, CheckVerdict::Online))
        );
        let captive = reply(route(&android, &ctx(InternetMode::Captive)));
        assert_eq!((captive.response.status, captive.close), (302, false));
        assert_eq!(captive.probe.map(|(_, v)| v), Some(CheckVerdict::SignIn));
        let offline = reply(route(&android, &ctx(InternetMode::Offline)));
        assert_eq!((offline.response.status, offline.close), (404, true));
        assert_eq!(
            offline.probe.map(|(_, v)| v),
            Some(CheckVerdict::NoInternet)
        );

        let root = head("GET", "192.168.4.1", "/");
        assert_eq!(
            reply(route(&root, &ctx(InternetMode::Captive)))
                .response
                .status,
            200
        );
        assert_eq!(
            reply(route(&root, &ctx(InternetMode::Online)))
                .response
                .status,
            200
        );
        assert_eq!(
            reply(route(&root, &ctx(InternetMode::Offline)))
                .response
                .status,
            404
        );
        let post_root = reply(route(&head("POST", "x", "/"), &ctx(InternetMode::Captive)));
        assert_eq!((post_root.response.status, post_root.close), (405, true));
        let other = reply(route(
            &head("GET", "x", "/nope"),
            &ctx(InternetMode::Online),
        ));
        assert_eq!((other.response.status, other.close), (404, true));
    }

    #[test]
    fn the_redirect_status_comes_from_the_profile() {
        let r = captive_redirect(&Profile::ESP_IDF_V6_1_STRICT);
        assert_eq!(
            r.to_bytes(),
            b"HTTP/1.1 303 See Other\r\nContent-Type: text/html\r\nContent-Length: 30\r\nLocation: /\r\n\r\nRedirect to the captive portal"
        );
    }
}
