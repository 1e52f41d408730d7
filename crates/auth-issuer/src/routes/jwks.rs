//! `GET /.well-known/jwks.json`: the public keys, for replicas to verify tokens with.

use crate::state::IssuerState;
use auth_core::keys::Jwks;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub async fn jwks(State(state): State<IssuerState>) -> impl IntoResponse {
    // Replicas cache keys and refetch on an unknown kid, so a short public cache is harmless.
    let body: Jwks = state.keyring().jwks.clone();
    ([(header::CACHE_CONTROL, "public, max-age=60")], Json(body))
}
