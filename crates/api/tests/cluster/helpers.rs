//! `TestStack`: a running cluster, what is about the stack (its key, its Redis, its replicas'
//! metrics), and the contract's routes as the tests use them, through testkit's [`Client`].

use auth_core::keys::SigningKey;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use stack::{Binaries, Mode, Stack, StackConfig};
use std::collections::BTreeSet;
use std::path::Path;
pub use testkit::Pair;
use testkit::{Auth, Client};

std::thread_local! {
    /// Redis shards of the stacks this thread starts: 1 (one redis-server) unless
    /// [`on_a_redis_cluster`] runs a test. A thread-local, not an environment variable, because
    /// tests run in parallel threads, and a `#[tokio::test]` runs on the thread that calls it.
    static REDIS_SHARDS: std::cell::Cell<usize> = const { std::cell::Cell::new(1) };
}

/// Runs `test` (a `#[tokio::test]` function, which is a plain function that blocks on its own
/// runtime on this thread) with every stack it starts on a Redis Cluster of 3 masters.
pub fn on_a_redis_cluster(test: fn()) {
    REDIS_SHARDS.set(3);
    let _reset = testkit::Guard::new(|| REDIS_SHARDS.set(1));
    test();
}

/// A running stack and a [`Client`] for it through nginx. The calls below unwrap: a test that
/// cannot even reach the stack has failed, and the panic says where.
pub struct TestStack {
    pub stack: Stack,
    pub client: Client,
    work_dir: tempfile::TempDir,
}

impl TestStack {
    /// `jwt` token replicas and `session` session replicas behind nginx, with `env` added to
    /// every service's environment.
    pub async fn start_with(jwt: usize, session: usize, env: &[(&str, &str)]) -> Self {
        Self::start_configured(jwt, session, env, |_| {}).await
    }

    /// [`Self::start_with`], with `configure` changing the rest of the stack's config (e.g.
    /// `redis_aof`) before it starts.
    pub async fn start_configured(
        jwt: usize,
        session: usize,
        env: &[(&str, &str)],
        configure: impl FnOnce(&mut StackConfig),
    ) -> Self {
        let work_dir = tempfile::tempdir().unwrap();
        let mut config = StackConfig::new(Self::binaries(), work_dir.path().to_path_buf());
        config.redis_shards = REDIS_SHARDS.get();
        config.jwt_replicas = jwt;
        config.session_replicas = session;
        config.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        configure(&mut config);
        let stack = Stack::start(config).await.unwrap();
        let client = Client::new(&stack.base_url()).unwrap();
        TestStack {
            stack,
            client,
            work_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.client.url(path)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client.post_json(path, &body).send().await.unwrap()
    }

    /// A token pair for `username`; the login must succeed.
    pub async fn login(&self, username: &str, password: &str) -> Pair {
        self.client.login(username, password).await.unwrap()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.client
            .refresh_request(refresh_token)
            .send()
            .await
            .unwrap()
    }

    pub async fn logout(&self, refresh_token: &str) -> Response {
        self.client
            .logout_request(refresh_token)
            .send()
            .await
            .unwrap()
    }

    /// The JWKS, through nginx.
    pub async fn jwks(&self) -> Value {
        self.client.jwks().await.unwrap()
    }

    /// `n` refreshes with the same token, all in flight at once: (status, body) of each.
    pub async fn concurrent_refreshes(
        &self,
        refresh_token: &str,
        n: usize,
    ) -> Vec<(StatusCode, Value)> {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let request = self.client.refresh_request(refresh_token);
            tasks.spawn(async move {
                let response = request.send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            });
        }
        tasks.join_all().await
    }

    pub async fn get_bearer(&self, path: &str, access_token: &str) -> Response {
        let request = self.client.get(path, Auth::Bearer(access_token));
        request.send().await.unwrap()
    }

    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> Response {
        let request = self.client.get(path, Auth::Cookie(cookie));
        request.send().await.unwrap()
    }

    /// Log in on the session route; returns the raw `Set-Cookie` value.
    pub async fn session_login(&self, username: &str, password: &str) -> String {
        let cookie = self.client.session_login(username, password).await.unwrap();
        cookie.set_cookie
    }

    /// The service binaries the stack runs (to run `auth-issuer rotate-key`, or a lone replica).
    pub fn binaries() -> Binaries {
        Binaries::beside(Path::new(env!("CARGO_BIN_EXE_api"))).unwrap()
    }

    /// Where the issuer keeps its signing key.
    pub fn issuer_key_path(&self) -> std::path::PathBuf {
        self.work_dir.path().join("issuer-key.pem")
    }

    /// The issuer's signing key, read from the file the issuer persisted: lets a test forge
    /// tokens with the real key (an expired one, say) to show exactly which check refuses them.
    pub fn issuer_key(&self) -> SigningKey {
        let pem = std::fs::read_to_string(self.issuer_key_path()).unwrap();
        SigningKey::from_pem(&pem).unwrap()
    }

    /// Sum of a counter over every replica of `mode`, read from their own /metrics.
    pub async fn replica_counter(&self, mode: Mode, name: &str) -> u64 {
        self.replica_counter_with(mode, name, "").await
    }

    /// [`Self::replica_counter`] over the series whose labels contain `labels`
    /// (`route="/api/me"`).
    pub async fn replica_counter_with(&self, mode: Mode, name: &str, labels: &str) -> u64 {
        let mut total = 0;
        for url in self.stack.replica_urls(mode) {
            total += self.counter_at_with(&url, name, labels).await;
        }
        total
    }

    /// A counter from the /metrics page of the service at `base_url` (not through nginx).
    pub async fn counter_at(&self, base_url: &str, name: &str) -> u64 {
        self.counter_at_with(base_url, name, "").await
    }

    /// [`Self::counter_at`] over the series whose labels contain `labels`.
    pub async fn counter_at_with(&self, base_url: &str, name: &str, labels: &str) -> u64 {
        let metrics = self.client.at(base_url).get("/metrics", Auth::None);
        let response = metrics.send().await.unwrap();
        auth_core::telemetry::read_counter(&response.text().await.unwrap(), name, labels)
    }

    /// `POST /auth/session/logout` with `cookie` (`sid=…`).
    pub async fn session_logout(&self, cookie: &str) -> Response {
        let request = self.client.session_logout_request(Auth::Cookie(cookie));
        request.send().await.unwrap()
    }

    /// A connection to the stack's Redis, to look at (or tamper with) what the store holds.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.stack.redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Run one Redis command against the stack's Redis (through the cluster client when it is a
    /// cluster: a key's command goes to the node of its slot, `KEYS *` to every node).
    pub async fn redis_cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        if self.stack.redis_is_cluster() {
            let client = redis::cluster::ClusterClient::new(self.stack.redis_urls()).unwrap();
            let mut conn = client.get_async_connection().await.unwrap();
            return cmd.query_async(&mut conn).await.unwrap();
        }
        cmd.query_async(&mut self.redis().await).await.unwrap()
    }

    /// `POST` JSON straight to the issuer (past nginx and its limits), as if nginx had forwarded
    /// it for client address `client` (the issuer believes `X-Real-IP` from loopback).
    pub async fn issuer_post(&self, path: &str, body: &Value, client: &str) -> Response {
        let issuer = self.client.at(&self.stack.issuer_url());
        let request = issuer.post_json(path, body).header("x-real-ip", client);
        request.send().await.unwrap()
    }

    /// `n` requests all in flight at once, built by `request(i)`: the status of each.
    pub async fn concurrently(
        &self,
        n: usize,
        request: impl Fn(usize) -> reqwest::RequestBuilder,
    ) -> Vec<StatusCode> {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            let request = request(i);
            tasks.spawn(async move { request.send().await.unwrap().status() });
        }
        tasks.join_all().await
    }

    /// Distinct `X-Replica` values seen over `n` GETs of `path` (each a 200 whose body names
    /// the same replica as its header).
    pub async fn replicas_serving(&self, n: usize, path: &str, auth: Auth<'_>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        for _ in 0..n {
            seen.insert(self.client.me(path, auth).await.unwrap().replica);
        }
        seen
    }
}

/// How many of `statuses` are `status`.
pub fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// The claims of a JWT (its middle segment).
pub fn claims_of(token: &str) -> Value {
    decode_segment(token, 1)
}

pub fn pair_of(body: &Value) -> Pair {
    Pair::from_json(body).unwrap()
}

/// Decode one base64url JWT segment as JSON (what any client holding the token can do).
pub fn decode_segment(token: &str, index: usize) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Status and error code of a refusal, asserting the contract's error shape.
pub async fn error_of(response: Response) -> (StatusCode, String) {
    match testkit::client::error_of(response).await {
        testkit::Error::Api(refusal) => (refusal.status, refusal.error),
        other => panic!("not the contract's error shape: {other}"),
    }
}
