//! Writes the seed inputs in `fuzz/seeds/<target>/`: a few valid tokens and bodies, and a few
//! near misses of each rule, so the fuzzer starts from inputs that already reach deep into the
//! code instead of having to discover a well-signed token by chance.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! The output is deterministic (RS256 signatures are, and every time is fixed), so running it
//! again changes no file unless this program or the key changed. Claims are written as JSON
//! rather than through `auth_core::claims`' structs, so a claim added there does not break the
//! seeds' build; a seed missing the new claim is simply refused, which is a fine seed too.

use auth_core::claims::{ACCESS_TYP, ACCESS_TYP_LONG, AccessClaims, REFRESH_TYP, RefreshClaims};
use auth_core::verify::{verify, verify_refresh};
use authscale_fuzz::input::{good_claims, good_header};
use authscale_fuzz::keys::{FAR_FUTURE, Kind, fixture};
use authscale_fuzz::{input, issuer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let tokens = Tokens::new();
    for (kind, target) in [
        (Kind::Access, "access_token"),
        (Kind::Refresh, "refresh_token"),
    ] {
        let seeds = token_seeds(&tokens, kind);
        check(&seeds, kind);
        write(&root.join(target), &seeds)?;
    }
    write(&root.join("issuer_bodies"), &body_seeds(&tokens))?;
    Ok(())
}

/// The good token of each kind, and the kid.
struct Tokens {
    kid: String,
    access_token: String,
    refresh_token: String,
}

impl Tokens {
    fn new() -> Tokens {
        let token = |kind| {
            let header = good_header(kind).to_string();
            input::sign(header.as_bytes(), good_claims(kind).to_string().as_bytes())
        };
        Tokens {
            kid: fixture().key.kid().to_owned(),
            access_token: token(Kind::Access),
            refresh_token: token(Kind::Refresh),
        }
    }
}

fn header(kid: &str, typ: &str) -> Value {
    json!({"alg": "RS256", "typ": typ, "kid": kid})
}

/// Seeds of the two token targets: valid tokens in every shape, then one near miss per rule.
fn token_seeds(t: &Tokens, kind: Kind) -> Vec<(String, Vec<u8>)> {
    let (typ, token, other) = match kind {
        Kind::Access => (ACCESS_TYP, &t.access_token, &t.refresh_token),
        Kind::Refresh => (REFRESH_TYP, &t.refresh_token, &t.access_token),
    };
    let good = &good_claims(kind);
    let h = header(&t.kid, typ);
    let with = |value: &Value, name: &str, v: Value| {
        let mut value = value.clone();
        value[name] = v;
        value
    };
    let without = |value: &Value, name: &str| {
        let mut value = value.clone();
        value.as_object_mut().expect("an object").remove(name);
        value
    };
    let signed = |h: &Value, c: &Value| input::signed(&h.to_string(), &c.to_string());
    let mut seeds = vec![
        ("valid-raw".to_owned(), input::raw(token)),
        ("valid-signed".to_owned(), signed(&h, good)),
        ("valid-patched".to_owned(), input::patch("{}", "{}")),
        (
            "patched-x5c".to_owned(),
            input::patch(r#"{"x5c":["MIIB"]}"#, "{}"),
        ),
        ("patched-exp".to_owned(), input::patch("{}", r#"{"exp":1}"#)),
        ("patched-array".to_owned(), input::patch("[]", "{}")),
        ("other-kind-raw".to_owned(), input::raw(other)),
        (
            "expired".to_owned(),
            signed(&h, &with(good, "exp", json!(1))),
        ),
        (
            "nbf-future".to_owned(),
            signed(&h, &with(good, "nbf", json!(FAR_FUTURE))),
        ),
        (
            "exp-string".to_owned(),
            signed(&h, &with(good, "exp", json!("4102444800"))),
        ),
        (
            "wrong-iss".to_owned(),
            signed(&h, &with(good, "iss", json!("https://evil.test"))),
        ),
        (
            "wrong-aud".to_owned(),
            signed(&h, &with(good, "aud", json!("someone-else"))),
        ),
        (
            "aud-array".to_owned(),
            signed(&h, &with(good, "aud", json!([good["aud"], "x"]))),
        ),
        ("no-sub".to_owned(), signed(&h, &without(good, "sub"))),
        ("no-typ".to_owned(), signed(&without(&h, "typ"), good)),
        (
            "unknown-kid".to_owned(),
            signed(&with(&h, "kid", json!("../../etc/passwd")), good),
        ),
        (
            "alg-hs256".to_owned(),
            signed(&with(&h, "alg", json!("HS256")), good),
        ),
        (
            "alg-none".to_owned(),
            input::parts(
                &with(&h, "alg", json!("none")).to_string(),
                &good.to_string(),
                b"",
            ),
        ),
        (
            "bad-signature".to_owned(),
            input::parts(&h.to_string(), &good.to_string(), &[0x5a; 256]),
        ),
        (
            "crit".to_owned(),
            signed(&with(&h, "crit", json!(["exp"])), good),
        ),
        (
            "jku".to_owned(),
            signed(&with(&h, "jku", json!("https://evil.test/jwks")), good),
        ),
        (
            "jwk".to_owned(),
            signed(&with(&h, "jwk", json!(fixture().key.public_jwk())), good),
        ),
        ("garbage".to_owned(), input::raw("a.b.c")),
        (
            "oversized".to_owned(),
            input::raw(&format!("{}.e30.sig", "A".repeat(8 * 1024))),
        ),
    ];
    if kind == Kind::Access {
        let long = with(&h, "typ", json!(ACCESS_TYP_LONG.to_ascii_uppercase()));
        seeds.push(("valid-long-typ".to_owned(), signed(&long, good)));
        seeds.push(("no-nbf".to_owned(), signed(&h, &without(good, "nbf"))));
    }
    seeds
}

/// Seeds of `issuer_bodies`: each route with a good body, and the usual malformed ones.
fn body_seeds(t: &Tokens) -> Vec<(String, Vec<u8>)> {
    const LOGIN: usize = 0;
    const REFRESH: usize = 1;
    const LOGOUT: usize = 2;
    const SESSION_LOGIN: usize = 3;
    const JSON: usize = 0;
    const JSON_UTF8: usize = 1;
    const TEXT: usize = 2;
    const NONE: usize = 3;
    let refresh = json!({ "refresh_token": t.refresh_token }).to_string();
    let access_as_refresh = json!({ "refresh_token": t.access_token }).to_string();
    let credentials = json!({"username": "alice", "password": "wonderland"}).to_string();
    let seed = |name: &str, route, content_type, body: &[u8]| {
        (name.to_owned(), issuer::input(route, content_type, body))
    };
    vec![
        seed("login", LOGIN, JSON, credentials.as_bytes()),
        seed(
            "login-wrong-password",
            LOGIN,
            JSON,
            br#"{"username":"bob","password":"nope"}"#,
        ),
        seed(
            "login-long-username",
            LOGIN,
            JSON,
            format!(r#"{{"username":"{}","password":"p"}}"#, "u".repeat(200)).as_bytes(),
        ),
        seed(
            "login-wrong-types",
            LOGIN,
            JSON,
            br#"{"username":1,"password":[]}"#,
        ),
        seed(
            "login-missing-field",
            LOGIN,
            JSON_UTF8,
            br#"{"username":"alice"}"#,
        ),
        seed("login-text-plain", LOGIN, TEXT, credentials.as_bytes()),
        seed("login-no-content-type", LOGIN, NONE, credentials.as_bytes()),
        seed("session-login", SESSION_LOGIN, JSON, credentials.as_bytes()),
        seed("refresh", REFRESH, JSON, refresh.as_bytes()),
        seed(
            "refresh-access-token",
            REFRESH,
            JSON,
            access_as_refresh.as_bytes(),
        ),
        seed(
            "refresh-garbage-token",
            REFRESH,
            JSON,
            br#"{"refresh_token":"a.b.c"}"#,
        ),
        seed("refresh-not-json", REFRESH, JSON, b"refresh_token=abc"),
        seed("logout", LOGOUT, JSON, refresh.as_bytes()),
        seed("logout-empty", LOGOUT, JSON, b""),
        seed("deep-nesting", REFRESH, JSON, &[b'['; 10_000]),
    ]
}

/// The seeds named `valid-*` must verify and every other one must be refused: a seed that
/// does not do what its name says would mislead whoever reads the corpus.
fn check(seeds: &[(String, Vec<u8>)], kind: Kind) {
    let f = fixture();
    for (name, bytes) in seeds {
        let token = input::token(bytes, kind).expect("a seed is UTF-8");
        let accepted = match kind {
            Kind::Access => verify::<AccessClaims>(&token.text, &f.keys, &f.access).is_ok(),
            Kind::Refresh => {
                verify_refresh::<RefreshClaims>(&token.text, &f.refresh_keys, &f.refresh).is_ok()
            }
        };
        assert_eq!(accepted, name.starts_with("valid-"), "seed {name}");
    }
}

/// Replace `dir`'s files with `seeds`.
fn write(dir: &PathBuf, seeds: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    println!("{}: {} seeds", dir.display(), seeds.len());
    Ok(())
}
