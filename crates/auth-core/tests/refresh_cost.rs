//! What a refresh costs the issuer in cryptography, RS256 refresh tokens against HS256 ones, in
//! one process so that the machine is the same for both. Ignored by default (it measures, it does
//! not check behaviour); run it with:
//!
//! ```text
//! cargo test --release -p auth-core --test refresh_cost -- --ignored --nocapture
//! ```
//!
//! (`REFRESH_COST_N` sets the number of runs per operation.)
//!
//! The unit is one bare RS256 signature (`SigningKey::sign_rs256`), so the figures read as "RSA
//! signatures' worth of CPU" whatever the machine. A refresh verifies the old refresh token, signs
//! an access token and signs a new refresh token; the rest of its work (Redis, JSON of the
//! request) is the same either way and is not measured here. The dev profile builds AWS-LC with
//! full optimisation (see the workspace's Cargo.toml), so without `--release` the RSA and HMAC
//! figures are still release figures; the JSON and base64 around them are not, which only makes
//! the HS256 side look worse.

use auth_core::claims::{ACCESS_TYP, AccessClaims, REFRESH_TYP, RefreshClaims};
use auth_core::keys::{Jwks, KeyBits, SigningKey};
use auth_core::now_secs;
use auth_core::refresh_key::RefreshKeys;
use auth_core::sign::{sign_jwt, sign_refresh_jwt};
use auth_core::verify::{TokenRules, TrustedKeys, verify, verify_refresh};
use std::hint::black_box;
use std::time::{Duration, Instant};

const ISS: &str = "https://issuer.example";

fn claims() -> (AccessClaims, RefreshClaims) {
    let now = now_secs();
    let access = AccessClaims {
        iss: ISS.into(),
        sub: "alice".into(),
        aud: "api".into(),
        exp: now + 900,
        iat: now,
        nbf: now,
        jti: "Qk3bXy0u7m3Zl2pQyWc1xA".into(),
        client_id: "demo".into(),
        name: "Alice".into(),
        roles: vec!["user".into()],
    };
    let refresh = RefreshClaims {
        iss: ISS.into(),
        sub: "alice".into(),
        aud: ISS.into(),
        exp: now + 86_400,
        iat: now,
        jti: "h7Rk2mYq9s0bVn4xZc8wLg".into(),
        fam: "p1Lq8Xz3Cv6Bn0Mw5Ks2Jd".into(),
    };
    (access, refresh)
}

/// Mean time of `op` over `n` runs, after a few to warm up.
fn mean(n: u32, mut op: impl FnMut()) -> Duration {
    for _ in 0..n.min(20) {
        op();
    }
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed() / n
}

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn refresh_crypto_cost_rs256_against_hs256() {
    let n: u32 = std::env::var("REFRESH_COST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let key = SigningKey::generate(KeyBits::B2048).expect("key");
    let rsa = TrustedKeys::from_jwks(&Jwks {
        keys: vec![key.public_jwk().clone()],
    });
    let refresh_keys = RefreshKeys::new([key.refresh_key().clone()], rsa.clone());
    let rules = TokenRules::refresh(ISS, 30);
    let (access, refresh) = claims();
    let rs_token = sign_jwt(&key, REFRESH_TYP, &refresh).expect("sign");
    let hs_token = sign_refresh_jwt(key.refresh_key(), &refresh).expect("sign");
    // Both verify: the timings below are of the success path.
    verify::<RefreshClaims>(&rs_token, &rsa, &rules).expect("RS256 verifies");
    verify_refresh::<RefreshClaims>(&hs_token, &refresh_keys, &rules).expect("HS256 verifies");

    let message = rs_token
        .rsplit_once('.')
        .expect("dot")
        .0
        .as_bytes()
        .to_vec();
    let unit = mean(n, || {
        black_box(key.sign_rs256(black_box(&message)).expect("sign"));
    });
    let rs_sign = mean(n, || {
        black_box(sign_jwt(&key, REFRESH_TYP, black_box(&refresh)).expect("sign"));
    });
    let rs_verify = mean(n, || {
        black_box(verify::<RefreshClaims>(black_box(&rs_token), &rsa, &rules).expect("verify"));
    });
    let hs_sign = mean(n * 20, || {
        black_box(sign_refresh_jwt(key.refresh_key(), black_box(&refresh)).expect("sign"));
    });
    let hs_verify = mean(n * 20, || {
        black_box(
            verify_refresh::<RefreshClaims>(black_box(&hs_token), &refresh_keys, &rules)
                .expect("verify"),
        );
    });
    let access_sign = mean(n, || {
        black_box(sign_jwt(&key, ACCESS_TYP, black_box(&access)).expect("sign"));
    });

    let units = |d: Duration| d.as_secs_f64() / unit.as_secs_f64();
    let before = rs_verify + access_sign + rs_sign;
    let after = hs_verify + access_sign + hs_sign;
    println!("n = {n}; one bare RS256 signature (the unit): {unit:?}");
    println!(
        "refresh token sign+verify: RS256 {:?} ({:.3} units), HS256 {:?} ({:.4} units), ratio {:.0}x",
        rs_sign + rs_verify,
        units(rs_sign + rs_verify),
        hs_sign + hs_verify,
        units(hs_sign + hs_verify),
        (rs_sign + rs_verify).as_secs_f64() / (hs_sign + hs_verify).as_secs_f64()
    );
    println!(
        "  RS256 sign {rs_sign:?}, verify {rs_verify:?}; HS256 sign {hs_sign:?}, verify {hs_verify:?}"
    );
    println!(
        "refresh crypto (verify old refresh + sign access + sign refresh): before {before:?} ({:.3} units), after {after:?} ({:.3} units)",
        units(before),
        units(after)
    );
    assert!(
        after < before,
        "HS256 refresh tokens must make a refresh cheaper"
    );
}
