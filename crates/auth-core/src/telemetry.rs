//! Logs and metrics.
//!
//! **Logs** go through `tracing`. `LOG_FORMAT=json` writes one JSON object per line for a log
//! shipper; the default is readable text. `RUST_LOG` filters as usual (default `info`). Nothing
//! in this project logs a request header or body, so a token, password, cookie or key cannot end
//! up in a log line: handlers log user names, key ids and outcomes only.
//!
//! **Metrics** are served at `/metrics` in the Prometheus text format. The registry is small and
//! written out here rather than pulled from a crate, so a reader can see exactly what a counter
//! costs on the request path: a few atomic adds, after read-locked map look-ups for the
//! per-route series, and no allocation once a route has been seen.

use crate::settings::LogFormat;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Start logging. Call once, first thing in `main`.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second call (tests start several services in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// A monotonically increasing count, cheap to clone and to bump from any task.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Count per bucket (not cumulative; the text format's cumulative counts are summed on
    /// rendering, which is rare, instead of on every observation).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

/// The series of one route: requests by status, and the latency histogram.
#[derive(Default)]
struct RouteSeries {
    statuses: RwLock<HashMap<u16, Counter>>,
    latency: Histogram,
}

impl RouteSeries {
    fn status(&self, status: u16) -> Counter {
        let known = self
            .statuses
            .read()
            .ok()
            .and_then(|m| m.get(&status).cloned());
        known.unwrap_or_else(|| {
            let mut map = self.statuses.write().unwrap_or_else(|p| p.into_inner());
            map.entry(status).or_default().clone()
        })
    }

    fn total(&self) -> u64 {
        let map = self.statuses.read().unwrap_or_else(|p| p.into_inner());
        map.values().map(Counter::get).sum()
    }
}

struct NamedCounter {
    name: &'static str,
    help: &'static str,
    labels: String,
    counter: Counter,
}

/// The registry of one service.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Vec<NamedCounter>>,
    /// Per route template: looked up by `&str`, so recording a request allocates nothing once
    /// the route has been seen.
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Register a counter (at start-up) and get the handle to bump it with.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
    ) -> Counter {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",");
        let counter = Counter::default();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters.push(NamedCounter {
            name,
            help,
            labels,
            counter: counter.clone(),
        });
        counter
    }

    /// Record one finished request.
    pub fn observe_request(&self, route: &str, status: u16, secs: f64) {
        let series = self.routes.read().ok().and_then(|m| m.get(route).cloned());
        let series = series.unwrap_or_else(|| {
            let mut map = self.routes.write().unwrap_or_else(|p| p.into_inner());
            map.entry(route.to_owned()).or_default().clone()
        });
        series.status(status).inc();
        series.latency.observe(secs);
    }

    /// How many requests finished on `route` (any status). For tests and the load test.
    pub fn requests_on(&self, route: &str) -> u64 {
        let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
        map.get(route).map_or(0, |series| series.total())
    }

    /// The routes seen so far, in order, with their series.
    fn sorted_routes(&self) -> Vec<(String, Arc<RouteSeries>)> {
        let map = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let mut routes: Vec<_> = map
            .iter()
            .map(|(r, s)| (r.clone(), Arc::clone(s)))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        routes
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render_counters(&mut out);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        out
    }

    fn render_counters(&self, out: &mut String) {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen: Vec<&str> = Vec::new();
        for c in counters.iter() {
            if !seen.contains(&c.name) {
                seen.push(c.name);
                let _ = writeln!(
                    out,
                    "# HELP {} {}\n# TYPE {} counter",
                    c.name, c.help, c.name
                );
            }
            let _ = match c.labels.is_empty() {
                true => writeln!(out, "{} {}", c.name, c.counter.get()),
                false => writeln!(out, "{}{{{}}} {}", c.name, c.labels, c.counter.get()),
            };
        }
    }

    fn render_requests(&self, out: &mut String) {
        out.push_str("# HELP authscale_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE authscale_http_requests_total counter\n");
        for (route, series) in self.sorted_routes() {
            let statuses = series.statuses.read().unwrap_or_else(|p| p.into_inner());
            let mut rows: Vec<_> = statuses.iter().map(|(s, c)| (*s, c.get())).collect();
            rows.sort();
            for (status, n) in rows {
                let _ = writeln!(
                    out,
                    "authscale_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        const NAME: &str = "authscale_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {NAME} Time from request to response, by route."
        );
        let _ = writeln!(out, "# TYPE {NAME} histogram");
        for (route, series) in self.sorted_routes() {
            let h = &series.latency;
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{NAME}_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += h.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{NAME}_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "{NAME}_sum{{route=\"{route}\"}} {sum}");
            let _ = writeln!(out, "{NAME}_count{{route=\"{route}\"}} {cumulative}");
        }
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
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(),
    )
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
        issued.inc();
        issued.inc();
        m.observe_request("/api/me", 200, 0.0007);
        m.observe_request("/api/me", 401, 3.0);
        let page = m.render();
        assert!(page.contains("authscale_tokens_issued_total{kind=\"access\"} 2"));
        assert!(page.contains("authscale_http_requests_total{route=\"/api/me\",status=\"200\"} 1"));
        assert!(page.contains(
            "authscale_http_request_duration_seconds_bucket{route=\"/api/me\",le=\"0.001\"} 1"
        ));
        assert!(page.contains(
            "authscale_http_request_duration_seconds_bucket{route=\"/api/me\",le=\"5\"} 2"
        ));
        assert!(
            page.contains("authscale_http_request_duration_seconds_count{route=\"/api/me\"} 2")
        );
        assert_eq!(
            read_counter(&page, "authscale_tokens_issued_total", "kind=\"access\""),
            2
        );
        assert_eq!(
            read_counter(&page, "authscale_http_requests_total", "route=\"/api/me\""),
            2
        );
        assert_eq!(m.requests_on("/api/me"), 2);
    }
}
