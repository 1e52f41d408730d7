//! Errors are values.
//!
//! Every failure a client can see is one variant of [`ApiError`]. The variant knows its HTTP
//! status, its `error` code from the contract, a human description and, for bearer-token
//! failures, the `WWW-Authenticate` header RFC 6750 asks for. Handlers return
//! `Result<_, ApiError>` and never build an error response by hand, so every error body has the
//! same shape: `{"error": "...", "error_description": "..."}`.
//!
//! Descriptions are written for the client: they never contain a token, a key, an internal
//! address or a stack trace.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;

/// The JSON body of every error, from every service (nginx's own errors have the same shape).
/// This type is what [`ApiError`] serializes, and what the OpenAPI document's `ErrorBody`
/// schema is derived from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "invalid_token", "error_description": "token expired"}))]
pub struct ErrorBody {
    /// The machine-readable code: `invalid_request`, `invalid_credentials`, `invalid_grant`,
    /// `invalid_token`, `invalid_session`, `insufficient_scope`, `not_found`,
    /// `method_not_allowed`, `too_many_attempts`, `payload_too_large`, `overloaded`,
    /// `store_unavailable`, `service_unavailable`, `internal_error`, or one of nginx's own
    /// (`bad_request`, `uri_too_long`, `request_header_fields_too_large`, `bad_gateway`,
    /// `gateway_timeout`).
    #[schema(pattern = "^[a-z_]+$")]
    pub error: &'static str,
    /// For a person; never a token, a key, an internal address or a stack trace.
    pub error_description: Cow<'static, str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The body is not the JSON object the route expects.
    #[error("invalid request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// Wrong username or password; deliberately the same for both.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that is bad, spent, revoked or expired.
    #[error("invalid grant: {0}")]
    InvalidGrant(Cow<'static, str>),
    /// No credentials at all on /api/: a bare `WWW-Authenticate: Bearer`.
    #[error("missing token")]
    MissingToken,
    /// A bearer token that failed verification.
    #[error("invalid token: {0}")]
    InvalidToken(Cow<'static, str>),
    /// A missing, unknown or malformed `sid` cookie on /sapi/.
    #[error("invalid session: {0}")]
    InvalidSession(Cow<'static, str>),
    /// Authenticated, but without the role the route needs. `bearer`: the caller came with a
    /// bearer token, so the 403 carries RFC 6750's `insufficient_scope` challenge (a session
    /// caller gets none: a Bearer challenge would be wrong for a cookie).
    #[error("insufficient scope: {description}")]
    InsufficientScope {
        description: Cow<'static, str>,
        bearer: bool,
    },
    #[error("not found: {0}")]
    NotFound(Cow<'static, str>),
    /// The route exists, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many attempts")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("payload too large")]
    PayloadTooLarge,
    /// More logins at once than the issuer hashes at a time: a fast "retry shortly" instead of
    /// an unbounded queue (and unbounded memory: every Argon2id hash holds its own buffer).
    #[error("overloaded")]
    Overloaded,
    /// Redis cannot be reached where it is needed: fail closed.
    #[error("store unavailable")]
    StoreUnavailable,
    /// The service cannot serve yet (keys not loaded) or is shedding load.
    #[error("service unavailable: {0}")]
    Unavailable(Cow<'static, str>),
    /// A bug or an impossible state. Logged with its detail; the client sees only the code.
    #[error("internal error: {0}")]
    Internal(Cow<'static, str>),
}

impl ApiError {
    pub fn internal(detail: impl Into<Cow<'static, str>>) -> Self {
        ApiError::Internal(detail.into())
    }

    /// A body that is not the JSON object the route expects.
    pub fn bad_body() -> Self {
        ApiError::InvalidRequest(
            "the body must be a JSON object with the route's string fields".into(),
        )
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            InvalidRequest(_) => StatusCode::BAD_REQUEST,
            InvalidCredentials | InvalidGrant(_) | MissingToken | InvalidToken(_)
            | InvalidSession(_) => StatusCode::UNAUTHORIZED,
            InsufficientScope { .. } => StatusCode::FORBIDDEN,
            NotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            StoreUnavailable | Overloaded | Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The contract's `error` code.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            InvalidRequest(_) => "invalid_request",
            InvalidCredentials => "invalid_credentials",
            InvalidGrant(_) => "invalid_grant",
            MissingToken | InvalidToken(_) => "invalid_token",
            InvalidSession(_) => "invalid_session",
            InsufficientScope { .. } => "insufficient_scope",
            NotFound(_) => "not_found",
            MethodNotAllowed => "method_not_allowed",
            TooManyAttempts { .. } => "too_many_attempts",
            PayloadTooLarge => "payload_too_large",
            StoreUnavailable => "store_unavailable",
            Overloaded => "overloaded",
            Unavailable(_) => "service_unavailable",
            Internal(_) => "internal_error",
        }
    }

    pub fn description(&self) -> Cow<'static, str> {
        use ApiError::*;
        match self {
            InvalidCredentials => "wrong username or password".into(),
            MethodNotAllowed => "this route does not take that method".into(),
            MissingToken => "no bearer token in the Authorization header".into(),
            TooManyAttempts { .. } => "too many failed attempts; retry later".into(),
            PayloadTooLarge => "the request body is larger than 64 KiB".into(),
            StoreUnavailable => "the token and session store is unreachable; retry later".into(),
            Overloaded => {
                "more logins at once than this issuer checks at a time; retry shortly".into()
            }
            Internal(_) => "internal error".into(),
            InvalidRequest(d) | InvalidGrant(d) | InvalidToken(d) | InvalidSession(d)
            | NotFound(d) | Unavailable(d) => d.clone(),
            InsufficientScope { description, .. } => description.clone(),
        }
    }

    /// The JSON body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            error_description: self.description(),
        }
    }

    /// RFC 6750 section 3: a request with no credentials gets a bare challenge; a bad token
    /// gets `error="invalid_token"`; a bearer caller without the role gets
    /// `error="insufficient_scope"` (section 3.1). Session callers get no Bearer challenge.
    pub fn www_authenticate(&self) -> Option<&'static str> {
        match self {
            ApiError::MissingToken => Some("Bearer"),
            ApiError::InvalidToken(_) => Some(r#"Bearer error="invalid_token""#),
            ApiError::InsufficientScope { bearer: true, .. } => {
                Some(r#"Bearer error="insufficient_scope""#)
            }
            _ => None,
        }
    }
}

impl ApiError {
    /// The `Retry-After` seconds this error carries, if any: every 429 and `overloaded`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::TooManyAttempts { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Overloaded => Some(1),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut response = (self.status(), axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        if let Some(challenge) = self.www_authenticate() {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            // Responses about credentials must not be cached by anything in between.
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

/// Turns axum's JSON body rejections into the contract's 400 (or 413), instead of axum's
/// plain-text defaults.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection::*;
        match rejection {
            BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge
            }
            MissingJsonContentType(_) => ApiError::InvalidRequest(
                "the body must be JSON (Content-Type: application/json)".into(),
            ),
            _ => ApiError::bad_body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(e: ApiError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn missing_token_gets_a_bare_challenge() {
        let (status, headers, body) = parts(ApiError::MissingToken).await;
        assert_eq!(status, 401);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(body["error"], "invalid_token");
    }

    #[tokio::test]
    async fn invalid_token_names_the_error_in_the_challenge() {
        let (status, headers, body) = parts(ApiError::InvalidToken("expired".into())).await;
        assert_eq!(status, 401);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        assert_eq!(body["error_description"], "expired");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_detail() {
        let (status, _, body) = parts(ApiError::internal("redis at 10.0.0.7 said X")).await;
        assert_eq!(status, 500);
        assert_eq!(body["error_description"], "internal error");
    }

    #[tokio::test]
    async fn a_bearer_caller_without_the_role_gets_the_insufficient_scope_challenge() {
        let bearer = ApiError::InsufficientScope {
            description: "needs recruiter".into(),
            bearer: true,
        };
        let (status, headers, body) = parts(bearer).await;
        assert_eq!(status, 403);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope""#
        );
        assert_eq!(body["error"], "insufficient_scope");
        let session = ApiError::InsufficientScope {
            description: "needs recruiter".into(),
            bearer: false,
        };
        let (_, headers, _) = parts(session).await;
        assert!(headers.get(header::WWW_AUTHENTICATE).is_none());
    }

    #[tokio::test]
    async fn overloaded_is_a_503_with_retry_after() {
        let (status, headers, body) = parts(ApiError::Overloaded).await;
        assert_eq!(status, 503);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert_eq!(body["error"], "overloaded");
    }

    #[tokio::test]
    async fn too_many_attempts_says_when_to_retry() {
        let (status, headers, _) = parts(ApiError::TooManyAttempts {
            retry_after_secs: 42,
        })
        .await;
        assert_eq!(status, 429);
        assert_eq!(headers[header::RETRY_AFTER], "42");
    }
}
