//! Logs and metrics.
//!
//! **Logs** go through `tracing`. `LOG_FORMAT=json` writes one JSON object per line for a log
//! shipper; the default is readable text. `RUST_LOG` filters as usual (default `info`). Nothing
//! in this project logs a request header or body, so a token, password, cookie or key cannot end
//! up in a log line: handlers log user names, key ids and outcomes only.
//!
//! **Metrics** are served at `/metrics` in the OpenMetrics text format (the format Prometheus
//! scrapes, a stricter successor of its original text format) through
//! [`prometheus-client`](https://docs.rs/prometheus-client), the Prometheus project's own Rust
//! client. A crate rather than a registry written out here, because the format has rules that
//! are easy to get subtly wrong by hand (escaping label values, cumulative histogram buckets,
//! `+Inf`, the `_total` suffix, the `# EOF` terminator) and a client that Prometheus maintains
//! follows the specification as it evolves. What it does for us:
//!
//! - a [`Registry`] holds every metric family with its name and help text and writes them all
//!   out on a scrape (`encode`);
//! - a `Family<Labels, Counter>` is one metric name with a series per label set (here the route
//!   template and status of a request), created on first use;
//! - a `Histogram` counts observations into fixed buckets and keeps their sum.
//!
//! This module keeps a small API of its own on top ([`Metrics::counter`], [`Counter`],
//! [`Metrics::observe_request`], [`read_counter`]) so the services never name the crate. Two
//! naming rules of the crate show on the page: a counter's family is named without `_total`
//! (`# TYPE authscale_logins counter`) while its samples carry it (`authscale_logins_total{..}`),
//! so [`Metrics::counter`] takes the sample name and strips the suffix; and the crate ends every
//! help text with a full stop, so a trailing one is stripped too.
//!
//! On the request path a metric costs a few atomic adds: the per-route handles (shared pointers
//! to the crate's counters and histogram) are cached in a read-locked map keyed by `&str`, so
//! nothing is allocated once a route has been seen.

use crate::settings::LogFormat;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// The content type of the `/metrics` page: what `prometheus_client::encoding::text` writes.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Start logging. Call once, first thing in `main`.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = crate::settings::RUST_LOG.default.unwrap_or("info");
    let filter = EnvFilter::try_new(crate::settings::RUST_LOG.string())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second call (tests start several services in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// A monotonically increasing count, cheap to clone and to bump from any task: a handle on one
/// series of a `prometheus-client` counter family.
#[derive(Clone, Default)]
pub struct Counter(PromCounter);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }

    pub fn inc_by(&self, n: u64) {
        self.0.inc_by(n);
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The labels of `authscale_http_requests_total`, in the order they are written.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

/// The label of `authscale_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The label set of a counter registered through [`Metrics::counter`].
type Labels = Vec<(String, String)>;

/// Handles on the series of one route, cached so a request finds them by `&str`.
struct RouteSeries {
    route: String,
    statuses: RwLock<HashMap<u16, Counter>>,
    latency: Histogram,
}

impl RouteSeries {
    fn status(&self, requests: &Family<RequestLabels, PromCounter>, status: u16) -> Counter {
        let known = self
            .statuses
            .read()
            .ok()
            .and_then(|m| m.get(&status).cloned());
        known.unwrap_or_else(|| {
            let mut map = self.statuses.write().unwrap_or_else(|p| p.into_inner());
            map.entry(status)
                .or_insert_with(|| {
                    Counter(requests.get_or_create_owned(&RequestLabels {
                        route: self.route.clone(),
                        status,
                    }))
                })
                .clone()
        })
    }

    fn total(&self) -> u64 {
        let map = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(Counter::get).sum()
    }
}

/// The registry of one service.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// The counter families registered through [`Metrics::counter`], by sample name, so a name
    /// registered with several label sets is one family (one `# HELP`, one `# TYPE`).
    counters: Mutex<HashMap<&'static str, Family<Labels, PromCounter>>>,
    requests: Family<RequestLabels, PromCounter>,
    latency: Family<RouteLabels, Histogram>,
    /// Per route template: looked up by `&str`, so recording a request allocates nothing once
    /// the route has been seen.
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, PromCounter>::default();
        let latency: Family<RouteLabels, Histogram> =
            Family::new_with_constructor(latency_histogram);
        let mut registry = Registry::default();
        registry.register(
            "authscale_http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "authscale_http_request_duration_seconds",
            "Time from request to response, by route",
            latency.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            counters: Mutex::default(),
            requests,
            latency,
            routes: RwLock::default(),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Register a counter (at start-up) and get the handle to bump it with. `name` is the name
    /// the samples carry, ending in `_total` (a name without it gets it appended on the page).
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let family = counters.entry(name).or_insert_with(|| {
            let family = Family::<Labels, PromCounter>::default();
            let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            registry.register(
                name.strip_suffix("_total").unwrap_or(name),
                help.strip_suffix('.').unwrap_or(help),
                family.clone(),
            );
            family
        });
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Counter(family.get_or_create_owned(&labels))
    }

    /// The cached handles of `route`, created on its first request.
    fn route(&self, route: &str) -> Arc<RouteSeries> {
        let series = self.routes.read().ok().and_then(|m| m.get(route).cloned());
        series.unwrap_or_else(|| {
            let mut map = self.routes.write().unwrap_or_else(|p| p.into_inner());
            map.entry(route.to_owned())
                .or_insert_with(|| {
                    let latency = self.latency.get_or_create_owned(&RouteLabels {
                        route: route.to_owned(),
                    });
                    Arc::new(RouteSeries {
                        route: route.to_owned(),
                        statuses: RwLock::default(),
                        latency,
                    })
                })
                .clone()
        })
    }

    /// Record one finished request.
    pub fn observe_request(&self, route: &str, status: u16, secs: f64) {
        let series = self.route(route);
        series.status(&self.requests, status).inc();
        series.latency.observe(secs);
    }

    /// How many requests finished on `route` (any status). For tests and the load test.
    pub fn requests_on(&self, route: &str) -> u64 {
        let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
        map.get(route).map_or(0, |series| series.total())
    }

    /// The OpenMetrics text exposition format (version 1.0.0), ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// Middleware: time every request and count it by route template (never by raw path, which
/// would let a client create unbounded series) and status.
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    // MatchedPath is a shared string: cloning it copies a pointer, not the path.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    metrics.observe_request(route, status, start.elapsed().as_secs_f64());
    tracing::debug!(%route, status, "request");
    response
}

/// The `/metrics` handler.
pub async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

/// Read one counter (summed over its label sets, filtered by `labels`) out of a rendered
/// metrics page. Tests and the load test use it to read a service's counters over HTTP.
pub fn read_counter(page: &str, name: &str, labels: &str) -> u64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let matches = series == name
                || (series.starts_with(name)
                    && series[name.len()..].starts_with('{')
                    && series.contains(labels));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_requests_and_histograms() {
        let m = Metrics::new();
        let issued = m.counter(
            "authscale_tokens_issued_total",
            "Tokens issued.",
            &[("kind", "access")],
        );
        let refresh = m.counter(
            "authscale_tokens_issued_total",
            "Tokens issued.",
            &[("kind", "refresh")],
        );
        let commands = m.counter("authscale_redis_commands_total", "Commands.", &[]);
        issued.inc();
        issued.inc();
        refresh.inc();
        commands.inc();
        assert_eq!(issued.get(), 2);
        m.observe_request("/api/me", 200, 0.0007);
        m.observe_request("/api/me", 401, 3.0);
        let page = m.render();
        let lines: Vec<&str> = page.lines().collect();
        // One family per name, however many label sets; the help text keeps one full stop.
        let help = "# HELP authscale_tokens_issued Tokens issued.";
        assert_eq!(lines.iter().filter(|l| **l == help).count(), 1, "{page}");
        assert!(
            lines.contains(&"# TYPE authscale_tokens_issued counter"),
            "{page}"
        );
        assert!(
            lines.contains(&"authscale_tokens_issued_total{kind=\"access\"} 2"),
            "{page}"
        );
        assert!(
            lines.contains(&"authscale_tokens_issued_total{kind=\"refresh\"} 1"),
            "{page}"
        );
        assert!(
            lines.contains(&"authscale_redis_commands_total 1"),
            "{page}"
        );
        assert!(
            lines.contains(&"authscale_http_requests_total{route=\"/api/me\",status=\"200\"} 1")
        );
        assert!(lines.contains(
            &"# HELP authscale_http_request_duration_seconds Time from request to response, by route."
        ));
        assert!(lines.contains(&"# TYPE authscale_http_request_duration_seconds histogram"));
        assert!(
            lines.contains(
                &"authscale_http_request_duration_seconds_bucket{le=\"0.0005\",route=\"/api/me\"} 0"
            ),
            "{page}"
        );
        assert!(lines.contains(
            &"authscale_http_request_duration_seconds_bucket{le=\"0.001\",route=\"/api/me\"} 1"
        ));
        assert!(lines.contains(
            &"authscale_http_request_duration_seconds_bucket{le=\"5.0\",route=\"/api/me\"} 2"
        ));
        assert!(lines.contains(
            &"authscale_http_request_duration_seconds_bucket{le=\"+Inf\",route=\"/api/me\"} 2"
        ));
        assert!(
            lines.contains(&"authscale_http_request_duration_seconds_count{route=\"/api/me\"} 2")
        );
        assert_eq!(lines.last(), Some(&"# EOF"));
        assert_eq!(
            read_counter(&page, "authscale_tokens_issued_total", "kind=\"access\""),
            2
        );
        assert_eq!(read_counter(&page, "authscale_tokens_issued_total", ""), 3);
        assert_eq!(read_counter(&page, "authscale_redis_commands_total", ""), 1);
        assert_eq!(
            read_counter(&page, "authscale_http_requests_total", "route=\"/api/me\""),
            2
        );
        assert_eq!(m.requests_on("/api/me"), 2);
        assert_eq!(m.requests_on("/api/other"), 0);
    }
}
