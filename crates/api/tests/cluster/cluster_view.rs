//! The demo page's view of the cluster: `GET /cluster` and `/cluster/<kind>/<n>` through nginx
//! (rendered by `crates/stack/src/nginx/cluster.rs`), and each replica's `GET /<prefix>/stats`.

use crate::helpers::TestStack;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stack::Mode;
use std::collections::BTreeSet;

/// `GET path` through nginx, with no credentials: all the page sends to these routes.
async fn get(t: &TestStack, path: &str) -> reqwest::Response {
    t.client
        .get(path, testkit::Auth::None)
        .send()
        .await
        .unwrap()
}

async fn get_json(t: &TestStack, path: &str) -> Value {
    let response = get(t, path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

/// Every replica's stats of one kind, as the page reads them: `/cluster/<kind>/1..=n`.
async fn stats_of(t: &TestStack, kind: &str, n: u64) -> Vec<Value> {
    let mut all = Vec::new();
    for i in 1..=n {
        all.push(get_json(t, &format!("/cluster/{kind}/{i}")).await);
    }
    all
}

fn sum(stats: &[Value], field: &str) -> u64 {
    stats.iter().map(|s| s[field].as_u64().unwrap()).sum()
}

#[tokio::test]
async fn the_cluster_lists_every_process_and_counts_store_lookups_per_request() {
    let mut t = TestStack::start_with(2, 3, &[]).await;
    let counts = get_json(&t, "/cluster").await;
    assert_eq!(counts, json!({"issuers": 1, "token": 2, "session": 3}));

    let issuer = get(&t, "/cluster/issuer/1").await;
    assert_eq!(issuer.status(), StatusCode::OK);
    assert!(issuer.headers().contains_key("x-issuer"));

    // Each slot is one replica, by the id it sends in X-Replica: all of them, none twice.
    let ids = |stats: &[Value]| -> BTreeSet<String> {
        stats
            .iter()
            .map(|s| s["replica"].as_str().unwrap().to_owned())
            .collect()
    };
    let before_token = stats_of(&t, "token", 2).await;
    let before_session = stats_of(&t, "session", 3).await;
    assert_eq!(
        ids(&before_token),
        BTreeSet::from(["jwt-1".into(), "jwt-2".into()])
    );
    assert_eq!(ids(&before_session).len(), 3);
    assert!(before_session.iter().all(|s| s["mode"] == "session"));

    let pair = t.login("bob", "builder").await;
    let set_cookie = t.session_login("bob", "builder").await;
    let cookie = set_cookie.split(';').next().unwrap().trim().to_owned();
    for _ in 0..6 {
        assert_eq!(
            t.get_bearer("/api/me", &pair.access).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            t.get_with_cookie("/sapi/me", &cookie).await.status(),
            StatusCode::OK
        );
    }
    let after_token = stats_of(&t, "token", 2).await;
    let after_session = stats_of(&t, "session", 3).await;
    let delta = |after: &[Value], before: &[Value], field| sum(after, field) - sum(before, field);
    assert_eq!(delta(&after_token, &before_token, "checked_requests"), 6);
    assert_eq!(sum(&after_token, "store_commands"), 0);
    assert_eq!(
        delta(&after_session, &before_session, "checked_requests"),
        6
    );
    assert_eq!(delta(&after_session, &before_session, "store_commands"), 6);

    // Read-only: the slots proxy one GET route; anything else is that route's 405.
    let post = t
        .client
        .post_json("/cluster/token/1", &json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    // No slot past the last replica.
    let past = get(&t, "/cluster/token/3").await;
    assert_eq!(past.status(), StatusCode::NOT_FOUND);

    // A replica that is down is shown down: nginx's 502, not another replica's answer.
    t.stack.kill_replica(Mode::Jwt, 0).await.unwrap();
    let down = get(&t, "/cluster/token/1").await;
    assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
}
