//! `POST /auth/session/login` and `POST /auth/session/logout`: the session-store variant.

use crate::client_addr::ClientAddr;
use crate::routes::login::{Credentials, LoginErrors, authenticate};
use crate::sessions;
use crate::state::IssuerState;
use crate::tokens;
use auth_core::error::ApiError;
use auth_core::session;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A password login for the session variant: the session id, in the `sid` cookie only.
#[utoipa::path(
    post,
    path = "/auth/session/login",
    operation_id = "session_login",
    request_body = Credentials,
    responses(
        (status = 204, description = "Logged in.", headers(
            ("Set-Cookie" = String, description = "`sid=<id>; HttpOnly; SameSite=Lax; Path=/; Max-Age=<SESSION_MAX_TTL_SECS>` (and `Secure` with `COOKIE_SECURE=true`)."),
            ("Cache-Control" = String, description = "`no-store`: the answer carries a credential."),
            ("Pragma" = String, description = "`no-cache`."),
        )),
        LoginErrors,
    ),
)]
pub async fn login(
    State(state): State<IssuerState>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(credentials) = body?;
    let user = authenticate(&state, credentials, addr).await?;
    let id = sessions::create(&state, &user).await?;
    tracing::info!(user = %user.username, "session login");
    let cookie = sessions::cookie(&state, &id);
    let mut response = (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response();
    // The cookie is the credential: the answer that carries it is never stored (RFC 6749 5.1).
    tokens::no_store(&mut response);
    Ok(response)
}

auth_core::errors!(
    /// How session logout fails.
    SessionLogoutErrors:
    ApiError::InvalidSession("no such session".into()),
    ApiError::StoreUnavailable,
);

/// End the session: it is gone from the store, for every replica at once.
#[utoipa::path(
    post,
    path = "/auth/session/logout",
    operation_id = "session_logout",
    security(("cookie" = [])),
    responses(
        (status = 204, description = "Logged out.", headers(
            ("Set-Cookie" = String, description = "`sid=; ...; Max-Age=0`: clears the cookie."),
        )),
        SessionLogoutErrors,
    ),
)]
pub async fn logout(
    State(state): State<IssuerState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = session::id_from_headers(&headers)?;
    if !sessions::delete(&state, id).await? {
        return Err(ApiError::InvalidSession("no such session".into()));
    }
    let clear = sessions::clearing_cookie(&state);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}
