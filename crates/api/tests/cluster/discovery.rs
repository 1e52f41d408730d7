//! Discovery (OpenID Connect Discovery 1.0, RFC 8414) through nginx: a client that knows only
//! the issuer URL finds the keys and the endpoints, and what it finds agrees with the tokens.

use crate::helpers::{TestStack, claims_of};
use reqwest::StatusCode;
use serde_json::Value;
use testkit::Auth;

#[tokio::test]
async fn both_discovery_documents_lead_from_the_issuer_url_to_the_keys_of_its_tokens() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    let iss = claims_of(&pair.access)["iss"].as_str().unwrap().to_owned();

    let mut documents = Vec::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = t.client.get(path, Auth::None).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let kind = response.headers()["content-type"].to_str().unwrap();
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        documents.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(documents[0], documents[1], "the two documents differ");
    let metadata = &documents[0];

    assert_eq!(
        metadata["issuer"],
        iss.as_str(),
        "issuer is every token's iss"
    );
    for (field, path) in [
        ("jwks_uri", "/.well-known/jwks.json"),
        ("token_endpoint", "/auth/refresh"),
        ("login_endpoint", "/auth/login"),
        ("logout_endpoint", "/auth/logout"),
    ] {
        assert_eq!(metadata[field], format!("{iss}{path}").as_str(), "{field}");
    }
    // Only what is true: the refresh grant; no password grant (RFC 9700 2.4), no authorization
    // endpoint, no RFC 7009 revocation.
    assert_eq!(
        metadata["grant_types_supported"],
        serde_json::json!(["refresh_token"])
    );
    assert_eq!(metadata["response_types_supported"], serde_json::json!([]));
    assert!(metadata.get("revocation_endpoint").is_none());
    assert!(
        metadata
            .get("id_token_signing_alg_values_supported")
            .is_none(),
        "no ID tokens are issued, so none is claimed"
    );

    // Following jwks_uri (the issuer URL is nginx's address here) gives the keys that verify
    // the access token.
    let jwks: Value = t
        .client
        .http()
        .get(metadata["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks, t.jwks().await);
    let kid = crate::helpers::decode_segment(&pair.access, 0)["kid"].clone();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid),
        "the access token's kid {kid} is not in the JWKS found by discovery"
    );
}

/// The OpenAPI document is served through nginx, from the issuer, and describes the routes a
/// client reaches there (that it is complete and valid is the issuer's unit tests'; that the
/// stack keeps to it, `cargo xtask schemathesis`'s).
#[tokio::test]
async fn nginx_serves_the_openapi_document_of_the_whole_surface() {
    let t = TestStack::start_with(1, 1, &[]).await;
    let response = t
        .client
        .get("/openapi.json", Auth::None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-issuer"));
    let kind = response.headers()["content-type"].to_str().unwrap();
    assert_eq!(kind, "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    for path in ["/auth/login", "/api/me", "/sapi/me", "/openapi.json"] {
        assert!(document["paths"][path].is_object(), "{path} is not in it");
    }
}
