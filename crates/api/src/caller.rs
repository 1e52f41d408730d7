//! One identity, two ways to get it.
//!
//! Handlers take an [`Auth`] extractor and get a [`Caller`] (sub, name, roles). How the caller was
//! established depends on the replica's mode, and the handlers never know which:
//!
//! - **jwt**: the `Authorization: Bearer` token is verified here, with the public keys held in
//!   memory. No network, no shared state: CPU only.
//! - **session**: the `sid` cookie is looked up in Redis with one small script
//!   (`auth_core::session::READ`) that also slides the session's idle timeout forward, never past
//!   its absolute cap. One network round trip to a store every replica shares.
//!
//! That is the whole difference the load test measures.

use crate::state::{Authenticator, ReplicaState};
use auth_core::claims::Caller;
use auth_core::error::ApiError;
use auth_core::session::{self, SessionRecord};
use auth_core::store::Store;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

impl FromRequestParts<ReplicaState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ReplicaState) -> Result<Self, ApiError> {
        let caller = match &state.auth {
            Authenticator::Jwt(keys) => {
                let token = bearer_token(parts)?;
                state.credentials_checked.inc();
                // Without keys every token would look forged. Say "not ready" instead (503), so
                // nginx retries the request on a replica that has its keys.
                if !keys.is_loaded() {
                    return Err(ApiError::Unavailable(
                        "verification keys not loaded yet".into(),
                    ));
                }
                let claims = keys
                    .verify(token)
                    .await
                    .map_err(|rejection| ApiError::InvalidToken(rejection.to_string().into()))?;
                Caller::from(claims)
            }
            Authenticator::Session { store, idle_ttl } => {
                let id = session::id_from_headers(&parts.headers)?;
                state.credentials_checked.inc();
                look_up_session(store, id, *idle_ttl).await?
            }
        };
        Ok(Auth(caller))
    }
}

/// The token from `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 7235).
/// No header, or another scheme, means no credentials: RFC 6750's bare challenge.
fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::MissingToken)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::InvalidToken("the bearer token is empty".into()));
    }
    Ok(token)
}

/// One round trip: read the session and push its idle expiry forward, never past its cap (a
/// session past its cap is deleted by the same script).
async fn look_up_session(store: &Store, id: &str, idle_ttl: u64) -> Result<Caller, ApiError> {
    let now = auth_core::now_secs();
    let value: Option<String> = store
        .eval(session::READ.key(session::key(id)).arg(now).arg(idle_ttl))
        .await?;
    let value =
        value.ok_or_else(|| ApiError::InvalidSession("unknown or expired session".into()))?;
    let record: SessionRecord = serde_json::from_str(&value)
        .map_err(|_| ApiError::internal("unreadable session record"))?;
    if record.expires_at <= now {
        return Err(ApiError::InvalidSession(
            "the session has reached its maximum age".into(),
        ));
    }
    Ok(record.into_caller())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(header: (&str, &str)) -> Parts {
        Request::builder()
            .header(header.0, header.1)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(
            bearer_token(&parts(("authorization", "bearer abc"))).unwrap(),
            "abc"
        );
        assert_eq!(
            bearer_token(&parts(("authorization", "Bearer abc"))).unwrap(),
            "abc"
        );
    }

    #[test]
    fn other_schemes_count_as_no_credentials() {
        let err = bearer_token(&parts(("authorization", "Basic YTpi"))).unwrap_err();
        assert_eq!(err, ApiError::MissingToken);
        let none = Request::builder().body(()).unwrap().into_parts().0;
        assert_eq!(bearer_token(&none).unwrap_err(), ApiError::MissingToken);
        let empty = bearer_token(&parts(("authorization", "Bearer  "))).unwrap_err();
        assert!(matches!(empty, ApiError::InvalidToken(_)));
    }
}
