//! Reading a [`Fault`]: a bare string for a connect fault, otherwise a map whose first key
//! names the category (`handshake`, `stream`, `ws`, `dns`, `device`) and whose value names the
//! kind; the rest of the map is that kind's parameters. Hand-written so that an error names
//! what was expected at that key (and, for a misplaced kind, the category it belongs to).

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::*;

/// A kind that takes no parameters: the rest of the map must be empty.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

fn rest<'de, T: Deserialize<'de>, A: MapAccess<'de>>(map: A) -> Result<T, A::Error> {
    T::deserialize(MapAccessDeserializer::new(map))
}

fn none<'de, A: MapAccess<'de>>(map: A) -> Result<(), A::Error> {
    rest::<NoParams, A>(map).map(|_| ())
}

macro_rules! kinds {
    ($(#[$m:meta])* $name:ident { $($v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum $name { $($v),* }
    };
}

kinds!(
    /// Handshake kinds as written.
    HandshakeKind { Reset, Close, Status, BadAccept, MissingUpgradeHeader, Delay, SilentClose }
);
kinds!(
    /// Stream kinds as written.
    StreamKind { Latency, Bandwidth, Slicer, LimitData, ResetPeer, Timeout, SlowClose, HalfOpen }
);
kinds!(
    /// WebSocket kinds as written.
    WsKind { Close, Drop, Duplicate, Delay, SuppressPong, Corrupt, Oversize, Garbage, LruPurge }
);
kinds!(
    /// DNS kinds as written.
    DnsKind { Nxdomain, Servfail, Refused, NoReply, WrongAddress, Delay }
);
kinds!(
    /// Device kinds as written.
    DeviceKind { Internet, Reboot, ApDown, SocketExhaustion }
);

/// Names a bare string that needs a category, for a helpful error.
fn category_hint(name: &str) -> Option<&'static str> {
    Some(match name {
        "bad_accept" | "missing_upgrade_header" | "silent_close" => "handshake",
        "latency" | "bandwidth" | "slicer" | "limit_data" | "reset_peer" | "timeout"
        | "slow_close" | "half_open" => "stream",
        "drop" | "duplicate" | "suppress_pong" | "corrupt" | "oversize" | "garbage"
        | "lru_purge" => "ws",
        "nxdomain" | "servfail" | "refused" | "no_reply" | "wrong_address" => "dns",
        "internet" | "reboot" | "ap_down" | "socket_exhaustion" => "device",
        _ => return None,
    })
}

const CATEGORIES: &[&str] = &["connect", "handshake", "stream", "ws", "dns", "device"];
const CONNECT: &[&str] = &["refuse", "reset_on_accept", "close_on_accept", "stall"];

struct FaultVisitor;

impl<'de> Visitor<'de> for FaultVisitor {
    type Value = Fault;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a connect fault (refuse, reset_on_accept, close_on_accept, stall) or a map whose \
             first key is a category: handshake, stream, ws, dns, device",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Fault, E> {
        let connect = match v {
            "refuse" => ConnectFault::Refuse,
            "reset_on_accept" => ConnectFault::ResetOnAccept,
            "close_on_accept" => ConnectFault::CloseOnAccept,
            "stall" => ConnectFault::Stall,
            other => {
                return Err(match category_hint(other) {
                    Some(cat) => E::custom(format_args!(
                        "`{other}` needs its category: write `{{ {cat}: {other} }}`"
                    )),
                    None => E::unknown_variant(other, CONNECT),
                });
            }
        };
        Ok(Fault::Connect(connect))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fault, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty fault: write e.g. `refuse` or `{ dns: nxdomain }`",
            ));
        };
        if CATEGORIES.contains(&first.as_str()) {
            // The written form: the category comes first, so the parameters stream straight
            // into their typed struct and errors keep their line and column.
            return from_category(&first, map);
        }
        // The category is further down (e.g. a JSON object whose keys were sorted): buffer
        // the entries, then read them with the category first.
        let mut entries = serde_json::Map::new();
        entries.insert(first.clone(), map.next_value::<serde_json::Value>()?);
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value::<serde_json::Value>()?;
            if entries.insert(k.clone(), v).is_some() {
                return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
            }
        }
        let found: Vec<&str> = CATEGORIES
            .iter()
            .copied()
            .filter(|c| entries.contains_key(*c))
            .collect();
        let category = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(
                    match category_hint(&first)
                        .or(CONNECT.contains(&first.as_str()).then_some("connect"))
                    {
                        Some(cat) => de::Error::custom(format_args!(
                            "a fault map needs its category key: write `{{ {cat}: {first}, … }}`"
                        )),
                        None => de::Error::custom(format_args!(
                            "a fault map needs one category key ({}); found `{first}`",
                            CATEGORIES.join(", ")
                        )),
                    },
                );
            }
            [a, b, ..] => {
                return Err(de::Error::custom(format_args!(
                    "a fault has one category, found both `{a}` and `{b}`"
                )));
            }
        };
        let kind = entries.remove(category).unwrap_or_default();
        let ordered = std::iter::once((category.to_owned(), kind)).chain(entries);
        let mut buffered = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(ordered);
        let result = buffered
            .next_key::<String>()
            .and_then(|_| from_category(category, buffered));
        result.map_err(de::Error::custom)
    }
}

/// Reads a fault whose category key `category` was just read from `map`.
fn from_category<'de, A: MapAccess<'de>>(category: &str, mut map: A) -> Result<Fault, A::Error> {
    Ok(match category {
        "connect" => {
            let f: ConnectFault = map.next_value()?;
            none(map)?;
            Fault::Connect(f)
        }
        "handshake" => Fault::Handshake(match map.next_value::<HandshakeKind>()? {
            HandshakeKind::Reset => HandshakeFault::Reset(rest(map)?),
            HandshakeKind::Close => HandshakeFault::Close(rest(map)?),
            HandshakeKind::Status => HandshakeFault::Status(rest(map)?),
            HandshakeKind::BadAccept => none(map).map(|()| HandshakeFault::BadAccept)?,
            HandshakeKind::MissingUpgradeHeader => {
                none(map).map(|()| HandshakeFault::MissingUpgradeHeader)?
            }
            HandshakeKind::Delay => HandshakeFault::Delay(rest(map)?),
            HandshakeKind::SilentClose => none(map).map(|()| HandshakeFault::SilentClose)?,
        }),
        "stream" => Fault::Stream(match map.next_value::<StreamKind>()? {
            StreamKind::Latency => StreamFault::Latency(rest(map)?),
            StreamKind::Bandwidth => StreamFault::Bandwidth(rest(map)?),
            StreamKind::Slicer => StreamFault::Slicer(rest(map)?),
            StreamKind::LimitData => StreamFault::LimitData(rest(map)?),
            StreamKind::ResetPeer => StreamFault::ResetPeer(rest(map)?),
            StreamKind::Timeout => StreamFault::Timeout(rest(map)?),
            StreamKind::SlowClose => StreamFault::SlowClose(rest(map)?),
            StreamKind::HalfOpen => none(map).map(|()| StreamFault::HalfOpen)?,
        }),
        "ws" => Fault::Ws(match map.next_value::<WsKind>()? {
            WsKind::Close => WsFault::Close(rest(map)?),
            WsKind::Drop => WsFault::Drop(rest(map)?),
            WsKind::Duplicate => WsFault::Duplicate(rest(map)?),
            WsKind::Delay => WsFault::Delay(rest(map)?),
            WsKind::SuppressPong => WsFault::SuppressPong(rest(map)?),
            WsKind::Corrupt => WsFault::Corrupt(rest(map)?),
            WsKind::Oversize => WsFault::Oversize(rest(map)?),
            WsKind::Garbage => none(map).map(|()| WsFault::Garbage)?,
            WsKind::LruPurge => none(map).map(|()| WsFault::LruPurge)?,
        }),
        "dns" => Fault::Dns(match map.next_value::<DnsKind>()? {
            DnsKind::Nxdomain => none(map).map(|()| DnsFault::Nxdomain)?,
            DnsKind::Servfail => none(map).map(|()| DnsFault::Servfail)?,
            DnsKind::Refused => none(map).map(|()| DnsFault::Refused)?,
            DnsKind::NoReply => none(map).map(|()| DnsFault::NoReply)?,
            DnsKind::WrongAddress => DnsFault::WrongAddress(rest(map)?),
            DnsKind::Delay => DnsFault::Delay(rest(map)?),
        }),
        "device" => Fault::Device(match map.next_value::<DeviceKind>()? {
            DeviceKind::Internet => DeviceFault::Internet(rest(map)?),
            DeviceKind::Reboot => DeviceFault::Reboot(rest(map)?),
            DeviceKind::ApDown => DeviceFault::ApDown(rest(map)?),
            DeviceKind::SocketExhaustion => DeviceFault::SocketExhaustion(rest(map)?),
        }),
        other => {
            return Err(de::Error::unknown_variant(other, CATEGORIES));
        }
    })
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fault, D::Error> {
        d.deserialize_any(FaultVisitor)
    }
}
