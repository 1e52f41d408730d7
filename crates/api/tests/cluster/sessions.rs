//! The session-store variant, end to end through nginx.

use crate::helpers::{TestStack, error_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use stack::Mode;
use testkit::Auth;

/// `sid=<value>` from a `Set-Cookie` header.
fn sid_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

#[tokio::test]
async fn session_login_sets_an_httponly_lax_cookie_with_a_256_bit_id() {
    let t = TestStack::start_with(0, 1, &[]).await;
    let set_cookie = t.session_login("alice", "wonderland").await;
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    let id = attributes[0].strip_prefix("sid=").unwrap();
    assert_eq!(id.len(), 43, "256 bits in base64url");
    assert!(attributes.contains(&"HttpOnly"));
    assert!(attributes.contains(&"SameSite=Lax"));
    assert!(attributes.contains(&"Path=/"));
    assert!(!attributes.contains(&"Secure"), "plain-http demo default");

    // A login never adopts the id the client brings (no session fixation).
    let again = t
        .client
        .http()
        .post(t.url("/auth/session/login"))
        .header("cookie", attributes[0])
        .json(&json!({"username": "alice", "password": "wonderland"}))
        .send()
        .await
        .unwrap();
    let new_cookie = again.headers()["set-cookie"].to_str().unwrap();
    assert_ne!(sid_pair(new_cookie), attributes[0]);

    let (status, error) = error_of(
        t.post_json(
            "/auth/session/login",
            json!({"username": "alice", "password": "nope"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
}

#[tokio::test]
async fn sapi_me_is_served_by_several_replicas() {
    let t = TestStack::start_with(0, 3, &[]).await;
    let cookie = sid_pair(&t.session_login("bob", "builder").await);
    let seen = t
        .replicas_serving(30, "/sapi/me", Auth::Cookie(&cookie))
        .await;
    assert!(seen.len() >= 2, "only {seen:?} answered");
    let body: Value = t
        .get_with_cookie("/sapi/me", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (body["sub"].as_str(), body["auth"].as_str()),
        (Some("bob"), Some("session"))
    );
    let jobs = t.get_with_cookie("/sapi/jobs/2/applicants", &cookie).await;
    assert_eq!(jobs.status(), StatusCode::OK);
}

#[tokio::test]
pub(crate) async fn session_logout_is_refused_by_every_replica_at_once() {
    let t = TestStack::start_with(0, 2, &[]).await;
    let cookie = sid_pair(&t.session_login("bob", "builder").await);
    assert_eq!(
        t.get_with_cookie("/sapi/me", &cookie).await.status(),
        StatusCode::OK
    );

    assert_eq!(
        t.session_logout(&cookie).await.status(),
        StatusCode::NO_CONTENT
    );

    // Straight to each replica, not through nginx: every one refuses the id.
    for url in t.stack.replica_urls(Mode::Session) {
        let response = t
            .client
            .http()
            .get(format!("{url}/sapi/me"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_session")
        );
    }
    // Logging out twice: the session is gone, 401.
    assert_eq!(
        t.session_logout(&cookie).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn random_malformed_and_missing_sids_get_401() {
    let t = TestStack::start_with(0, 1, &[]).await;
    let random = format!("sid={}", auth_core::random_id(32).unwrap());
    for cookie in [
        random.as_str(),
        "sid=short",
        "sid=",
        "other=1",
        "sid=%00%0d%0a",
    ] {
        let (status, error) = error_of(t.get_with_cookie("/sapi/me", cookie).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_session"),
            "{cookie}"
        );
    }
    let (status, _) = error_of(t.client.get("/sapi/me", Auth::None).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
pub(crate) async fn store_lookups_per_request_are_zero_for_tokens_and_one_for_sessions() {
    let t = TestStack::start_with(2, 2, &[]).await;
    let pair = t.login("alice", "wonderland").await;
    let cookie = sid_pair(&t.session_login("alice", "wonderland").await);
    const NAME: &str = "authscale_redis_commands_total";

    let (jwt_before, session_before) = (
        t.replica_counter(Mode::Jwt, NAME).await,
        t.replica_counter(Mode::Session, NAME).await,
    );
    for _ in 0..200 {
        assert_eq!(
            t.get_bearer("/api/me", &pair.access).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(t.replica_counter(Mode::Jwt, NAME).await - jwt_before, 0);
    for _ in 0..200 {
        assert_eq!(
            t.get_with_cookie("/sapi/me", &cookie).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        t.replica_counter(Mode::Session, NAME).await - session_before,
        200
    );
}

/// The store holds the SHA-256 of a session id, never the id: a copy of the store is no set of
/// working cookies. The key found under the id itself does not exist.
#[tokio::test]
async fn the_store_holds_a_hash_of_each_session_id_never_the_id() {
    let t = TestStack::start_with(0, 1, &[]).await;
    let cookie = sid_pair(&t.session_login("alice", "wonderland").await);
    let id = cookie.strip_prefix("sid=").unwrap();
    let keys: Vec<String> = t.redis_cmd(&["KEYS", "session:*"]).await;
    assert_eq!(keys, [auth_core::session::key(id)]);
    assert!(keys.iter().all(|k| !k.contains(id)), "{keys:?}");
    let raw: i64 = t.redis_cmd(&["EXISTS", &format!("session:{id}")]).await;
    assert_eq!(raw, 0);
    assert_eq!(
        t.get_with_cookie("/sapi/me", &cookie).await.status(),
        StatusCode::OK
    );
}

/// A read never renews a session past its absolute cap, and a record found past its cap (a
/// clock that differs between issuer and replica, or a TTL set by hand) is deleted on sight.
#[tokio::test]
async fn a_session_is_never_renewed_past_its_cap_and_is_deleted_once_past_it() {
    let t = TestStack::start_with(
        0,
        1,
        &[
            ("SESSION_IDLE_TTL_SECS", "60"),
            ("SESSION_MAX_TTL_SECS", "120"),
        ],
    )
    .await;
    let cookie = sid_pair(&t.session_login("bob", "builder").await);
    let key = auth_core::session::key(cookie.strip_prefix("sid=").unwrap());
    let record: String = t.redis_cmd(&["GET", &key]).await;
    let mut record: Value = serde_json::from_str(&record).unwrap();

    // Ten seconds of the cap left: a read renews the idle timeout to those ten, not to 60.
    record["expires_at"] = json!(auth_core::now_secs() + 10);
    let _: () = t
        .redis_cmd(&["SET", &key, &record.to_string(), "EX", "60"])
        .await;
    assert_eq!(
        t.get_with_cookie("/sapi/me", &cookie).await.status(),
        StatusCode::OK
    );
    let ttl: i64 = t.redis_cmd(&["TTL", &key]).await;
    assert!((1..=10).contains(&ttl), "renewed to {ttl} s, past the cap");

    // Past its cap, with a long TTL left: refused, and gone from the store.
    record["expires_at"] = json!(auth_core::now_secs() - 1);
    let _: () = t
        .redis_cmd(&["SET", &key, &record.to_string(), "EX", "60"])
        .await;
    let (status, error) = error_of(t.get_with_cookie("/sapi/me", &cookie).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_session")
    );
    let exists: i64 = t.redis_cmd(&["EXISTS", &key]).await;
    assert_eq!(exists, 0, "deleted on sight");
}
