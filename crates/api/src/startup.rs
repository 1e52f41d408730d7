//! Building a replica: state from configuration, the router, and serving until shutdown.

use crate::configuration::{Config, Mode};
use crate::keyset::{Intervals, Keys};
use crate::routes;
use crate::state::{AppState, Authenticator, State, redis_counter};
use auth_core::limits::Limits;
use auth_core::store::Store;
use auth_core::telemetry::Metrics;
use auth_core::verify::TokenRules;
use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

pub fn build_state(config: Config, limits: Limits) -> anyhow::Result<AppState> {
    let metrics = Metrics::new();
    let redis_commands = redis_counter(&metrics);
    let auth = match config.mode {
        Mode::Jwt => {
            let rules = TokenRules::access(&config.issuer, &config.audience, config.leeway_secs);
            let intervals = Intervals {
                min_refetch: Duration::from_secs(config.jwks_refetch_secs),
                refresh: Duration::from_secs(config.jwks_refresh_secs),
            };
            let keys = Keys::new(config.jwks.clone(), intervals, rules)?
                .with_token_cache(config.token_cache, config.leeway_secs)
                .with_metrics(&metrics);
            let keys = Arc::new(keys);
            Arc::clone(&keys).spawn_loader();
            Authenticator::Jwt(keys)
        }
        Mode::Session => Authenticator::Session {
            store: Store::new(&config.redis_url, config.redis_pool_size, redis_commands)?,
            idle_ttl: config.session_idle_ttl,
        },
    };
    Ok(Arc::new(State {
        config,
        limits,
        auth,
        metrics,
    }))
}

pub fn router(state: AppState) -> anyhow::Result<Router> {
    let prefix = state.mode().prefix();
    let replica = HeaderValue::from_str(&state.config.replica_id)
        .map_err(|_| anyhow::anyhow!("REPLICA_ID must be printable ASCII"))?;
    let registry = Arc::clone(&state.metrics);
    let limits = state.limits;
    let routes = Router::new()
        .route(&format!("{prefix}/me"), get(routes::me::me))
        .route(
            &format!("{prefix}/jobs/{{id}}/applicants"),
            get(routes::jobs::applicants),
        )
        .route(&format!("{prefix}/ping"), get(routes::ping::ping))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .with_state(state);
    let router = auth_core::service::finish(routes, registry, limits)
        // Outermost, so every response carries it, errors and 404s included.
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let replica = replica.clone();
                async move {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static("x-replica"), replica);
                    response
                }
            },
        ));
    Ok(router)
}

/// Serve until SIGINT or SIGTERM, then finish the requests in flight.
pub async fn serve(state: AppState) -> anyhow::Result<()> {
    let listen = state.config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, mode = state.mode().name(), replica = %state.config.replica_id, "api replica listening");
    axum::serve(listener, router(state)?)
        .with_graceful_shutdown(auth_core::shutdown::signal())
        .await?;
    tracing::info!("api replica stopped");
    Ok(())
}
