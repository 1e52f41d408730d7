//! The store one network hop away (`StackConfig::store_delay`): the issuer and the session
//! replicas reach Redis through the launcher's delay proxy, and everything still works, only
//! later. A session request waits for at least one added round trip; that is a lower bound only
//! (how much longer it takes on a busy machine is not this test's business).

use crate::helpers::TestStack;
use reqwest::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test]
async fn through_the_delay_proxy_every_flow_works_and_a_session_request_waits_a_round_trip() {
    let one_way = Duration::from_millis(25);
    let t =
        TestStack::start_configured(1, 1, &[], |config| config.store_delay = Some(one_way)).await;
    assert_ne!(
        t.stack.store_url(),
        t.stack.redis_url(),
        "the services must be pointed at the proxy, not at Redis"
    );
    assert_eq!(t.stack.store_delay(), Some(one_way));

    // Tokens: the login and the refresh write to Redis through the proxy.
    let pair = t.login("bob", "builder").await;
    let refreshed = t.refresh(&pair.refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(
        t.get_bearer("/api/me", &pair.access).await.status(),
        StatusCode::OK
    );

    // Sessions: each request looks the session up in Redis, one round trip through the proxy.
    let cookie = t.session_login("bob", "builder").await;
    let cookie = cookie.split(';').next().unwrap().to_owned();
    for _ in 0..3 {
        let started = Instant::now();
        let status = t.get_with_cookie("/sapi/me", &cookie).await.status();
        let took = started.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert!(
            took >= 2 * one_way,
            "a session request took {took:?}, less than the added round trip {:?}",
            2 * one_way
        );
    }

    // The delay can change on the running stack (the load test measures several on one).
    t.stack.set_store_delay(Duration::ZERO).unwrap();
    assert_eq!(
        t.get_with_cookie("/sapi/me", &cookie).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_a_store_delay_the_services_reach_redis_directly() {
    let t = TestStack::start_with(0, 1, &[]).await;
    assert_eq!(t.stack.store_url(), t.stack.redis_url());
    assert_eq!(t.stack.store_delay(), None);
    assert!(t.stack.set_store_delay(Duration::from_millis(1)).is_err());
}
