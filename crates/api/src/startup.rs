//! Building a replica: state from its settings, the router, and serving until shutdown.

use crate::replica_keys::{Intervals, ReplicaKeys};
use crate::settings::{Mode, Settings};
use crate::state::{Authenticator, Replica, ReplicaState};
use auth_core::service;
use auth_core::store::{self, Store};
use auth_core::telemetry::Metrics;
use auth_core::verify::TokenRules;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn build_state(settings: Settings) -> anyhow::Result<ReplicaState> {
    let metrics = Metrics::new();
    // Registered in both modes, so a jwt replica's /metrics shows its 0.
    let redis_commands = store::commands_counter(&metrics);
    let credentials_checked = metrics.counter(
        "authscale_credentials_checked_total",
        "Requests whose credentials (a bearer token, or a sid cookie of the right shape) were checked.",
        &[],
    );
    let auth = match settings.mode {
        Mode::Jwt => {
            let tokens = &settings.tokens;
            let rules = TokenRules::access(&tokens.issuer, &tokens.audience, settings.leeway_secs);
            let intervals = Intervals {
                min_refetch: Duration::from_secs(settings.jwks_refetch_secs),
                refresh: Duration::from_secs(settings.jwks_refresh_secs),
            };
            let keys = ReplicaKeys::new(settings.jwks.clone(), intervals, rules)?
                .with_token_cache(settings.token_cache)
                .with_metrics(&metrics);
            Authenticator::Jwt(Arc::new(keys))
        }
        Mode::Session => Authenticator::Session {
            store: Store::new(&settings.redis.target, redis_commands.clone())?,
            idle_ttl: settings.session_idle_ttl,
        },
    };
    Ok(Arc::new(Replica {
        settings,
        auth,
        metrics,
        store_commands: redis_commands,
        credentials_checked,
    }))
}

/// The routes of a replica in `mode`, each with its part of the OpenAPI document: the router
/// and the document come from this one list, so no route is served undocumented.
pub fn documented_routes(mode: Mode) -> OpenApiRouter<ReplicaState> {
    let routes = OpenApiRouter::new()
        .routes(routes!(crate::routes::me::me))
        .routes(routes!(crate::routes::jobs::applicants))
        .routes(routes!(crate::routes::ping::ping))
        .routes(routes!(crate::routes::stats::stats));
    OpenApiRouter::new().nest(mode.prefix(), routes)
}

pub fn router(state: ReplicaState) -> anyhow::Result<Router> {
    let replica = state.settings.replica_id.clone();
    let registry = Arc::clone(&state.metrics);
    let limits = state.settings.service.limits;
    let (routes, _) = documented_routes(state.mode()).split_for_parts();
    let routes = routes.with_state(Arc::clone(&state));
    let router = service::finish(routes, state, registry, limits);
    service::identify(router, "x-replica", &replica)
        .map_err(|e| e.context("REPLICA_ID is not a valid header value"))
}

/// Serve until SIGINT or SIGTERM, then finish the requests in flight. A token replica loads its
/// keys meanwhile, serving `/readyz` 503 until it has them; if the loader gives up (discovery
/// not done within its bound, see `replica_keys.rs`) the replica stops with that error.
pub async fn serve(state: ReplicaState) -> anyhow::Result<()> {
    let listen = state.settings.service.listen;
    tracing::info!(mode = state.mode().name(), replica = %state.settings.replica_id, "api replica starting");
    let loader = match &state.auth {
        Authenticator::Jwt(keys) => Some(Arc::clone(keys).spawn_loader()),
        Authenticator::Session { .. } => None,
    };
    let gave_up = async {
        match loader {
            Some(loader) => loader.await.unwrap_or_else(anyhow::Error::from),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        served = service::serve(router(state)?, listen) => served,
        error = gave_up => {
            tracing::error!(error = %format!("{error:#}"), "stopping: no verification keys");
            Err(error)
        }
    }
}
