//! `POST /auth/logout`: revoke the refresh token's whole family.
//!
//! Access tokens already handed out are not revoked: they die by their short life (default five
//! minutes). That is the trade a stateless design makes, and why access tokens are short-lived.

use crate::families::Families;
use crate::routes::refresh::{GrantErrors, RefreshRequest, verify_refresh_token};
use crate::state::IssuerState;
use auth_core::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;

/// Revoke the refresh token's whole family (idempotent for a family already revoked).
#[utoipa::path(
    post,
    path = "/auth/logout",
    operation_id = "logout",
    request_body = RefreshRequest,
    responses((status = 204, description = "The family is revoked."), GrantErrors),
)]
pub async fn logout(
    State(state): State<IssuerState>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(request) = body?;
    let claims = verify_refresh_token(&state, &request.refresh_token)?;
    Families::new(&state.store, state.family_rules())
        .revoke(&claims.fam)
        .await?;
    tracing::info!(user = %claims.sub, "logout: family revoked");
    Ok(StatusCode::NO_CONTENT)
}
