//! `GET /api/me` and `GET /sapi/me`: who am I, and which replica answered.

use crate::caller::Auth;
use crate::state::ReplicaState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn me(State(state): State<ReplicaState>, Auth(caller): Auth) -> Json<Value> {
    Json(json!({
        "sub": caller.sub,
        "name": caller.name,
        "roles": caller.roles,
        "auth": state.mode().name(),
        "replica": state.settings.replica_id,
    }))
}
