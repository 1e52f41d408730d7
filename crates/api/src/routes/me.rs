//! `GET /api/me` and `GET /sapi/me`: who am I, and which replica answered.

use crate::caller::Auth;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn me(State(state): State<AppState>, Auth(caller): Auth) -> Json<Value> {
    Json(json!({
        "sub": caller.sub,
        "name": caller.name,
        "roles": caller.roles,
        "auth": state.mode().name(),
        "replica": state.config.replica_id,
    }))
}
