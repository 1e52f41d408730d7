//! Overload does not cascade: with every token replica full, each client request costs one
//! attempt on one replica, and the client gets that replica's own JSON 503, never an nginx 502.
//!
//! The risk is in nginx's retry rule. If nginx retried a replica's 503 (`http_503` in
//! `proxy_next_upstream`), it would also count each 503 as a failed attempt and take the replica
//! out of rotation (`max_fails=1`): under overload every replica that sheds load is taken out in
//! turn, and once none is left nginx answers 502 itself. And without a limit on the tries, every
//! request could be sent to every replica, exactly when none has room.
//!
//! Making every replica full on a 2-core machine cannot rely on timing: `/api/me` is so quick
//! that a burst rarely finds two requests in one replica at once. So each replica admits one
//! request at a time (`MAX_CONCURRENT_REQUESTS=1`) and that one slot is taken by a request that
//! waits: a token with a `kid` no replica knows makes the replica fetch the JWKS again, from an
//! issuer that is paused (SIGSTOP: it accepts connections and answers nothing), so that request
//! holds the slot until the fetch gives up. Every other request to that replica is shed at once
//! with 503, which is what a replica at its limit does.
//!
//! A replica at its limit still answers its probes and `/metrics` (they have their own slots, see
//! auth-core's `service::finish`): an orchestrator must not restart a replica for being busy, and
//! the metrics that show the overload must be readable during it. The limit itself is the
//! replica's, not one route's: a request holding the slot on `/api/me` sheds `/api/ping` too.

use crate::helpers::TestStack;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stack::Mode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The client requests of the burst, all in flight at once.
const BURST: usize = 60;

#[tokio::test(flavor = "multi_thread")]
async fn with_every_replica_full_each_request_costs_one_attempt_and_gets_the_replicas_503() {
    // JWKS_REFETCH_SECS=1: an unknown kid may trigger a fetch a second after the last one.
    let env = [("MAX_CONCURRENT_REQUESTS", "1"), ("JWKS_REFETCH_SECS", "1")];
    let mut t = TestStack::start_with(3, 0, &env).await;
    let pair = t.login("bob", "builder").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    t.stack.pause("issuer").unwrap();
    fill_every_replica(&t, &pair.access).await;

    let before = attempts(&t).await;
    let mut requests = tokio::task::JoinSet::new();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(BURST));
    for _ in 0..BURST {
        let (http, url, token) = (
            t.client.http().clone(),
            t.url("/api/me"),
            pair.access.clone(),
        );
        let barrier = barrier.clone();
        requests.spawn(async move {
            barrier.wait().await;
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status();
            let from_replica = response.headers().contains_key("x-replica");
            let body: Value = response.json().await.unwrap();
            (status, from_replica, body)
        });
    }
    let answers = requests.join_all().await;
    let attempts = attempts(&t).await - before;
    t.stack.resume("issuer").unwrap();

    let mut by_status = BTreeMap::<u16, usize>::new();
    let mut wrong = Vec::new();
    for (status, from_replica, body) in &answers {
        *by_status.entry(status.as_u16()).or_default() += 1;
        let right = match *status {
            // The slots free up when the fetches give up; a request after that is served.
            StatusCode::OK => body["auth"] == "jwt",
            StatusCode::SERVICE_UNAVAILABLE => {
                *from_replica && body["error"] == "service_unavailable"
            }
            _ => false,
        };
        if !right {
            wrong.push(format!("{status} (from a replica: {from_replica}) {body}"));
        }
    }
    eprintln!("{BURST} requests: {by_status:?}; {attempts} attempts reached the replicas");
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "every answer is a 200 or a replica's own JSON 503, not: {wrong:#?}"
    );
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > BURST / 2,
        "the replicas were not full during the burst: {by_status:?}"
    );
    assert_eq!(
        attempts, BURST as u64,
        "each client request reached exactly one replica; a 503 is not retried ({by_status:?})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_replica_sheds_every_api_route_but_answers_its_probes_and_metrics() {
    let env = [("MAX_CONCURRENT_REQUESTS", "1"), ("JWKS_REFETCH_SECS", "1")];
    let mut t = TestStack::start_with(1, 0, &env).await;
    let pair = t.login("bob", "builder").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    t.stack.pause("issuer").unwrap();
    fill_every_replica(&t, &pair.access).await;
    // Straight to the replica, not through nginx: this is about the replica's own answers.
    let replica = t.stack.replica_urls(Mode::Jwt)[0].clone();
    let get = |path: &str| t.client.http().get(format!("{replica}{path}")).send();

    // A route other than the one whose request holds the slot: shed as well.
    let ping = get("/api/ping").await.unwrap();
    let ping_status = ping.status();
    let ping_body: Value = ping.json().await.unwrap();
    let mut probes = Vec::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = get(path).await.unwrap();
        probes.push((path, response.status(), response.text().await.unwrap()));
    }
    // Still full after the probes, so they were answered while the replica was shedding.
    let still_full = get("/api/ping").await.unwrap().status();
    t.stack.resume("issuer").unwrap();

    assert_eq!(
        (ping_status, &ping_body["error"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &json!("service_unavailable")
        ),
        "{ping_body}"
    );
    for (path, status, body) in &probes {
        assert_eq!(*status, StatusCode::OK, "{path} while full: {body}");
    }
    let metrics = &probes[2].2;
    let shed = auth_core::telemetry::read_counter(
        metrics,
        "authscale_http_requests_total",
        r#"route="/api/ping",status="503""#,
    );
    assert!(
        shed >= 1,
        "/metrics shows the shedding it answered during:\n{metrics}"
    );
    assert_eq!(still_full, StatusCode::SERVICE_UNAVAILABLE);
}

/// Takes the one slot of every token replica with a request that waits for the paused issuer,
/// and returns once each replica sheds a request of its own (sent to it directly).
async fn fill_every_replica(t: &TestStack, access_token: &str) {
    let waiting = unknown_kid(access_token);
    let hold = |url: &str| {
        let (http, url, token) = (
            t.client.http().clone(),
            format!("{url}/api/me"),
            waiting.clone(),
        );
        tokio::spawn(async move { http.get(url).bearer_auth(token).send().await })
    };
    let urls = t.stack.replica_urls(Mode::Jwt);
    let mut holders: Vec<_> = urls.iter().map(|url| hold(url)).collect();
    // Let the holders arrive first: a probe that got there before its holder would turn it away.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for (url, holder) in urls.iter().zip(&mut holders) {
        loop {
            let probe = t
                .client
                .http()
                .get(format!("{url}/api/me"))
                .bearer_auth(access_token);
            let status = probe.send().await.unwrap().status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{url} never became full (its probe answers {status})"
            );
            // A holder that was turned away or answered already: send another.
            if holder.is_finished() {
                *holder = hold(url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `token` with a header naming a kid no replica has: verifying it makes the replica refetch
/// the JWKS (the signature is never checked: the key is not there).
fn unknown_kid(token: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "no-replica-knows-this-kid"});
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64.encode(header.to_string()))
}

/// How many `/api/me` requests the token replicas have answered with 200 or 503 (each attempt
/// nginx made), read from their own /metrics. The fills' own 401s are not counted.
async fn attempts(t: &TestStack) -> u64 {
    let name = "authscale_http_requests_total";
    let mut total = 0;
    for status in ["200", "503"] {
        let labels = format!(r#"route="/api/me",status="{status}""#);
        total += t.replica_counter_with(Mode::Jwt, name, &labels).await;
    }
    total
}
