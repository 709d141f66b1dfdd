//! Handshake faults: the HTTP → WebSocket upgrade goes wrong (`{ handshake: … }`).

use schemars::JsonSchema;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};

use super::DelayParams;

/// Handshake faults, decided when an HTTP upgrade request to the WebSocket path has been read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(tag = "handshake", rename_all = "snake_case")]
pub enum HandshakeFault {
    /// Abort the connection with RST (SO_LINGER 0) at the given point.
    Reset(HandshakeCut),
    /// Close the connection with FIN at the given point.
    Close(HandshakeCut),
    /// Answer with this HTTP status instead of `101 Switching Protocols`.
    Status(HandshakeStatus),
    /// Answer `101` with a wrong `Sec-WebSocket-Accept` value.
    BadAccept,
    /// Answer `101` without the `Upgrade: websocket` header.
    MissingUpgradeHeader,
    /// Wait this long before answering the upgrade.
    Delay(DelayParams),
    /// Close without any response, as ESP-IDF does on a bad `Sec-WebSocket-Version` or key.
    SilentClose,
}

/// Where a handshake is cut. Written flat: `at: after_request` or `at: mid_response, bytes: 20`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "HandshakeCutRepr", into = "HandshakeCutRepr")]
#[schemars(with = "HandshakeCutRepr")]
pub struct HandshakeCut {
    /// The point of the cut.
    pub at: CutPoint,
}

/// The point in the upgrade exchange where the connection is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// After the request was read, before any response byte.
    AfterRequest,
    /// After the first `bytes` bytes of the `101` response were written.
    MidResponse {
        /// How many bytes of the response the app receives before the cut.
        bytes: usize,
    },
}

/// Written form of a [`HandshakeCut`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HandshakeCutRepr {
    /// `after_request` (nothing of the response is sent) or `mid_response` (`bytes` of it are).
    at: CutPointName,
    /// With `at: mid_response`: how many bytes of the `101` response are written before the cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<usize>,
}

/// Name of a [`CutPoint`] as written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum CutPointName {
    /// After the request, before any response byte.
    AfterRequest,
    /// Part-way through the `101` response.
    MidResponse,
}

impl TryFrom<HandshakeCutRepr> for HandshakeCut {
    type Error = String;

    fn try_from(r: HandshakeCutRepr) -> Result<Self, String> {
        let at = match (r.at, r.bytes) {
            (CutPointName::AfterRequest, None) => CutPoint::AfterRequest,
            (CutPointName::AfterRequest, Some(_)) => {
                return Err("`bytes` only applies to `at: mid_response`".into());
            }
            (CutPointName::MidResponse, Some(bytes)) => CutPoint::MidResponse { bytes },
            (CutPointName::MidResponse, None) => {
                return Err(
                    "`at: mid_response` needs `bytes` (how much of the 101 response is sent)"
                        .into(),
                );
            }
        };
        Ok(HandshakeCut { at })
    }
}

impl From<HandshakeCut> for HandshakeCutRepr {
    fn from(c: HandshakeCut) -> Self {
        match c.at {
            CutPoint::AfterRequest => HandshakeCutRepr {
                at: CutPointName::AfterRequest,
                bytes: None,
            },
            CutPoint::MidResponse { bytes } => HandshakeCutRepr {
                at: CutPointName::MidResponse,
                bytes: Some(bytes),
            },
        }
    }
}

/// Parameters of `{ handshake: status }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandshakeStatus {
    /// The HTTP status code sent instead of 101, e.g. 503, 426, 431 (100–599, not 101).
    #[serde(deserialize_with = "status_code")]
    #[schemars(range(min = 100, max = 599))]
    pub code: u16,
    /// Response body; when absent the device profile's error page for that status is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let code = u16::deserialize(d)?;
    if code == 101 {
        Err(de::Error::custom(
            "status 101 is a successful upgrade, not a fault: use 100-599 except 101",
        ))
    } else if !(100..=599).contains(&code) {
        Err(de::Error::custom(format_args!(
            "status {code} is not an HTTP status (100-599)"
        )))
    } else {
        Ok(code)
    }
}
