//! Hostile tokens, sent through nginx: each one gets the contract's 401 (or nginx's 431 for a
//! header too large to proxy). The unit tests in auth-core/src/verify.rs show which check refuses
//! each; these show the whole path (nginx, the replica, the error shape) refuses them too.

use crate::helpers::{TestStack, decode_segment};
use auth_core::keys::{KeyBits, SigningKey};
use auth_core::now_secs;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A token with exactly this header and these claims, signed by `key` over those bytes.
fn signed(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = key.sign_rs256(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(signature))
}

fn hmac(secret: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

#[tokio::test]
async fn every_hostile_token_gets_401_invalid_token() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let pair = t.login("bob", "builder").await;
    let key = t.issuer_key();
    let kid = key.kid().to_owned();
    let claims = decode_segment(&pair.access, 1);
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
    let with = |name: &str, value: Value| {
        let mut h = header.clone();
        h[name] = value;
        h
    };
    let claims_with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        c
    };
    let jwks = t.jwks().await;
    let public_n = jwks["keys"][0]["n"].as_str().unwrap().to_owned();
    let attacker = SigningKey::generate(KeyBits::B2048).unwrap();
    let (input, _) = pair.access.rsplit_once('.').unwrap();
    let now = now_secs();

    // Control: the real key over the real header and claims is accepted.
    let control = signed(&key, &header, &claims);
    assert_eq!(
        t.get_bearer("/api/me", &control).await.status(),
        StatusCode::OK
    );

    let mut attacks: Vec<(&str, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = with("alg", json!(alg));
        attacks.push((
            "alg none",
            format!(
                "{}.{}.",
                B64.encode(h.to_string()),
                B64.encode(claims.to_string())
            ),
        ));
    }
    attacks.push(("stripped signature", format!("{input}.")));
    attacks.push((
        "HS256 keyed with the JWKS modulus",
        hmac(public_n.as_bytes(), &with("alg", json!("HS256")), &claims),
    ));
    let pem_text = format!("-----BEGIN PUBLIC KEY-----\n{public_n}\n-----END PUBLIC KEY-----\n");
    attacks.push((
        "HS256 keyed with PEM text",
        hmac(pem_text.as_bytes(), &with("alg", json!("HS256")), &claims),
    ));
    let tampered =
        B64.encode(claims_with("roles", json!(["user", "recruiter", "admin"])).to_string());
    attacks.push((
        "tampered payload",
        format!(
            "{}.{tampered}.{}",
            input.split('.').next().unwrap(),
            pair.access.rsplit('.').next().unwrap()
        ),
    ));
    attacks.push((
        "unknown kid",
        signed(&key, &with("kid", json!("no-such-key")), &claims),
    ));
    for kid in [
        "../../../../etc/passwd",
        "' OR '1'='1",
        "kid\u{0}nul",
        "/dev/null",
    ] {
        attacks.push((
            "hostile kid",
            signed(&key, &with("kid", json!(kid)), &claims),
        ));
    }
    attacks.push((
        "jku header",
        signed(
            &key,
            &with("jku", json!("http://127.0.0.1:1/jwks.json")),
            &claims,
        ),
    ));
    attacks.push((
        "x5u header",
        signed(
            &key,
            &with("x5u", json!("http://127.0.0.1:1/cert.pem")),
            &claims,
        ),
    ));
    attacks.push((
        "embedded jwk",
        signed(
            &attacker,
            &with("jwk", json!(attacker.public_jwk())),
            &claims,
        ),
    ));
    attacks.push((
        "x5c header",
        signed(&key, &with("x5c", json!(["MIIBIjANBgkq"])), &claims),
    ));
    attacks.push((
        "attacker key, real kid",
        signed(&attacker, &header, &claims),
    ));
    attacks.push((
        "wrong typ",
        signed(&key, &with("typ", json!("JWT")), &claims),
    ));
    attacks.push((
        "refresh typ",
        signed(&key, &with("typ", json!("rt+jwt")), &claims),
    ));
    attacks.push((
        "wrong iss",
        signed(
            &key,
            &header,
            &claims_with("iss", json!("http://evil.example")),
        ),
    ));
    attacks.push((
        "wrong aud",
        signed(&key, &header, &claims_with("aud", json!("another-api"))),
    ));
    attacks.push((
        "expired",
        signed(&key, &header, &claims_with("exp", json!(now - 31))),
    ));
    attacks.push((
        "nbf in the future",
        signed(&key, &header, &claims_with("nbf", json!(now + 120))),
    ));
    attacks.push((
        "exp as a string",
        signed(
            &key,
            &header,
            &claims_with("exp", json!((now + 300).to_string())),
        ),
    ));
    attacks.push((
        "crit header",
        signed(&key, &with("crit", json!(["urn:example:ext"])), &claims),
    ));
    attacks.push(("malformed base64", "@@@.###.$$$".to_owned()));
    attacks.push((
        "malformed JSON",
        format!("{}.{}.c2ln", B64.encode("{not json"), B64.encode("[]")),
    ));
    attacks.push(("two segments", "eyJhbGciOiJSUzI1NiJ9.e30".to_owned()));
    attacks.push(("a refresh token", pair.refresh.clone()));
    let padded = claims_with("pad", json!("x".repeat(6_000)));
    attacks.push(("just over 8 KiB", signed(&key, &header, &padded)));

    for (name, token) in &attacks {
        let response = t.get_bearer("/api/me", token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        // Refused by the replica itself (it names itself), not by the proxy.
        assert!(response.headers().contains_key("x-replica"), "{name}");
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#,
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{name}");
    }
    assert!(attacks.len() >= 30, "{} attacks", attacks.len());
}

#[tokio::test]
async fn a_header_too_large_for_the_proxy_gets_a_json_431() {
    let t = TestStack::start_with(1, 0, &[]).await;
    let huge = "A".repeat(20 * 1024);
    let response = t.get_bearer("/api/me", &huge).await;
    assert_eq!(response.status().as_u16(), 431);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "request_header_fields_too_large");
}
