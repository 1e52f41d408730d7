//! `/healthz` (alive) and `/readyz` (can serve: keys loaded in jwt mode, Redis reachable in
//! session mode). nginx and compose route only to ready replicas.

use crate::state::{AppState, Authenticator};
use auth_core::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match &state.auth {
        Authenticator::Jwt(keys) if !keys.is_loaded() => Err(ApiError::Unavailable(
            "no verification keys loaded yet".into(),
        )),
        Authenticator::Session { store, .. } if !store.ping().await => {
            Err(ApiError::StoreUnavailable)
        }
        _ => Ok(Json(
            json!({ "status": "ready", "mode": state.mode().name() }),
        )),
    }
}
