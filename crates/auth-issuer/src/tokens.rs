//! Minting a token pair: a short-lived access token and a long-lived refresh token.
//!
//! Both are JWTs. The access token is what replicas check on every request, by themselves, so it
//! is RS256 with the issuer's RSA key (the replicas hold the public half). The refresh token comes
//! back only to the issuers, to be exchanged (once) for the next pair, so it is HS256 with the HMAC
//! key derived from that RSA key (`auth_core::refresh_key`): one RSA signature per pair, not two. A login starts a new refresh-token *family*; each refresh
//! passes the family on to the successor, so a reused token can revoke the whole line.

use crate::families::Successor;
use crate::state::IssuerState;
use crate::users::User;
use auth_core::claims::{ACCESS_TYP, AccessClaims, RefreshClaims};
use auth_core::error::ApiError;
use auth_core::random_id;
use auth_core::sign::{sign_jwt, sign_refresh_jwt};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The contract's token pair body, answered by login and refresh with `Cache-Control: no-store`
/// and `Pragma: no-cache`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema, utoipa::ToResponse)]
#[response(
    description = "A token pair.",
    headers(
        ("Cache-Control" = String, description = "`no-store`: the answer carries a credential."),
        ("Pragma" = String, description = "`no-cache`."),
    )
)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
}

/// A token pair as an HTTP answer: `Cache-Control: no-store` and `Pragma: no-cache`, as RFC 6749
/// section 5.1 requires of every response that carries a token, so no cache in between keeps one.
impl IntoResponse for TokenPair {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self).into_response();
        no_store(&mut response);
        response
    }
}

/// Mark `response` as never to be stored (it carries a credential).
pub fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The pair for `user` whose refresh token is `successor` of `family`.
///
/// Everything in it follows from its inputs, the access token's `jti` included (derived from the
/// refresh token's), and RS256 and HS256 signatures are deterministic: minting the same successor again
/// with the same key gives the same bytes. That is how a retried refresh gets the pair it lost
/// without the pair ever being stored (see families.rs).
pub fn mint_pair(
    state: &IssuerState,
    user: &User,
    family: &str,
    successor: &Successor,
) -> Result<TokenPair, ApiError> {
    let settings = &state.settings;
    let iat = successor.iat;
    let refresh_exp = state.family_rules().expiry(iat, successor.start);
    let access = AccessClaims {
        iss: settings.tokens.issuer.clone(),
        sub: user.username.clone(),
        aud: settings.tokens.audience.clone(),
        exp: iat + settings.access_ttl,
        iat,
        nbf: iat,
        jti: access_jti(&successor.jti),
        client_id: settings.client_id.clone(),
        name: user.name.clone(),
        roles: user.roles.clone(),
    };
    let refresh = RefreshClaims {
        iss: settings.tokens.issuer.clone(),
        sub: user.username.clone(),
        aud: settings.tokens.issuer.clone(),
        exp: refresh_exp,
        iat,
        jti: successor.jti.clone(),
        fam: family.to_owned(),
    };
    let keyring = state.keyring();
    let key = &keyring.signing;
    // Lifetimes as issued (RFC 6749 5.1 `expires_in`), so a pair minted again is the same answer.
    let pair = TokenPair {
        access_token: sign_jwt(key, ACCESS_TYP, &access)?,
        token_type: "Bearer".into(),
        expires_in: settings.access_ttl,
        refresh_token: sign_refresh_jwt(key.refresh_key(), &refresh)?,
        refresh_expires_in: refresh_exp.saturating_sub(iat),
    };
    state.metrics.access_issued.inc();
    state.metrics.refresh_issued.inc();
    Ok(pair)
}

/// 128 random bits: a new family's id, or a token's `jti`.
pub fn new_id() -> Result<String, ApiError> {
    random_id(16)
}

/// The access token's `jti`, derived from its refresh token's: unique as that one is, and the
/// same when the pair is minted again.
fn access_jti(refresh_jti: &str) -> String {
    let input = format!("access-token-of:{refresh_jti}");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_jti_follows_from_the_refresh_jti_and_differs_from_it() {
        assert_eq!(access_jti("a"), access_jti("a"));
        assert_ne!(access_jti("a"), access_jti("b"));
        assert_ne!(access_jti("a"), "a");
        assert_eq!(access_jti("a").len(), 22);
    }
}
