//! Turning claims into a signed RS256 JWT.
//!
//! A JWS in compact form is `base64url(header) . base64url(claims) . base64url(signature)`, where
//! the signature is RSASSA-PKCS1-v1_5 with SHA-256 over the first two parts joined by the dot.
//!
//! Why not `jsonwebtoken::encode`: it re-parses the private key from DER on every call, which
//! roughly doubles what a signature costs (the load-test report has the measured figures). Here
//! the key is parsed once (in [`SigningKey`]) and every token only pays for the RSA operation
//! itself.

use crate::error::ApiError;
use crate::keys::SigningKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// Sign `claims` with `key`, announcing `typ` (`at+jwt` or `rt+jwt`) in the header.
pub fn sign_jwt<C: Serialize>(key: &SigningKey, typ: &str, claims: &C) -> Result<String, ApiError> {
    let header = serde_json::json!({ "alg": "RS256", "typ": typ, "kid": key.kid() });
    let header = serde_json::to_vec(&header).map_err(|_| ApiError::internal("header encoding"))?;
    let claims = serde_json::to_vec(claims).map_err(|_| ApiError::internal("claims encoding"))?;

    let mut token = String::with_capacity(1024);
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);

    let signature = key
        .sign_rs256(token.as_bytes())
        .map_err(|_| ApiError::internal("RSA signing failed"))?;

    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}
