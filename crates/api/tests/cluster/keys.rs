//! Key rotation end to end: a planned rotation under load refuses no request, and a rotation
//! after a compromise refuses every token of the old key, on the issuer and on every replica.
//!
//! Both run the real `auth-issuer rotate-key` against the key files of a running stack, as an
//! operator would (`docker compose exec auth-issuer auth-issuer rotate-key ...`).

use crate::helpers::{Pair, TestStack, decode_segment, error_of, pair_of};
use reqwest::StatusCode;
use serde_json::Value;
use stack::Mode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use testkit::Auth;
use testkit::stream::{Settings, Stream};

/// The `kid` a token names.
fn kid(token: &str) -> String {
    decode_segment(token, 0)["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(t: &TestStack) -> Vec<String> {
    let jwks = t.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    keys.iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Run `auth-issuer rotate-key <args>` on the stack's key files with `env`; its stdout.
async fn rotate_key(t: &TestStack, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = tokio::process::Command::new(TestStack::binaries().issuer)
        .arg("rotate-key")
        .args(args)
        .envs(env.iter().copied())
        .env("KEY_PATH", t.issuer_key_path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Polls `check` until it holds; panics with `what` after `limit`. How long it took.
async fn within<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    check: impl FnMut() -> F,
) -> Duration {
    testkit::wait::until_true(what, limit, check).await.unwrap()
}

/// `GET /api/me` on one replica directly (not through nginx).
async fn me_at(t: &TestStack, replica: &str, access: &str) -> reqwest::Response {
    t.client
        .at(replica)
        .get("/api/me", Auth::Bearer(access))
        .send()
        .await
        .unwrap()
}

/// Unknown-kid JWKS refetches over every token replica.
async fn unknown_kid_refetches(t: &TestStack) -> u64 {
    t.replica_counter_with(
        Mode::Jwt,
        "authscale_jwks_fetches_total",
        r#"trigger="unknown_kid""#,
    )
    .await
}

/// The compromise playbook: after `rotate-key --revoke-previous`, every token of the old key is
/// refused by the issuer within its reload interval and by every replica within its JWKS refresh
/// interval, cached tokens included; new logins work.
#[tokio::test]
async fn revoke_previous_refuses_every_token_of_the_old_key_at_once() {
    const RELOAD: Duration = Duration::from_secs(1);
    const REFRESH: Duration = Duration::from_secs(1);
    // Slack for a loaded machine; far below the defaults this test would see otherwise (the
    // old key would stay published for ACCESS_TTL_SECS + 30 s, trusted for refresh for days).
    const SLACK: Duration = Duration::from_secs(4);
    let env = [
        ("KEY_RELOAD_SECS", "1"),
        ("JWKS_REFRESH_SECS", "1"),
        // The riskier configuration: a replica remembering tokens must forget these too.
        ("TOKEN_CACHE", "on"),
    ];
    let t = TestStack::start_with(2, 0, &env).await;
    let replicas = t.stack.replica_urls(Mode::Jwt);
    let old = t.login("bob", "builder").await;
    let old_kid = kid(&old.access);
    assert_eq!(
        kid(&old.refresh),
        format!("rt-{old_kid}"),
        "HS256 refresh token"
    );
    for replica in &replicas {
        let response = me_at(&t, replica, &old.access).await;
        assert_eq!(response.status(), StatusCode::OK, "{replica}");
    }

    let output = rotate_key(&t, &["--revoke-previous"], &env).await;
    assert!(output.contains(&old_kid), "{output}");
    let revoked = Instant::now();

    // The issuer: the old key leaves the JWKS, and its refresh token is refused with it (both
    // come from the same reload). The refresh token was never used: only its key can refuse it.
    let took = within(RELOAD + SLACK, "the issuer drops the old key", || async {
        !jwks_kids(&t).await.contains(&old_kid)
    })
    .await;
    println!("issuer dropped the revoked key after {took:?}");
    let (status, error) = error_of(t.refresh(&old.refresh).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_grant")
    );

    // Every replica, directly, within its JWKS refresh interval.
    for replica in &replicas {
        let took = within(
            REFRESH + SLACK,
            "a replica refuses the old token",
            || async { me_at(&t, replica, &old.access).await.status() == StatusCode::UNAUTHORIZED },
        )
        .await;
        println!(
            "{replica} refused the revoked key's token after {took:?} ({:?} since the revocation)",
            revoked.elapsed()
        );
        let response = me_at(&t, replica, &old.access).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        assert_eq!(error_of(response).await.1, "invalid_token");
    }
    let kids = jwks_kids(&t).await;
    assert_eq!(kids.len(), 1, "only the new key is trusted: {kids:?}");

    // New logins work, on every replica, and so does their refresh.
    let new = t.login("bob", "builder").await;
    assert_eq!(kid(&new.access), kids[0]);
    for replica in &replicas {
        let response = me_at(&t, replica, &new.access).await;
        assert_eq!(response.status(), StatusCode::OK, "{replica}");
    }
    assert_eq!(t.refresh(&new.refresh).await.status(), StatusCode::OK);
}

/// A planned `rotate-key` under a steady stream of `/api/me` from 20 concurrent clients through
/// nginx, with tokens minted all along: not one request fails, tokens of the new key are
/// accepted, and no replica ever meets the new `kid` before it holds the key (no unknown-kid
/// refetch: the key was published first). Old tokens stay valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_rotation_under_load_refuses_no_request() {
    const CLIENTS: usize = 20;
    const PUBLISH_SECS: u64 = 4;
    let env = [
        ("KEY_PUBLISH_SECS", "4"),
        ("KEY_RELOAD_SECS", "1"),
        ("JWKS_REFRESH_SECS", "1"),
    ];
    let t = Arc::new(TestStack::start_with(2, 0, &env).await);
    let before = t.login("alice", "wonderland").await;
    let old_kid = kid(&before.access);
    // Its refresh token is HS256 under the old key's HMAC key, which only the private half gives:
    // after the rotation only the retired record holds it (key_files.rs).
    assert_eq!(decode_segment(&before.refresh, 0)["alg"], "HS256");
    assert_eq!(kid(&before.refresh), format!("rt-{old_kid}"));
    let stop = Arc::new(AtomicBool::new(false));

    // The minter: refreshes every 200 ms and hands the newest access token to the clients.
    let first = t.login("bob", "builder").await;
    let (newest, watch) = tokio::sync::watch::channel(first.access.clone());
    let minter = tokio::spawn({
        let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
        async move {
            let mut failures = Vec::new();
            let mut refresh = first.refresh;
            let mut first_new_kid: Option<Instant> = None;
            let old_kid = kid(&first.access);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let response = t.refresh(&refresh).await;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or_default();
                if status != StatusCode::OK {
                    failures.push(format!("refresh: {status} {body}"));
                    continue;
                }
                let Pair {
                    access,
                    refresh: next,
                    ..
                } = pair_of(&body);
                if first_new_kid.is_none() && kid(&access) != old_kid {
                    first_new_kid = Some(Instant::now());
                }
                refresh = next;
                newest.send_replace(access);
            }
            (failures, first_new_kid)
        }
    });

    // Every client sends the newest token; counted when it carries the new key (and, as no
    // request may fail, it was accepted).
    let sent_new_kid = Arc::new(AtomicU64::new(0));
    let settings = Settings {
        clients: CLIENTS,
        run_for: None,
        pause: Duration::from_millis(10),
    };
    let stream = Stream::start(&t.client, settings, {
        let (watch, old_kid, sent_new_kid) = (watch.clone(), old_kid.clone(), sent_new_kid.clone());
        move |client| {
            let token = watch.borrow().clone();
            if kid(&token) != old_kid {
                sent_new_kid.fetch_add(1, Ordering::Relaxed);
            }
            client.get("/api/me", Auth::Bearer(&token))
        }
    })
    .unwrap();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let output = rotate_key(&t, &[], &env).await;
    println!("{output}");
    let rotated = Instant::now();
    // Published before it signs: the JWKS holds the new key while tokens still carry the old.
    let published = within(
        Duration::from_secs(5),
        "the new key is published",
        || async { jwks_kids(&t).await.len() == 2 },
    )
    .await;
    let new_kid = jwks_kids(&t)
        .await
        .into_iter()
        .find(|k| *k != old_kid)
        .unwrap();
    assert_eq!(
        kid(&watch.borrow().clone()),
        old_kid,
        "published, not signing yet"
    );
    // Keep the load on until tokens of the new key have flowed for a while.
    let signing = within(
        Duration::from_secs(PUBLISH_SECS + 10),
        "tokens of the new key",
        || async { kid(&watch.borrow().clone()) == new_kid },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let (minter_failures, first_new_kid) = minter.await.unwrap();
    stream.stop();
    let seen = stream.finish().await;
    let requests_with_new_kid = sent_new_kid.load(Ordering::Relaxed);
    println!(
        "published after {published:?}, first new-kid token {:?} after the rotation, \
         requests {} ({} with the new kid), failed {}",
        first_new_kid.map(|i| i - rotated),
        seen.requests,
        requests_with_new_kid,
        seen.failures.len()
    );
    assert!(minter_failures.is_empty(), "{minter_failures:?}");
    assert!(
        seen.failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        seen.failures.len(),
        seen.some_failures()
    );
    // Nothing reloads here, so no connection may be closed under a request either.
    assert!(
        seen.resent.is_empty(),
        "closed under a request: {:?}",
        seen.some_resent()
    );
    assert!(
        requests_with_new_kid > 0,
        "no token of the new key was used"
    );
    assert!(
        signing >= Duration::from_secs(PUBLISH_SECS - 2),
        "signed too early: {signing:?}"
    );
    assert_eq!(
        unknown_kid_refetches(&t).await,
        0,
        "a replica met the new kid before its key"
    );

    // Nothing was lost on the way: the old key is still published and its tokens still work.
    assert_eq!(jwks_kids(&t).await, [new_kid.clone(), old_kid.clone()]);
    for replica in t.stack.replica_urls(Mode::Jwt) {
        let response = me_at(&t, &replica, &before.access).await;
        assert_eq!(response.status(), StatusCode::OK, "{replica}");
    }
    // A refresh token signed before the rotation still refreshes after it: nobody is logged out.
    let response = t.refresh(&before.refresh).await;
    assert_eq!(response.status(), StatusCode::OK);
    let after: Value = response.json().await.unwrap();
    let after = pair_of(&after);
    assert_eq!(kid(&after.refresh), format!("rt-{new_kid}"));
    assert_eq!(t.refresh(&after.refresh).await.status(), StatusCode::OK);
}
