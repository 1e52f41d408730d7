//! Building the issuer: state from configuration, the router, and serving until shutdown.

use crate::configuration::Config;
use crate::keyring::{KeyFiles, Lifetimes};
use crate::routes;
use crate::state::{AppState, IssuerMetrics, State};
use crate::users::Users;
use auth_core::error::ApiError;
use auth_core::keys::KeyOrigin;
use auth_core::limits::Limits;
use auth_core::store::Store;
use auth_core::telemetry::{metrics_handler, track_requests};
use auth_core::verify::{MAX_LEEWAY_SECS, TokenRules};
use axum::Router;
use axum::routing::{get, post};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Everything the issuer needs, loaded and checked before it listens.
pub fn build_state(config: Config, limits: Limits) -> anyhow::Result<AppState> {
    let key_files = KeyFiles {
        path: config.key_path.clone(),
        bits: config.key_bits,
    };
    let (key, origin) = key_files.ensure()?;
    let verb = match origin {
        KeyOrigin::Loaded => "loaded",
        KeyOrigin::Generated => "generated",
    };
    tracing::info!(kid = key.kid(), path = %config.key_path.display(), "signing key {verb}");
    let lifetimes = Lifetimes {
        access_ttl: config.access_ttl,
        refresh_ttl: config.refresh_ttl,
    };
    let keyring = key_files.keyring(None, lifetimes, auth_core::now_secs())?;

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
        limits,
        users,
        keyring: RwLock::new(Arc::new(keyring)),
        key_files,
        refresh_rules,
        store,
        metrics,
    }))
}

/// Notice key rotations (and retired keys aging out) by re-reading the key files periodically.
pub fn spawn_key_reloader(state: AppState) {
    let every = Duration::from_secs(state.config.key_reload_secs);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let state = Arc::clone(&state);
            // File reads and PEM parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || state.reload_keys()).await;
        }
    });
}

pub fn router(state: AppState) -> Router {
    let registry = state.metrics.registry.clone();
    let limits = state.limits;
    let routes = Router::new()
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
        .fallback(|| async { ApiError::NotFound("no such route".into()) });
    limits
        .apply(routes)
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
    spawn_key_reloader(Arc::clone(&state));
    // Connection info gives the limits the TCP peer (see client_addr.rs).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(auth_core::shutdown::signal())
        .await?;
    tracing::info!("auth-issuer stopped");
    Ok(())
}
