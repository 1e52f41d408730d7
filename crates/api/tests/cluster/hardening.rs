//! Brute force and refresh races, end to end (key rotation: `keys.rs`).

use crate::helpers::{TestStack, error_of, pair_of};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

async fn try_login(t: &TestStack, route: &str, user: &str, password: &str) -> reqwest::Response {
    t.post_json(route, json!({"username": user, "password": password}))
        .await
}

#[tokio::test]
async fn five_failures_for_one_username_lock_it_for_both_login_routes() {
    let t = TestStack::start_with(1, 1, &[]).await;
    for _ in 0..5 {
        let response = try_login(&t, "/auth/login", "alice", "guess").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused, on either route, with Retry-After.
    for route in ["/auth/login", "/auth/session/login"] {
        let response = try_login(&t, route, "alice", "wonderland").await;
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
        );
    }
    // Other users are not affected, and successes never count.
    for _ in 0..6 {
        assert_eq!(
            try_login(&t, "/auth/login", "bob", "builder")
                .await
                .status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn too_many_failures_from_one_address_lock_that_address() {
    let t = TestStack::start_with(1, 0, &[("LOGIN_MAX_FAILURES_PER_ADDR", "3")]).await;
    for user in ["u1", "u2", "u3"] {
        assert_eq!(
            try_login(&t, "/auth/login", user, "x").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, _) = error_of(try_login(&t, "/auth/login", "bob", "builder").await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // A spoofed X-Real-IP from the client changes nothing: nginx replaces it.
    let spoofed = t
        .client
        .http()
        .post(t.url("/auth/login"))
        .header("x-real-ip", "203.0.113.7")
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"username": "bob", "password": "builder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn within_the_grace_window_duplicate_refreshes_share_one_successor() {
    let t = TestStack::start_with(1, 0, &[("REFRESH_REUSE_GRACE_MS", "3000")]).await;
    let pair = t.login("alice", "wonderland").await;
    let results = t.concurrent_refreshes(&pair.refresh, 5).await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    let successor = &results[0].1;
    assert!(
        results.iter().all(|(_, body)| body == successor),
        "one successor, not a fork"
    );

    // The family is intact: the successor rotates normally.
    let next = pair_of(successor);
    assert_eq!(t.refresh(&next.refresh).await.status(), StatusCode::OK);

    // Past the window, a replay is reuse again and revokes the family.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(
        t.refresh(&pair.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
