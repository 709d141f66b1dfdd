//! `espsim fault list|add|remove|reset`: change a running emulator's fault plan through its
//! control API (`espsim run` prints the address as `"control"` in its ready line). Its client
//! ([`Api`], [`with_api`]) is shared with `espsim send` and `espsim state`.
//!
//! Exit codes: 0 done; 1 the API refused (unknown id, invalid rule, wrong token: its message is
//! printed); 2 usage errors, an unreadable `--file`, or no control API at the address.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use espsim_emulator::control::api::{Added, BODY_NAME, ErrorBody, ErrorCode, ResetDone, RuleEntry};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

/// How long one API call may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the control API is and its token: the options `espsim fault`, `send` and `state` share.
#[derive(Debug, clap::Args)]
pub(crate) struct ControlArgs {
    /// The control API, as printed in `run`'s ready line.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "ESPSIM_CONTROL",
        default_value = "http://127.0.0.1:8475"
    )]
    control: String,
    /// The control API's bearer token: what `run` was given with --control-token, or the one
    /// it generated (its ready line's "control_token").
    #[arg(
        long = "control-token",
        alias = "token",
        global = true,
        value_name = "TOKEN",
        env = "ESPSIM_CONTROL_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

/// Arguments of `espsim fault`.
#[derive(Debug, clap::Args)]
pub(crate) struct FaultArgs {
    #[command(flatten)]
    api: ControlArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List the active rules with their ids.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a rule (or a list of rules), as inline YAML/JSON or from a file.
    Add {
        /// The rule, e.g. '{ when: { connections: 1-2 }, fault: refuse }'.
        #[arg(
            value_name = "RULE",
            required_unless_present = "file",
            conflicts_with = "file"
        )]
        rule: Option<String>,
        /// A YAML or JSON file holding one rule or a list of rules.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Remove rules by id.
    Remove {
        /// Rule ids, as `list` shows them.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<u64>,
    },
    /// Remove every rule and restore the internet mode the run started with.
    Reset,
}

/// A failure that is the API's answer (exit 1), as opposed to not reaching it (exit 2).
#[derive(Debug)]
struct Refused {
    /// The API's error, as it sent it.
    body: ErrorBody,
    /// What to print: the API's message, placed in a file or with a hint.
    message: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Refused {
    /// The API's refusal, with a hint where the user can act on it.
    fn new(body: ErrorBody) -> Refused {
        let message = match body.code {
            ErrorCode::Unauthorized => format!(
                "{} (hint: pass --control-token TOKEN or set ESPSIM_CONTROL_TOKEN; `espsim run` prints a generated token as \"control_token\" in its ready line)",
                body.error
            ),
            _ => body.error.clone(),
        };
        Refused { body, message }
    }

    /// Names the file the body came from: `FILE:L:C: what` instead of `… at L:C: what`, and
    /// the file instead of the API's name for the body in the parser's snippet.
    fn in_file(self, path: &std::path::Path) -> Refused {
        let file = path.display().to_string();
        let body = &self.body;
        let message = match (body.line, body.column, &body.reason) {
            (Some(l), Some(c), Some(reason)) => format!(
                "{file}:{l}:{c}: {}",
                reason.replace(&format!("--> {BODY_NAME}:"), &format!("--> {file}:"))
            ),
            _ => format!("{file}: {}", self.message),
        };
        Refused { message, ..self }
    }
}

impl std::error::Error for Refused {}

/// Runs one `espsim fault` action.
pub(crate) fn run(args: FaultArgs) -> anyhow::Result<ExitCode> {
    with_api(&args.api, async |api| act(api, args.action).await)
}

/// Runs `act` against the control API `args` name: exit 0 when it succeeds, 1 when the API
/// refused (its message printed), an error (exit 2) when the API cannot be reached.
pub(crate) fn with_api(
    args: &ControlArgs,
    act: impl AsyncFnOnce(&Api) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.control, args.token.clone())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(act(&api)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.downcast_ref::<Refused>().is_some() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e),
    }
}

async fn act(api: &Api, action: Action) -> anyhow::Result<()> {
    match action {
        Action::List { json } => {
            let body = api.call(Method::GET, "/faults", None).await?;
            if json {
                println!("{}", api.json::<serde_json::Value>(&body)?);
            } else {
                print_rules(&api.json::<Vec<RuleEntry>>(&body)?)?;
            }
        }
        Action::Add { rule, file } => {
            let (text, source) = match (rule, file) {
                (Some(rule), _) => (rule, None),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    (text, Some(path))
                }
                (None, None) => bail!("give a rule or --file FILE"),
            };
            let ctype = content_type(&text);
            let body = api
                .call(Method::POST, "/faults", Some((ctype, text)))
                .await
                .map_err(|e| match (&source, e.downcast::<Refused>()) {
                    (Some(path), Ok(refused)) => refused.in_file(path).into(),
                    (_, Ok(refused)) => refused.into(),
                    (_, Err(e)) => e,
                })?;
            for rule in api.json::<Added>(&body)?.into_vec() {
                println!("added rule {}: {}", rule.id, rule_text(&rule)?);
            }
        }
        Action::Remove { ids } => {
            for id in ids {
                api.call(Method::DELETE, &format!("/faults/{id}"), None)
                    .await?;
                println!("removed rule {id}");
            }
        }
        Action::Reset => {
            let body = api.call(Method::POST, "/reset", None).await?;
            let done: ResetDone = api.json(&body)?;
            println!(
                "removed {} rule(s); internet is {}",
                done.removed,
                done.internet.as_str()
            );
        }
    }
    Ok(())
}

/// JSON when the text is JSON (so error positions follow the JSON parser), YAML otherwise.
fn content_type(text: &str) -> &'static str {
    if serde_json::from_str::<serde_json::Value>(text).is_ok() {
        "application/json"
    } else {
        "application/yaml"
    }
}

/// `ID  NAME  RULE` table; the rule as compact JSON without id and name.
fn print_rules(rules: &[RuleEntry]) -> anyhow::Result<()> {
    if rules.is_empty() {
        println!("no fault rules");
        return Ok(());
    }
    println!("{:<4} {:<16} RULE", "ID", "NAME");
    for rule in rules {
        println!(
            "{:<4} {:<16} {}",
            rule.id.0,
            rule.rule.name.as_deref().unwrap_or("-"),
            rule_text(rule)?
        );
    }
    Ok(())
}

/// `{"when":…,"fault":…}` of a listed rule, in that order, `when` left out when empty.
fn rule_text(rule: &RuleEntry) -> anyhow::Result<String> {
    // Through `Value`, whose keys are sorted: the same text whatever the field order in code.
    let fault = serde_json::to_value(&rule.rule.fault).context("cannot print a fault")?;
    let when = serde_json::to_value(&rule.rule.when).context("cannot print a trigger")?;
    Ok(match when.as_object() {
        Some(w) if w.is_empty() => format!("{{\"fault\":{fault}}}"),
        _ => format!("{{\"when\":{when},\"fault\":{fault}}}"),
    })
}

/// The control API client.
pub(crate) struct Api {
    base: Uri,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    fn new(control: &str, token: Option<String>) -> anyhow::Result<Api> {
        let url = if control.contains("://") {
            control.to_owned()
        } else {
            format!("http://{control}")
        };
        let base: Uri = url.parse().with_context(|| {
            format!("--control `{control}` is not a URL (e.g. http://127.0.0.1:8475)")
        })?;
        if base.scheme_str() != Some("http") || base.authority().is_none() {
            bail!(
                "--control `{control}` must be an http:// URL with a host and port, e.g. http://127.0.0.1:8475"
            );
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CALL_TIMEOUT));
        Ok(Api {
            base,
            token,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// One request; 2xx → the body (read it with [`Api::json`]), else [`Refused`] with the
    /// API's [`ErrorBody`].
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<Bytes> {
        let base = self.base.to_string();
        let uri = format!("{}{path}", base.trim_end_matches('/'));
        let mut req = Request::builder().method(method).uri(&uri);
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some((ctype, text)) => {
                req = req.header("content-type", ctype);
                Bytes::from(text)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(payload))
            .context("cannot build the request")?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                // The innermost cause says it best ("Connection refused (os error 111)").
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                anyhow!(
                    "cannot reach the control API at {}: {cause} (hint: is `espsim run` running? its ready line shows the \"control\" address; pass it with --control)",
                    self.base
                )
            })?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .context("the control API's answer broke off")?
                .to_bytes();
            anyhow::Ok((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                anyhow!(
                    "the control API at {} did not answer within {CALL_TIMEOUT:?}",
                    self.base
                )
            })??;
        if status.is_success() {
            return Ok(bytes);
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).with_context(|| {
            format!("the server at {} answered {status} with something other than espsim's error JSON; is it espsim's control API?", self.base)
        })?;
        Err(Refused::new(body).into())
    }

    /// A successful answer's body as `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self, bytes: &[u8]) -> anyhow::Result<T> {
        serde_json::from_slice(bytes).with_context(|| {
            format!(
                "the server at {} answered something other than espsim's control API JSON",
                self.base
            )
        })
    }
}
