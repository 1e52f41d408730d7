//! `GET /api/ping` and `GET /sapi/ping`: the same replica, no authentication at all.
//!
//! The load test's baseline: whatever `/me` costs beyond this is the price of the auth method.

use crate::state::ReplicaState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Pong {
    /// Always `true`.
    pub pong: bool,
    /// The replica that answered; equal to its `X-Replica` header.
    pub replica: String,
}

/// No credentials at all: the load test's baseline on the very same replicas.
#[utoipa::path(
    get,
    path = "/ping",
    operation_id = "ping",
    responses((status = 200, description = "The replica is there.", body = Pong)),
)]
pub async fn ping(State(state): State<ReplicaState>) -> Json<Pong> {
    Json(Pong {
        pong: true,
        replica: state.settings.replica_id.clone(),
    })
}
