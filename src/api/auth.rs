//! Who may use the API. With a token set, the routes that change state (starting and
//! stopping loads, which with `replace` deletes the stored data) and `/api/config` need
//! `Authorization: Bearer <token>`; with [`AuthScope::All`], every route but `/health` does.
//! Without a token nothing is checked, which `ohlcv serve` allows only on a loopback address
//! unless told otherwise (`config::ServeArgs::auth`).
//!
//! The check is a middleware on the protected routes only, so the read path carries no cost
//! unless reads are protected too.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Problem;
use crate::secret::Secret;

/// Which routes need the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthScope {
    /// Routes that change state, and `/api/config`.
    #[default]
    Writes,
    /// Every route but `/health`.
    All,
}

/// The API's access policy.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    token: Option<Secret>,
    scope: AuthScope,
}

impl Auth {
    /// Every route open: the default on a loopback address.
    pub fn open() -> Self {
        Self::default()
    }

    /// Routes in `scope` need `token`.
    pub fn token(token: Secret, scope: AuthScope) -> Self {
        Self {
            token: Some(token),
            scope,
        }
    }

    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    /// Whether routes that only read need the token.
    pub(super) fn protects_reads(&self) -> bool {
        self.token.is_some() && self.scope == AuthScope::All
    }

    fn admits(&self, header: Option<&HeaderValue>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
        header
            .and_then(|v| v.as_bytes().split_first_chunk::<7>())
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .is_some_and(|(_, presented)| token.matches(presented))
    }
}

/// Lets a request with the token through; answers any other 401 with `WWW-Authenticate`
/// (RFC 6750) and a problem document that says how to authenticate, never what was sent.
pub(super) async fn require_token(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(header::AUTHORIZATION);
    if auth.admits(header) {
        return next.run(request).await;
    }
    let (challenge, detail) = if header.is_none() {
        (
            r#"Bearer realm="ohlcv""#,
            "this route needs Authorization: Bearer <token>",
        )
    } else {
        (
            r#"Bearer realm="ohlcv", error="invalid_token""#,
            "the bearer token is not valid",
        )
    };
    let mut response =
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail, None).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let auth = Auth::token(Secret::new("t0ken"), AuthScope::Writes);
        let admits = |v: &str| auth.admits(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(admits("Bearer t0ken"));
        assert!(admits("bearer t0ken"));
        for wrong in [
            "Bearer t0ke",
            "Bearer t0ken2",
            "bearer",
            "Token t0ken",
            "t0ken",
        ] {
            assert!(!admits(wrong), "{wrong}");
        }
        assert!(!auth.admits(None));
        assert!(Auth::open().admits(None));
        assert!(!auth.protects_reads());
        assert!(Auth::token(Secret::new("t"), AuthScope::All).protects_reads());
        assert!(!Auth::open().protects_reads());
    }
}
