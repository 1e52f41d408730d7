//! A JWT library we did not write verifies our tokens: PyJWT (Debian's python3-jwt), starting
//! from the issuer URL alone through discovery (the script is `pyjwt/verify.py`).
//!
//! Our own verifier and our own issuer could agree on a mistake (a claim spelled wrong, a
//! base64 variant, a JWK field); an independent implementation would not share it.
//!
//! Debian's `/usr/bin/python3` is used, where `apt-get install python3-jwt` puts the module
//! (`.ci/run` installs it). Without it the test is skipped, saying so, unless `CI` is set.

use crate::helpers::{TestStack, claims_of};
use auth_core::claims::{ACCESS_TYP, AccessClaims};
use auth_core::sign::sign_jwt;
use serde_json::Value;
use std::path::Path;

const PYTHON: &str = "/usr/bin/python3";

/// Whether PyJWT (with the `cryptography` module RS256 needs) can be imported; if not, panics in
/// CI and says why the test is skipped elsewhere.
fn pyjwt_available() -> bool {
    let check = std::process::Command::new(PYTHON)
        .args(["-c", "import jwt, cryptography; jwt.PyJWKClient"])
        .output();
    let missing = match check {
        Ok(output) if output.status.success() => return true,
        Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
        Err(e) => format!("{PYTHON}: {e}"),
    };
    let what = "PyJWT for /usr/bin/python3 (apt-get install python3-jwt python3-cryptography)";
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set and {what} is missing: {missing}"
    );
    eprintln!("SKIPPED: {what} is missing: {missing}");
    false
}

/// PyJWT's verdict on `token` when it expects `issuer` and `audience`: the script's JSON line.
fn pyjwt_verdict(issuer: &str, audience: &str, token: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/pyjwt/verify.py");
    let output = std::process::Command::new(PYTHON)
        .arg(script)
        .args([issuer, audience, token])
        // The stack is on 127.0.0.1: never through a proxy from the environment.
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let verdict: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        let stderr = String::from_utf8_lossy(&output.stderr);
        panic!("verify.py did not answer JSON ({e}): {stdout}\n{stderr}")
    });
    assert_eq!(
        output.status.success(),
        verdict["ok"] == true,
        "exit status and verdict disagree: {verdict}"
    );
    verdict
}

#[tokio::test]
async fn pyjwt_follows_discovery_and_accepts_our_tokens_and_refuses_bad_ones() {
    if !pyjwt_available() {
        return;
    }
    let t = TestStack::start_with(1, 0, &[]).await;
    let issuer = t.stack.base_url();
    let audience = stack::services::AUDIENCE;
    let pair = t.login("bob", "builder").await;

    let verdict = pyjwt_verdict(&issuer, audience, &pair.access);
    assert_eq!(verdict["ok"], true, "PyJWT refused a real token: {verdict}");
    assert_eq!(verdict["claims"], claims_of(&pair.access));
    assert_eq!(
        verdict["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json").as_str()
    );

    // Each check PyJWT makes, shown to be made: one thing wrong per token.
    let claims: AccessClaims = serde_json::from_value(claims_of(&pair.access)).unwrap();
    let key = t.issuer_key();
    let signed = |claims: &AccessClaims| sign_jwt(&key, ACCESS_TYP, claims).unwrap();
    let now = auth_core::now_secs();
    let (head, rest) = pair.access.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let more_roles = AccessClaims {
        roles: vec!["admin".into()],
        ..claims.clone()
    };
    let more_roles = signed(&more_roles);
    let tampered = format!(
        "{head}.{}.{signature}",
        more_roles.split('.').nth(1).unwrap()
    );
    let cases = [
        // Our claims with an admin role, under the real token's signature.
        ("tampered claims", tampered, "InvalidSignatureError"),
        (
            "another issuer",
            signed(&AccessClaims {
                iss: "http://issuer.example".into(),
                ..claims.clone()
            }),
            "InvalidIssuerError",
        ),
        (
            "another audience",
            signed(&AccessClaims {
                aud: "another-api".into(),
                ..claims.clone()
            }),
            "InvalidAudienceError",
        ),
        (
            "expired",
            signed(&AccessClaims {
                exp: now - 60,
                iat: now - 360,
                nbf: now - 360,
                ..claims.clone()
            }),
            "ExpiredSignatureError",
        ),
    ];
    for (what, token, error) in cases {
        let verdict = pyjwt_verdict(&issuer, audience, &token);
        assert_eq!(verdict["ok"], false, "{what}: PyJWT accepted it: {verdict}");
        assert_eq!(verdict["error"], error, "{what}: {verdict}");
    }
}
