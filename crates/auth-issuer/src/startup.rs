//! Building the issuer: state from its settings, the router, and serving until shutdown.

use crate::settings::Settings;
use crate::state::{Issuer, IssuerMetrics, IssuerState};
use crate::users::Users;
use auth_core::keys::KeyOrigin;
use auth_core::service;
use auth_core::store::Store;
use auth_core::verify::{MAX_LEEWAY_SECS, TokenRules};
use axum::Router;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Everything the issuer needs, loaded and checked before it listens.
pub fn build_state(settings: Settings) -> anyhow::Result<IssuerState> {
    let key_files = settings.key_files();
    let (_, origin) = key_files.ensure()?;
    let verb = match origin {
        KeyOrigin::Loaded => "loaded",
        KeyOrigin::Generated => "generated",
    };
    // Reading the keyring may promote a pending key that came due while no issuer ran.
    let keyring = key_files.keyring(None, settings.lifetimes(), auth_core::now_secs())?;
    let kid = keyring.signing.kid();
    tracing::info!(kid, path = %settings.key_path.display(), "signing key {verb}");
    // A rotation through mounted files fails quietly if a file is misnamed: say what was found.
    for (name, path, key) in [
        (
            "KEY_NEXT_PATH",
            &settings.key_next_path,
            keyring
                .pending
                .last()
                .filter(|p| p.activate_at == crate::keyring::Pending::UNTIL_INSTALLED)
                .map(|p| &p.jwk),
        ),
        (
            "KEY_PREVIOUS_PATH",
            &settings.key_previous_path,
            keyring.mounted_previous.as_ref().map(|r| &r.jwk),
        ),
    ] {
        if let Some(path) = path {
            match key {
                Some(jwk) => {
                    tracing::info!(kid = jwk.kid, path = %path.display(), "{name}: key found")
                }
                None => {
                    tracing::info!(path = %path.display(), "{name}: no key there (fine outside a rotation)")
                }
            }
        }
    }

    let users = Users::load(settings.users_file.as_deref(), settings.hashing)?;
    let metrics = IssuerMetrics::new();
    let store = Store::new(&settings.redis.target, metrics.redis_commands.clone())?
        .with_acks(settings.redis_acks);
    let refresh_rules = TokenRules::refresh(&settings.tokens.issuer, MAX_LEEWAY_SECS);
    Ok(Arc::new(Issuer {
        settings,
        users,
        keyring: RwLock::new(Arc::new(keyring)),
        key_files,
        refresh_rules,
        store,
        metrics,
    }))
}

/// Notice key rotations (and retired keys aging out) by re-reading the key files periodically.
pub fn spawn_key_reloader(state: IssuerState) {
    let every = Duration::from_secs(state.settings.key_reload_secs);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let state = Arc::clone(&state);
            // File reads and PEM parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || state.reload_keys()).await;
        }
    });
}

/// The issuer's routes, each with its part of the OpenAPI document: the router and the
/// document come from this one list, so no route is served undocumented.
pub fn documented_routes() -> OpenApiRouter<IssuerState> {
    OpenApiRouter::new()
        .routes(routes!(crate::routes::login::login))
        .routes(routes!(crate::routes::refresh::refresh))
        .routes(routes!(crate::routes::logout::logout))
        .routes(routes!(crate::routes::session::login))
        .routes(routes!(crate::routes::session::logout))
        .routes(routes!(crate::routes::jwks::jwks))
        .routes(routes!(crate::routes::discovery::metadata))
        .routes(routes!(crate::routes::discovery::oauth_metadata))
        .routes(routes!(crate::openapi::openapi))
}

pub fn router(state: IssuerState) -> anyhow::Result<Router> {
    let id = state.settings.issuer_id.clone();
    let registry = state.metrics.registry.clone();
    let limits = state.settings.service.limits;
    let (routes, _) = documented_routes().split_for_parts();
    let routes = routes.with_state(Arc::clone(&state));
    let router = service::finish(routes, state, registry, limits);
    service::identify(router, "x-issuer", &id)
        .map_err(|e| e.context("ISSUER_ID is not a valid header value"))
}

/// Serve until SIGINT or SIGTERM, then finish the requests in flight. Connection info gives
/// the login limits the TCP peer (see client_addr.rs).
pub async fn serve(state: IssuerState) -> anyhow::Result<()> {
    let listen = state.settings.service.listen;
    tracing::info!(issuer = %state.settings.tokens.issuer, "auth-issuer starting");
    spawn_key_reloader(Arc::clone(&state));
    service::serve(router(state)?, listen).await
}

/// Property tests over the real router: no request body, however malformed, gets a 5xx (other
/// than the 503 of an unreachable store) or panics the issuer.
#[cfg(test)]
mod properties {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use proptest::prelude::*;
    use tower::ServiceExt as _;

    /// One runtime and one issuer for all cases. Its Redis is a closed port: every store call
    /// fails closed, fast.
    fn runtime_and_app() -> &'static (tokio::runtime::Runtime, Router, tempfile::TempDir) {
        static SHARED: std::sync::OnceLock<(tokio::runtime::Runtime, Router, tempfile::TempDir)> =
            std::sync::OnceLock::new();
        SHARED.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let app = runtime.block_on(async { app(dir.path()) });
            (runtime, app, dir)
        })
    }

    fn app(dir: &std::path::Path) -> Router {
        let mut settings = Settings::from_env().unwrap();
        settings.key_path = dir.join("key.pem");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        settings.redis.target = auth_core::store::Target::Node(format!("redis://{closed}"));
        settings.service.limits = auth_core::limits::RequestLimits {
            max_in_flight: 64,
            timeout: std::time::Duration::from_secs(5),
        };
        router(build_state(settings).unwrap()).unwrap()
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            ".{0,200}".prop_map(String::into_bytes),
            ("[a-z]{0,12}", ".{0,20}", ".{0,20}").prop_map(|(k, u, p)| {
                serde_json::json!({ k: u, "username": u, "password": p })
                    .to_string()
                    .into_bytes()
            }),
            Just(b"{\"username\":1,\"password\":[]}".to_vec()),
            Just(vec![b'['; 10_000]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
        ))]

        #[test]
        fn no_body_makes_the_issuer_fail(
            route in prop_oneof![
                Just("/auth/login"), Just("/auth/refresh"), Just("/auth/logout"),
                Just("/auth/session/login"),
            ],
            content_type in prop_oneof![Just("application/json"), Just("text/plain"), Just("")],
            bytes in body(),
        ) {
            let (runtime, app, _) = runtime_and_app();
            let status = runtime.block_on(async {
                let request = Request::post(route).header("content-type", content_type).body(Body::from(bytes)).unwrap();
                app.clone().oneshot(request).await.unwrap().status()
            });
            prop_assert!(
                status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE,
                "{route}: {status}"
            );
        }
    }
}
