//! `GET /api/stats` and `GET /sapi/stats`: what this one replica has done, for the demo page.
//!
//! The page draws the cluster and puts a live "store look-ups per request" figure beside the
//! study note's comparison table. It needs, per replica, the id it sends in `X-Replica`, how many
//! requests came with credentials it checked (a bearer token, or a `sid` cookie of the right
//! shape: the requests that need to know the user) and how many Redis commands it sent. nginx publishes each
//! replica's answer at its own address (`/cluster/token/<n>`, `/cluster/session/<n>`), so the
//! page can add them up over every replica, not only over the ones that happened to answer it.
//!
//! Why this is safe to publish: it takes no credentials and changes nothing (GET only, two
//! counters read), the replica id is already in `X-Replica` on every answer, and the counts say
//! how busy a replica is, not who called it. Without nginx's `/cluster/` locations it is still
//! reachable as `/api/stats` through the balancer, one replica at a time, as `X-Replica` already
//! is.

use crate::state::ReplicaState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Stats {
    /// The replica that answered; equal to its `X-Replica` header.
    pub replica: String,
    /// `jwt` or `session`.
    pub mode: String,
    /// Requests that came with credentials this replica checked (a bearer token, or a `sid`
    /// cookie of the right shape), since it started.
    pub checked_requests: u64,
    /// Commands this replica sent to Redis while serving requests, since it started (always 0
    /// on a token replica).
    pub store_commands: u64,
}

/// What this one replica has done: read-only counters for the demo page's diagram and table.
#[utoipa::path(
    get,
    path = "/stats",
    operation_id = "stats",
    responses((status = 200, description = "This replica's counters.", body = Stats)),
)]
pub async fn stats(State(state): State<ReplicaState>) -> Json<Stats> {
    Json(Stats {
        replica: state.settings.replica_id.clone(),
        mode: state.mode().name().to_owned(),
        checked_requests: state.credentials_checked.get(),
        store_commands: state.store_commands.get(),
    })
}
