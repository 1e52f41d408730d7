//! What every service's router gets, written once: `/metrics`, JSON errors for unknown paths
//! (404) and wrong methods (405; axum's own would be empty), the [`Limits`], and the request
//! metrics around all of it.

use crate::error::ApiError;
use crate::limits::Limits;
use crate::telemetry::{Metrics, metrics_handler, track_requests};
use axum::Router;
use axum::routing::get;
use std::sync::Arc;

/// Wrap a service's own `routes` (state already applied) into the router it serves.
pub fn finish(routes: Router, metrics: Arc<Metrics>, limits: Limits) -> Router {
    let routes = routes
        .route(
            "/metrics",
            get(metrics_handler).with_state(Arc::clone(&metrics)),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .fallback(|| async { ApiError::NotFound("no such route".into()) });
    limits
        .apply(routes)
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            track_requests,
        ))
}
