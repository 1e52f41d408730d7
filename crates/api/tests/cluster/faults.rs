//! Processes dying under the cluster: the issuer, a replica under load, a replica that hangs
//! under load, a replica that cannot reach the JWKS.

use crate::helpers::{TestStack, error_of};
use reqwest::StatusCode;
use stack::Mode;
use std::time::Duration;
use testkit::Auth;
use testkit::stream::{Settings, Stream, StreamReport};

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
    let settings = Settings {
        clients: 8,
        run_for: Some(Duration::from_secs(3)),
        pause: Duration::ZERO,
    };
    let access = pair.access.clone();
    let stream = Stream::start(&t.client, settings, move |client| {
        client.get("/api/me", Auth::Bearer(&access))
    })
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    t.stack.kill_replica(Mode::Jwt, 0).await.unwrap();
    let report = stream.finish().await;
    assert_no_get_failed(&report, "while a replica died");
}

/// A replica that hangs is what nginx sees of a host that died, or was cut off, with requests in
/// flight: nothing refuses or resets them, they meet silence. A paused process (SIGSTOP) is that
/// silence on one machine: the kernel still accepts and acknowledges, nothing answers. nginx gives
/// each try on a replica 3 s (`proxy_read_timeout` in the replicas' locations) and sends a GET
/// that ran out to another replica, so no request fails; with nginx's general 15 s, those
/// requests outlast the client's 10 s and fail. Tokens and sessions: the rule is in both places.
#[tokio::test]
async fn a_hung_token_replica_under_load_fails_no_get() {
    let mut t = TestStack::start_with(3, 0, &[]).await;
    let access = t.login("alice", "wonderland").await.access;
    let report = stream_while_paused(&mut t, "jwt-1", move |client| {
        client.get("/api/me", Auth::Bearer(&access))
    })
    .await;
    assert_no_get_failed(&report, "while a replica hung");
    assert_met_the_paused_replica(&report);
}

#[tokio::test]
async fn a_hung_session_replica_under_load_fails_no_get() {
    let mut t = TestStack::start_with(0, 3, &[]).await;
    let cookie = t.session_login("alice", "wonderland").await;
    let report = stream_while_paused(&mut t, "session-1", move |client| {
        client.get("/sapi/me", Auth::Cookie(&cookie))
    })
    .await;
    assert_no_get_failed(&report, "while a replica hung");
    assert_met_the_paused_replica(&report);
}

/// A stream of GETs from 8 clients; 1 s in, the process `name` is paused, and it stays paused
/// until every client has had its last answer: a request stuck on it is answered by another
/// replica or not at all (the client gives up after 10 s), never by the paused one waking up.
/// The stream goes on for 5 s after the pause: past one try's 3 s, and past a second pick of the
/// paused replica once its 2 s out of rotation are over.
async fn stream_while_paused<F>(t: &mut TestStack, name: &str, request: F) -> StreamReport
where
    F: Fn(&testkit::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let settings = Settings {
        clients: 8,
        run_for: None,
        pause: Duration::ZERO,
    };
    let stream = Stream::start(&t.client, settings, request).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    t.stack.pause(name).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stream.stop();
    let report = stream.finish().await;
    t.stack.resume(name).unwrap();
    report
}

/// The stream ran, and not one of its GETs failed. nginx does not reload in these tests, so a
/// connection closed under a request counts too.
fn assert_no_get_failed(report: &StreamReport, during: &str) {
    assert!(report.requests > 100, "the stream ran: {}", report.requests);
    assert_eq!(
        report.failures.len(),
        0,
        "failed GETs {during}, e.g. {:?}",
        report.some_failures()
    );
    assert!(report.resent.is_empty(), "{:?}", report.some_resent());
}

/// Evidence that requests did meet the silent replica, so the test tested something: a request
/// stuck there waited out a whole try before it went elsewhere.
fn assert_met_the_paused_replica(report: &StreamReport) {
    assert!(
        report.slowest >= Duration::from_secs(3),
        "no request met the paused replica (slowest {:?})",
        report.slowest
    );
}

/// A replica whose JWKS cannot be fetched is alive but not ready, and refuses to judge tokens
/// (503, which nginx passes on as it is) rather than calling every token forged.
#[tokio::test]
async fn a_replica_without_reachable_jwks_is_not_ready() {
    let port = stack::ports::free_port().unwrap();
    let dead_issuer = stack::ports::free_port().unwrap();
    let mut command = std::process::Command::new(TestStack::binaries().api);
    command
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("API_MODE", "jwt")
        .env(
            "JWKS_URL",
            format!("http://127.0.0.1:{dead_issuer}/.well-known/jwks.json"),
        );
    let logs = tempfile::tempdir().unwrap();
    let mut replica =
        stack::process::Process::spawn("replica", command, &logs.path().join("replica.log"))
            .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let probe = stack::readiness::probe_client().unwrap();
    let healthz = format!("{base}/healthz");
    stack::readiness::wait_until_ready(
        &mut replica,
        "GET /healthz",
        Duration::from_secs(10),
        || stack::readiness::http_ok(&probe, &healthz),
    )
    .await
    .unwrap();

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
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
