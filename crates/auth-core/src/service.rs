//! The service scaffold: everything about being a service that the issuer and the replicas do
//! alike, written once.
//!
//! A service binary only says what is its own (its settings, its state, its routes, its
//! readiness, its extra subcommands). This module does the rest:
//!
//! - [`Service::main`]: the command line. No argument serves; `healthcheck` probes the service's
//!   own `/readyz` (slim images have no curl, see [`crate::probe`]); `help` prints the usage.
//! - [`run`]: logging, then a tokio runtime to serve on.
//! - [`serve`]: listening, serving until a shutdown signal, then finishing the requests in flight.
//! - [`health_routes`]: `/healthz` (the process is alive) and `/readyz` (it can serve, as the
//!   service's [`Readiness`] says). Load balancers and compose route only to ready services.
//! - [`finish`]: what every router gets: the probes and `/metrics`, JSON errors for unknown paths
//!   (404) and wrong methods (405; axum's own would be empty), the [`RequestLimits`], and the
//!   request metrics around all of it. The probes and `/metrics` are not shed with the traffic:
//!   they sit outside its limits, on a small pool of their own (see [`finish`]).
//! - [`identify`]: a header naming the instance that answered on every response (`X-Replica`,
//!   `X-Issuer`), so a person, a test or the page sees where a request went.

use crate::error::ApiError;
use crate::limits::RequestLimits;
use crate::settings::{LogFormat, Setting};
use crate::telemetry::{Metrics, metrics_handler, track_requests};
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, response::IntoResponse};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// What the scaffold needs to know about a service binary.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// The binary's name: the prefix of its error messages.
    pub name: &'static str,
    /// Its `LISTEN_ADDR` declaration, with its own default; `healthcheck` probes the same address.
    pub listen: Setting,
    /// `--help`'s text.
    pub usage: &'static str,
}

impl Service {
    /// The binary's whole `main`. With no argument, `serve`; `healthcheck` and `help` are
    /// answered here; any other arguments go to `subcommand`, which returns `None` for ones it
    /// does not know. An error is printed as `<name>: <error>` and exits with status 1.
    pub fn main(
        &self,
        serve: impl FnOnce() -> anyhow::Result<()>,
        subcommand: impl FnOnce(&[&str]) -> Option<anyhow::Result<()>>,
    ) -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = match args.as_slice() {
            [] => serve(),
            ["healthcheck"] => self.healthcheck(),
            ["-h" | "--help" | "help"] => {
                println!("{}", self.usage);
                Ok(())
            }
            other => subcommand(other).unwrap_or_else(|| {
                Err(anyhow::anyhow!(
                    "unknown arguments {other:?}\n\n{}",
                    self.usage
                ))
            }),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: {e:#}", self.name);
                ExitCode::FAILURE
            }
        }
    }

    /// `<binary> healthcheck`: fine when the service at `LISTEN_ADDR` answers `/readyz` with
    /// 200. Only `LISTEN_ADDR` is read: the probe must not fail over a setting it does not use.
    fn healthcheck(&self) -> anyhow::Result<()> {
        let listen: SocketAddr = self.listen.parse()?;
        anyhow::ensure!(crate::probe::ready(listen), "not ready at {listen}");
        Ok(())
    }
}

/// Start logging, then a multi-threaded tokio runtime (`worker_threads`, or one per CPU), and
/// run `serve` on it to its end. `serve` is a future, so nothing in it runs before the runtime
/// exists: the Redis connection manager, for one, must be made inside it.
pub fn run(
    log_format: LogFormat,
    worker_threads: Option<usize>,
    serve: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    crate::telemetry::init_tracing(log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        runtime.worker_threads(n.max(1));
    }
    runtime.enable_all().build()?.block_on(serve)
}

/// Serve `router` on `listen` until Ctrl-C or SIGTERM ([`crate::shutdown::signal`]), then stop
/// accepting connections and let the requests in flight finish. Handlers can read the TCP peer's
/// address (`ConnectInfo<SocketAddr>`): the issuer's login limits count by it.
pub async fn serve(router: Router, listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "listening");
    let app = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown::signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// What `/readyz` asks a service: can it serve right now?
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` with the fields `/readyz` shows beside `"status": "ready"`, or the error that says
    /// why not (its status is what the load balancer sees).
    fn readiness(&self) -> impl Future<Output = Result<Map<String, Value>, ApiError>> + Send;
}

/// `/healthz` and `/readyz` for a service whose state is an `Arc<S>`.
pub fn health_routes<S: Readiness>() -> Router<Arc<S>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
}

/// Alive: the process answers. Nothing is checked, so a restart is never asked for because a
/// dependency is down.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz<S: Readiness>(State(service): State<Arc<S>>) -> impl IntoResponse {
    let mut body = Map::new();
    body.insert("status".into(), "ready".into());
    body.extend(service.readiness().await?);
    Ok::<_, ApiError>(Json(body))
}

/// Wrap a service's own `routes` (state already applied) into the router it serves, with the
/// probes ([`health_routes`], asking `service`) and `/metrics` added.
///
/// The traffic (`routes`, and the 404/405 answers) is wrapped in the [`RequestLimits`]; the
/// probes and `/metrics` are merged in after that, wrapped in limits of their own
/// ([`RequestLimits::apply_to_probes`]). So when the traffic fills `MAX_CONCURRENT_REQUESTS` and
/// is being shed with 503, or is timing out, `/healthz`, `/readyz` and `/metrics` still answer:
/// an orchestrator does not restart a service for being busy (a restart would only drop the
/// requests in flight and push them onto the others), and the metrics that show the overload
/// can be read during it.
///
/// They stay on the same port rather than on a port of their own: a separate listener would be
/// one more setting and one more port in every deployment (compose, Kubernetes, Swarm, the test
/// stack) for no gain in isolation (both would share the same runtime), and a probe on the
/// traffic's own listener also checks that this listener accepts and answers.
pub fn finish<S: Readiness>(
    routes: Router,
    service: Arc<S>,
    metrics: Arc<Metrics>,
    limits: RequestLimits,
) -> Router {
    let json_405 = || async { ApiError::MethodNotAllowed };
    let routes = routes
        .method_not_allowed_fallback(json_405)
        .fallback(|| async { ApiError::NotFound("no such route".into()) });
    let probes = health_routes::<S>()
        .with_state(service)
        .route(
            "/metrics",
            get(metrics_handler).with_state(Arc::clone(&metrics)),
        )
        .method_not_allowed_fallback(json_405);
    limits
        .apply(routes)
        .merge(limits.apply_to_probes(probes))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            track_requests,
        ))
}

/// `<host name>:<port>`: unique for instances on one machine (different ports) and in containers
/// (the host name is the container id, which is what `docker ps` shows).
pub fn default_instance_id(listen: SocketAddr, fallback: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| fallback.to_owned());
    format!("{host}:{}", listen.port())
}

/// Every response of `router` carries `header: id`, errors and 404s included (the layer is the
/// outermost). An id that is not a valid header value is refused at start-up.
pub fn identify(router: Router, header: &'static str, id: &str) -> anyhow::Result<Router> {
    use axum::http::{HeaderName, HeaderValue};
    let value = HeaderValue::from_str(id)
        .map_err(|_| anyhow::anyhow!("the instance id {id:?} must be printable ASCII"))?;
    let name = HeaderName::from_static(header);
    Ok(router.layer(axum::middleware::map_response(
        move |mut response: axum::response::Response| {
            let (name, value) = (name.clone(), value.clone());
            async move {
                response.headers_mut().insert(name, value);
                response
            }
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt as _;

    struct Up;
    struct Down;

    impl Readiness for Up {
        async fn readiness(&self) -> Result<Map<String, Value>, ApiError> {
            Ok(Map::from_iter([("mode".into(), "test".into())]))
        }
    }

    impl Readiness for Down {
        async fn readiness(&self) -> Result<Map<String, Value>, ApiError> {
            Err(ApiError::StoreUnavailable)
        }
    }

    async fn get<S: Readiness>(service: S, path: &str) -> (StatusCode, Value) {
        let app = health_routes::<S>().with_state(Arc::new(service));
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn readyz_shows_the_service_fields_or_its_error_and_healthz_checks_nothing() {
        let (status, body) = get(Up, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "status": "ready", "mode": "test" }));
        let (status, body) = get(Down, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "store_unavailable");
        let (status, body) = get(Down, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "status": "ok" }));
    }

    /// A wrong method gets the contract's JSON body, and still the `Allow` header RFC 9110
    /// (15.5.6) requires, which axum adds after the fallback: on the traffic and the probes.
    #[tokio::test]
    async fn a_wrong_method_gets_json_and_the_allowed_methods() {
        let routes = Router::new().route("/thing", axum::routing::post(|| async { "posted" }));
        let limits = crate::limits::RequestLimits {
            max_in_flight: 4,
            timeout: std::time::Duration::from_secs(5),
        };
        let app = finish(routes, Arc::new(Up), Metrics::new(), limits);
        for (path, allowed) in [("/thing", "POST"), ("/healthz", "GET,HEAD")] {
            let request = Request::delete(path).body(Body::empty()).unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
            assert_eq!(response.headers()["allow"], allowed, "{path}");
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "method_not_allowed", "{path}");
        }
    }

    /// With the traffic's only slot taken by a slow request, the traffic is shed but the probes
    /// and /metrics answer.
    #[tokio::test]
    async fn probes_and_metrics_answer_while_the_traffic_is_shed() {
        use crate::limits::RequestLimits;
        use std::time::Duration;
        let (entered_tx, mut entered_rx) = tokio::sync::mpsc::channel::<()>(1);
        let release = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::clone(&release);
        let routes = Router::new()
            .route(
                "/slow",
                axum::routing::get(move || {
                    let (entered, gate) = (entered_tx.clone(), Arc::clone(&gate));
                    async move {
                        let _ = entered.send(()).await;
                        gate.notified().await;
                        "done"
                    }
                }),
            )
            .route("/quick", axum::routing::get(|| async { "quick" }));
        let limits = RequestLimits {
            max_in_flight: 1,
            timeout: Duration::from_secs(5),
        };
        let app = finish(routes, Arc::new(Up), Metrics::new(), limits);
        let request = |path: &str| Request::get(path).body(Body::empty()).unwrap();
        let slow = tokio::spawn(app.clone().oneshot(request("/slow")));
        entered_rx.recv().await.unwrap();

        let status = |path: &'static str| {
            let app = app.clone();
            async move { app.oneshot(request(path)).await.unwrap().status() }
        };
        assert_eq!(status("/quick").await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            status("/no-such-route").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        for probe in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(status(probe).await, StatusCode::OK, "{probe}");
        }
        release.notify_one();
        assert_eq!(slow.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(status("/quick").await, StatusCode::OK);
    }
}
