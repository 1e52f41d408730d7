//! Brute force, key rotation and refresh races, end to end.

use crate::helpers::{TestStack, decode_segment, error_of, pair_of};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

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
        .http
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
async fn key_rotation_needs_no_restart_and_keeps_old_tokens_valid() {
    let env = [("KEY_RELOAD_SECS", "1"), ("JWKS_REFETCH_SECS", "1")];
    let t = TestStack::start_with(2, 0, &env).await;
    let before = t.login("bob", "builder").await;
    let old_kid = decode_segment(&before.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();

    let output = std::process::Command::new(TestStack::binaries().issuer)
        .arg("rotate-key")
        .env("KEY_PATH", t.issuer_key_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // The running issuer notices: the JWKS now holds the new key and the previous one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let kids = loop {
        let jwks = t.jwks().await;
        let kids: Vec<String> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        if kids.len() == 2 {
            break kids;
        }
        assert!(
            Instant::now() < deadline,
            "the issuer did not pick up the new key: {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(kids[1], old_kid);
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the replicas' refetch interval

    let after = t.login("bob", "builder").await;
    let new_kid = decode_segment(&after.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(new_kid, kids[0]);
    assert_ne!(new_kid, old_kid);
    for _ in 0..10 {
        // Both replicas accept the new key without a restart, and the old key's tokens still.
        assert_eq!(
            t.get_bearer("/api/me", &after.access).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            t.get_bearer("/api/me", &before.access).await.status(),
            StatusCode::OK
        );
    }
    // A refresh token signed by the old key still rotates (no forced logout).
    assert_eq!(t.refresh(&before.refresh).await.status(), StatusCode::OK);
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
