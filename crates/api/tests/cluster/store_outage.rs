//! Redis goes away: the stateful parts fail closed with 503, the stateless part does not notice,
//! and everything recovers when Redis returns, with no restart. With persistence (`cargo xtask up
//! --persist`), what Redis held comes back with it.

use crate::helpers::{TestStack, error_of, pair_of};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn redis_down_means_503_for_refresh_and_sessions_while_tokens_keep_working() {
    let mut t = TestStack::start_with(2, 1, &[]).await;
    let pair = t.login("bob", "builder").await;
    let set_cookie = t.session_login("bob", "builder").await;
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    t.stack.stop_redis().await.unwrap();

    for _ in 0..10 {
        assert_eq!(
            t.get_bearer("/api/me", &pair.access).await.status(),
            StatusCode::OK
        );
    }
    for response in [
        t.refresh(&pair.refresh).await,
        t.logout(&pair.refresh).await,
        t.get_with_cookie("/sapi/me", &cookie).await,
        t.post_json(
            "/auth/session/login",
            json!({"username": "bob", "password": "builder"}),
        )
        .await,
    ] {
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
        );
    }

    t.stack.start_redis().await.unwrap();

    // This Redis keeps nothing on disk, so it came back empty: the refresh token's family is no
    // longer on record and the token is refused (fail closed), although it was never spent.
    // (The next test restarts Redis with its files: nothing is lost.)
    let (status, error) = error_of(t.refresh(&pair.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
    t.login("bob", "builder").await;
    // Sessions lived in the same Redis, so log in again; the session replica reconnects by
    // itself.
    let cookie = t
        .session_login("bob", "builder")
        .await
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        t.get_with_cookie("/sapi/me", &cookie).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_restart_with_its_files_loses_nothing_and_without_them_refuses_every_earlier_token() {
    let mut t = TestStack::start_configured(0, 1, &[], |config| config.redis_aof = true).await;
    let first = t.login("bob", "builder").await;
    let rotated = pair_of(&t.refresh(&first.refresh).await.json().await.unwrap());
    let logged_out = t.login("alice", "wonderland").await;
    assert_eq!(
        t.logout(&logged_out.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    let set_cookie = t.session_login("bob", "builder").await;
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    t.stack.restart_redis(true).await.unwrap();
    // The services' connections from before the restart are dead; the store finds that
    // out on use and sends the command again on a new connection (auth-core's store.rs), so the
    // very first request after the restart is answered, not refused with 503.
    let me = t.get_with_cookie("/sapi/me", &cookie).await;
    assert_eq!(
        me.status(),
        StatusCode::OK,
        "the session came back from the append-only file"
    );
    let (status, error) = error_of(t.refresh(&logged_out.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant"),
        "a logged-out family stays logged out"
    );
    let next = t.refresh(&rotated.refresh).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the unspent successor still works"
    );
    let next = pair_of(&next.json().await.unwrap());
    let (status, error) = error_of(t.refresh(&first.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant"),
        "the spent refresh token is still spent"
    );
    assert_eq!(
        t.refresh(&next.refresh).await.status(),
        StatusCode::UNAUTHORIZED,
        "and its replay still revokes the family"
    );

    // The same restart without the files, like losing the disk: every session and every refresh
    // token from before is refused; users log in again.
    let before = t.login("bob", "builder").await;
    t.stack.restart_redis(false).await.unwrap();
    let me = t.get_with_cookie("/sapi/me", &cookie).await;
    let (status, error) = error_of(me).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_session")
    );
    let (status, error) = error_of(t.refresh(&before.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant"),
        "an unspent refresh token from before the loss"
    );
    let again = t.login("bob", "builder").await;
    assert_eq!(t.refresh(&again.refresh).await.status(), StatusCode::OK);
}

/// After a restart of Redis every idle connection in the issuer's pool is dead, and each store
/// call of a login may draw one. The first logins after the restart still succeed: a request
/// that finds its connection dead is sent again on a new one, and the one call that is never
/// sent twice (giving a login attempt back, auth-issuer's throttle.rs) leaves the attempt
/// counted when it fails, instead of refusing the user who typed the right password.
#[tokio::test]
async fn the_first_logins_after_a_redis_restart_succeed() {
    let mut t = TestStack::start_with(0, 0, &[]).await;
    // Logins at once leave several idle connections in the issuer's pool (two users, each
    // below the per-user limit on attempts in flight).
    let statuses = t
        .concurrently(8, |i| match i % 2 {
            0 => t.client.login_request("bob", "builder"),
            _ => t.client.login_request("alice", "wonderland"),
        })
        .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );

    t.stack.restart_redis(false).await.unwrap();

    for attempt in 1..=3 {
        let response = t
            .post_json(
                "/auth/login",
                json!({"username": "bob", "password": "builder"}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "login {attempt} after the restart: {}",
            response.text().await.unwrap()
        );
    }
}
