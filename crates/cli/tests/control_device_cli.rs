//! `espsim send` and `espsim state` against a running `espsim run`: what a connected app
//! receives, and the exit codes and messages when the API refuses.

mod support;

use futures_util::{SinkExt, StreamExt};
use support::{Espsim, STEP, espsim};
use tokio_tungstenite::tungstenite::Message;

/// The next frame that is not one of the built-in firmware's own (its `welcome`, telemetry).
async fn next_sent<S>(ws: &mut S) -> Message
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a frame in time")
            .expect("connection open")
            .expect("frame");
        let own = frame
            .to_text()
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .is_some_and(|v| v["type"] != "alert" && v.get("type").is_some());
        if !own {
            return frame;
        }
    }
}

#[tokio::test]
async fn send_reaches_a_connected_app_and_refusals_exit_1() {
    let em = Espsim::run(&["--control-insecure"]).await;
    let url = format!("http://{}", em.addr("control"));
    let ws_url = format!("ws://{}/ws", em.addr("http"));
    let (mut ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(ws_url))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    // A round trip, so the session is surely open on the device before the first send.
    ws.send(Message::text(r#"{"type":"ping","id":1}"#))
        .await
        .expect("sends");
    let pong = tokio::time::timeout(STEP, ws.next())
        .await
        .expect("an answer in time");
    assert!(matches!(pong, Some(Ok(Message::Text(_)))), "{pong:?}");

    let (code, stdout, stderr) =
        espsim(&["send", "--control", &url, "--text", "hello from the cli"]).await;
    assert_eq!(
        (code, stdout.as_str()),
        (0, "queued for 1 session(s)\n"),
        "{stderr}"
    );
    assert_eq!(
        next_sent(&mut ws).await,
        Message::text("hello from the cli")
    );

    let (code, _, stderr) = espsim(&[
        "send",
        "--control",
        &url,
        "--to",
        "all",
        "--json",
        r#"{ "type": "alert", "level": 2 }"#,
        "--label",
        "alert",
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        next_sent(&mut ws).await,
        Message::text(r#"{"level":2,"type":"alert"}"#)
    );

    let (code, _, stderr) = espsim(&["send", "--control", &url, "--hex", "a5 01"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(next_sent(&mut ws).await, Message::binary(vec![0xa5, 0x01]));

    let (code, _, stderr) =
        espsim(&["send", "--control", &url, "--to", "999", "--text", "x"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no open WebSocket session 999"), "{stderr}");

    let (code, _, stderr) = espsim(&["send", "--control", &url, "--hex", "zz"]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("`hex` is not hex bytes"), "{stderr}");

    let (code, _, stderr) = espsim(&["send", "--control", &url, "--json", "{oops"]).await;
    assert_eq!(code, 2, "a usage error: {stderr}");
    assert!(stderr.contains("is not JSON"), "{stderr}");

    // The built-in firmware exposes no state variables.
    for args in [vec!["state"], vec!["state", "set", "relay=true"]] {
        let mut all = args.clone();
        all.extend(["--control", url.as_str()]);
        let (code, stdout, stderr) = espsim(&all).await;
        assert_eq!((code, stdout.as_str()), (1, ""), "{args:?}: {stderr}");
        assert!(stderr.contains("exposes no state variables"), "{stderr}");
    }
    let (code, _, stderr) = espsim(&["state", "set", "novalue", "--control", &url]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not NAME=VALUE"), "{stderr}");

    drop(ws);
    em.terminate();
}

/// A device file's state through the CLI: read, set (typed, or a string when not JSON), refused
/// for an undeclared variable, and seen by the device's next reply.
#[tokio::test]
async fn state_reads_and_sets_a_device_files_variables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let device = support::write(
        dir.path(),
        "lamp.yaml",
        "name: lamp\nstate: { on: false, mode: auto }\nrules:\n  - name: get\n    \
         reply: { json: { on: \"{{ state.on }}\", mode: \"{{ state.mode }}\" } }\n",
    );
    let em = Espsim::run(&[
        "--control-insecure",
        "--device",
        device.to_str().expect("utf-8"),
    ])
    .await;
    let url = format!("http://{}", em.addr("control"));

    let (code, stdout, stderr) = espsim(&["state", "--control", &url]).await;
    assert_eq!(code, 0, "{stderr}");
    let vars: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(vars, serde_json::json!({"on": false, "mode": "auto"}));

    let (code, _, stderr) =
        espsim(&["state", "set", "on=true", "mode=eco", "--control", &url]).await;
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = espsim(&["state", "set", "colour=1", "--control", &url]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");

    let ws_url = format!("ws://{}/ws", em.addr("http"));
    let (mut ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(ws_url))
        .await
        .expect("handshake in time")
        .expect("handshake succeeds");
    ws.send(Message::text("?")).await.expect("sends");
    assert_eq!(
        next_sent(&mut ws).await,
        Message::text(r#"{"on":true,"mode":"eco"}"#)
    );
    drop(ws);
    em.terminate();
}
