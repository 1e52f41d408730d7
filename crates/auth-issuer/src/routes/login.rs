//! `POST /auth/login`: username and password in, token pair out.

use crate::client_addr::ClientAddr;
use crate::families::{Families, Successor};
use crate::state::IssuerState;
use crate::throttle::Throttle;
use crate::tokens::{TokenPair, mint_pair, new_id};
use crate::users::User;
use auth_core::error::ApiError;
use auth_core::now_secs;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;

/// A username and password (both login routes).
#[derive(Deserialize, utoipa::ToSchema)]
pub struct Credentials {
    /// At most 128 bytes.
    username: String,
    /// At most 1 KiB.
    password: String,
}

// Written by hand so that a password can never reach a log through `{:?}`.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Longest username and password looked at. Longer ones are refused before any hashing, so an
/// attacker cannot make Argon2id chew on 64 KiB inputs.
const MAX_USERNAME: usize = 128;
const MAX_PASSWORD: usize = 1024;

auth_core::errors!(
    /// How both password logins fail (see docs/API.md, "Login limits").
    LoginErrors:
    ApiError::bad_body(),
    ApiError::InvalidCredentials,
    ApiError::PayloadTooLarge,
    ApiError::TooManyAttempts { retry_after_secs: 42 },
    ApiError::Overloaded,
    ApiError::StoreUnavailable,
);

/// A password login: a new token pair, the first of a new refresh-token family.
#[utoipa::path(
    post,
    path = "/auth/login",
    operation_id = "login",
    request_body = Credentials,
    responses(
        (status = 200, response = inline(TokenPair)),
        LoginErrors,
    ),
)]
pub async fn login(
    State(state): State<IssuerState>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<TokenPair, ApiError> {
    let Json(credentials) = body?;
    let user = authenticate(&state, credentials, addr).await?;
    // The family is on record before its first token leaves: a refresh token the store has no
    // record of is refused (families.rs).
    let (family, first) = (new_id()?, new_id()?);
    let now = now_secs();
    Families::new(&state.store, state.family_rules())
        .create(&family, &first, now)
        .await?;
    let successor = Successor {
        jti: first,
        iat: now,
        start: now,
    };
    let pair = mint_pair(&state, &user, &family, &successor)?;
    tracing::info!(user = %user.username, "token login");
    Ok(pair)
}

/// Check credentials (shared by both login routes): reserve an attempt against the throttle
/// first, then Argon2id; a success gives the reservation back, a failure keeps it.
pub async fn authenticate(
    state: &IssuerState,
    credentials: Credentials,
    addr: std::net::IpAddr,
) -> Result<User, ApiError> {
    let Credentials { username, password } = credentials;
    if username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
        return Err(ApiError::InvalidRequest(
            "username or password is too long".into(),
        ));
    }
    let throttle = Throttle::new(&state.store, state.settings.login_limits);
    throttle.reserve(&username, addr).await?;
    match state.users.authenticate(&username, password).await {
        Ok(Some(user)) => {
            state.metrics.logins_ok.inc();
            give_back(&throttle, &username, addr).await;
            Ok(user)
        }
        Ok(None) => {
            state.metrics.logins_failed.inc();
            tracing::info!(user = %username, %addr, "login failed");
            Err(ApiError::InvalidCredentials)
        }
        Err(e) => {
            // Not checked (the hash workers were busy): not a failure of the password.
            give_back(&throttle, &username, addr).await;
            Err(e)
        }
    }
}

/// Give a reserved attempt back, or leave it counted if the store cannot be reached (the release
/// is sent once only, see `Throttle::release`). Either way the answer goes on: an attempt left
/// counted makes the limit err strict, never open, and the user who typed the right password is
/// not refused because the store hiccuped after the hash.
async fn give_back(throttle: &Throttle<'_>, username: &str, addr: std::net::IpAddr) {
    if let Err(e) = throttle.release(username, addr).await {
        tracing::warn!(user = %username, error = %e, "login attempt not given back; it stays counted");
    }
}
