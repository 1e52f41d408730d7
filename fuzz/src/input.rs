//! How the fuzzer's bytes become a token.
//!
//! A token is base64url text, and libFuzzer mutates bytes: flipping a byte of base64 rarely makes
//! a JSON header that still parses, let alone one with the right `kid`. So the first byte of an
//! input picks one of four shapes (its value modulo 4; the seeds use the digits `0` to `3`):
//!
//! - `0`: the rest is the token, as it would arrive in a header. This reaches the size limit,
//!   the dots, malformed base64.
//! - `1`: the rest is `header \n payload \n signature`, raw; the target base64url-encodes each
//!   part. The fuzzer now edits JSON directly, and the signature is whatever bytes it chose, so
//!   the verifier must refuse every one of these.
//! - `2`: the rest is `header \n payload`; the target encodes them and signs them with the
//!   trusted key, as the issuer would. This reaches the claim checks behind the signature, and
//!   whatever header and claims the fuzzer wrote must still meet the rules to be accepted.
//! - `3`: the rest is `header patch \n claims patch`: JSON objects whose members are set on a
//!   valid header and valid claims ([`good_header`], [`good_claims`]), which the target then
//!   signs. A patch that is JSON but no object replaces the part whole; one that is no JSON
//!   changes nothing. Here a few bytes such as `{"x5u":1}` make a token that is valid but for
//!   that one member: the fuzzer spends its time on the rules, not on rebuilding a token.
//!
//! A missing part is empty. Signing costs one RSA operation, so shapes `2` and `3` run slower
//! than the others; the fuzzer still spends most of its time where coverage grows.

use crate::keys::{AUDIENCE, FAR_FUTURE, ISSUER, Kind, fixture};
use auth_core::claims::{ACCESS_TYP, REFRESH_TYP};
use auth_core::refresh_key::REFRESH_ALG;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

/// A token made of an input.
pub struct Token {
    pub text: String,
    /// Whether the target signed it with the trusted key (shapes `2` and `3`): then its
    /// signature is ours by construction, and the oracle need not sign it again to know.
    pub signed_here: bool,
}

/// The token an input stands for, when checked as `kind`; `None` for a raw token that is not
/// UTF-8 (a header value never is, so the verifier never sees one).
pub fn token(data: &[u8], kind: Kind) -> Option<Token> {
    let (&shape, rest) = data.split_first()?;
    let text = token_text(shape, rest, kind)?;
    Some(Token {
        text,
        signed_here: matches!(shape % 4, 2 | 3),
    })
}

fn token_text(shape: u8, rest: &[u8], kind: Kind) -> Option<String> {
    match shape % 4 {
        0 => std::str::from_utf8(rest).ok().map(str::to_owned),
        1 => {
            let mut parts = rest.splitn(3, |&b| b == b'\n');
            let header = parts.next().unwrap_or_default();
            let payload = parts.next().unwrap_or_default();
            let signature = parts.next().unwrap_or_default();
            Some(format!(
                "{}.{}.{}",
                B64.encode(header),
                B64.encode(payload),
                B64.encode(signature)
            ))
        }
        2 => {
            let (header, payload) = two_lines(rest);
            Some(sign(header, payload))
        }
        _ => {
            let (header, claims) = two_lines(rest);
            let header = patched(good_header(kind), header).to_string();
            let claims = patched(good_claims(kind), claims).to_string();
            Some(sign(header.as_bytes(), claims.as_bytes()))
        }
    }
}

fn two_lines(bytes: &[u8]) -> (&[u8], &[u8]) {
    let mut parts = bytes.splitn(2, |&b| b == b'\n');
    let first = parts.next().unwrap_or_default();
    (first, parts.next().unwrap_or_default())
}

/// `header.payload.signature`, signed by the trusted key over exactly these bytes: with its
/// derived HMAC key when the header says `HS256` (a refresh token as the issuer signs it now),
/// with the RSA key otherwise.
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = signature_over(header_alg(header).as_deref(), input.as_bytes());
    format!("{input}.{}", B64.encode(signature))
}

/// What the trusted key signs over `input` for `alg`: the HS256 tag of its derived refresh key,
/// or its RS256 signature for anything else. Both are deterministic, so the oracle (model.rs)
/// tells a token the key signed by signing it again.
pub fn signature_over(alg: Option<&str>, input: &[u8]) -> Vec<u8> {
    let fixture = fixture();
    match alg {
        Some(REFRESH_ALG) => fixture
            .key
            .refresh_key()
            .sign_hs256(input)
            .as_ref()
            .to_vec(),
        _ => fixture.key.sign_rs256(input).expect("the fixed key signs"),
    }
}

/// The `alg` of a header given as JSON bytes, if it has a string one.
fn header_alg(header: &[u8]) -> Option<String> {
    let header: Value = serde_json::from_slice(header).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

fn patched(mut base: Value, patch: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(patch) {
        Ok(Value::Object(members)) => {
            for (name, value) in members {
                base[name] = value;
            }
            base
        }
        Ok(other) => other,
        Err(_) => base,
    }
}

/// The header the issuer writes for a token of `kind`.
pub fn good_header(kind: Kind) -> Value {
    let key = &fixture().key;
    match kind {
        Kind::Access => json!({"alg": "RS256", "typ": ACCESS_TYP, "kid": key.kid()}),
        Kind::Refresh => json!({
            "alg": REFRESH_ALG, "typ": REFRESH_TYP, "kid": key.refresh_key().kid()
        }),
    }
}

/// Claims that meet every rule for `kind`, valid until [`FAR_FUTURE`].
pub fn good_claims(kind: Kind) -> Value {
    match kind {
        Kind::Access => json!({
            "iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": FAR_FUTURE,
            "iat": 1_700_000_000, "nbf": 1_700_000_000, "jti": "seed-access",
            "client_id": "authscale-demo", "name": "Alice", "roles": ["user"],
        }),
        Kind::Refresh => json!({
            "iss": ISSUER, "sub": "alice", "aud": ISSUER, "exp": FAR_FUTURE,
            "iat": 1_700_000_000, "jti": "seed-refresh", "fam": "seed-family",
        }),
    }
}

/// The input of shape `0`: a token as it arrives.
pub fn raw(token: &str) -> Vec<u8> {
    format!("0{token}").into_bytes()
}

/// The input of shape `1`: parts encoded by the target, signature as given.
pub fn parts(header: &str, payload: &str, signature: &[u8]) -> Vec<u8> {
    let mut input = format!("1{header}\n{payload}\n").into_bytes();
    input.extend_from_slice(signature);
    input
}

/// The input of shape `2`: header and payload, signed by the target.
pub fn signed(header: &str, payload: &str) -> Vec<u8> {
    format!("2{header}\n{payload}").into_bytes()
}

/// The input of shape `3`: patches to a valid header and valid claims.
pub fn patch(header: &str, claims: &str) -> Vec<u8> {
    format!("3{header}\n{claims}").into_bytes()
}
