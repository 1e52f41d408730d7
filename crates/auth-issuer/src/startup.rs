//! Building the issuer: state from configuration, the router, and serving until shutdown.

use crate::configuration::Config;
use crate::routes;
use crate::state::{AppState, IssuerMetrics, State};
use crate::users::Users;
use auth_core::keys::{Jwks, KeyOrigin, SigningKey};
use auth_core::store::Store;
use auth_core::telemetry::{metrics_handler, track_requests};
use auth_core::verify::{KeySet, MAX_LEEWAY_SECS, TokenRules};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

/// Request bodies above this are refused with 413 (the contract's limit).
const MAX_BODY: usize = 64 * 1024;

/// Everything the issuer needs, loaded and checked before it listens.
pub fn build_state(config: Config) -> anyhow::Result<AppState> {
    let (signing_key, origin) = SigningKey::load_or_generate(&config.key_path, config.key_bits)?;
    match origin {
        KeyOrigin::Loaded => {
            tracing::info!(kid = signing_key.kid(), path = %config.key_path.display(), "signing key loaded")
        }
        KeyOrigin::Generated => {
            tracing::info!(kid = signing_key.kid(), path = %config.key_path.display(), "signing key generated")
        }
    }
    let jwks = Jwks {
        keys: vec![signing_key.public_jwk().clone()],
    };
    let keys = KeySet::from_jwks(&jwks);
    let users = Users::load(config.users_file.as_deref())?;
    let metrics = IssuerMetrics::new();
    let store = Store::new(
        &config.redis_url,
        config.redis_pool_size,
        metrics.redis_commands.clone(),
    )?;
    let refresh_rules = TokenRules::refresh(&config.issuer, MAX_LEEWAY_SECS);
    Ok(Arc::new(State {
        config,
        users,
        signing_key,
        jwks,
        keys,
        refresh_rules,
        store,
        metrics,
    }))
}

pub fn router(state: AppState) -> Router {
    let registry = state.metrics.registry.clone();
    Router::new()
        .route("/auth/login", post(routes::login::login))
        .route("/auth/refresh", post(routes::refresh::refresh))
        .route("/auth/logout", post(routes::logout::logout))
        .route("/auth/session/login", post(routes::session::login))
        .route("/auth/session/logout", post(routes::session::logout))
        .route("/.well-known/jwks.json", get(routes::jwks::jwks))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .with_state(state)
        .route(
            "/metrics",
            get(metrics_handler).with_state(registry.clone()),
        )
        .fallback(|| async { auth_core::error::ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ))
        .layer(axum::middleware::from_fn_with_state(
            registry,
            track_requests,
        ))
}

/// Serve until SIGINT or SIGTERM, then finish the requests in flight.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let listen = state.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, issuer = %state.config.issuer, "auth-issuer listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(auth_core::shutdown::signal())
        .await?;
    tracing::info!("auth-issuer stopped");
    Ok(())
}
