//! `POST /auth/login`: username and password in, token pair out.

use crate::client_addr::ClientAddr;
use crate::state::AppState;
use crate::throttle::Throttle;
use crate::tokens::{TokenPair, mint_pair, new_family};
use crate::users::User;
use auth_core::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
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

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Json<TokenPair>, ApiError> {
    let Json(credentials) = body?;
    let user = authenticate(&state, credentials, addr).await?;
    let pair = mint_pair(&state, &user, &new_family()?)?;
    tracing::info!(user = %user.username, "token login");
    Ok(Json(pair))
}

/// Check credentials (shared by both login routes): throttle first, then Argon2id; count the
/// outcome, and a failure against the throttle.
pub async fn authenticate(
    state: &AppState,
    credentials: Credentials,
    addr: std::net::IpAddr,
) -> Result<User, ApiError> {
    let Credentials { username, password } = credentials;
    if username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
        return Err(ApiError::InvalidRequest(
            "username or password is too long".into(),
        ));
    }
    let throttle = Throttle::new(&state.store, state.config.login_limits);
    throttle.check(&username, addr).await?;
    match state.users.authenticate(&username, password).await {
        Some(user) => {
            state.metrics.logins_ok.inc();
            Ok(user)
        }
        None => {
            state.metrics.logins_failed.inc();
            tracing::info!(user = %username, %addr, "login failed");
            throttle.record_failure(&username, addr).await?;
            Err(ApiError::InvalidCredentials)
        }
    }
}
