//! `GET /.well-known/openid-configuration` and `GET /.well-known/oauth-authorization-server`:
//! the issuer describes itself (OpenID Connect Discovery 1.0, RFC 8414), so that a JWT library
//! can start from the issuer URL alone: read this document, follow `jwks_uri`, and check that
//! every token's `iss` equals `issuer`.
//!
//! Every field says only what is true of this issuer, and that makes the document partial:
//!
//! - Its token endpoint is `/auth/refresh`: a refresh token in, a new pair out (the
//!   `refresh_token` grant), for a public client that does not authenticate itself (`none`).
//!   It takes a JSON body, not RFC 6749's form encoding (docs/API.md).
//! - Logging in with a password is this project's own first-party route, not an OAuth grant
//!   (RFC 9700 2.4 says the password grant must not be used), so it is not in
//!   `grant_types_supported`; it is named in a field of the project's own, `login_endpoint`.
//!   Likewise `logout_endpoint`: it revokes a family but is not RFC 7009 revocation (JSON in,
//!   401 for a bad token), so it is not called `revocation_endpoint`. RFC 8414 2 allows such
//!   additional fields.
//! - There is no authorization endpoint and no ID token: `response_types_supported` is empty,
//!   and nothing about ID tokens is claimed. The access tokens' algorithm is in the JWKS, on
//!   every key (`alg`).

use crate::state::IssuerState;
use auth_core::claims::ACCESS_CLAIMS;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

/// The metadata document. Registered names (RFC 8414 2) except `login_endpoint` and
/// `logout_endpoint`, this project's own.
#[derive(Debug, Serialize, utoipa::ToSchema, utoipa::ToResponse)]
#[response(
    description = "The metadata document.",
    headers(("Cache-Control" = String, description = "`public, max-age=300`."))
)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub login_endpoint: String,
    pub logout_endpoint: String,
    pub grant_types_supported: [&'static str; 1],
    pub response_types_supported: [&'static str; 0],
    pub token_endpoint_auth_methods_supported: [&'static str; 1],
    pub subject_types_supported: [&'static str; 1],
    pub claims_supported: [&'static str; 10],
}

impl Metadata {
    /// The document for an issuer whose public URL (every token's `iss`) is `issuer`. The
    /// endpoints are under it: nginx serves them at the root of that URL.
    pub fn for_issuer(issuer: &str) -> Metadata {
        let at = |path: &str| format!("{}{path}", issuer.trim_end_matches('/'));
        Metadata {
            issuer: issuer.to_owned(),
            jwks_uri: at("/.well-known/jwks.json"),
            token_endpoint: at("/auth/refresh"),
            login_endpoint: at("/auth/login"),
            logout_endpoint: at("/auth/logout"),
            grant_types_supported: ["refresh_token"],
            response_types_supported: [],
            token_endpoint_auth_methods_supported: ["none"],
            subject_types_supported: ["public"],
            claims_supported: ACCESS_CLAIMS,
        }
    }
}

/// The issuer's metadata (OpenID Connect Discovery 1.0).
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    operation_id = "openid_configuration",
    responses((status = 200, response = inline(Metadata))),
)]
pub async fn metadata(State(state): State<IssuerState>) -> impl IntoResponse {
    // It changes only with the issuer's configuration: a client may keep it for a while.
    let body = Metadata::for_issuer(&state.settings.tokens.issuer);
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body))
}

/// The same document at RFC 8414's address.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "oauth_authorization_server",
    responses((status = 200, response = inline(Metadata))),
)]
pub async fn oauth_metadata(state: State<IssuerState>) -> impl IntoResponse {
    metadata(state).await
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
        assert_eq!(metadata.token_endpoint, "https://auth.example/auth/refresh");
        assert_eq!(metadata.login_endpoint, "https://auth.example/auth/login");
        assert_eq!(metadata.logout_endpoint, "https://auth.example/auth/logout");
    }
}
