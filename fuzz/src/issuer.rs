//! The issuer's real router, and requests made of the fuzzer's bytes.
//!
//! Built with `auth_issuer::startup::{build_state, router}`, exactly as the binary builds it,
//! with three changes to its settings: the signing key is the fixed fuzzing key (so refresh
//! tokens in the seeds verify and the fuzzer reaches the store calls behind them), the issuer URL
//! is [`ISSUER`], and Redis is `127.0.0.1:0`. Nothing can listen on port 0, so every store call
//! fails at once with the 503 the contract demands when the store is down; a port that was merely
//! free when the target started could be taken by another process's Redis during a long run.
//!
//! An input is `route, content type, body`: its first byte picks one of [`ROUTES`], its second
//! one of [`CONTENT_TYPES`] (each modulo their count), the rest is the body.

use crate::keys::{ISSUER, KEY_PEM};
use auth_core::limits::RequestLimits;
use auth_core::store::Target;
use auth_issuer::settings::Settings;
use auth_issuer::startup::{build_state, router};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use std::sync::OnceLock;
use tower::ServiceExt as _;

/// The routes that parse a JSON body.
pub const ROUTES: [&str; 4] = [
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/auth/session/login",
];

/// `None` sends no `Content-Type` at all.
pub const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    None,
];

/// A runtime and the router, made once per process and reused for every input.
pub struct Issuer {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

impl Issuer {
    pub fn shared() -> &'static Issuer {
        static ISSUER_APP: OnceLock<Issuer> = OnceLock::new();
        ISSUER_APP.get_or_init(Issuer::new)
    }

    fn new() -> Issuer {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary directory for the key");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&key_path, KEY_PEM).expect("the key file is written");
        let mut settings = Settings::from_env().expect("the default settings");
        settings.key_path = key_path;
        settings.tokens.issuer = ISSUER.to_owned();
        settings.redis.target = Target::Node("redis://127.0.0.1:0".to_owned());
        settings.users_file = None;
        settings.service.limits = RequestLimits {
            max_in_flight: 64,
            timeout: std::time::Duration::from_secs(5),
        };
        // The state is built inside the runtime, as in the binary (the store connects on first
        // use, in the runtime that serves the requests: this one).
        let state = runtime.block_on(async { build_state(settings) });
        let router = router(state.expect("the issuer's state")).expect("the issuer's router");
        Issuer {
            runtime,
            router,
            _dir: dir,
        }
    }

    /// Send one request; its status, content type and body.
    pub fn post(&self, input: &[u8]) -> Response {
        let (route, content_type, body) = request_parts(input);
        self.runtime.block_on(async {
            let mut request = Request::post(route);
            if let Some(content_type) = content_type {
                request = request.header(header::CONTENT_TYPE, content_type);
            }
            let request = request
                .body(Body::from(body.to_vec()))
                .expect("a well-formed request");
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("the response body is read");
            Response {
                route,
                status,
                content_type,
                body: body.to_vec(),
            }
        })
    }
}

/// What came back.
pub struct Response {
    pub route: &'static str,
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    /// Panic unless this is what the contract allows for a bad or unservable body: a 4xx, or
    /// the 503 of the store being down; and a JSON error body `{"error", "error_description"}`.
    pub fn assert_refused_cleanly(&self) {
        let Response { route, status, .. } = self;
        assert!(
            status.is_client_error() || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{route} answered {status}"
        );
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with("application/json")),
            "{route} answered {status} with content type {:?}",
            self.content_type
        );
        let body: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("{route} answered {status} with a body that is no JSON"));
        assert!(
            body["error"].is_string() && body["error_description"].is_string(),
            "{route} answered {status} with {body}"
        );
    }
}

/// Route, content type and body of an input; an empty input is an empty login.
pub fn request_parts(input: &[u8]) -> (&'static str, Option<&'static str>, &[u8]) {
    let route = input.first().map_or(0, |&b| usize::from(b) % ROUTES.len());
    let content_type = input
        .get(1)
        .map_or(0, |&b| usize::from(b) % CONTENT_TYPES.len());
    let body = input.get(2..).unwrap_or_default();
    (ROUTES[route], CONTENT_TYPES[content_type], body)
}

/// The input for `route` (an index into [`ROUTES`]), content type index and body, with
/// printable selector bytes (`'0' + i`), used to write seeds.
pub fn input(route: usize, content_type: usize, body: &[u8]) -> Vec<u8> {
    let digit = |i: usize| b'0' + u8::try_from(i).expect("a small index");
    let mut input = vec![digit(route), digit(content_type)];
    input.extend_from_slice(body);
    input
}
