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
use serde_json::{Value, json};

pub async fn stats(State(state): State<ReplicaState>) -> Json<Value> {
    Json(json!({
        "replica": state.settings.replica_id,
        "mode": state.mode().name(),
        "checked_requests": state.credentials_checked.get(),
        "store_commands": state.store_commands.get(),
    }))
}
