//! Server-side sessions: the other way to remember a login.
//!
//! Instead of handing the client signed claims, the issuer stores them in Redis under a fresh
//! random id and hands the client only that id, in an `HttpOnly` cookie the page's scripts cannot
//! read. Every replica must then ask Redis who the id belongs to, on every request: the cost the
//! load test measures.
//!
//! Redis holds the SHA-256 of the id, never the id itself (`auth_core::session::key`): whoever
//! reads the store learns who is logged in, but holds no cookie that works.

use crate::state::IssuerState;
use crate::users::User;
use auth_core::error::ApiError;
use auth_core::session::{self, SessionRecord};
use auth_core::{now_secs, random_id};

/// Create a session for `user` and return its id. Always a new id: a login never reuses an id
/// the client brought (no session fixation).
pub async fn create(state: &IssuerState, user: &User) -> Result<String, ApiError> {
    let settings = &state.settings;
    let id = random_id(session::ID_BYTES)?;
    let record = SessionRecord {
        sub: user.username.clone(),
        name: user.name.clone(),
        roles: user.roles.clone(),
        expires_at: now_secs() + settings.session_max_ttl,
    };
    let value =
        serde_json::to_string(&record).map_err(|_| ApiError::internal("session encoding"))?;
    let cmd = redis::cmd("SET")
        .arg(session::key(&id))
        .arg(value)
        .arg("EX")
        .arg(settings.session_idle_ttl.min(settings.session_max_ttl))
        .to_owned();
    state.store.query_acked::<()>(&cmd).await?;
    state.metrics.sessions_created.inc();
    Ok(id)
}

/// Delete session `id`. Returns whether it existed. Once deleted, every replica refuses the id
/// on its next look-up: there is nothing to wait for.
pub async fn delete(state: &IssuerState, id: &str) -> Result<bool, ApiError> {
    let cmd = redis::cmd("DEL").arg(session::key(id)).to_owned();
    let deleted: u64 = state.store.query_acked(&cmd).await?;
    Ok(deleted > 0)
}

/// The `Set-Cookie` value for a new session.
pub fn cookie(state: &IssuerState, id: &str) -> String {
    let secure = if state.settings.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        session::COOKIE,
        state.settings.session_max_ttl
    )
}

/// The `Set-Cookie` value that makes the browser forget the cookie.
pub fn clearing_cookie(state: &IssuerState) -> String {
    let secure = if state.settings.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0{secure}",
        session::COOKIE
    )
}
