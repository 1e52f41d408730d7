//! Every check a token must pass, in one place (RFC 8725, the JWT Best Current Practices).
//!
//! A replica verifies an access token by itself, with nothing but the issuer's public keys: no
//! call to the issuer, no look-up in Redis. That is the whole reason tokens scale. The price is
//! that the checks must be complete, because nobody else will catch what they miss:
//!
//! 1. Size: at most 8 KiB, before any decoding work is done.
//! 2. The header, parsed by us and strictly: for an access token `alg` exactly `RS256` (so `none`,
//!    `None`, HS256 with the public key as an HMAC secret and every other algorithm confusion are
//!    refused before any key is touched; for the issuer's refresh tokens see [`verify_refresh`]:
//!    each `kid` names one key of one algorithm); `typ` the one expected for this kind of token (jsonwebtoken does not check
//!    `typ`: a refresh token must never pass as an access token); no `crit` (we understand no
//!    extensions, and RFC 7515 says to reject what we do not understand); no `jku`, `x5u`, `jwk` or
//!    `x5c` (keys named by the token itself are never fetched nor trusted); a `kid` we know.
//! 3. The signature, with the key that `kid` names: RSASSA-PKCS1-v1_5 with SHA-256 (or, for a
//!    refresh token on the issuer, HMAC-SHA256 compared in constant time), by AWS-LC.
//! 4. The claims: `iss` and `aud` equal to the configured ones; `exp` and `nbf` within the leeway
//!    (at most 30 s); and every claim the profile requires present with the right JSON type (a
//!    string `exp` fails deserialization instead of being skipped).
//!
//! Steps 3 and 4 used to be `jsonwebtoken::decode`. The load test's profile of a token replica
//! showed what that costs on every request beyond the RSA operation itself: the public key
//! rebuilt from its modulus and exponent, the header decoded again, the claims deserialized twice
//! from freshly decoded copies. Here the key is parsed once, when the JWKS is loaded (an AWS-LC
//! `ParsedPublicKey`), and the claims are base64-decoded once and parsed from that one copy twice
//! (into the registered claims the rules check, and into the caller's type). The rules are the
//! same as jsonwebtoken's (its `exp < now - leeway` and `nbf > now + leeway`), and the tests
//! below pin them. Whether that is worth its code was measured inside servers rather than in a
//! loop (`verify-cost` in the load test; the figures are in README.md): it was, so it stays.

use crate::keys::Jwks;
use crate::refresh_key::{REFRESH_ALG, RefreshKeys};
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

/// Tokens above this size are refused unread (the contract's limit).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest clock-skew allowance the contract permits.
pub const MAX_LEEWAY_SECS: u64 = 30;

/// Why a token was refused. The description goes to the client; it says what was wrong without
/// echoing any part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the token is larger than 8 KiB")]
    TooLarge,
    #[error("the token is not a well-formed JWS")]
    Malformed,
    #[error("the token's algorithm is not the one expected here")]
    Algorithm,
    #[error("the token's typ is not the one expected here")]
    Type,
    #[error("the token uses a header parameter this service refuses (crit, jku, x5u, jwk, x5c)")]
    ForbiddenHeader,
    #[error("the token names no key id, or one this service does not know")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    Issuer,
    #[error("the token is meant for another audience")]
    Audience,
    #[error("the token's claims are missing or malformed")]
    Claims,
}

/// The public keys a verifier trusts, by `kid`, parsed once.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    keys: HashMap<String, TrustedKey>,
}

#[derive(Clone)]
struct TrustedKey {
    parsed: ParsedPublicKey,
    /// What tells this key from another key published later under the same `kid` (see
    /// [`TrustedKeys::holds`]).
    fingerprint: KeyFingerprint,
}

/// An RSA public key's RFC 7638 thumbprint, unencoded ([`crate::keys::thumbprint_digest`]).
pub type KeyFingerprint = [u8; 32];

impl TrustedKeys {
    /// Build from a JWKS. Keys that are not RSA signature keys for RS256 are skipped, never
    /// trusted for something else; so are RSA keys under 2048 bits (RFC 7518 section 3.3), which
    /// AWS-LC's RS256 verifier refuses.
    pub fn from_jwks(jwks: &Jwks) -> Self {
        let keys = jwks
            .keys
            .iter()
            .filter(|k| k.kty == "RSA" && k.alg == "RS256" && k.use_ == "sig")
            .filter_map(|k| {
                let key = TrustedKey {
                    parsed: parse_rsa_public_key(&k.n, &k.e)?,
                    fingerprint: crate::keys::thumbprint_digest(&k.n, &k.e),
                };
                Some((k.kid.clone(), key))
            })
            .collect();
        TrustedKeys { keys }
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The fingerprint of the key held under `kid`.
    pub fn fingerprint(&self, kid: &str) -> Option<KeyFingerprint> {
        self.keys.get(kid).map(|k| k.fingerprint)
    }

    /// Whether the very key with `fingerprint` is still held under `kid`: false once the `kid`
    /// is gone, and also when other key material has been published under the same `kid`.
    pub fn holds(&self, kid: &str, fingerprint: &KeyFingerprint) -> bool {
        self.fingerprint(kid).as_ref() == Some(fingerprint)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// An RSA public key from a JWK's base64url `n` and `e`, parsed for RS256 verification.
fn parse_rsa_public_key(n: &str, e: &str) -> Option<ParsedPublicKey> {
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    let n = URL_SAFE_NO_PAD.decode(n).ok()?;
    let e = URL_SAFE_NO_PAD.decode(e).ok()?;
    let key = rsa::PublicKey::new(
        rsa::BoxedUint::from_be_slice_vartime(&n),
        rsa::BoxedUint::from_be_slice_vartime(&e),
    )
    .ok()?;
    let der = key.to_pkcs1_der().ok()?;
    ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_bytes()).ok()
}

/// What a token of one kind must look like: its `typ`, issuer, audience and required claims.
#[derive(Clone)]
pub struct TokenRules {
    typ: &'static [&'static str],
    issuer: String,
    audience: String,
    leeway: u64,
    required: &'static [&'static str],
}

impl TokenRules {
    /// The issuer (`iss`) these rules demand.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Rules for access tokens (RFC 9068): `typ` `at+jwt`, the configured audience, `nbf`
    /// required.
    pub fn access(issuer: &str, audience: &str, leeway_secs: u64) -> Self {
        use crate::claims::{ACCESS_TYP, ACCESS_TYP_LONG};
        Self::new(
            &[ACCESS_TYP, ACCESS_TYP_LONG],
            issuer,
            audience,
            leeway_secs,
            &["exp", "nbf", "iss", "aud", "sub"],
        )
    }

    /// Rules for refresh tokens: `typ` `rt+jwt`, audience the issuer itself.
    pub fn refresh(issuer: &str, leeway_secs: u64) -> Self {
        Self::new(
            &[crate::claims::REFRESH_TYP],
            issuer,
            issuer,
            leeway_secs,
            &["exp", "iss", "aud", "sub"],
        )
    }

    fn new(
        typ: &'static [&'static str],
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
        required: &'static [&'static str],
    ) -> Self {
        TokenRules {
            typ,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: leeway_secs.min(MAX_LEEWAY_SECS),
            required,
        }
    }

    /// The registered claims against the rules at `now` (seconds since the epoch), in
    /// jsonwebtoken's order: presence, `exp`, `nbf`, `iss`, `aud`.
    fn check(&self, claims: &Registered, now: u64) -> Result<(), Rejection> {
        let present = |name: &str| match name {
            "exp" => claims.exp.is_some(),
            "nbf" => claims.nbf.is_some(),
            "iss" => claims.iss.is_some(),
            "aud" => claims.aud.is_some(),
            "sub" => claims.sub.is_some(),
            _ => true,
        };
        if !self.required.iter().all(|name| present(name)) {
            return Err(Rejection::Claims);
        }
        if claims
            .exp
            .is_some_and(|exp| exp < now.saturating_sub(self.leeway))
        {
            return Err(Rejection::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(Rejection::NotYetValid);
        }
        match &claims.iss {
            Some(iss) if *iss == self.issuer => {}
            Some(_) => return Err(Rejection::Issuer),
            None => return Err(Rejection::Claims),
        }
        let audience_ok = match &claims.aud {
            Some(Audience::One(aud)) => *aud == self.audience,
            Some(Audience::Many(auds)) => auds.contains(&self.audience),
            None => return Err(Rejection::Claims),
        };
        if !audience_ok {
            return Err(Rejection::Audience);
        }
        Ok(())
    }
}

/// The registered claims the rules look at (RFC 7519 section 4.1), read with their JSON types:
/// a string `exp`, say, fails to deserialize and the token is refused, never skipped.
#[derive(Deserialize)]
struct Registered {
    exp: Option<u64>,
    nbf: Option<u64>,
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
}

/// `aud` is one string or an array of strings (RFC 7519 section 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The members of a JOSE header this verifier looks at. Unknown members are ignored (RFC 7515),
/// except the ones listed as `bool`, whose mere presence is refused: `"crit": null` counts as
/// present (an `Option` would read it as absent).
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    jku: bool,
    #[serde(default, deserialize_with = "present")]
    x5u: bool,
    #[serde(default, deserialize_with = "present")]
    jwk: bool,
    #[serde(default, deserialize_with = "present")]
    x5c: bool,
}

/// `true` for a member that is there at all, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(member: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(member).map(|_| true)
}

/// The key a token's header selected, bound to the one algorithm it may be used with.
enum KeyRef<'a> {
    Rs256(&'a ParsedPublicKey),
    Hs256(&'a aws_lc_rs::hmac::Key),
}

/// Verify an **access token** (or any token a replica checks) against the public `keys` and
/// `rules`, returning its claims. `alg` must be exactly `RS256`: there is no symmetric path.
pub fn verify<C: DeserializeOwned>(
    token: &str,
    keys: &TrustedKeys,
    rules: &TokenRules,
) -> Result<C, Rejection> {
    verify_with(
        token,
        rules,
        |alg| alg == "RS256",
        |_, kid| keys.keys.get(kid).map(|k| KeyRef::Rs256(&k.parsed)),
    )
}

/// Verify a **refresh token** on the issuer: `HS256` with one of `keys`' HMAC keys, looked up by
/// its `rt-` `kid` among HMAC keys only; or, for the tokens issued before HS256, `RS256` with an
/// RSA key, looked up among RSA keys only. A `kid` never selects a key of the other algorithm.
pub fn verify_refresh<C: DeserializeOwned>(
    token: &str,
    keys: &RefreshKeys,
    rules: &TokenRules,
) -> Result<C, Rejection> {
    verify_with(
        token,
        rules,
        |alg| alg == REFRESH_ALG || alg == "RS256",
        |alg, kid| match alg {
            REFRESH_ALG => keys.hmac.get(kid).map(KeyRef::Hs256),
            "RS256" => keys
                .legacy_rs256
                .keys
                .get(kid)
                .map(|k| KeyRef::Rs256(&k.parsed)),
            _ => None,
        },
    )
}

/// The checks of the module comment, in order; `accepts` says which `alg` values may pass, and
/// `key` finds the key for an accepted `alg` and a `kid`.
fn verify_with<'k, C: DeserializeOwned>(
    token: &str,
    rules: &TokenRules,
    accepts: impl Fn(&str) -> bool,
    key: impl FnOnce(&str, &str) -> Option<KeyRef<'k>>,
) -> Result<C, Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::TooLarge);
    }
    let header = read_header(token)?;
    if !accepts(&header.alg) {
        return Err(Rejection::Algorithm);
    }
    // Media types compare case-insensitively (RFC 7515 section 4.1.9).
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| rules.typ.iter().any(|want| t.eq_ignore_ascii_case(want)));
    if !typ_ok {
        return Err(Rejection::Type);
    }
    if header.crit || header.jku || header.x5u || header.jwk || header.x5c {
        return Err(Rejection::ForbiddenHeader);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|kid| key(&header.alg, kid))
        .ok_or(Rejection::UnknownKey)?;

    // The signature covers `header.payload`, the token up to its last dot.
    let (signed, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Rejection::Malformed)?;
    match key {
        KeyRef::Rs256(key) => key.verify_sig(signed.as_bytes(), &signature),
        // Constant-time comparison of the tag, by AWS-LC.
        KeyRef::Hs256(key) => aws_lc_rs::hmac::verify(key, signed.as_bytes(), &signature),
    }
    .map_err(|_| Rejection::Signature)?;

    let (_, payload) = signed.split_once('.').ok_or(Rejection::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Rejection::Malformed)?;
    let claims: C = serde_json::from_slice(&payload).map_err(|_| Rejection::Claims)?;
    let registered: Registered = serde_json::from_slice(&payload).map_err(|_| Rejection::Claims)?;
    rules.check(&registered, crate::now_secs())?;
    Ok(claims)
}

/// The `kid` a token names, if its header can be read at all. Used to decide whether an unknown
/// key is worth a JWKS refetch.
pub fn kid_of(token: &str) -> Option<String> {
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    read_header(token).ok()?.kid
}

fn read_header(token: &str) -> Result<Header, Rejection> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Rejection::Malformed)?;
    // A JOSE header is a JSON object in UTF-8 (RFC 7515 section 4). serde would also build the
    // struct from a JSON array, and skips ignored members without checking their UTF-8.
    if bytes.first() != Some(&b'{') || std::str::from_utf8(&bytes).is_err() {
        return Err(Rejection::Malformed);
    }
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{ACCESS_TYP, AccessClaims, REFRESH_TYP, RefreshClaims};
    use crate::keys::{KeyBits, SigningKey};
    use crate::now_secs;
    use crate::sign::{sign_jwt, sign_refresh_jwt};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use std::sync::OnceLock;

    const ISS: &str = "http://issuer.test";
    const AUD: &str = "api.test";

    pub(super) fn key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate(KeyBits::B2048).unwrap())
    }

    pub(super) fn keys() -> TrustedKeys {
        TrustedKeys::from_jwks(&Jwks {
            keys: vec![key().public_jwk().clone()],
        })
    }

    fn access_claims() -> AccessClaims {
        let now = now_secs();
        AccessClaims {
            iss: ISS.into(),
            sub: "alice".into(),
            aud: AUD.into(),
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            client_id: "demo".into(),
            name: "Alice".into(),
            roles: vec!["user".into()],
        }
    }

    fn rules() -> TokenRules {
        TokenRules::access(ISS, AUD, 5)
    }

    fn check(token: &str) -> Result<AccessClaims, Rejection> {
        verify::<AccessClaims>(token, &keys(), &rules())
    }

    /// A token with a hand-made header and payload, signed by `key` over exactly those bytes.
    fn forge(key: &SigningKey, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = key.sign_rs256(signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", B64.encode(sig))
    }

    fn header(typ: &str) -> serde_json::Value {
        serde_json::json!({"alg": "RS256", "typ": typ, "kid": key().kid()})
    }

    #[test]
    fn a_fresh_access_token_verifies() {
        let token = sign_jwt(key(), ACCESS_TYP, &access_claims()).unwrap();
        assert_eq!(check(&token).unwrap(), access_claims_with(&token));
    }

    fn access_claims_with(token: &str) -> AccessClaims {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn the_long_media_type_is_accepted_in_any_case() {
        let claims = serde_json::to_value(access_claims()).unwrap();
        let token = forge(key(), &header("Application/AT+JWT"), &claims);
        assert!(check(&token).is_ok());
    }

    fn refresh_claims() -> RefreshClaims {
        let now = now_secs();
        RefreshClaims {
            iss: ISS.into(),
            sub: "alice".into(),
            aud: ISS.into(),
            exp: now + 300,
            iat: now,
            jti: "r1".into(),
            fam: "f1".into(),
        }
    }

    /// What the issuer trusts for refresh tokens: the HMAC key of `key()`, and `key()` itself
    /// for legacy RS256 refresh tokens when `legacy`.
    fn refresh_keys(legacy: bool) -> RefreshKeys {
        let rsa = if legacy {
            keys()
        } else {
            TrustedKeys::default()
        };
        RefreshKeys::new([key().refresh_key().clone()], rsa)
    }

    fn check_refresh(token: &str, legacy: bool) -> Result<RefreshClaims, Rejection> {
        verify_refresh::<RefreshClaims>(token, &refresh_keys(legacy), &TokenRules::refresh(ISS, 5))
    }

    /// An HS256 token over `header` and `claims` with the HMAC `secret`.
    fn forge_hs256(
        secret: &[u8],
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            input.as_bytes(),
        );
        format!("{input}.{}", B64.encode(tag.as_ref()))
    }

    fn refresh_secret() -> Vec<u8> {
        B64.decode(key().refresh_key().to_base64()).unwrap()
    }

    #[test]
    fn a_refresh_token_is_hs256_with_its_own_kid_and_verifies_on_the_issuer() {
        let token = sign_refresh_jwt(key().refresh_key(), &refresh_claims()).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "typ": "rt+jwt", "kid": format!("rt-{}", key().kid())})
        );
        assert_eq!(check_refresh(&token, false), Ok(refresh_claims()));
        // Signed by the HMAC key of another RSA key under the real kid: refused.
        let other = SigningKey::generate(KeyBits::B2048).unwrap();
        let secret = B64.decode(other.refresh_key().to_base64()).unwrap();
        let claims = serde_json::to_value(refresh_claims()).unwrap();
        assert_eq!(
            check_refresh(&forge_hs256(&secret, &header, &claims), false),
            Err(Rejection::Signature)
        );
        // Once the key is no longer trusted (rotated out, revoked), its tokens are refused.
        let none = RefreshKeys::new([], TrustedKeys::default());
        assert_eq!(
            verify_refresh::<RefreshClaims>(&token, &none, &TokenRules::refresh(ISS, 5)),
            Err(Rejection::UnknownKey)
        );
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token() {
        let token = sign_refresh_jwt(key().refresh_key(), &refresh_claims()).unwrap();
        // The replicas' verifier stops at the algorithm: it has no symmetric path at all.
        assert_eq!(check(&token), Err(Rejection::Algorithm));
        // A legacy RS256 refresh token is refused there by its type.
        let legacy = sign_jwt(key(), REFRESH_TYP, &refresh_claims()).unwrap();
        assert_eq!(check(&legacy), Err(Rejection::Type));
        // ... and an access token is not a refresh token, even where RS256 is accepted.
        let access = sign_jwt(key(), ACCESS_TYP, &access_claims()).unwrap();
        assert_eq!(check_refresh(&access, true), Err(Rejection::Type));
    }

    /// The classic algorithm confusion against the replicas: an HS256 token naming a published
    /// RSA `kid`, whatever the secret (the public modulus, the PEM text, or even the issuer's real
    /// refresh-token key), is refused before any key is touched.
    #[test]
    fn hs256_with_a_published_kid_is_refused_by_the_access_verifier() {
        let claims = serde_json::to_value(access_claims()).unwrap();
        let mut h = header(ACCESS_TYP);
        h["alg"] = "HS256".into();
        let n = key().public_jwk().n.clone();
        for secret in [n.as_bytes().to_vec(), refresh_secret()] {
            assert_eq!(
                check(&forge_hs256(&secret, &h, &claims)),
                Err(Rejection::Algorithm)
            );
        }
        // Nor under the HMAC key's own kid.
        h["kid"] = key().refresh_key().kid().into();
        assert_eq!(
            check(&forge_hs256(&refresh_secret(), &h, &claims)),
            Err(Rejection::Algorithm)
        );
    }

    /// On the issuer, where both algorithms exist, a `kid` selects a key of one algorithm only:
    /// HS256 under an RSA kid (the public key as secret) and RS256 under an HMAC kid are unknown
    /// keys, never a cross-algorithm check.
    #[test]
    fn the_refresh_verifier_binds_each_kid_to_one_algorithm() {
        let claims = serde_json::to_value(refresh_claims()).unwrap();
        let hs_rsa_kid = serde_json::json!({"alg": "HS256", "typ": "rt+jwt", "kid": key().kid()});
        let n = key().public_jwk().n.clone();
        for secret in [n.as_bytes().to_vec(), refresh_secret()] {
            assert_eq!(
                check_refresh(&forge_hs256(&secret, &hs_rsa_kid, &claims), true),
                Err(Rejection::UnknownKey)
            );
        }
        let rs_hmac_kid =
            serde_json::json!({"alg": "RS256", "typ": "rt+jwt", "kid": key().refresh_key().kid()});
        assert_eq!(
            check_refresh(&forge(key(), &rs_hmac_kid, &claims), true),
            Err(Rejection::UnknownKey)
        );
        for alg in ["none", "HS512", "HS384", "RS512", "PS256", "ES256"] {
            let mut h = hs_rsa_kid.clone();
            h["alg"] = alg.into();
            h["kid"] = key().refresh_key().kid().into();
            assert_eq!(
                check_refresh(&forge_hs256(&refresh_secret(), &h, &claims), true),
                Err(Rejection::Algorithm),
                "{alg}"
            );
        }
    }

    /// Refresh tokens issued before HS256 were RS256 with the RSA kid: accepted while the RSA key
    /// is trusted for them, refused when it is not.
    #[test]
    fn a_legacy_rs256_refresh_token_verifies_only_while_its_rsa_key_is_trusted() {
        let legacy = sign_jwt(key(), REFRESH_TYP, &refresh_claims()).unwrap();
        assert_eq!(check_refresh(&legacy, true), Ok(refresh_claims()));
        assert_eq!(check_refresh(&legacy, false), Err(Rejection::UnknownKey));
    }

    #[test]
    fn alg_none_in_any_case_is_refused() {
        let claims = B64.encode(serde_json::to_string(&access_claims()).unwrap());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let h = B64.encode(format!(
                r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#,
                key().kid()
            ));
            assert_eq!(
                check(&format!("{h}.{claims}.")),
                Err(Rejection::Algorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn hs256_with_the_public_key_as_secret_is_refused() {
        let claims = serde_json::to_value(access_claims()).unwrap();
        let mut h = header(ACCESS_TYP);
        h["alg"] = "HS256".into();
        let input = format!(
            "{}.{}",
            B64.encode(h.to_string()),
            B64.encode(claims.to_string())
        );
        let secret = key().public_jwk().n.as_bytes();
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", B64.encode(tag.as_ref()));
        assert_eq!(check(&token), Err(Rejection::Algorithm));
    }

    #[test]
    fn a_stripped_or_tampered_signature_is_refused() {
        let token = sign_jwt(key(), ACCESS_TYP, &access_claims()).unwrap();
        let (input, _) = token.rsplit_once('.').unwrap();
        assert_eq!(check(&format!("{input}.")), Err(Rejection::Signature));

        let mut claims = access_claims();
        claims.roles.push("recruiter".into());
        let forged_payload = B64.encode(serde_json::to_string(&claims).unwrap());
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_payload;
        assert_eq!(check(&parts.join(".")), Err(Rejection::Signature));
    }

    #[test]
    fn another_key_with_the_real_kid_is_refused() {
        let attacker = SigningKey::generate(KeyBits::B2048).unwrap();
        let claims = serde_json::to_value(access_claims()).unwrap();
        let token = forge(&attacker, &header(ACCESS_TYP), &claims);
        assert_eq!(check(&token), Err(Rejection::Signature));
    }

    #[test]
    fn unknown_or_missing_kid_is_refused() {
        let claims = serde_json::to_value(access_claims()).unwrap();
        for kid in [
            serde_json::json!("../../etc/passwd"),
            serde_json::json!("' OR 1=1 --"),
            serde_json::json!("a\u{0}b"),
            serde_json::Value::Null,
        ] {
            let mut h = header(ACCESS_TYP);
            h["kid"] = kid;
            assert_eq!(
                check(&forge(key(), &h, &claims)),
                Err(Rejection::UnknownKey)
            );
        }
    }

    #[test]
    fn key_bearing_and_critical_headers_are_refused() {
        let claims = serde_json::to_value(access_claims()).unwrap();
        for (name, value) in [
            ("jku", serde_json::json!("https://attacker.test/jwks.json")),
            ("x5u", serde_json::json!("https://attacker.test/cert.pem")),
            ("jwk", serde_json::json!(key().public_jwk())),
            ("x5c", serde_json::json!(["MIIB"])),
            ("crit", serde_json::json!(["exp-ext"])),
        ] {
            let mut h = header(ACCESS_TYP);
            h[name] = value;
            assert_eq!(
                check(&forge(key(), &h, &claims)),
                Err(Rejection::ForbiddenHeader),
                "{name}"
            );
        }
    }

    /// Found by the fuzz targets: a forbidden member with the value `null`, a header that is a
    /// JSON array, and a header with invalid UTF-8 in a member nobody reads all used to pass
    /// (each with our signature). None of them is a JOSE header.
    #[test]
    fn null_forbidden_members_array_headers_and_bad_utf8_are_refused() {
        let claims = serde_json::to_value(access_claims()).unwrap();
        for name in ["jku", "x5u", "jwk", "x5c", "crit"] {
            let mut h = header(ACCESS_TYP);
            h[name] = serde_json::Value::Null;
            assert_eq!(
                check(&forge(key(), &h, &claims)),
                Err(Rejection::ForbiddenHeader),
                "{name}: null"
            );
        }
        let array = serde_json::json!(["RS256", ACCESS_TYP, key().kid()]);
        assert_eq!(
            check(&forge(key(), &array, &claims)),
            Err(Rejection::Malformed)
        );
        let mut bad_utf8 = format!(
            r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}","x":""#,
            key().kid()
        )
        .into_bytes();
        bad_utf8.extend_from_slice(b"\xff\"}");
        let input = format!(
            "{}.{}",
            B64.encode(&bad_utf8),
            B64.encode(claims.to_string())
        );
        let sig = key().sign_rs256(input.as_bytes()).unwrap();
        assert_eq!(
            check(&format!("{input}.{}", B64.encode(sig))),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn wrong_typ_iss_aud_and_times_are_refused() {
        let good = serde_json::to_value(access_claims()).unwrap();
        assert_eq!(
            check(&forge(key(), &header("JWT"), &good)),
            Err(Rejection::Type)
        );

        let mut h = header(ACCESS_TYP);
        h.as_object_mut().unwrap().remove("typ");
        assert_eq!(check(&forge(key(), &h, &good)), Err(Rejection::Type));

        let cases = [
            (
                "iss",
                serde_json::json!("http://evil.test"),
                Rejection::Issuer,
            ),
            ("aud", serde_json::json!("other-api"), Rejection::Audience),
            (
                "exp",
                serde_json::json!(now_secs() - 60),
                Rejection::Expired,
            ),
            (
                "nbf",
                serde_json::json!(now_secs() + 60),
                Rejection::NotYetValid,
            ),
            (
                "exp",
                serde_json::json!((now_secs() + 300).to_string()),
                Rejection::Claims,
            ),
        ];
        for (claim, value, want) in cases {
            let mut c = good.clone();
            c[claim] = value;
            assert_eq!(
                check(&forge(key(), &header(ACCESS_TYP), &c)),
                Err(want),
                "{claim}"
            );
        }
        for claim in ["exp", "nbf", "sub", "iss"] {
            let mut c = good.clone();
            c.as_object_mut().unwrap().remove(claim);
            assert!(
                check(&forge(key(), &header(ACCESS_TYP), &c)).is_err(),
                "without {claim}"
            );
        }
    }

    #[test]
    fn leeway_is_capped_at_thirty_seconds() {
        let mut c = serde_json::to_value(access_claims()).unwrap();
        c["exp"] = serde_json::json!(now_secs() - 40);
        let token = forge(key(), &header(ACCESS_TYP), &c);
        let lenient = TokenRules::access(ISS, AUD, 3600);
        assert_eq!(
            verify::<AccessClaims>(&token, &keys(), &lenient),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn garbage_and_oversized_input_is_refused_without_panic() {
        for token in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "!!!.???.***",
            "eyJ9.e30.",
            "e30.e30.e30",
        ] {
            assert!(check(token).is_err(), "{token:?}");
        }
        let huge = format!("{}.e30.sig", "A".repeat(MAX_TOKEN_BYTES));
        assert_eq!(check(&huge), Err(Rejection::TooLarge));
    }
}

/// Property tests: the verifier is fed arbitrary input and must refuse it without panicking.
/// (The contract: bad input gets a 401, never a 5xx or a crash.) Case counts are fixed, so CI
/// spends a bounded time here; raise `PROPTEST_CASES` to fuzz longer locally.
#[cfg(test)]
mod properties {
    use super::tests::{key, keys};
    use super::*;
    use crate::claims::AccessClaims;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use proptest::prelude::*;

    fn rules() -> TokenRules {
        TokenRules::access("iss", "aud", 30)
    }

    /// Arbitrary JSON values, a few levels deep.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,40}".prop_map(serde_json::Value::from),
            prop_oneof![Just("RS256"), Just("none"), Just("HS256"), Just("at+jwt")]
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("alg".to_owned()),
                        Just("typ".to_owned()),
                        Just("kid".to_owned()),
                        Just("exp".to_owned()),
                        Just("nbf".to_owned()),
                        Just("iss".to_owned()),
                        Just("aud".to_owned()),
                        Just("sub".to_owned()),
                        Just("crit".to_owned()),
                        "[a-z]{1,6}",
                    ],
                    inner,
                    0..8,
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000)
        ))]

        #[test]
        fn arbitrary_strings_are_refused(token in ".{0,300}") {
            prop_assert!(verify::<AccessClaims>(&token, &keys(), &rules()).is_err());
            let _ = kid_of(&token);
        }

        #[test]
        fn arbitrary_headers_and_payloads_are_refused(
            header in json(),
            payload in json(),
            signature in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let token = format!(
                "{}.{}.{}",
                B64.encode(header.to_string()),
                B64.encode(payload.to_string()),
                B64.encode(&signature)
            );
            prop_assert!(verify::<AccessClaims>(&token, &keys(), &rules()).is_err());
        }

        /// Even correctly signed, arbitrary claims never panic; whatever passes has the claims
        /// the rules demand.
        #[test]
        fn signed_arbitrary_claims_never_panic(payload in json()) {
            let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": key().kid()});
            let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
            let signature = key().sign_rs256(input.as_bytes()).unwrap();
            let token = format!("{input}.{}", B64.encode(signature));
            if let Ok(claims) = verify::<AccessClaims>(&token, &keys(), &rules()) {
                prop_assert_eq!(claims.iss, "iss");
                prop_assert_eq!(claims.aud, "aud");
            }
        }
    }
}
