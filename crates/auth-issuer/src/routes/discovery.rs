//! `GET /.well-known/openid-configuration` and `GET /.well-known/oauth-authorization-server`:
//! the issuer describes itself (OpenID Connect Discovery 1.0, RFC 8414), so that a JWT library
//! can start from the issuer URL alone: read this document, follow `jwks_uri`, and check that
//! every token's `iss` equals `issuer`.
//!
//! Every field says only what is true of this issuer. It hands out tokens for a username and a
//! password (the `password` grant, RFC 6749 4.3) and for a refresh token (6), to a public client
//! that does not authenticate itself (`none`); a logout revokes a refresh token's family. It
//! issues no ID tokens and has no authorization endpoint, so the fields about those are absent;
//! the algorithm of its access tokens is in the JWKS, on every key (`alg`).
//! Unlike RFC 6749's form-encoded requests, its endpoints take JSON bodies (docs/API.md), and
//! the refresh grant has an endpoint of its own, named here in a field of this project's own
//! (`refresh_endpoint`), as RFC 8414 2 allows.

use crate::state::IssuerState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

/// The metadata document. Field names are the registered ones (RFC 8414 2).
#[derive(Debug, Serialize)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub refresh_endpoint: String,
    pub revocation_endpoint: String,
    pub grant_types_supported: [&'static str; 2],
    pub token_endpoint_auth_methods_supported: [&'static str; 1],
    pub revocation_endpoint_auth_methods_supported: [&'static str; 1],
    pub subject_types_supported: [&'static str; 1],
    pub claims_supported: [&'static str; 10],
}

impl Metadata {
    /// The document for an issuer whose public URL (every token's `iss`) is `issuer`.
    pub fn for_issuer(issuer: &str) -> Metadata {
        let at = |path: &str| format!("{}{path}", issuer.trim_end_matches('/'));
        Metadata {
            issuer: issuer.to_owned(),
            jwks_uri: at("/.well-known/jwks.json"),
            token_endpoint: at("/auth/login"),
            refresh_endpoint: at("/auth/refresh"),
            revocation_endpoint: at("/auth/logout"),
            grant_types_supported: ["password", "refresh_token"],
            token_endpoint_auth_methods_supported: ["none"],
            revocation_endpoint_auth_methods_supported: ["none"],
            subject_types_supported: ["public"],
            claims_supported: [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "nbf",
                "jti",
                "client_id",
                "name",
                "roles",
            ],
        }
    }
}

pub async fn metadata(State(state): State<IssuerState>) -> impl IntoResponse {
    // It changes only with the issuer's configuration: a client may keep it for a while.
    let body = Metadata::for_issuer(&state.settings.tokens.issuer);
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_is_under_the_issuer_and_the_issuer_is_the_tokens_iss() {
        let metadata = Metadata::for_issuer("https://auth.example/");
        assert_eq!(metadata.issuer, "https://auth.example/");
        assert_eq!(
            metadata.jwks_uri,
            "https://auth.example/.well-known/jwks.json"
        );
        assert_eq!(metadata.token_endpoint, "https://auth.example/auth/login");
        assert_eq!(
            metadata.revocation_endpoint,
            "https://auth.example/auth/logout"
        );
    }
}
