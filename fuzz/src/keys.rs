//! The one key the fuzz targets trust, and the rules their tokens are held to.
//!
//! The key is fixed (`fuzz/fixtures/fuzz-only-key.pem`, made for this and trusted by nothing
//! else) rather than generated per run, so that the seed tokens, and every input the fuzzer saves
//! in its corpus, stay correctly signed from one run to the next: a token the fuzzer learnt to
//! build last week still reaches the claim checks today.

use auth_core::claims::{ACCESS_TYP, ACCESS_TYP_LONG, REFRESH_TYP};
use auth_core::keys::{Jwks, SigningKey};
use auth_core::refresh_key::RefreshKeys;
use auth_core::verify::{MAX_LEEWAY_SECS, TokenRules, TrustedKeys};
use std::sync::OnceLock;

/// `iss` of every token the targets accept (and the issuer's `ISSUER_URL` in `issuer_bodies`).
pub const ISSUER: &str = "https://issuer.fuzz.test";
/// `aud` of access tokens.
pub const AUDIENCE: &str = "fuzz-api";
/// The leeway the rules are built with: the largest the contract allows.
pub const LEEWAY_SECS: u64 = MAX_LEEWAY_SECS;
/// Far enough ahead that seed tokens never expire.
pub const FAR_FUTURE: u64 = 4_102_444_800;

/// Which kind of token, and so which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Access,
    Refresh,
}

impl Kind {
    /// The header `typ`s the rules accept.
    pub fn typs(self) -> &'static [&'static str] {
        match self {
            Kind::Access => &[ACCESS_TYP, ACCESS_TYP_LONG],
            Kind::Refresh => &[REFRESH_TYP],
        }
    }

    /// The `aud` the rules demand.
    pub fn audience(self) -> &'static str {
        match self {
            Kind::Access => AUDIENCE,
            Kind::Refresh => ISSUER,
        }
    }
}

/// The private key, in PKCS#8 PEM.
pub const KEY_PEM: &str = include_str!("../fixtures/fuzz-only-key.pem");

/// The key, the key set built from its public half, the refresh-token keys the issuer would
/// hold for it (its derived HS256 key, and the key itself for refresh tokens from before
/// HS256), and both kinds of rules.
pub struct Fixture {
    pub key: SigningKey,
    pub keys: TrustedKeys,
    pub refresh_keys: RefreshKeys,
    pub access: TokenRules,
    pub refresh: TokenRules,
}

/// Parsed once per process: libFuzzer calls a target millions of times.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = SigningKey::from_pem(KEY_PEM).expect("the fixed fuzzing key parses");
        let keys = TrustedKeys::from_jwks(&Jwks {
            keys: vec![key.public_jwk().clone()],
        });
        assert_eq!(keys.len(), 1, "the fixed key is trusted");
        let refresh_keys = RefreshKeys::new([key.refresh_key().clone()], keys.clone());
        Fixture {
            key,
            keys,
            refresh_keys,
            access: TokenRules::access(ISSUER, AUDIENCE, LEEWAY_SECS),
            refresh: TokenRules::refresh(ISSUER, LEEWAY_SECS),
        }
    })
}
