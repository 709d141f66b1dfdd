//! Behaviour tests of the device file: parsing, every matcher and action, timers, HTTP, errors.

use std::path::Path;

use espsim_firmware::{DeviceLogic, Effect, Frame, HttpRequest, Payload, SessionStart, To};
use serde_json::json;

use crate::{DeviceFileError, FileDevice, parse};

mod behaviour;
mod errors;

fn device(yaml: &str) -> FileDevice {
    match parse(yaml, Path::new("t.yaml")) {
        Ok(file) => file.device(7).unwrap(),
        Err(e) => panic!("{e}"),
    }
}

fn start() -> SessionStart<'static> {
    SessionStart {
        path: "/ws",
        query: None,
        headers: &[],
        authorized: true,
    }
}

/// (to, text or hex, label) of every send; closes as ("close", "code reason").
fn sends(effects: &[Effect]) -> Vec<(String, String, String)> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Send { to, payload, label } => {
                let to = match to {
                    To::Session(s) => format!("s{s}"),
                    To::All => "all".to_owned(),
                    To::Others(s) => format!("others{s}"),
                };
                let body = match payload {
                    Payload::Text(t) => t.clone(),
                    Payload::Binary(b) => format!("hex:{}", hex::encode(b)),
                };
                (to, body, label.clone())
            }
            Effect::Close {
                session,
                code,
                reason,
            } => (
                format!("s{session}"),
                format!("close {code} {reason}"),
                "close".to_owned(),
            ),
            other => ("?".to_owned(), format!("{other:?}"), String::new()),
        })
        .collect()
}

fn text(d: &mut FileDevice, session: u64, t: &str, now: u64) -> Vec<(String, String, String)> {
    sends(&d.on_message(session, Frame::Text(t), now))
}

fn bodies(d: &mut FileDevice, session: u64, t: &str, now: u64) -> Vec<String> {
    text(d, session, t, now)
        .into_iter()
        .map(|(_, b, _)| b)
        .collect()
}

fn http<'a>(
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [(String, String)],
    body: &'a [u8],
) -> HttpRequest<'a> {
    HttpRequest {
        method,
        path,
        query,
        headers,
        body,
    }
}

fn error(yaml: &str) -> DeviceFileError {
    match parse(yaml, Path::new("t.yaml")) {
        Ok(_) => panic!("parsed:\n{yaml}"),
        Err(e) => e,
    }
}
