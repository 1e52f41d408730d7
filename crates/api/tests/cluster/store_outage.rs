//! Redis goes away: the stateful parts fail closed with 503, the stateless part does not notice,
//! and everything recovers when Redis returns, with no restart.

use crate::helpers::{TestStack, error_of};
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
    // (store_loss.rs shows the same restart with the store's files: nothing lost.)
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
