//! The endpoints: each handler reads or changes the running emulator and answers JSON.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use espsim_faults::RuleId;

use super::ControlState;
use super::api::{
    Added, ClockStart, ClockView, InternetChanged, Pressed, ResetDone, RuleEntry, SetInternet,
    StateView,
};
use super::error::ApiError;
use super::rules::{self, Format, RulesInput};
use super::{device, event_stream};
use crate::events::EventKind;

type St = State<Arc<ControlState>>;

/// Every route, with the shared state.
pub(crate) fn routes(state: Arc<ControlState>) -> Router {
    Router::new()
        .route("/faults", get(list_faults).post(add_faults))
        .route("/faults/{id}", delete(remove_fault))
        .route("/reset", post(reset))
        .route("/state", get(state_of))
        .route("/internet", put(set_internet))
        .route("/button", post(button))
        .route("/clock", get(clock))
        .route("/clock/start", post(start_clock))
        .route("/events", get(events))
        .route("/send", post(device::send))
        .route(
            "/device/state",
            get(device::get_state).patch(device::patch_state),
        )
        .with_state(state)
}

async fn list_faults(State(st): St) -> Json<Vec<RuleEntry>> {
    Json(entries(st.target.faults.rules()))
}

fn entries(rules: Vec<espsim_faults::ListedRule>) -> Vec<RuleEntry> {
    rules.into_iter().map(RuleEntry::from).collect()
}

async fn add_faults(State(st): St, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let input = rules::parse(&body, Format::of(&headers)?)?;
    let RulesInput { rules: new, list } = input;
    rules::validate(&new, list)?;
    // All or nothing: a list that does not fit the plan's rule limit adds none.
    let ids = st
        .target
        .faults
        .add_all(new.clone())
        .map_err(rules::add_error)?;
    let mut added = Vec::with_capacity(new.len());
    for (id, rule) in ids.into_iter().zip(new) {
        tracing::info!(rule = %id, "fault rule added through the control API");
        added.push(RuleEntry { id, rule });
    }
    let body = match (list, added.pop()) {
        (false, Some(one)) => Added::One(Box::new(one)),
        (_, last) => {
            added.extend(last);
            Added::Many(added)
        }
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn remove_fault(State(st): St, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("rule id must be a number (see GET /faults), got `{id}`"),
        )
    })?;
    match st.target.faults.remove(RuleId(id)) {
        Some(_) => {
            tracing::info!(rule = id, "fault rule removed through the control API");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no fault rule with id {id}"),
        )),
    }
}

async fn reset(State(st): St) -> Json<ResetDone> {
    let removed = st.target.faults.rules().len();
    st.target.faults.reset();
    st.target.internet.set(st.start_internet);
    tracing::info!(removed, "fault plan reset through the control API");
    Json(ResetDone {
        removed,
        internet: st.start_internet,
    })
}

async fn state_of(State(st): St) -> Json<StateView> {
    let s = &st.target;
    Json(StateView {
        seed: s.faults.seed(),
        uptime_ms: u64::try_from(s.events.elapsed().as_millis()).unwrap_or(u64::MAX),
        profile: s.profile.name.to_owned(),
        internet: s.internet.get(),
        start_internet: st.start_internet,
        sessions: s.device.session_count(),
        rules: entries(s.faults.rules()),
    })
}

async fn set_internet(State(st): St, body: Bytes) -> Result<Json<InternetChanged>, ApiError> {
    // Always JSON, whatever the Content-Type says (curl -d sends a form type by default).
    let SetInternet { mode } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("expected {{\"mode\": \"online\" | \"captive\" | \"offline\"}}: {e}"),
        )
        .at(
            Some(e.line() as u64),
            Some(e.column() as u64),
            e.to_string(),
        )
    })?;
    let from = st.target.internet.get();
    st.target.internet.set(mode);
    Ok(Json(InternetChanged { from, mode }))
}

async fn button(State(st): St) -> Json<Pressed> {
    st.target.events.emit(EventKind::DeviceAction {
        action: "button".to_owned(),
        detail: "pressed through the control API".to_owned(),
    });
    st.target.device.press_button();
    Json(Pressed {
        pressed: true,
        sessions: st.target.device.session_count(),
    })
}

async fn clock(State(st): St) -> Json<ClockView> {
    Json(ClockView {
        started_at_ms: st.target.faults.clock_origin().map(millis),
    })
}

/// Idempotent: a second start changes nothing and records no second `clock_started`.
async fn start_clock(State(st): St) -> Json<ClockStart> {
    let started = crate::start_run_clock(&st.target.faults, &st.target.events, "control api");
    let at = st.target.faults.clock_origin().unwrap_or_default();
    Json(ClockStart {
        started,
        at_ms: millis(at),
    })
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

async fn events(State(st): St, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let from = from_param(query.as_deref())?;
    let stream = event_stream::stream(st.target.events.clone(), from, st.cancel.clone());
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `from=SEQ` from the query string; absent = the whole history.
fn from_param(query: Option<&str>) -> Result<u64, ApiError> {
    let mut from = 0;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "from" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("unknown query parameter `{key}` (only `from=SEQ`)"),
            ));
        }
        from = value.parse().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`from` must be an event sequence number, got `{value}`"),
            )
        })?;
    }
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_parameter_is_a_sequence_number() {
        assert_eq!(from_param(None).ok(), Some(0));
        assert_eq!(from_param(Some("from=12")).ok(), Some(12));
        assert!(from_param(Some("from=x")).is_err());
        assert!(from_param(Some("since=3")).is_err());
    }
}
