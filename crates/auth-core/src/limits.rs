//! The limits every service applies, so that no input can make it hang or fall over.
//!
//! - **Body size**: 64 KiB at most (the contract); larger bodies get `413 payload_too_large`.
//! - **Time**: a request that takes more than `REQUEST_TIMEOUT_SECS` (default 10 s) is answered
//!   `503 service_unavailable` instead of holding its connection and memory forever.
//! - **Concurrency**: at most `MAX_CONCURRENT_REQUESTS` (default 1024) requests in flight; past
//!   that, new requests are shed at once with `503 service_unavailable` rather than queued
//!   without bound. Under overload a fast "no" keeps latency for the admitted requests sane and
//!   lets the load balancer try elsewhere; an unbounded queue only turns overload into timeouts.
//!
//! Slow clients (a slowloris trickling headers) are nginx's job in front (`client_header_timeout`,
//! `client_body_timeout`); the services listen on loopback or a private network behind it.

use crate::error::ApiError;
use crate::settings;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use std::time::Duration;
use tower::{BoxError, ServiceBuilder};

/// Request bodies above this are refused with 413 (the contract's limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_in_flight: usize,
    pub timeout: Duration,
}

impl RequestLimits {
    pub fn from_env() -> anyhow::Result<Self> {
        let max_in_flight = settings::parse("MAX_CONCURRENT_REQUESTS", 1024usize)?;
        let timeout_secs = settings::parse("REQUEST_TIMEOUT_SECS", 10u64)?;
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

    /// Wrap `router` in the limits. The errors the layers raise become the contract's JSON.
    pub fn apply(self, router: Router) -> Router {
        // `with_state(())` turns every handler into a service now. Without it, axum builds a
        // handler's service (and so a fresh concurrency limit around it) on every request,
        // and the limit would never be reached.
        router
            .with_state(())
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(|err: BoxError| async move {
                        to_api_error(&err)
                    }))
                    .load_shed()
                    .concurrency_limit(self.max_in_flight)
                    .timeout(self.timeout),
            )
    }
}

fn to_api_error(err: &BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Unavailable("the service is overloaded; retry shortly".into())
    } else if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::Unavailable("the request took too long".into())
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
}
