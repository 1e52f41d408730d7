//! `POST /auth/refresh`: exchange a refresh token, once, for a new pair (rotation).

use crate::client_addr::{self, ClientAddr};
use crate::families::{Decision, Families};
use crate::state::IssuerState;
use crate::tokens::{TokenPair, mint_pair, new_id};
use auth_core::claims::RefreshClaims;
use auth_core::error::ApiError;
use auth_core::verify::verify_refresh;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;

/// The body of `/auth/refresh` and `/auth/logout`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

auth_core::errors!(
    /// How refresh and logout fail.
    GrantErrors:
    ApiError::bad_body(),
    ApiError::InvalidGrant("refresh token already used; every token of this login is now revoked".into()),
    ApiError::PayloadTooLarge,
    ApiError::StoreUnavailable,
);

/// Exchange a refresh token, once, for a new pair (rotation; a reused token revokes its family).
#[utoipa::path(
    post,
    path = "/auth/refresh",
    operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, response = inline(TokenPair)),
        GrantErrors,
    ),
)]
pub async fn refresh(
    State(state): State<IssuerState>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<TokenPair, ApiError> {
    let Json(request) = body?;
    let claims = verify_refresh_token(&state, &request.refresh_token)?;
    // Name and roles come from the user record now, not from the old token: a role removed since
    // the login is gone from the next access token.
    let user = state
        .users
        .get(&claims.sub)
        .ok_or_else(|| ApiError::InvalidGrant("the user no longer exists".into()))?;

    let families = Families::new(&state.store, state.family_rules());
    let who = client_addr::bucket(addr);
    let successor = match families
        .rotate(&claims.fam, &claims.jti, &new_id()?, &who)
        .await?
    {
        Decision::Rotated(next) => {
            state.metrics.refreshes.inc();
            next
        }
        Decision::Again(next) => next,
        Decision::Reused => {
            state.metrics.reuse_detected.inc();
            tracing::warn!(user = %claims.sub, family = %claims.fam, "refresh token reuse: family revoked");
            return Err(ApiError::InvalidGrant(
                "refresh token already used; every token of this login is now revoked".into(),
            ));
        }
        Decision::Revoked => {
            return Err(ApiError::InvalidGrant("refresh token revoked".into()));
        }
        Decision::Ended => {
            return Err(ApiError::InvalidGrant(
                "this login has reached its maximum lifetime; log in again".into(),
            ));
        }
        Decision::Unknown => {
            return Err(ApiError::InvalidGrant(
                "this login is not on record (it ended, or the store lost it); log in again".into(),
            ));
        }
    };
    let pair = mint_pair(&state, user, &claims.fam, &successor)?;
    // From here the answer exists: a retry of this refresh is reuse, not a lost answer.
    families.answered(&claims.fam, &successor.jti).await?;
    Ok(pair)
}

/// Signature (HS256 with a trusted HMAC key, or RS256 for a token issued before HS256), `typ`
/// `rt+jwt`, `iss`, `aud` (the issuer itself) and expiry; any failure is the contract's
/// `invalid_grant`.
pub fn verify_refresh_token(state: &IssuerState, token: &str) -> Result<RefreshClaims, ApiError> {
    verify_refresh::<RefreshClaims>(token, &state.keyring().refresh_keys, &state.refresh_rules)
        .map_err(|rejection| ApiError::InvalidGrant(rejection.to_string().into()))
}
