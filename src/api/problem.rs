//! RFC 9457 problem details: every error the API returns.
//!
//! Clients get a stable `code`, the offending `param` and a human `detail`. A 500 carries only
//! the request's id (the one in its `x-request-id` header); what went wrong goes to the log
//! under that id, never to the client (it may name paths or hosts).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::query::QueryError;
use crate::stats::StatsError;
use crate::store::StoreError;
use crate::telemetry;

tokio::task_local! {
    /// The id of the request being answered, set by the request logger around each handler.
    static REQUEST_ID: String;
}

/// Runs `future` as the request `id`.
pub(super) async fn scope_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// The id of the request being answered on this task, if any.
pub(super) fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(String::clone).ok()
}

/// Runs `f` (on a blocking thread) as the request `id`, so its errors carry the same id.
pub(super) fn with_request_id<T>(id: Option<String>, f: impl FnOnce() -> T) -> T {
    match id {
        Some(id) => REQUEST_ID.sync_scope(id, f),
        None => f(),
    }
}

/// An error, as RFC 9457 problem details.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    code: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'static str>,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        detail: &str,
        param: Option<&'static str>,
    ) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            code,
            detail: detail.to_string(),
            param,
        }
    }

    pub fn bad_request(code: &'static str, detail: String, param: &'static str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, &detail, Some(param))
    }

    /// A request the document admits that names something the server cannot serve: a day that
    /// does not exist, a range whose start is not before its end, a symbol not in the load.
    pub fn unprocessable(code: &'static str, detail: String, param: &'static str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, &detail, Some(param))
    }

    /// An unexpected failure: logged with the request's id, answered with the id only.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        let id = current_request_id().unwrap_or_else(request_id);
        tracing::error!(request_id = %id, error = %error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &format!("internal error; request id {id}"),
            None,
        )
    }

    /// What a handler that panicked answers: a 500 like any internal error, logged with the
    /// request id and the panic's message (the panic hook has logged where it happened).
    pub(super) fn from_panic(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
        let what = telemetry::panic_message(payload.as_ref());
        Self::internal(&format_args!("a handler panicked: {what}")).into_response()
    }

    /// Reads of a store whose load is not complete: what it holds is not the data yet.
    pub fn incomplete() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "load_incomplete",
            "the stored load is incomplete: a load is writing it or was interrupted; reads answer once it has finished",
            None,
        )
    }

    pub fn from_store(e: &StoreError) -> Self {
        match e {
            StoreError::Empty(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_data",
                "no load has been stored yet",
                None,
            ),
            StoreError::Missing(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_missing",
                "the store's bucket, database or directory does not exist yet",
                None,
            ),
            StoreError::Unavailable(_) => {
                // Logged for the operator; the client learns only that the store is down.
                tracing::warn!(error = %telemetry::chain(e), "store unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store is not reachable; try again later",
                    None,
                )
            }
            e => Self::internal(&telemetry::chain(e)),
        }
    }

    pub fn from_query(e: &QueryError) -> Self {
        match e {
            QueryError::Store(s) => Self::from_store(s),
            // Parameters were validated before the query ran; anything left is ours.
            e => Self::internal(e),
        }
    }
}

impl Problem {
    pub fn from_stats(e: &StatsError) -> Self {
        match e {
            StatsError::Store(s) => Self::from_store(s),
            e @ StatsError::UnknownSymbol { .. } => {
                Self::unprocessable("unknown_symbol", e.to_string(), "symbols")
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // Strings and numbers: serialising cannot fail.
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

/// A unique id for correlating a 500 with its log line.
pub(super) fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016x}",
        crate::generator::seeds::mix(nanos ^ n.rotate_left(32))
    )
}
