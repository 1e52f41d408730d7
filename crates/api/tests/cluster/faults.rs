//! Processes dying under the cluster: the issuer, a replica under load, a replica that cannot
//! reach the JWKS.

use crate::helpers::{TestStack, error_of};
use reqwest::StatusCode;
use stack::Mode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::test]
async fn with_the_issuer_dead_token_replicas_serve_on_and_auth_routes_get_json_502() {
    let mut t = TestStack::start_with(2, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    t.stack.kill_issuer().await.unwrap();

    for _ in 0..20 {
        assert_eq!(
            t.get_bearer("/api/me", &pair.access).await.status(),
            StatusCode::OK
        );
    }
    let (status, error) = error_of(t.refresh(&pair.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_GATEWAY, "bad_gateway")
    );
}

#[tokio::test]
async fn killing_a_replica_under_load_fails_no_get() {
    let mut t = TestStack::start_with(3, 0, &[]).await;
    let pair = t.login("alice", "wonderland").await;
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop_at = Instant::now() + Duration::from_secs(3);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (http, url, token) = (t.http.clone(), t.url("/api/me"), pair.access.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        workers.spawn(async move {
            while Instant::now() < stop_at {
                match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    t.stack.kill_replica(Mode::Jwt, 0).await.unwrap();
    workers.join_all().await;
    assert!(ok.load(Ordering::Relaxed) > 100, "the stream ran: {ok:?}");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed GETs while a replica died"
    );
}

/// A replica whose JWKS cannot be fetched is alive but not ready, and refuses to judge tokens
/// (503, which nginx passes on as it is) rather than calling every token forged.
#[tokio::test]
async fn a_replica_without_reachable_jwks_is_not_ready() {
    let port = stack::ports::free_port().unwrap();
    let dead_issuer = stack::ports::free_port().unwrap();
    let mut replica = std::process::Command::new(TestStack::binaries().api)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("API_MODE", "jwt")
        .env(
            "JWKS_URL",
            format!("http://127.0.0.1:{dead_issuer}/.well-known/jwks.json"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _reap = Reap(&mut replica);

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "replica did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        let me = http
            .get(format!("{base}/api/me"))
            .bearer_auth("a.b.c")
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
