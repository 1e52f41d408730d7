//! `GET /api/me` and `GET /sapi/me`: who am I, and which replica answered.

use crate::caller::Auth;
use crate::state::ReplicaState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

/// The caller as the replica sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The user id (the token's `sub`, or the session's user).
    pub sub: String,
    pub name: String,
    pub roles: Vec<String>,
    /// How the caller was authenticated: `jwt` on `/api/`, `session` on `/sapi/`.
    #[schema(value_type = String, pattern = "^(jwt|session)$")]
    pub auth: &'static str,
    /// The replica that answered; equal to its `X-Replica` header.
    pub replica: String,
}

/// Who is calling. Authenticated by the replica's mode: a bearer access token on `/api/`, the
/// `sid` cookie on `/sapi/` (the security of each is set per mode, in `crate::openapi`).
#[utoipa::path(
    get,
    path = "/me",
    operation_id = "me",
    security(("caller" = [])),
    responses((status = 200, description = "The caller.", body = Me)),
)]
pub async fn me(State(state): State<ReplicaState>, Auth(caller): Auth) -> Json<Me> {
    Json(Me {
        sub: caller.sub,
        name: caller.name,
        roles: caller.roles,
        auth: state.mode().name(),
        replica: state.settings.replica_id.clone(),
    })
}
