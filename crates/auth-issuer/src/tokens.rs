//! Minting a token pair: a short-lived access token and a long-lived refresh token.
//!
//! Both are RS256 JWTs signed with the issuer's key. The access token is what replicas check on
//! every request, by themselves; the refresh token comes back only to this issuer, to be
//! exchanged (once) for the next pair. A login starts a new refresh-token *family*; each refresh
//! passes the family on to the successor, so a reused token can revoke the whole line.

use crate::state::AppState;
use crate::users::User;
use auth_core::claims::{ACCESS_TYP, AccessClaims, REFRESH_TYP, RefreshClaims};
use auth_core::error::ApiError;
use auth_core::sign::sign_jwt;
use auth_core::{now_secs, random_id};
use serde::{Deserialize, Serialize};

/// The contract's token pair body.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

/// A fresh pair for `user` in refresh-token family `family`.
pub fn mint_pair(state: &AppState, user: &User, family: &str) -> Result<TokenPair, ApiError> {
    let config = &state.config;
    let now = now_secs();
    let access = AccessClaims {
        iss: config.issuer.clone(),
        sub: user.username.clone(),
        aud: config.audience.clone(),
        exp: now + config.access_ttl,
        iat: now,
        nbf: now,
        jti: random_id(16)?,
        client_id: config.client_id.clone(),
        name: user.name.clone(),
        roles: user.roles.clone(),
    };
    let refresh = RefreshClaims {
        iss: config.issuer.clone(),
        sub: user.username.clone(),
        aud: config.issuer.clone(),
        exp: now + config.refresh_ttl,
        iat: now,
        jti: random_id(16)?,
        fam: family.to_owned(),
    };
    let keyring = state.keyring();
    let key = &keyring.signing;
    let pair = TokenPair {
        access_token: sign_jwt(key, ACCESS_TYP, &access)?,
        token_type: "Bearer".into(),
        expires_in: config.access_ttl,
        refresh_token: sign_jwt(key, REFRESH_TYP, &refresh)?,
        refresh_expires_in: config.refresh_ttl,
    };
    state.metrics.access_issued.inc();
    state.metrics.refresh_issued.inc();
    Ok(pair)
}

/// A new family id: 128 random bits.
pub fn new_family() -> Result<String, ApiError> {
    random_id(16)
}
