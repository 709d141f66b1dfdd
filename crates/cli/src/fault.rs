//! `espsim fault list|add|remove|reset`: change a running emulator's fault plan through its
//! control API (`espsim run` prints the address as `"control"` in its ready line).
//!
//! Exit codes: 0 done; 1 the API refused (unknown id, invalid rule, wrong token: its message is
//! printed); 2 usage errors, an unreadable `--file`, or no control API at the address.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long one API call may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `espsim fault`.
#[derive(Debug, clap::Args)]
pub(crate) struct FaultArgs {
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
    message: String,
    /// Where in the request body the API found the problem.
    position: Option<(u64, u64)>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Refused {
    /// Names the file the body came from: `FILE:L:C: what` instead of `… at L:C: what`.
    fn in_file(self, path: &std::path::Path) -> Refused {
        let file = path.display().to_string();
        let message = match self.position {
            Some((l, c)) => {
                let what = self
                    .message
                    .split_once(&format!(" at {l}:{c}: "))
                    .map_or(self.message.as_str(), |(_, what)| what);
                format!(
                    "{file}:{l}:{c}: {}",
                    what.replace("--> body:", &format!("--> {file}:"))
                )
            }
            None => format!("{file}: {}", self.message),
        };
        Refused { message, ..self }
    }
}

impl std::error::Error for Refused {}

/// Runs one `espsim fault` action.
pub(crate) fn run(args: FaultArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.control, args.token)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(act(&api, args.action)) {
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
            let rules = api.call(Method::GET, "/faults", None).await?;
            if json {
                println!("{rules}");
            } else {
                print_rules(&rules);
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
            let added = api
                .call(Method::POST, "/faults", Some((ctype, text)))
                .await
                .map_err(|e| match (&source, e.downcast::<Refused>()) {
                    (Some(path), Ok(refused)) => refused.in_file(path).into(),
                    (_, Ok(refused)) => refused.into(),
                    (_, Err(e)) => e,
                })?;
            let added = match added {
                Value::Array(list) => list,
                one => vec![one],
            };
            for rule in &added {
                println!("added rule {}: {}", rule["id"], rule_text(rule));
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
            let done = api.call(Method::POST, "/reset", None).await?;
            println!(
                "removed {} rule(s); internet is {}",
                done["removed"],
                done["internet"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

/// JSON when the text is JSON (so error positions follow the JSON parser), YAML otherwise.
fn content_type(text: &str) -> &'static str {
    if serde_json::from_str::<Value>(text).is_ok() {
        "application/json"
    } else {
        "application/yaml"
    }
}

/// `ID  NAME  RULE` table; the rule as compact JSON without id and name.
fn print_rules(rules: &Value) {
    let list = rules.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        println!("no fault rules");
        return;
    }
    println!("{:<4} {:<16} RULE", "ID", "NAME");
    for rule in list {
        println!(
            "{:<4} {:<16} {}",
            rule["id"]
                .as_u64()
                .map_or_else(|| "?".to_owned(), |id| id.to_string()),
            rule["name"].as_str().unwrap_or("-"),
            rule_text(rule)
        );
    }
}

/// `{"when":…,"fault":…}` of a listed rule, in that order, `when` left out when empty.
fn rule_text(rule: &Value) -> String {
    let fault = format!("\"fault\":{}", rule["fault"]);
    match rule.get("when") {
        Some(when) if when.as_object().is_none_or(|w| !w.is_empty()) => {
            format!("{{\"when\":{when},{fault}}}")
        }
        _ => format!("{{{fault}}}"),
    }
}

/// The control API client.
struct Api {
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

    /// One request; 2xx → the JSON body (`null` when empty), else [`Refused`] with the API's
    /// `error` message.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
    ) -> anyhow::Result<Value> {
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
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!("the server at {} answered {status} with something other than JSON; is it espsim's control API?", self.base)
            })?
        };
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]
            .as_str()
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("failed"));
        let position = json["line"].as_u64().zip(json["column"].as_u64());
        let message = match status {
            StatusCode::UNAUTHORIZED => {
                format!(
                    "{message} (hint: pass --control-token TOKEN or set ESPSIM_CONTROL_TOKEN; `espsim run` prints a generated token as \"control_token\" in its ready line)"
                )
            }
            _ => message.to_owned(),
        };
        Err(Refused { message, position }.into())
    }
}
