//! `POST /auth/refresh`: exchange a refresh token, once, for a new pair (rotation).

use crate::denylist::{Denylist, Spend};
use crate::state::AppState;
use crate::tokens::{TokenPair, mint_pair};
use auth_core::claims::RefreshClaims;
use auth_core::error::ApiError;
use auth_core::verify::verify;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

pub async fn refresh(
    State(state): State<AppState>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let Json(request) = body?;
    let claims = verify_refresh_token(&state, &request.refresh_token)?;

    let denylist = Denylist::new(
        &state.store,
        state.config.refresh_ttl,
        state.config.refresh_grace_ms,
    );
    match denylist.spend(&claims).await? {
        Spend::Fresh => {}
        Spend::Duplicate => return duplicate(&denylist, &claims).await,
        Spend::Reused => {
            state.metrics.reuse_detected.inc();
            tracing::warn!(user = %claims.sub, family = %claims.fam, "refresh token reuse: family revoked");
            return Err(ApiError::InvalidGrant(
                "refresh token already used; every token of this login is now revoked".into(),
            ));
        }
        Spend::Revoked => {
            return Err(ApiError::InvalidGrant("refresh token revoked".into()));
        }
    }

    // Name and roles come from the user record now, not from the old token: a role removed since
    // the login is gone from the next access token.
    let user = state
        .users
        .get(&claims.sub)
        .ok_or_else(|| ApiError::InvalidGrant("the user no longer exists".into()))?;
    let pair = mint_pair(&state, user, &claims.fam)?;
    if state.config.refresh_grace_ms > 0 {
        let json = serde_json::to_string(&pair).map_err(|_| ApiError::internal("pair encoding"))?;
        denylist.remember_successor(&claims, &json).await?;
    }
    state.metrics.refreshes.inc();
    Ok(Json(pair))
}

/// A duplicate within the grace window gets the pair the first refresh produced.
async fn duplicate(
    denylist: &Denylist<'_>,
    claims: &RefreshClaims,
) -> Result<Json<TokenPair>, ApiError> {
    let json = denylist
        .successor(claims)
        .await?
        .ok_or_else(|| ApiError::InvalidGrant("refresh token already used".into()))?;
    let pair =
        serde_json::from_str(&json).map_err(|_| ApiError::internal("stored pair unreadable"))?;
    Ok(Json(pair))
}

/// Signature, `typ` `rt+jwt`, `iss`, `aud` (the issuer itself) and expiry; any failure is the
/// contract's `invalid_grant`.
pub fn verify_refresh_token(state: &AppState, token: &str) -> Result<RefreshClaims, ApiError> {
    verify::<RefreshClaims>(token, &state.keyring().refresh_keys, &state.refresh_rules)
        .map_err(|rejection| ApiError::InvalidGrant(rejection.to_string().into()))
}
