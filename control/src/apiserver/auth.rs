//! Bearer-token authentication: every request except the health and version endpoints needs
//! `Authorization: Bearer <token>` with a known token, else 401 Unauthorized (a Status).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use super::http::error_response;

/// The accepted bearer tokens.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Arc<Vec<String>>,
}

/// Paths anyone may read.
fn is_public(path: &str) -> bool {
    ["/version", "/healthz", "/livez", "/readyz"]
        .iter()
        .any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    /// Accepts exactly these tokens (e.g. the admin token).
    pub fn bearer_tokens(tokens: Vec<String>) -> Self {
        Auth {
            tokens: Arc::new(tokens.into_iter().filter(|t| !t.is_empty()).collect()),
        }
    }

    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(token) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return false;
        };
        self.tokens
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    }
}

/// The axum middleware.
pub async fn require_token(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    if is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth.check(header) {
        next.run(req).await
    } else {
        error_response(&ApiError::unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_public_paths() {
        let a = Auth::bearer_tokens(vec!["s3cret".into()]);
        assert!(a.check(Some("Bearer s3cret")));
        assert!(!a.check(Some("Bearer s3cre")));
        assert!(!a.check(Some("Basic s3cret")));
        assert!(!a.check(None));
        assert!(is_public("/version") && is_public("/version/") && is_public("/readyz/ping"));
        assert!(!is_public("/versionx") && !is_public("/api"));
    }
}
