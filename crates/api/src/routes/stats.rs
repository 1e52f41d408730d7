//! `GET /api/stats` and `GET /sapi/stats`: what this one replica has done, for the demo page.
//!
//! The page draws the cluster and puts a live "store look-ups per request" figure beside the
//! study note's comparison table. It needs, per replica, the id it sends in `X-Replica`, how many
//! authenticated requests it served and how many Redis commands it sent. nginx publishes each
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

/// The routes whose every request needs the caller authenticated: the ones a look-up per
/// request is counted against.
pub fn authenticated_routes(prefix: &str) -> [String; 2] {
    [
        format!("{prefix}/me"),
        format!("{prefix}/jobs/{{id}}/applicants"),
    ]
}

pub async fn stats(State(state): State<ReplicaState>) -> Json<Value> {
    let prefix = state.mode().prefix();
    let requests: u64 = authenticated_routes(prefix)
        .iter()
        .map(|route| state.metrics.requests_on(route))
        .sum();
    Json(json!({
        "replica": state.settings.replica_id,
        "mode": state.mode().name(),
        "authenticated_requests": requests,
        "store_commands": state.store_commands.get(),
    }))
}
