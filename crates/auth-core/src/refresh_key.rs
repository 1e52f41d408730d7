//! The refresh-token key: an HMAC key (HS256) that never leaves the issuers.
//!
//! Two kinds of JWT leave the issuer, and they have different readers:
//!
//! - the **access token** is verified by every replica, with nothing but the public JWKS, so it
//!   must be signed with a private key whose public half can be handed out: RS256;
//! - the **refresh token** is verified by the issuers alone. Nobody else needs to check it, so it
//!   needs no public key at all, and a symmetric MAC is enough. HMAC-SHA256 costs a few
//!   microseconds where an RSA signature costs a millisecond or so, and a refresh used to pay
//!   for three RSA operations (verify the old refresh token, sign the access token, sign the new
//!   refresh token). Now it pays for one: the access token's signature.
//!
//! ## Why HS256, and how it stays safe (RFC 8725)
//!
//! HS256 rather than HS512: with a 256-bit key both are far beyond any brute force, HS256 is the
//! algorithm every JOSE library must implement (RFC 7518 section 3.1), and RFC 7518 section 3.2
//! asks for a key at least as long as the hash: 32 bytes here, from HKDF, never a password.
//!
//! The classic attack on mixed algorithms is *algorithm confusion*: a token says `HS256` and a
//! verifier uses the RSA public key as the HMAC secret. It cannot happen here because every key
//! is bound to exactly one algorithm (RFC 8725 section 3.1), on both sides:
//!
//! - the replicas' verifier (`verify::verify`) accepts `RS256` only and has no symmetric path;
//! - the issuers' refresh verifier (`verify::verify_refresh`) looks an `HS256` token's `kid` up
//!   among HMAC keys only, and such a `kid` (`rt-<RSA kid>`) is never an RSA key's name;
//! - the refresh token's `typ` is `rt+jwt` and its `aud` the issuer, so even a replica handed one
//!   refuses it twice over (algorithm, then type); an access token is refused by the refresh
//!   verifier the same way.
//!
//! ## Where the key comes from: derived from the RSA signing key
//!
//! The HMAC key is not a new secret. It is derived from the RSA signing key's private material
//! with HKDF-SHA256 (RFC 5869; input: the RSA key's prime factors; info
//! `"authscale refresh-token hmac v1"`), and named after it: `kid` `rt-<RSA kid>`. So:
//!
//! - every issuer holding the RSA key holds the same HMAC key, whether they share a volume or each
//!   get the key as an orchestrator secret: nothing new to distribute, nothing to keep in step;
//! - it rotates with the RSA key: a pending key, a key mounted at `KEY_NEXT_PATH` or
//!   `KEY_PREVIOUS_PATH` each bring their HMAC key along, because their private half is there;
//! - it is revoked with the RSA key: the revocation markers name the RSA `kid`, and the HMAC key
//!   goes wherever its RSA key goes.
//!
//! The prime factors are the input rather than the key file's bytes because they are the key
//! itself: the same key in PKCS#1 or PKCS#8, re-encoded by another library version, still gives
//! the same HMAC key, so an upgrade or a format change logs nobody out.
//!
//! One thing the derivation cannot do alone: a retired RSA key keeps only its public half on disk,
//! which cannot give the HMAC key back. So the issuer that retires a key stores its HMAC key in the
//! retired record (mode 0600; see the issuer's `key_files.rs`), for exactly as long as that key's
//! refresh tokens can be valid. Without it, every rotation would log everybody out.

use crate::verify::TrustedKeys;
use aws_lc_rs::hkdf;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;

/// The algorithm of every refresh token this issuer signs.
pub const REFRESH_ALG: &str = "HS256";
/// HKDF `info`: names what the derived bytes are for, so no other use of the same RSA key can
/// ever produce the same bytes. The version lets a future scheme derive a different key.
pub const HKDF_INFO: &[u8] = b"authscale refresh-token hmac v1";
/// Key length in bytes: the SHA-256 output size, the minimum RFC 7518 section 3.2 allows.
pub const KEY_BYTES: usize = 32;

/// The HMAC key of one RSA signing key.
#[derive(Clone)]
pub struct RefreshKey {
    kid: String,
    secret: [u8; KEY_BYTES],
    key: hmac::Key,
}

impl std::fmt::Debug for RefreshKey {
    // Never print key material, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The `kid` of the HMAC key derived from the RSA key named `rsa_kid`. A prefix no RFC 7638
/// thumbprint has, so an HMAC key and an RSA key never share a name.
pub fn kid_for(rsa_kid: &str) -> String {
    format!("rt-{rsa_kid}")
}

impl RefreshKey {
    /// Derive the key from an RSA key's prime factors (big-endian, any order) and its `kid`.
    pub fn derive(
        rsa_kid: &str,
        primes: &[Vec<u8>],
    ) -> Result<Self, aws_lc_rs::error::Unspecified> {
        // Sorted by value, and length-prefixed, so the input does not depend on the order a key
        // format lists the primes in, and two different lists never concatenate to the same bytes.
        let mut primes: Vec<&[u8]> = primes
            .iter()
            .map(|p| {
                let start = p.iter().position(|b| *b != 0).unwrap_or(p.len());
                &p[start..]
            })
            .collect();
        primes.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        let mut ikm = Vec::new();
        for p in primes {
            ikm.extend_from_slice(&(p.len() as u32).to_be_bytes());
            ikm.extend_from_slice(p);
        }
        let mut secret = [0u8; KEY_BYTES];
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(&ikm);
        ikm.fill(0);
        // An error here leaves no key at all: never a zero key that would verify forgeries.
        prk.expand(&[HKDF_INFO], hkdf::HKDF_SHA256)?
            .fill(&mut secret)?;
        Ok(Self::from_secret(kid_for(rsa_kid), secret))
    }

    /// The key with `kid` from its raw bytes (as stored in a retired record).
    pub fn from_secret(kid: String, secret: [u8; KEY_BYTES]) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        RefreshKey { kid, secret, key }
    }

    /// The key stored for the retired RSA key `rsa_kid` (base64url, as [`Self::to_base64`]
    /// wrote it). `None` when it is not exactly [`KEY_BYTES`] bytes: refused, never padded.
    pub fn from_base64(rsa_kid: &str, text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let secret: [u8; KEY_BYTES] = bytes.as_slice().try_into().ok()?;
        Some(Self::from_secret(kid_for(rsa_kid), secret))
    }

    /// The raw key, base64url: only ever written to a 0600 file on the issuers' volume.
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// HMAC-SHA256 over `message`: the HS256 signature (RFC 7518 section 3.2).
    pub fn sign_hs256(&self, message: &[u8]) -> hmac::Tag {
        hmac::sign(&self.key, message)
    }
}

/// The keys the issuer trusts for refresh tokens, each bound to one algorithm.
#[derive(Clone, Default)]
pub struct RefreshKeys {
    /// HS256 keys by their `rt-` `kid`: what every refresh token is signed with now.
    pub(crate) hmac: HashMap<String, hmac::Key>,
    /// RS256 keys by RSA `kid`, for the refresh tokens issued before HS256 (they were signed with
    /// the RSA key itself). Only the same keys as before are in here, and a refresh turns such a
    /// token into an HS256 one, so this path empties by itself within one refresh lifetime.
    pub(crate) legacy_rs256: TrustedKeys,
}

impl RefreshKeys {
    pub fn new(hmac_keys: impl IntoIterator<Item = RefreshKey>, legacy_rs256: TrustedKeys) -> Self {
        RefreshKeys {
            hmac: hmac_keys.into_iter().map(|k| (k.kid, k.key)).collect(),
            legacy_rs256,
        }
    }

    /// Whether the key derived from the RSA key `rsa_kid` is trusted (for HS256 tokens).
    pub fn trusts(&self, rsa_kid: &str) -> bool {
        self.hmac.contains_key(&kid_for(rsa_kid))
    }

    /// Whether the RSA key `rsa_kid` is trusted for legacy RS256 refresh tokens.
    pub fn trusts_legacy(&self, rsa_kid: &str) -> bool {
        self.legacy_rs256.contains(rsa_kid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derivation_ignores_prime_order_and_leading_zeros_and_differs_per_key() {
        let a = RefreshKey::derive("k", &[vec![7, 1, 2], vec![5, 3]]).unwrap();
        let b = RefreshKey::derive("k", &[vec![0, 5, 3], vec![7, 1, 2]]).unwrap();
        assert_eq!(a.to_base64(), b.to_base64());
        assert_eq!(a.kid(), "rt-k");
        let c = RefreshKey::derive("k", &[vec![7, 1, 2], vec![5, 4]]).unwrap();
        assert_ne!(a.to_base64(), c.to_base64());
        // Length prefixes: [1,2] + [3] is not [1] + [2,3].
        let d = RefreshKey::derive("k", &[vec![1, 2], vec![3]]).unwrap();
        let e = RefreshKey::derive("k", &[vec![1], vec![2, 3]]).unwrap();
        assert_ne!(d.to_base64(), e.to_base64());
    }

    #[test]
    fn a_stored_key_round_trips_and_a_wrong_length_is_refused() {
        let a = RefreshKey::derive("k", &[vec![7, 1, 2], vec![5, 3]]).unwrap();
        let b = RefreshKey::from_base64("k", &a.to_base64()).unwrap();
        assert_eq!(a.sign_hs256(b"m").as_ref(), b.sign_hs256(b"m").as_ref());
        assert!(RefreshKey::from_base64("k", "AAAA").is_none());
        assert!(RefreshKey::from_base64("k", "not base64!").is_none());
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let a = RefreshKey::derive("k", &[vec![7, 1, 2], vec![5, 3]]).unwrap();
        let shown = format!("{a:?}");
        assert!(shown.contains("rt-k"));
        assert!(!shown.contains(&a.to_base64()));
    }
}
