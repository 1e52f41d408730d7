//! A second, independent reading of a token the verifier accepted: the fuzz targets' oracle.
//!
//! "The verifier did not panic" is only half of what a fuzzer can check. The other half: when
//! `auth_core::verify::verify` says `Ok`, was it right? [`assert_acceptable`] re-reads the
//! accepted token with base64 and serde_json alone, and panics (a crash, for libFuzzer) unless
//! it is signed by the trusted key and meets every rule of RFC 8725 the verifier promises. It
//! shares no code with the verifier, so a bug there is not repeated here.
//!
//! The signature check needs no verifying code at all: RS256 (RSASSA-PKCS1-v1_5) and HS256 are
//! deterministic, so a token is signed by our key exactly when its signature equals the one our
//! key (or, for HS256 refresh tokens, the HMAC key derived from it) makes over the same
//! `header.payload` bytes. Forging one would mean breaking RSA; what the
//! fuzzer can find is a verifier that accepts a token *without* such a signature. (A token the
//! target signed itself, shapes `2` and `3` of [`crate::input`], is ours by construction; it is
//! not signed a second time.)
//!
//! Header and claims are read into views of the members the rules name, each an
//! `Option<Value>`, with serde, as the verifier reads them. That is deliberate: the JSON *parser*
//! is not what is under test, and serde is more lenient than a strict reading in ways that do not
//! matter once our key's signature is required (and our issuer signs none of these): it skips
//! unknown members without checking them (invalid UTF-8, a lone surrogate), reads `null` as an
//! absent member (so `"crit": null` passes the "no `crit`" rule), and reads a struct from a JSON
//! array of its fields in order (so a header may be an array). What the model checks is the
//! values: the rules themselves.

use crate::input::{Token, signature_over};
use crate::keys::{ISSUER, Kind, LEEWAY_SECS, fixture};
use auth_core::refresh_key::REFRESH_ALG;
use auth_core::verify::MAX_TOKEN_BYTES;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Panic unless `token`, which the verifier accepted as `kind`, deserved it. `before` and
/// `after` are the clock read just before and just after the verifier ran, so a second ticking
/// over in between is never mistaken for an expiry bug.
pub fn assert_acceptable(token: &Token, kind: Kind, before: u64, after: u64) {
    let Token {
        text: token,
        signed_here,
    } = token;
    assert!(
        token.len() <= MAX_TOKEN_BYTES,
        "accepted a token over 8 KiB"
    );
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        panic!("accepted a token of {} parts", parts.len());
    };

    let signature = B64
        .decode(signature)
        .expect("accepted bad base64 in the signature");
    let input = format!("{header}.{payload}");
    let header: HeaderView = json(header, "header");
    let alg = text(&header.alg);
    if !signed_here {
        let ours = signature_over(alg, input.as_bytes());
        assert!(signature == ours, "accepted a token our key did not sign");
    }

    // Access tokens: RS256 under the RSA key's kid, only. Refresh tokens: HS256 under the
    // derived key's kid, or (issued before HS256) RS256 under the RSA key's kid; never one
    // algorithm under the other's kid.
    let key = &fixture().key;
    let expected_kid = match (kind, alg) {
        (Kind::Access, Some("RS256")) | (Kind::Refresh, Some("RS256")) => key.kid(),
        (Kind::Refresh, Some(REFRESH_ALG)) => key.refresh_key().kid(),
        (_, other) => panic!("accepted alg {other:?} as {kind:?}"),
    };
    let typ = text(&header.typ).expect("accepted a token without typ");
    assert!(
        kind.typs().iter().any(|t| t.eq_ignore_ascii_case(typ)),
        "accepted typ {typ:?} as {kind:?}"
    );
    assert_eq!(text(&header.kid), Some(expected_kid), "accepted kid");
    for (name, value) in [
        ("crit", &header.crit),
        ("jku", &header.jku),
        ("x5u", &header.x5u),
        ("jwk", &header.jwk),
        ("x5c", &header.x5c),
    ] {
        assert!(value.is_none(), "accepted a header with {name}");
    }

    let claims: ClaimsView = json(payload, "payload");
    assert_eq!(text(&claims.iss), Some(ISSUER), "accepted iss");
    let audience_ok = match &claims.aud {
        Some(Value::String(aud)) => aud == kind.audience(),
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(kind.audience())),
        _ => false,
    };
    assert!(audience_ok, "accepted aud {:?} as {kind:?}", claims.aud);
    assert!(text(&claims.sub).is_some(), "accepted a token without sub");
    let exp = number(&claims.exp).expect("accepted a token without a numeric exp");
    assert!(
        exp >= before.saturating_sub(LEEWAY_SECS),
        "accepted an expired token"
    );
    match (kind, &claims.nbf) {
        (Kind::Refresh, None) => {}
        (_, nbf) => {
            let nbf = number(nbf).expect("accepted a token without a numeric nbf");
            assert!(
                nbf <= after.saturating_add(LEEWAY_SECS),
                "accepted a token not valid yet"
            );
        }
    }
}

/// The header members the rules name.
#[derive(Deserialize)]
struct HeaderView {
    alg: Option<Value>,
    typ: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
    jku: Option<Value>,
    x5u: Option<Value>,
    jwk: Option<Value>,
    x5c: Option<Value>,
}

/// The claims the rules name.
#[derive(Deserialize)]
struct ClaimsView {
    iss: Option<Value>,
    aud: Option<Value>,
    sub: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
}

fn json<T: DeserializeOwned>(part: &str, what: &str) -> T {
    let bytes = B64
        .decode(part)
        .unwrap_or_else(|_| panic!("accepted bad base64 in the {what}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("accepted an unreadable {what}: {e}"))
}

fn text(value: &Option<Value>) -> Option<&str> {
    value.as_ref().and_then(Value::as_str)
}

fn number(value: &Option<Value>) -> Option<u64> {
    value.as_ref().and_then(Value::as_u64)
}
