//! `GET /api/ping` and `GET /sapi/ping`: the same replica, no authentication at all.
//!
//! The load test's baseline: whatever `/me` costs beyond this is the price of the auth method.

use crate::state::ReplicaState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn ping(State(state): State<ReplicaState>) -> Json<Value> {
    Json(json!({ "pong": true, "replica": state.settings.replica_id }))
}
