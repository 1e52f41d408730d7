//! `/healthz` (the process is alive) and `/readyz` (it can serve: key loaded and Redis reachable).

use crate::state::AppState;
use auth_core::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // The key is loaded before the server starts listening; Redis may come and go.
    if !state.store.ping().await {
        return Err(ApiError::StoreUnavailable);
    }
    Ok(Json(
        json!({ "status": "ready", "kid": state.keyring().signing.kid() }),
    ))
}
