//! `espsim send` and `espsim state`: speak as the running emulator's device (a message to one
//! session or all) and read or set its logic's state variables, through the control API.
//!
//! Exit codes as `espsim fault`: 0 done; 1 the API refused (no such session, a bad payload, a
//! value the device refused, no device state, wrong token: its message is printed); 2 usage
//! errors or no control API at the address.

use std::process::ExitCode;

use anyhow::{Context, bail};
use espsim_emulator::control::api::{DeviceVars, Queued, SendMessage, SendTo, SetDeviceState};
use hyper::Method;
use serde_json::Value;

use crate::fault::{Api, ControlArgs, with_api};

/// Arguments of `espsim send`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("payload").required(true).multiple(false))]
pub(crate) struct SendArgs {
    #[command(flatten)]
    api: ControlArgs,
    /// Who gets it: `all` or a session id (the `conn` of a `ws_opened` event).
    #[arg(long, value_name = "all|ID", default_value = "all")]
    to: SendTo,
    /// A text message, as is.
    #[arg(long, value_name = "TEXT", group = "payload")]
    text: Option<String>,
    /// A text message: this JSON, sent as its compact text (e.g. '{"type":"alert"}').
    #[arg(long, value_name = "JSON", group = "payload")]
    json: Option<String>,
    /// A binary message as hex bytes, e.g. 'a5 01 ff' (spaces optional).
    #[arg(long, value_name = "HEX", group = "payload")]
    hex: Option<String>,
    /// A binary message as base64 (standard or URL-safe, padding optional).
    #[arg(long, value_name = "BASE64", group = "payload")]
    base64: Option<String>,
    /// The message's label in the event log (`ws_message`) and for `message_type` fault rules
    /// [default: control].
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
}

/// Arguments of `espsim state`.
#[derive(Debug, clap::Args)]
pub(crate) struct StateArgs {
    #[command(flatten)]
    api: ControlArgs,
    #[command(subcommand)]
    action: Option<StateAction>,
}

#[derive(Debug, clap::Subcommand)]
enum StateAction {
    /// Set state variables, in the order given (the first the device refuses stops the rest),
    /// then print the state. Each VALUE is JSON (`target=21`, `on=true`, `name='"lamp"'`);
    /// a VALUE that is not JSON is sent as a JSON string (`mode=eco` sets "eco").
    Set {
        /// NAME=VALUE pairs.
        #[arg(required = true, value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },
}

/// Runs `espsim send`.
pub(crate) fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let json = args
        .json
        .as_deref()
        .map(|text| {
            serde_json::from_str::<Value>(text)
                .with_context(|| format!("--json `{text}` is not JSON (send text with --text)"))
        })
        .transpose()?;
    let body = SendMessage {
        to: args.to,
        text: args.text,
        json,
        hex: args.hex,
        base64: args.base64,
        label: args.label,
    };
    let body = serde_json::to_string(&body).context("cannot write the request")?;
    with_api(&args.api, async |api| {
        let answer = api
            .call(
                Method::POST,
                "/send",
                Some(("application/json", body.clone())),
            )
            .await?;
        let Queued { queued } = api.json(&answer)?;
        println!("queued for {queued} session(s)");
        Ok(())
    })
}

/// Runs `espsim state` (print) or `espsim state set`.
pub(crate) fn state(args: StateArgs) -> anyhow::Result<ExitCode> {
    let patch = match args.action {
        None => None,
        Some(StateAction::Set { vars }) => Some(parse_assignments(&vars)?),
    };
    with_api(&args.api, async |api| {
        let answer = match &patch {
            None => api.call(Method::GET, "/device/state", None).await?,
            Some(set) => {
                let body = serde_json::to_string(set).context("cannot write the request")?;
                api.call(
                    Method::PATCH,
                    "/device/state",
                    Some(("application/json", body)),
                )
                .await?
            }
        };
        print_vars(api, &answer)
    })
}

fn print_vars(api: &Api, answer: &[u8]) -> anyhow::Result<()> {
    let DeviceVars { vars } = api.json(answer)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&vars).context("cannot print the state")?
    );
    Ok(())
}

/// `NAME=VALUE` pairs, in order; VALUE is JSON, or else a JSON string of its text.
fn parse_assignments(pairs: &[String]) -> anyhow::Result<SetDeviceState> {
    let mut vars = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("`{pair}` is not NAME=VALUE");
        };
        if name.is_empty() {
            bail!("`{pair}` has no name before `=`");
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
        vars.push((name.to_owned(), value));
    }
    Ok(SetDeviceState { vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_or_else_strings() {
        let pairs = [
            "target=21",
            "on=true",
            "mode=eco",
            "name=\"x=y\"",
            "list=[1, 2]",
            "e=",
        ]
        .map(str::to_owned);
        let set = parse_assignments(&pairs).expect("parses");
        let got: Vec<(&str, Value)> = set
            .vars
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("target", Value::from(21)),
                ("on", Value::from(true)),
                ("mode", Value::from("eco")),
                ("name", Value::from("x=y")),
                ("list", serde_json::json!([1, 2])),
                ("e", Value::from("")),
            ]
        );
        assert!(parse_assignments(&["novalue".to_owned()]).is_err());
        assert!(parse_assignments(&["=1".to_owned()]).is_err());
    }
}
