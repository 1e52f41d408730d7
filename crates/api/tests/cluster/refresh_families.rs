//! Refresh-token families against the store: what a loss of the store's data does, the family's
//! absolute lifetime, and a retried refresh whose answer was lost.

use crate::helpers::{TestStack, claims_of, error_of, pair_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// `FLUSHALL` leaves the store as a restart without its files would: nothing. Every refresh
/// token from before is refused, spent, logged out and unspent alike; so is every session.
#[tokio::test]
async fn after_the_store_loses_its_data_no_refresh_token_from_before_is_accepted() {
    let t = TestStack::start_with(1, 1, &[]).await;
    let first = t.login("alice", "wonderland").await;
    let rotated = pair_of(&t.refresh(&first.refresh).await.json().await.unwrap());
    let logged_out = t.login("bob", "builder").await;
    assert_eq!(
        t.logout(&logged_out.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    let cookie = t.session_login("bob", "builder").await;
    let cookie = cookie.split(';').next().unwrap().to_owned();

    let _: () = t.redis_cmd(&["FLUSHALL"]).await;

    for (what, token) in [
        ("spent", &first.refresh),
        ("logged out", &logged_out.refresh),
        ("unspent", &rotated.refresh),
    ] {
        let (status, error) = error_of(t.refresh(token).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_grant"),
            "a {what} refresh token after the loss"
        );
    }
    assert_eq!(
        t.get_with_cookie("/sapi/me", &cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The price: those users log in again, and that works at once.
    let again = t.login("alice", "wonderland").await;
    assert_eq!(t.refresh(&again.refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn rotation_never_carries_a_family_past_its_maximum_lifetime() {
    let t = TestStack::start_with(
        0,
        0,
        &[
            ("ACCESS_TTL_SECS", "60"),
            ("REFRESH_TTL_SECS", "100"),
            ("REFRESH_MAX_TTL_SECS", "103"),
        ],
    )
    .await;
    let login = t.login("bob", "builder").await;
    let start = claims_of(&login.refresh)["iat"].as_u64().unwrap();
    let mut token = login.refresh;
    let mut last = Value::Null;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let response = t.refresh(&token).await;
        assert_eq!(response.status(), StatusCode::OK);
        last = response.json().await.unwrap();
        token = last["refresh_token"].as_str().unwrap().to_owned();
        let claims = claims_of(&token);
        assert!(claims["exp"].as_u64().unwrap() <= start + 103, "{claims}");
    }
    // Four seconds in, now + 100 would be past start + 103: the cap holds, and the answer says so.
    let claims = claims_of(&token);
    assert_eq!(claims["exp"].as_u64().unwrap(), start + 103);
    let left = last["refresh_expires_in"].as_u64().unwrap();
    assert!(left < 100, "refresh_expires_in {left} counts to the cap");
}

#[tokio::test]
async fn a_family_at_its_maximum_lifetime_gets_no_successor() {
    let t = TestStack::start_with(
        0,
        0,
        &[
            ("ACCESS_TTL_SECS", "1"),
            ("REFRESH_TTL_SECS", "2"),
            ("REFRESH_MAX_TTL_SECS", "2"),
        ],
    )
    .await;
    let login = t.login("bob", "builder").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Still within the verifier's leeway, so the signature and expiry pass; the family does not.
    let response = t.refresh(&login.refresh).await;
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
}

/// A rotation ran but its answer never left the issuer (killed after the rotation, or the
/// request cancelled): the store is then exactly as after a normal rotation with the record's
/// `done` unset, which the test produces directly. The client's retry with the old token, from
/// the same address within the window, gets the very pair it lost, and the family lives on; from
/// another address, or after the window, it is reuse.
#[tokio::test]
async fn a_retried_refresh_whose_answer_was_lost_is_not_taken_for_theft() {
    let t = TestStack::start_with(0, 0, &[("REFRESH_RETRY_WINDOW_SECS", "5")]).await;
    let (client, other) = ("203.0.113.40", "198.51.100.40");

    // Lost, retried by the same client: the same pair again.
    let login = t.login("alice", "wonderland").await;
    let lost = rotate_losing_the_answer(&t, &login.refresh, client).await;
    let retry = t
        .issuer_post(
            "/auth/refresh",
            &json!({"refresh_token": login.refresh}),
            client,
        )
        .await;
    assert_eq!(retry.status(), StatusCode::OK);
    let retried: Value = retry.json().await.unwrap();
    assert_eq!(
        retried["refresh_token"], lost["refresh_token"],
        "the same successor"
    );
    assert_eq!(
        retried["access_token"], lost["access_token"],
        "the same pair, byte for byte"
    );
    let next = retried["refresh_token"].as_str().unwrap();
    assert_eq!(
        t.issuer_post("/auth/refresh", &json!({"refresh_token": next}), client)
            .await
            .status(),
        StatusCode::OK,
        "the family is intact"
    );

    // The same lost answer, but the old token comes back from another address: reuse.
    let login = t.login("alice", "wonderland").await;
    let lost = rotate_losing_the_answer(&t, &login.refresh, client).await;
    let replay = t
        .issuer_post(
            "/auth/refresh",
            &json!({"refresh_token": login.refresh}),
            other,
        )
        .await;
    assert_eq!(error_of(replay).await.0, StatusCode::UNAUTHORIZED);
    let successor = lost["refresh_token"].as_str().unwrap();
    assert_eq!(
        t.refresh(successor).await.status(),
        StatusCode::UNAUTHORIZED,
        "the family was revoked"
    );

    // The same client, but after the window: reuse.
    let login = t.login("alice", "wonderland").await;
    rotate_losing_the_answer(&t, &login.refresh, client).await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let late = t
        .issuer_post(
            "/auth/refresh",
            &json!({"refresh_token": login.refresh}),
            client,
        )
        .await;
    assert_eq!(error_of(late).await.0, StatusCode::UNAUTHORIZED);
}

/// Refresh `token` for `client`, then put the store back in the state it would be in had the
/// answer never been produced. Returns the answer the client "never got".
async fn rotate_losing_the_answer(t: &TestStack, token: &str, client: &str) -> Value {
    let response = t
        .issuer_post("/auth/refresh", &json!({"refresh_token": token}), client)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let family = claims_of(token)["fam"].as_str().unwrap().to_owned();
    let _: i64 = t
        .redis_cmd(&["HSET", &format!("rt:{{{family}}}"), "done", "0"])
        .await;
    answer
}

/// `REDIS_WAIT_REPLICAS=1`: a login, a rotation or a new session is answered only once a replica
/// holds it, so a failover cannot undo a rotation the client was told about. With no replica the
/// issuer fails closed (503); once a replica follows the primary, the same requests succeed.
#[tokio::test]
async fn with_wait_replicas_set_writes_are_answered_only_once_a_replica_has_them() {
    let t = TestStack::start_with(
        0,
        0,
        &[
            ("REDIS_WAIT_REPLICAS", "1"),
            ("REDIS_WAIT_TIMEOUT_MS", "800"),
        ],
    )
    .await;
    let alone = t
        .post_json(
            "/auth/login",
            json!({"username": "bob", "password": "builder"}),
        )
        .await;
    let (status, error) = error_of(alone).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
    );

    // While acknowledged writes wait for a replica that is not there, the issuer's other store
    // requests are not held up behind them: Redis reads nothing more from a connection whose
    // WAIT blocks, so acknowledged writes have a connection of their own. Four session logins
    // wait at once; meanwhile the readiness probe's PING goes through every time.
    let http = reqwest::Client::new();
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (http, url) = (http.clone(), t.url("/auth/session/login"));
        logins.spawn(async move {
            let body = json!({"username": "bob", "password": "builder"});
            http.post(url).json(&body).send().await.map(|r| r.status())
        });
    }
    let ready = format!("{}/readyz", t.stack.issuer_url());
    for _ in 0..12 {
        let status = http.get(&ready).send().await.unwrap().status();
        assert_eq!(
            status,
            StatusCode::OK,
            "the issuer's probe waited behind writes that wait for a replica"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Some(answer) = logins.join_next().await {
        assert_eq!(answer.unwrap().unwrap(), StatusCode::SERVICE_UNAVAILABLE);
    }

    let primary_port = t.stack.redis_url().rsplit(':').next().unwrap().to_owned();
    let port = stack::ports::free_port().unwrap();
    let log = t.stack.work_dir().join("logs").join("redis-replica.log");
    let mut command = stack::redis::command(
        &stack::programs::redis_server().unwrap(),
        port,
        &stack::redis::Persistence::None,
    );
    command.args(["--replicaof", "127.0.0.1", &primary_port]);
    let _replica = stack::redis::start_command(command, port, &log, Duration::from_secs(20))
        .await
        .unwrap();
    // Wait until the replica acknowledges writes: a write of our own followed by the same WAIT
    // the issuer sends. "Connected" in INFO is not enough: a replica that has just received the
    // primary's data may still be loading it, and acknowledges nothing until it has.
    // Both on one connection: WAIT counts the replicas that have this connection's writes.
    let mut redis = t.redis().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let _: () = redis::cmd("SET")
            .arg(&["replica-probe", "1", "EX", "60"])
            .query_async(&mut redis)
            .await
            .unwrap();
        let acked: i64 = redis::cmd("WAIT")
            .arg(&["1", "200"])
            .query_async(&mut redis)
            .await
            .unwrap();
        if acked >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never acknowledged a write"
        );
    }

    let pair = t.login("bob", "builder").await;
    let rotated = t.refresh(&pair.refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated = pair_of(&rotated.json().await.unwrap());
    t.session_login("bob", "builder").await;

    // The replica gone, a rotation is refused as the first login was: the client is never told
    // of a successor that a failover could undo.
    drop(_replica);
    let (status, error) = error_of(t.refresh(&rotated.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        "a rotation with no replica to acknowledge it"
    );
}

/// Every key the store holds expires on its own (the contract's rule): refresh families (live,
/// rotated, revoked by reuse, logged out), login failure counters and sessions. A key without
/// a TTL would be memory the store keeps for ever.
#[tokio::test]
pub(crate) async fn every_key_the_store_holds_has_a_time_to_live() {
    let t = TestStack::start_with(0, 1, &[]).await;
    let rotated = t.login("alice", "wonderland").await;
    let spent = rotated.refresh.clone();
    assert_eq!(t.refresh(&spent).await.status(), StatusCode::OK);
    assert_eq!(
        t.refresh(&spent).await.status(),
        StatusCode::UNAUTHORIZED,
        "a replay revokes the family"
    );
    let logged_out = t.login("bob", "builder").await;
    assert_eq!(
        t.logout(&logged_out.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    t.login("bob", "builder").await;
    let wrong = t
        .post_json(
            "/auth/login",
            json!({"username": "carol", "password": "not her password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    t.session_login("alice", "wonderland").await;

    let keys: Vec<String> = t.redis_cmd(&["KEYS", "*"]).await;
    for prefix in [
        "rt:",
        "login:{fail}:user:",
        "login:{fail}:addr:",
        "session:",
    ] {
        assert!(
            keys.iter().any(|key| key.starts_with(prefix)),
            "no {prefix} key among {keys:?}"
        );
    }
    for key in &keys {
        let ttl: i64 = t.redis_cmd(&["TTL", key]).await;
        assert!(ttl > 0, "{key} has no time to live ({ttl})");
    }
}
