//! The API's one error shape ([`ErrorBody`]) with its status, as an axum response.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::api::{ErrorBody, ErrorCode};

/// An error answer: a status and the [`ErrorBody`] the client reads.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl ApiError {
    /// An error without a position; its code follows from `status`.
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                code: ErrorCode::for_status(status.as_u16()),
                line: None,
                column: None,
                reason: None,
            },
        }
    }

    /// A more specific code than the status gives.
    pub(crate) fn code(mut self, code: ErrorCode) -> Self {
        self.body.code = code;
        self
    }

    /// Points the error at a place in the request body; `reason` is the problem without the
    /// position (what `error` says after it).
    pub(crate) fn at(mut self, line: Option<u64>, column: Option<u64>, reason: String) -> Self {
        self.body.line = line;
        self.body.column = column;
        self.body.reason = Some(reason);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}
