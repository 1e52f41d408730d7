//! The limits every service applies, so that no input can make it hang or fall over.
//!
//! - **Body size**: 64 KiB at most (the contract); larger bodies get `413 payload_too_large`.
//! - **Time**: a request that takes more than `REQUEST_TIMEOUT_SECS` (default 10 s) is answered
//!   `503 service_unavailable` instead of holding its connection and memory forever.
//! - **Concurrency**: at most `MAX_CONCURRENT_REQUESTS` (default 1024) requests in flight; past
//!   that, new requests are shed at once with `503 service_unavailable` rather than queued
//!   without bound. Under overload a fast "no" keeps latency for the admitted requests sane and
//!   lets the load balancer try elsewhere; an unbounded queue only turns overload into timeouts.
//!   The limit is one pool of slots shared by every route of the service. (axum applies a layer
//!   to each route separately, and tower's plain `ConcurrencyLimitLayer` makes a new pool for
//!   each service it wraps: that would be a limit per route, so a service with ten routes could
//!   hold ten times the limit. [`GlobalConcurrencyLimitLayer`] shares one semaphore instead.)
//! - **Probes have a pool of their own** ([`RequestLimits::apply_to_probes`]): `/healthz`,
//!   `/readyz` and `/metrics` must answer exactly when the traffic's pool is full, since that is
//!   when an orchestrator or a person needs to see the service alive and what it is doing. They
//!   get [`PROBE_SLOTS`] slots and the same timeout, so they are bounded too.
//!
//! Slow clients (a slowloris trickling headers) are nginx's job in front (`client_header_timeout`,
//! `client_body_timeout`); the services listen on loopback or a private network behind it.

use crate::error::ApiError;
use crate::settings;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use std::time::Duration;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

/// Request bodies above this are refused with 413 (the contract's limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Probe and `/metrics` requests in flight at most. A probe is one small request every few
/// seconds from each orchestrator or scraper; this many at once already means something is
/// hammering them, and they are not public (nginx does not route them).
pub const PROBE_SLOTS: usize = 32;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_in_flight: usize,
    pub timeout: Duration,
}

impl RequestLimits {
    pub fn from_env() -> anyhow::Result<Self> {
        let max_in_flight: usize = settings::MAX_CONCURRENT_REQUESTS.parse()?;
        let timeout_secs: u64 = settings::REQUEST_TIMEOUT_SECS.parse()?;
        anyhow::ensure!(
            max_in_flight >= 1,
            "MAX_CONCURRENT_REQUESTS must be at least 1"
        );
        anyhow::ensure!(timeout_secs >= 1, "REQUEST_TIMEOUT_SECS must be at least 1");
        Ok(RequestLimits {
            max_in_flight,
            timeout: Duration::from_secs(timeout_secs),
        })
    }

    /// Wrap `router` in the limits: every route of it shares `MAX_CONCURRENT_REQUESTS` slots.
    /// The errors the layers raise become the contract's JSON.
    pub fn apply(self, router: Router) -> Router {
        wrap(router, self.max_in_flight, self.timeout)
    }

    /// Wrap the probe routes in limits of their own: [`PROBE_SLOTS`] slots, which the traffic
    /// never takes, and the same timeout.
    pub fn apply_to_probes(self, router: Router) -> Router {
        wrap(router, PROBE_SLOTS, self.timeout)
    }
}

/// Body limit, load shedding past `slots` requests in flight in all of `router`, and `timeout`.
fn wrap(router: Router, slots: usize, timeout: Duration) -> Router {
    // `with_state(())` turns every handler into a service now. Without it, axum builds a
    // handler's service on every request, and any per-service state in a layer with it.
    router
        .with_state(())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|err: BoxError| async move {
                    to_api_error(&err)
                }))
                .load_shed()
                // One semaphore, cloned into every route's copy of the layer.
                .layer(GlobalConcurrencyLimitLayer::new(slots))
                .timeout(timeout),
        )
}

/// What any route of a service may answer while it sheds load or times a request out; the
/// OpenAPI document lists them on every route.
pub fn limit_errors() -> [ApiError; 2] {
    [
        ApiError::Unavailable("the service is overloaded; retry shortly".into()),
        ApiError::Unavailable("the request took too long".into()),
    ]
}

fn to_api_error(err: &BoxError) -> ApiError {
    let [overloaded, too_long] = limit_errors();
    if err.is::<tower::load_shed::error::Overloaded>() {
        overloaded
    } else if err.is::<tower::timeout::error::Elapsed>() {
        too_long
    } else {
        ApiError::internal(format!("middleware error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn limits(max_in_flight: usize, timeout_ms: u64) -> RequestLimits {
        RequestLimits {
            max_in_flight,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn a_slow_handler_gets_a_json_503() {
        let slow = Router::new().route(
            "/",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let app = limits(10, 50).apply(slow);
        let response = app.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "service_unavailable");
    }

    #[tokio::test]
    async fn requests_beyond_the_concurrency_limit_are_shed_not_queued() {
        let (entered_tx, mut entered_rx) = tokio::sync::mpsc::channel::<()>(1);
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        let blocking = Router::new().route(
            "/",
            get(move || {
                let (entered, gate) = (entered_tx.clone(), gate.clone());
                async move {
                    let _ = entered.send(()).await;
                    gate.notified().await;
                    "done"
                }
            }),
        );
        let app = limits(1, 5_000).apply(blocking);
        let first = tokio::spawn(app.clone().oneshot(Request::new(Body::empty())));
        entered_rx.recv().await.unwrap();
        let started = std::time::Instant::now();
        let second = app
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "shed at once, not after the timeout"
        );
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    /// The limit is the service's, not each route's: a request holding the only slot on one
    /// route makes another route shed too. (A per-route limit would let it through.)
    #[tokio::test]
    async fn the_limit_is_shared_by_every_route() {
        let (entered_tx, mut entered_rx) = tokio::sync::mpsc::channel::<()>(1);
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        let app = Router::new()
            .route(
                "/slow",
                get(move || {
                    let (entered, gate) = (entered_tx.clone(), gate.clone());
                    async move {
                        let _ = entered.send(()).await;
                        gate.notified().await;
                        "done"
                    }
                }),
            )
            .route("/quick", get(|| async { "quick" }));
        let app = limits(1, 5_000).apply(app);
        let request = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let slow = tokio::spawn(app.clone().oneshot(request("/slow")));
        entered_rx.recv().await.unwrap();
        let quick = app.clone().oneshot(request("/quick")).await.unwrap();
        assert_eq!(quick.status(), StatusCode::SERVICE_UNAVAILABLE);
        release.notify_one();
        assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
        let quick = app.oneshot(request("/quick")).await.unwrap();
        assert_eq!(quick.status(), StatusCode::OK, "the slot is free again");
    }
}
