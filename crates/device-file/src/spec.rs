//! The device file as written: the serde types the YAML is read into.
//!
//! Every value a semantic check looks at is a [`Spanned`] so the check can name its line and
//! column (serde-saphyr fills the location in; see `Spanned`'s docs for the cases where it
//! cannot, none of which we use: no `flatten`, no untagged or internally tagged enums).
//! [`crate::compile`] turns these types into the checked program the device runs.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};
use serde_saphyr::{Location, Spanned};

use espsim_faults::duration::parse_strict_duration;

/// The parsed device file (see the crate docs for the format). Build one with [`crate::parse`]
/// or [`crate::load`], which also check everything serde cannot; a `DeviceFile` deserialized some
/// other way is checked by [`DeviceFile::device`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFile {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default)]
    pub(crate) websocket: Option<Spanned<OneOrMany<WebSocketSpec>>>,
    #[serde(default)]
    pub(crate) state: Option<Spanned<OrderedMap<Spanned<Tree>>>>,
    #[serde(default)]
    pub(crate) rules: Option<Spanned<Vec<RuleSpec>>>,
    #[serde(default)]
    pub(crate) unmatched: Option<UnmatchedSpec>,
    #[serde(default)]
    pub(crate) periodic: Option<Spanned<OrderedMap<PeriodicSpec>>>,
    #[serde(default)]
    pub(crate) http: Option<Spanned<Vec<RouteSpec>>>,
    /// Where the file came from (errors name it); set by [`crate::parse`].
    #[serde(skip)]
    pub(crate) path: std::path::PathBuf,
    /// The checked program, built once by [`crate::parse`].
    #[serde(skip)]
    pub(crate) compiled: Option<std::sync::Arc<crate::compile::Program>>,
}

/// One endpoint of the `websocket:` section (a mapping, or a list of them): where the app
/// connects and what it is sent on connect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSpec {
    #[serde(default)]
    pub(crate) path: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) subprotocol: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) on_connect: Option<Spanned<OneOrMany<SendSpec>>>,
}

impl WebSocketSpec {
    /// The WebSocket endpoint's path (`/ws` unless the file says otherwise).
    pub fn path(&self) -> &str {
        self.path.as_ref().map_or("/ws", |p| p.value.as_str())
    }

    /// The subprotocol the device answers the handshake with, if any.
    pub fn subprotocol(&self) -> Option<&str> {
        self.subprotocol.as_ref().map(|p| p.value.as_str())
    }
}

/// One entry of `rules:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) endpoint: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    pub(crate) matcher: Option<Spanned<MatchSpec>>,
    #[serde(default)]
    pub(crate) set: Option<OrderedMap<Spanned<Tree>>>,
    #[serde(default)]
    pub(crate) reply: Option<Spanned<OneOrMany<SendSpec>>>,
    #[serde(default)]
    pub(crate) broadcast: Option<Spanned<OneOrMany<SendSpec>>>,
    #[serde(default)]
    pub(crate) close: Option<Spanned<CloseSpec>>,
    #[serde(default)]
    pub(crate) start: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) stop: Option<Spanned<String>>,
}

/// A message matcher: exactly one of `json`, `text`, `binary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchSpec {
    #[serde(default)]
    pub(crate) json: Option<Spanned<OneOrMany<JsonCond>>>,
    #[serde(default)]
    pub(crate) text: Option<Spanned<TextCond>>,
    #[serde(default)]
    pub(crate) binary: Option<Spanned<BinaryCond>>,
}

/// One JSON condition: a pointer and at most one test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonCond {
    #[serde(default)]
    pub(crate) pointer: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "some_tree")]
    pub(crate) equals: Option<Spanned<Tree>>,
    #[serde(default)]
    pub(crate) glob: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) regex: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) exists: Option<Spanned<bool>>,
}

/// A text condition: exactly one of `exact`, `glob`, `regex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextCond {
    #[serde(default)]
    pub(crate) exact: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) glob: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) regex: Option<Spanned<String>>,
}

/// A binary condition: a hex prefix and length bounds, all optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BinaryCond {
    #[serde(default)]
    pub(crate) prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) min_len: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) max_len: Option<Spanned<u64>>,
}

/// One message to send: exactly one of `json`, `text`, `binary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendSpec {
    #[serde(default, deserialize_with = "some_tree")]
    pub(crate) json: Option<Spanned<Tree>>,
    #[serde(default)]
    pub(crate) text: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) binary: Option<Spanned<BinarySpec>>,
    #[serde(default)]
    pub(crate) to: Option<Spanned<Target>>,
    #[serde(default)]
    pub(crate) after: Option<Spanned<Millis>>,
}

/// Binary bytes: exactly one of `hex`, `base64`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BinarySpec {
    #[serde(default)]
    pub(crate) hex: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) base64: Option<Spanned<String>>,
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Target {
    /// The session the message came from.
    Sender,
    /// Every open session.
    All,
    /// Every open session but the sender.
    Others,
}

/// A close frame.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloseSpec {
    pub(crate) code: Spanned<u64>,
    #[serde(default)]
    pub(crate) reason: Option<Spanned<String>>,
}

/// What happens to a message no rule matches.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UnmatchedSpec {
    /// Nothing.
    Ignore,
    /// Send these to the sender (or as their `to:` says).
    Reply(Spanned<OneOrMany<SendSpec>>),
    /// Close the session.
    Close(Spanned<CloseSpec>),
}

/// One entry of `periodic:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeriodicSpec {
    pub(crate) every: Spanned<Millis>,
    #[serde(default)]
    pub(crate) start: Option<Spanned<StartMode>>,
    #[serde(default)]
    pub(crate) scope: Option<Spanned<Scope>>,
    #[serde(default)]
    pub(crate) endpoint: Option<Spanned<String>>,
    pub(crate) send: Spanned<OneOrMany<SendSpec>>,
}

/// When a periodic message starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StartMode {
    /// When a session opens (session scope), or the first one does (broadcast scope).
    OnConnect,
    /// When a rule's `start:` names it.
    OnMessage,
}

/// Who a periodic message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Scope {
    /// One timer per session, sent to that session.
    Session,
    /// One timer for the device, sent to every session.
    Broadcast,
}

/// One entry of `http:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    #[serde(default)]
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) method: Spanned<String>,
    pub(crate) path: Spanned<String>,
    #[serde(default)]
    pub(crate) query: Option<OrderedMap<Spanned<String>>>,
    #[serde(default)]
    pub(crate) headers: Option<OrderedMap<Spanned<String>>>,
    #[serde(default)]
    pub(crate) body: Option<Spanned<MatchSpec>>,
    #[serde(default)]
    pub(crate) status: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) response_headers: Option<OrderedMap<Spanned<String>>>,
    #[serde(default, deserialize_with = "some_tree")]
    pub(crate) json: Option<Spanned<Tree>>,
    #[serde(default)]
    pub(crate) text: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) binary: Option<Spanned<BinarySpec>>,
    #[serde(default)]
    pub(crate) set: Option<OrderedMap<Spanned<Tree>>>,
}

/// A duration in milliseconds, written in the strict grammar of [`crate::duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Millis(pub(crate) u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Millis;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\" or \"5s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
                let d = parse_strict_duration(v).map_err(E::custom)?;
                u64::try_from(d.as_millis())
                    .map(Millis)
                    .map_err(|_| E::custom(format_args!("invalid duration `{v}`: it is too long")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
                if v == 0 {
                    Ok(Millis(0))
                } else {
                    Err(E::custom(format_args!(
                        "a duration needs a unit: write \"{v}ms\" or \"{v}s\", not {v}"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format_args!(
                        "a duration cannot be negative: {v}"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Any YAML value, every node with its position (JSON bodies, state values, `equals:`).
#[derive(Debug, Clone)]
pub(crate) enum Tree {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Spanned<Tree>>),
    Object(Vec<(String, Spanned<Tree>)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
                Tree::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Number(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tree, E> {
                serde_json::Number::from_f64(v)
                    .map(Tree::Number)
                    .ok_or_else(|| E::custom(format_args!("{v} is not a JSON number")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<Tree>>()? {
                    items.push(item);
                }
                Ok(Tree::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut entries: Vec<(String, Spanned<Tree>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<Spanned<Tree>>()?;
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                    entries.push((key, value));
                }
                Ok(Tree::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

impl Tree {
    /// The plain JSON value (positions dropped).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Tree::Null => Value::Null,
            Tree::Bool(b) => Value::Bool(*b),
            Tree::Number(n) => Value::Number(n.clone()),
            Tree::String(s) => Value::String(s.clone()),
            Tree::Array(items) => Value::Array(items.iter().map(|i| i.value.to_json()).collect()),
            Tree::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// `Some(value)` for an optional field whose value may itself be `null`.
fn some_tree<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Spanned<Tree>>, D::Error> {
    Spanned::<Tree>::deserialize(d).map(Some)
}

/// A mapping that keeps the file's order and each key's position.
#[derive(Debug)]
pub(crate) struct OrderedMap<V>(pub(crate) Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Spanned<String>, V)> = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<V>()?;
                    if entries.iter().any(|(k, _)| k.value == key.value) {
                        return Err(de::Error::custom(format_args!(
                            "duplicate key `{}`",
                            key.value
                        )));
                    }
                    entries.push((key, value));
                }
                Ok(OrderedMap(entries))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// One item or a list of items. Items written as a list carry their own position; a single
/// item has [`Location::UNKNOWN`] and is reported at the enclosing value's position (serde's
/// `MapAccessDeserializer` cannot carry serde-saphyr's span).
#[derive(Debug)]
pub(crate) struct OneOrMany<T>(pub(crate) Vec<Spanned<T>>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Vis<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping or a list of mappings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<T>>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let item = T::deserialize(MapAccessDeserializer::new(map))?;
                Ok(OneOrMany(vec![Spanned::new(
                    item,
                    Location::UNKNOWN,
                    Location::UNKNOWN,
                )]))
            }
        }
        d.deserialize_any(Vis(std::marker::PhantomData))
    }
}
