//! Token replicas configured with the issuer URL alone: no `JWKS_URL`, so each one reads the
//! issuer's discovery document, checks its `issuer`, and follows its `jwks_uri`
//! (crates/api/src/discovery.rs).
//!
//! The stack's own replicas are told `JWKS_URL`, so these tests start one more replica by hand,
//! beside a running stack, with exactly the environment under test.

use crate::helpers::TestStack;
use reqwest::StatusCode;
use stack::process::Process;
use stack::readiness::{http_ok, probe_client, wait_until_ready};
use std::time::{Duration, Instant};

/// A replica started outside the stack, on a free port, with its log in a temporary directory.
struct LoneReplica {
    process: Process,
    base: String,
    _logs: tempfile::TempDir,
}

impl LoneReplica {
    /// A jwt replica whose only key settings are `env`: whatever `JWKS_*` or `DISCOVERY_URL` this
    /// test process happens to have is removed first.
    fn start(env: &[(&str, &str)]) -> Self {
        let port = stack::ports::free_port().unwrap();
        let mut command = std::process::Command::new(TestStack::binaries().api);
        for name in ["JWKS_URL", "JWKS_FILE", "DISCOVERY_URL", "ISSUER_URL"] {
            command.env_remove(name);
        }
        command
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("API_MODE", "jwt")
            .env("AUDIENCE", stack::services::AUDIENCE)
            .env("REPLICA_ID", "lone")
            .envs(env.iter().copied());
        let logs = tempfile::tempdir().unwrap();
        let process = Process::spawn("lone", command, &logs.path().join("lone.log")).unwrap();
        LoneReplica {
            process,
            base: format!("http://127.0.0.1:{port}"),
            _logs: logs,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Wait until `/path` answers 200 (fails if the replica exits first).
    async fn wait_for(&mut self, path: &str) {
        let (probe, url) = (probe_client().unwrap(), self.url(path));
        let timeout = Duration::from_secs(30);
        wait_until_ready(&mut self.process, &format!("GET {path}"), timeout, || {
            http_ok(&probe, &url)
        })
        .await
        .unwrap();
    }

    async fn me(&self, token: &str) -> StatusCode {
        let http = probe_client().unwrap();
        let request = http.get(self.url("/api/me")).bearer_auth(token);
        request.send().await.unwrap().status()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap()
    }
}

/// The replica knows only `ISSUER_URL` (here nginx, the public address, which serves the
/// discovery document and the JWKS). It finds the keys and verifies a real token, and refuses
/// the same token once tampered with.
#[tokio::test]
async fn a_replica_given_only_the_issuer_url_finds_the_keys_and_verifies_tokens() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let issuer = t.stack.base_url();
    let mut replica = LoneReplica::start(&[("ISSUER_URL", &issuer)]);
    replica.wait_for("/readyz").await;

    let pair = t.login("bob", "builder").await;
    assert_eq!(replica.me(&pair.access).await, StatusCode::OK);
    let (head, rest) = pair.access.split_once('.').unwrap();
    let (claims, signature) = rest.split_once('.').unwrap();
    let mut forged: serde_json::Value = crate::helpers::claims_of(&pair.access);
    forged["roles"] = serde_json::json!(["admin"]);
    let forged_claims = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string())
    };
    assert_ne!(forged_claims, claims);
    let tampered = format!("{head}.{forged_claims}.{signature}");
    assert_eq!(replica.me(&tampered).await, StatusCode::UNAUTHORIZED);

    let log = replica.log();
    let found = format!("{issuer}/.well-known/jwks.json");
    assert!(
        log.contains("JWKS found through discovery") && log.contains(&found),
        "the log does not show the JWKS found at {found}:\n{log}"
    );
}

/// As in compose: the public `ISSUER_URL` is not where the replica reaches the issuer, so
/// `DISCOVERY_URL` names the issuer's own address. The document still has to name `ISSUER_URL`,
/// and the JWKS is fetched under `DISCOVERY_URL`, not at the public `jwks_uri`.
#[tokio::test]
async fn with_a_discovery_url_the_replica_fetches_the_keys_there_and_verifies_tokens() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let (issuer, inner) = (t.stack.base_url(), t.stack.issuer_url());
    let mut replica = LoneReplica::start(&[("ISSUER_URL", &issuer), ("DISCOVERY_URL", &inner)]);
    replica.wait_for("/readyz").await;

    let pair = t.login("bob", "builder").await;
    assert_eq!(replica.me(&pair.access).await, StatusCode::OK);
    let log = replica.log();
    let inner_jwks = format!("{inner}/.well-known/jwks.json");
    assert!(
        log.contains("JWKS found through discovery") && log.contains(&inner_jwks),
        "the log does not show {inner_jwks}:\n{log}"
    );
}

/// A discovery document whose `issuer` is not exactly `ISSUER_URL` is not trusted, whether the
/// difference is a trailing slash or a different issuer altogether answering at `DISCOVERY_URL`:
/// the replica loads no keys, is never ready, answers a real token 503 rather than judging it,
/// and exits with the reason once `DISCOVERY_TIMEOUT_SECS` has passed.
#[tokio::test]
async fn a_replica_refuses_a_discovery_document_of_another_issuer() {
    const BOUND_SECS: u64 = 3;
    let t = TestStack::start_with(1, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    let (public, inner) = (t.stack.base_url(), t.stack.issuer_url());
    let bound = BOUND_SECS.to_string();
    let with_slash = format!("{public}/");
    let configurations = [
        // The same issuer, spelled with a trailing slash: RFC 8414 3.3 compares exactly.
        vec![("ISSUER_URL", with_slash.as_str())],
        // The replica is meant to trust another issuer; the one at DISCOVERY_URL is not it.
        vec![
            ("ISSUER_URL", "http://issuer.example"),
            ("DISCOVERY_URL", inner.as_str()),
        ],
    ];
    for mut env in configurations {
        env.push(("DISCOVERY_TIMEOUT_SECS", &bound));
        let mut replica = LoneReplica::start(&env);
        replica.wait_for("/healthz").await;
        let started = Instant::now();

        let probe = probe_client().unwrap();
        while started.elapsed() < Duration::from_secs(BOUND_SECS - 1) {
            let ready = probe.get(replica.url("/readyz")).send().await.unwrap();
            assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{env:?}");
            assert_eq!(
                replica.me(&pair.access).await,
                StatusCode::SERVICE_UNAVAILABLE,
                "{env:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let status = loop {
            if let Some(status) = replica.process.try_exit() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(BOUND_SECS + 20),
                "{env:?}: the replica did not give up:\n{}",
                replica.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(!status.success(), "{env:?}: exited with {status}");
        let log = replica.log();
        assert!(
            log.contains("not trusted") && log.contains("DISCOVERY_TIMEOUT_SECS"),
            "{env:?}: the log does not say why:\n{log}"
        );
        assert!(!log.contains(&pair.access), "a token in the log");
    }
}
