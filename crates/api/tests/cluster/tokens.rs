//! The token routes of the contract, end to end through nginx.

use crate::helpers::{TestStack, decode_segment, error_of, pair_of};
use auth_core::claims::{ACCESS_TYP, AccessClaims, REFRESH_TYP, RefreshClaims};
use auth_core::keys::{KeyBits, SigningKey};
use auth_core::now_secs;
use auth_core::sign::sign_jwt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::Auth;

#[tokio::test]
pub(crate) async fn login_returns_a_pair_with_every_rfc9068_claim() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let response = t
        .post_json(
            "/auth/login",
            json!({"username": "bob", "password": "builder"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["refresh_expires_in"], 14 * 24 * 3600);

    let access = body["access_token"].as_str().unwrap();
    let header = decode_segment(access, 0);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    let claims = decode_segment(access, 1);
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "client_id",
        "name",
        "roles",
    ] {
        assert!(!claims[claim].is_null(), "access token lacks {claim}");
    }
    assert_eq!(claims["iss"], t.client.base());
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["roles"], json!(["user", "recruiter"]));

    let refresh = body["refresh_token"].as_str().unwrap();
    // HS256 under the issuers' HMAC key of the same RSA key: never published, never RS256.
    let refresh_header = decode_segment(refresh, 0);
    assert_eq!(refresh_header["typ"], "rt+jwt");
    assert_eq!(refresh_header["alg"], "HS256");
    assert_eq!(
        refresh_header["kid"],
        format!("rt-{}", header["kid"].as_str().unwrap())
    );
    let refresh_claims = decode_segment(refresh, 1);
    assert_eq!(
        refresh_claims["aud"], refresh_claims["iss"],
        "only the issuer accepts it"
    );
    assert!(refresh_claims["fam"].is_string());

    // The kid is one the JWKS publishes; the refresh token's is not.
    let jwks = t.jwks().await;
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    let published = jwks["keys"].as_array().unwrap();
    assert!(published.iter().all(|k| k["kid"] != refresh_header["kid"]));
}

#[tokio::test]
async fn bad_logins_get_the_contracts_errors() {
    let t = TestStack::start_with(1, 0, &[]).await;
    for body in [
        json!({"username": "bob"}),
        json!([1, 2]),
        json!({"username": 1, "password": "x"}),
    ] {
        let (status, error) = error_of(t.post_json("/auth/login", body).await).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
    }
    let not_json = t
        .client
        .http()
        .post(t.url("/auth/login"))
        .body("username=bob")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(not_json).await.0, StatusCode::BAD_REQUEST);
    for (user, password) in [("bob", "wonderland"), ("nobody", "builder")] {
        let response = t
            .post_json(
                "/auth/login",
                json!({"username": user, "password": password}),
            )
            .await;
        let (status, error) = error_of(response).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_credentials")
        );
    }
    // Over 64 KiB: nginx refuses it, with a JSON body too.
    let huge = json!({"username": "bob", "password": "x".repeat(70 * 1024)});
    let (status, error) = error_of(t.post_json("/auth/login", huge).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
}

#[tokio::test]
async fn api_me_is_served_by_several_replicas() {
    let t = TestStack::start_with(3, 0, &[]).await;
    let pair = t.login("alice", "wonderland").await;
    let seen = t
        .replicas_serving(30, "/api/me", Auth::Bearer(&pair.access))
        .await;
    assert!(seen.len() >= 2, "only {seen:?} answered");

    let body: Value = t
        .get_bearer("/api/me", &pair.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["auth"], "jwt");
    assert_eq!(body["roles"], json!(["user"]));
}

#[tokio::test]
async fn jobs_need_the_recruiter_role_and_403_comes_before_404() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let bob = t.login("bob", "builder").await;
    let alice = t.login("alice", "wonderland").await;

    let ok = t.get_bearer("/api/jobs/3/applicants", &bob.access).await;
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["job_id"], 3);
    assert!(body["applicants"].is_array());

    let cases = [
        (
            &bob,
            "/api/jobs/11/applicants",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &bob,
            "/api/jobs/abc/applicants",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &alice,
            "/api/jobs/3/applicants",
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
        (
            &alice,
            "/api/jobs/11/applicants",
            StatusCode::FORBIDDEN,
            "insufficient_scope",
        ),
    ];
    for (who, path, status, code) in cases {
        let got = error_of(t.get_bearer(path, &who.access).await).await;
        assert_eq!(got, (status, code.to_owned()), "{path}");
    }
}

#[tokio::test]
async fn missing_and_bad_tokens_get_rfc6750_challenges() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let none = t.client.get("/api/me", Auth::None).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert!(none.headers().contains_key("x-replica"));
    assert_eq!(error_of(none).await.1, "invalid_token");

    let bad = t.get_bearer("/api/me", "not.a.token").await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}

#[tokio::test]
async fn forged_misused_and_expired_tokens_are_refused() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    let real_key = t.issuer_key();
    let claims: AccessClaims = serde_json::from_value(decode_segment(&pair.access, 1)).unwrap();

    // Control: the real key signs a token the replica accepts, so the refusals below are about
    // exactly what each one changes.
    let control = sign_jwt(&real_key, ACCESS_TYP, &claims).unwrap();
    assert_eq!(
        t.get_bearer("/api/me", &control).await.status(),
        StatusCode::OK
    );

    // An attacker's key, announcing the real kid.
    let attacker = SigningKey::generate(KeyBits::B2048).unwrap();
    let forged = forge_with_kid(&attacker, real_key.kid(), &claims);
    assert_refused(&t, &forged).await;

    // A refresh token presented as an access token.
    assert_refused(&t, &pair.refresh).await;

    // The real key, but expired beyond the 30 s leeway.
    let mut expired = claims.clone();
    expired.exp = now_secs() - 31;
    expired.iat = now_secs() - 400;
    expired.nbf = expired.iat;
    assert_refused(&t, &sign_jwt(&real_key, ACCESS_TYP, &expired).unwrap()).await;

    // The real key, typed as a refresh token.
    assert_refused(&t, &sign_jwt(&real_key, REFRESH_TYP, &claims).unwrap()).await;

    // Algorithm confusion with the issuers' real HMAC secret (the refresh-token key), under the
    // published kid and under the HMAC key's own: the replica has no HS256 path at all.
    for kid in [real_key.kid(), real_key.refresh_key().kid()] {
        assert_refused(&t, &forge_hs256(&real_key, kid, &claims)).await;
    }
}

/// An access token signed HS256 with the issuers' refresh-token HMAC key of `key`.
fn forge_hs256(key: &SigningKey, kid: &str, claims: &AccessClaims) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let payload = serde_json::to_string(claims).unwrap();
    let input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(payload));
    let tag = key.refresh_key().sign_hs256(input.as_bytes());
    format!("{input}.{}", b64.encode(tag.as_ref()))
}

/// Upgrading logs nobody out: a refresh token as issued before HS256 (RS256, the RSA kid) still
/// refreshes, and its successor is HS256.
#[tokio::test]
async fn a_refresh_token_from_before_hs256_still_refreshes() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    let claims: RefreshClaims = serde_json::from_value(decode_segment(&pair.refresh, 1)).unwrap();
    let legacy = sign_jwt(&t.issuer_key(), REFRESH_TYP, &claims).unwrap();
    assert_eq!(decode_segment(&legacy, 0)["alg"], "RS256");
    let response = t.refresh(&legacy).await;
    assert_eq!(response.status(), StatusCode::OK);
    let next = pair_of(&response.json().await.unwrap());
    assert_eq!(decode_segment(&next.refresh, 0)["alg"], "HS256");
    // It was the same token (same jti), so the HS256 original is now spent.
    let (status, error) = error_of(t.refresh(&pair.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
}

async fn assert_refused(t: &TestStack, token: &str) {
    let response = t.get_bearer("/api/me", token).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    let (status, error) = error_of(response).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );
}

/// Sign `claims` with `key` but put `kid` in the header.
fn forge_with_kid(key: &SigningKey, kid: &str, claims: &AccessClaims) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
    let payload = serde_json::to_string(claims).unwrap();
    let input = format!("{}.{}", b64.encode(header.to_string()), b64.encode(payload));
    let signature = key.sign_rs256(input.as_bytes()).unwrap();
    format!("{input}.{}", b64.encode(signature))
}

#[tokio::test]
pub(crate) async fn refresh_rotates_and_the_spent_token_is_refused() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let first = t.login("alice", "wonderland").await;

    let response = t.refresh(&first.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = pair_of(&response.json().await.unwrap());
    assert_ne!(second.refresh, first.refresh);
    assert_eq!(
        decode_segment(&second.refresh, 1)["fam"],
        decode_segment(&first.refresh, 1)["fam"]
    );
    assert_eq!(
        t.get_bearer("/api/me", &second.access).await.status(),
        StatusCode::OK
    );

    let (status, error) = error_of(t.refresh(&first.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
}

#[tokio::test]
pub(crate) async fn reusing_a_spent_token_revokes_the_whole_family() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let first = t.login("alice", "wonderland").await;
    let second = pair_of(&t.refresh(&first.refresh).await.json().await.unwrap());
    let third = pair_of(&t.refresh(&second.refresh).await.json().await.unwrap());

    // A thief replays the first token: refused, and the family dies.
    assert_eq!(
        t.refresh(&first.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The newest token of the family, never used, now fails too.
    let (status, error) = error_of(t.refresh(&third.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );

    // Another login's family is untouched.
    let other = t.login("alice", "wonderland").await;
    assert_eq!(t.refresh(&other.refresh).await.status(), StatusCode::OK);

    let issuer = t.stack.issuer_url();
    let reuse = t.counter_at(&issuer, "authscale_refresh_reuse_detected_total");
    assert_eq!(reuse.await, 1);
}

#[tokio::test]
pub(crate) async fn thirty_concurrent_refreshes_with_one_token_give_exactly_one_200() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    let results = t.concurrent_refreshes(&pair.refresh, 30).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "statuses: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED)
    );

    // The losers presented a spent token: reuse. So even the winner's new token is revoked.
    let winner = pair_of(&winners[0].1);
    assert_eq!(
        t.refresh(&winner.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
pub(crate) async fn logout_revokes_the_family_and_is_idempotent() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let first = t.login("bob", "builder").await;
    let second = pair_of(&t.refresh(&first.refresh).await.json().await.unwrap());

    assert_eq!(
        t.logout(&second.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.refresh(&second.refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Again: still 204.
    assert_eq!(
        t.logout(&second.refresh).await.status(),
        StatusCode::NO_CONTENT
    );
    // A forged token: 401 invalid_grant.
    let (status, error) = error_of(t.logout("eyJhbGciOiJSUzI1NiJ9.e30.c2ln").await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );
    // The access token lives on until it expires: stateless tokens are not recalled.
    assert_eq!(
        t.get_bearer("/api/me", &second.access).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwks_publishes_public_members_only() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let jwks = t.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let mut members: Vec<_> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(
            (
                key["kty"].as_str(),
                key["alg"].as_str(),
                key["use"].as_str()
            ),
            (Some("RSA"), Some("RS256"), Some("sig"))
        );
    }
}

#[tokio::test]
async fn unknown_paths_get_json_errors() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let (status, _) = error_of(t.client.get("/nope", Auth::None).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = error_of(t.client.get("/api/nope", Auth::None).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A wrong method on a real route, from the issuer and from a replica: JSON 405.
    let get_login = t
        .client
        .get("/auth/login", Auth::None)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(get_login).await,
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed".to_owned()
        )
    );
    let post_me = t.client.post("/api/me", Auth::None).send().await.unwrap();
    assert_eq!(
        error_of(post_me).await,
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed".to_owned()
        )
    );
    // A job id that is not UTF-8 is a job that does not exist (after the role check).
    let bob = t.login("bob", "builder").await;
    let odd = t.get_bearer("/api/jobs/%FF/applicants", &bob.access).await;
    assert_eq!(
        error_of(odd).await,
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );
}

/// RFC 6749 5.1: every answer that carries a credential says `no-store` and `no-cache`; RFC 6750
/// 3.1: a bearer caller without the role hears `insufficient_scope` (a cookie caller no Bearer
/// challenge at all).
#[tokio::test]
async fn token_answers_are_never_stored_and_a_bearer_403_names_insufficient_scope() {
    let t = TestStack::start_with(1, 1, &[]).await;
    let login = t
        .post_json(
            "/auth/login",
            json!({"username": "alice", "password": "wonderland"}),
        )
        .await;
    let login_headers = login.headers().clone();
    let body: Value = login.json().await.unwrap();
    let refreshed = t.refresh(body["refresh_token"].as_str().unwrap()).await;
    let session = t
        .post_json(
            "/auth/session/login",
            json!({"username": "alice", "password": "wonderland"}),
        )
        .await;
    for (route, headers) in [
        ("login", &login_headers),
        ("refresh", refreshed.headers()),
        ("session login", session.headers()),
    ] {
        assert_eq!(headers["cache-control"], "no-store", "{route}");
        assert_eq!(headers["pragma"], "no-cache", "{route}");
    }

    let alice = pair_of(&body);
    let forbidden = t.get_bearer("/api/jobs/3/applicants", &alice.access).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        forbidden.headers()["www-authenticate"],
        r#"Bearer error="insufficient_scope""#
    );
    let cookie = session.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let forbidden = t.get_with_cookie("/sapi/jobs/3/applicants", cookie).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert!(forbidden.headers().get("www-authenticate").is_none());
}
