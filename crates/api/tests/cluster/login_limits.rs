//! The login limits hold where they break: many guesses at once, not one after another; and a
//! burst of logins cannot grow the issuer's memory.
//!
//! Most requests here go straight to the issuer (`issuer_post`), past nginx's own `limit_req`, so
//! that what is shown is the issuer's guarantee, not the proxy's; one test goes through nginx.

use crate::helpers::{TestStack, count, error_of};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn two_hundred_concurrent_guesses_for_one_user_get_at_most_five_password_checks() {
    let t = TestStack::start_with(0, 0, &[("LOGIN_MAX_FAILURES_PER_ADDR", "100000")]).await;
    let url = format!("{}/auth/login", t.stack.issuer_url());
    let statuses = t
        .concurrently(200, |i| {
            t.client
                .http()
                .post(&url)
                .header("x-real-ip", "203.0.113.10")
                .json(&json!({"username": "alice", "password": format!("guess-{i}")}))
        })
        .await;
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    println!("200 concurrent guesses: {checked} checked against the hash (401)");
    assert!(
        checked <= 5,
        "the limit is 5, yet {checked} guesses were checked"
    );
    assert_eq!(
        checked + count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        200,
        "every other guess is refused with 429: {statuses:?}"
    );
    let failures = t
        .counter_at_with(&t.stack.issuer_url(), "authscale_logins_total", "failure")
        .await;
    assert!(failures <= 5, "{failures} password checks failed");

    // The right password is refused too while the lock lasts: the limit is per username.
    let (status, error) = error_of(
        t.issuer_post(
            "/auth/login",
            &json!({"username": "alice", "password": "wonderland"}),
            "198.51.100.1",
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

#[tokio::test]
pub(crate) async fn concurrent_guesses_from_one_address_are_limited_per_address_and_per_ipv6_64() {
    // The 20 guesses let through wait their turn for the hash workers; on a busy machine that
    // can take longer than the default queue wait, and a 503 `overloaded` is not what this
    // test is about (a_burst_of_two_hundred_logins… is): let them wait.
    let t = TestStack::start_with(0, 0, &[("LOGIN_QUEUE_WAIT_MS", "60000")]).await;
    let url = format!("{}/auth/login", t.stack.issuer_url());
    // 200 different usernames: the per-user limit never bites, the per-address one (20) must.
    let statuses = t
        .concurrently(200, |i| {
            t.client
                .http()
                .post(&url)
                .header("x-real-ip", "203.0.113.20")
                .json(&json!({"username": format!("user-{i}"), "password": "x"}))
        })
        .await;
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    assert!(
        checked <= 20,
        "{checked} guesses from one address were checked"
    );
    assert_eq!(
        checked + count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        200
    );

    // One IPv6 host holds a /64: every address in it shares one budget.
    let statuses = t
        .concurrently(60, |i| {
            t.client
                .http()
                .post(&url)
                .header("x-real-ip", format!("2001:db8:7:9::{:x}", i + 1))
                .json(&json!({"username": format!("v6-user-{i}"), "password": "x"}))
        })
        .await;
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    assert!(checked <= 20, "{checked} guesses from one /64 were checked");
    assert!(count(&statuses, StatusCode::TOO_MANY_REQUESTS) >= 40);
}

#[tokio::test]
async fn a_hundred_and_twenty_concurrent_guesses_through_nginx_get_at_most_five_checks() {
    let t = TestStack::start_with(0, 0, &[]).await;
    let url = t.url("/auth/login");
    let statuses = t
        .concurrently(120, |i| {
            t.client
                .http()
                .post(&url)
                .json(&json!({"username": "bob", "password": format!("guess-{i}")}))
        })
        .await;
    let checked = count(&statuses, StatusCode::UNAUTHORIZED);
    println!("120 concurrent guesses through nginx: {checked} checked against the hash");
    assert!(checked <= 5, "{checked} guesses were checked");
    // Refused by nginx's limit_req or by the issuer: 429 either way, never a 5xx.
    assert_eq!(
        checked + count(&statuses, StatusCode::TOO_MANY_REQUESTS),
        120,
        "{statuses:?}"
    );
    // nginx's limit_req is the first layer: most of the burst never reached the issuer (the
    // rate's burst lets a few through at once; the issuer refuses the rest of those itself).
    let reached = t
        .counter_at_with(
            &t.stack.issuer_url(),
            "authscale_http_requests_total",
            r#"route="/auth/login""#,
        )
        .await;
    println!("120 concurrent guesses through nginx: {reached} reached the issuer");
    assert!(
        reached < 60,
        "{reached} of 120 guesses reached the issuer: nginx's limit_req did not refuse them"
    );
}

/// 200 logins at once, each a different user (no limit bites): at most `LOGIN_HASH_WORKERS`
/// hashes run, the excess is told to come back (503 overloaded, Retry-After), and the issuer's
/// peak memory stays far below what 200 Argon2id buffers (19 MiB each) would take.
#[tokio::test]
async fn a_burst_of_two_hundred_logins_keeps_the_issuer_under_256_mib() {
    let t = TestStack::start_with(0, 0, &[("LOGIN_MAX_FAILURES_PER_ADDR", "100000")]).await;
    let url = format!("{}/auth/login", t.stack.issuer_url());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let request = t
            .client
            .http()
            .post(&url)
            .header("x-real-ip", "203.0.113.30")
            .json(&json!({"username": format!("burst-{i}"), "password": "x"}));
        tasks.spawn(async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                retry_after,
                body["error"].as_str().unwrap_or("").to_owned(),
            )
        });
    }
    let answers = tasks.join_all().await;
    let peak_kib = peak_rss_kib(t.stack.pid("issuer").unwrap());
    let overloaded = answers
        .iter()
        .filter(|(s, retry, e)| {
            *s == StatusCode::SERVICE_UNAVAILABLE && e == "overloaded" && retry.is_some()
        })
        .count();
    let checked = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    println!(
        "200 concurrent logins: {checked} checked, {overloaded} told to retry; issuer peak RSS {} MiB",
        peak_kib / 1024
    );
    assert_eq!(
        checked + overloaded,
        200,
        "only 401 or 503 overloaded: {answers:?}"
    );
    assert!(overloaded > 0, "a burst this size exceeds the queue");
    assert!(peak_kib < 256 * 1024, "issuer peak RSS {peak_kib} KiB");
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
