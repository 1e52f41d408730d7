//! `GET /.well-known/jwks.json`: the public keys, for replicas to verify tokens with.

use crate::state::IssuerState;
use auth_core::keys::Jwks;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The public keys that verify access tokens (RFC 7517); during a key rotation, old and new.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    responses((status = 200, description = "The JWK Set.", body = Jwks, headers(
        ("Cache-Control" = String, description = "`public, max-age=60`."),
    ))),
)]
pub async fn jwks(State(state): State<IssuerState>) -> impl IntoResponse {
    // Replicas cache keys and refetch on an unknown kid, so a short public cache is harmless.
    let body: Jwks = state.keyring().jwks.clone();
    ([(header::CACHE_CONTROL, "public, max-age=60")], Json(body))
}
