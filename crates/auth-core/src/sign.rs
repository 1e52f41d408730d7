//! Turning claims into a signed JWT: RS256 for access tokens, HS256 for refresh tokens.
//!
//! A JWS in compact form is `base64url(header) . base64url(claims) . base64url(signature)`, where
//! the signature covers the first two parts joined by the dot: RSASSA-PKCS1-v1_5 with SHA-256
//! (RS256) for an access token, which every replica verifies with the public JWKS; HMAC-SHA256
//! (HS256) for a refresh token, which only the issuers verify (why: [`crate::refresh_key`]).
//!
//! Why not `jsonwebtoken::encode`: it re-parses the private key from DER on every call, which
//! roughly doubles what a signature costs (the load-test report has the measured figures). Here
//! the key is parsed once (in [`SigningKey`]) and every token only pays for the RSA operation
//! itself.

use crate::claims::REFRESH_TYP;
use crate::error::ApiError;
use crate::keys::SigningKey;
use crate::refresh_key::{REFRESH_ALG, RefreshKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// Sign `claims` with the RSA `key` (RS256), announcing `typ` in the header. The issuer uses it
/// for access tokens (`at+jwt`) only; refresh tokens go through [`sign_refresh_jwt`].
pub fn sign_jwt<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, ApiError> {
    let header = serde_json::json!({ "alg": "RS256", "typ": typ, "kid": key.kid() });
    sign_compact(&header, claims, |input| {
        key.sign_rs256(input)
            .map_err(|_| ApiError::internal("RSA signing failed"))
    })
}

/// Sign refresh-token `claims` with the HMAC `key` (HS256), `typ` `rt+jwt`.
pub fn sign_refresh_jwt<C: Serialize>(key: &RefreshKey, claims: &C) -> Result<String, ApiError> {
    let header = serde_json::json!({ "alg": REFRESH_ALG, "typ": REFRESH_TYP, "kid": key.kid() });
    sign_compact(&header, claims, |input| {
        Ok(key.sign_hs256(input).as_ref().to_vec())
    })
}

/// `header.claims.signature`, with `sign` computing the signature over `header.claims`.
fn sign_compact<C: Serialize>(
    header: &serde_json::Value,
    claims: &C,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, ApiError>,
) -> Result<String, ApiError> {
    let header = serde_json::to_vec(header).map_err(|_| ApiError::internal("header encoding"))?;
    let claims = serde_json::to_vec(claims).map_err(|_| ApiError::internal("claims encoding"))?;

    let mut token = String::with_capacity(1024);
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);

    let signature = sign(token.as_bytes())?;

    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}
