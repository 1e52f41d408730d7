//! An optional cache of verified access tokens (`TOKEN_CACHE=on`; off by default).
//!
//! Verifying an RS256 token costs one RSA public-key operation with AWS-LC: cheap next to a
//! network round trip to a session store, but most of what a token replica spends on a small
//! request (the load-test report has the measured figures). A client sends the same access token
//! with every call until it expires, so a replica can remember "this exact token verified, with
//! these claims" and skip the RSA work the next time. The load test runs with the cache off and
//! on, so both the raw cost of RS256 and what the cache buys are visible.
//!
//! The cache itself is [moka](https://docs.rs/moka)'s concurrent cache rather than a map behind
//! one lock: it is bounded, it evicts by recent use and frequency, it expires each entry at its own
//! time, and no global lock is held while it sweeps (maintenance runs in small batches on the
//! threads that use it).
//!
//! What keeps it as strict as verifying every time:
//!
//! - **The key says what was trusted, not only what was seen** ([`CacheKey`]): the issuer whose
//!   rules the token passed and a SHA-256 of the whole token (header, claims and signature). A
//!   hit means the very same bytes were verified before, for the same issuer. The `kid` that
//!   chose the verifying key is part of those bytes (the header), so the same bytes always name
//!   the same `kid`; the entry records that `kid`, and a fingerprint of the key that verified
//!   the signature, for key removal (below), and a hit costs no parsing of the header. A token
//!   differing in any bit misses and is verified in full.
//!   (CVE-2026-33496 was a verification cache whose key left out what was being trusted, so a
//!   verdict reached for one trust anchor was served for another.)
//! - **Only successful verifications are stored**, with the claims they produced. The token
//!   itself is not stored.
//! - **An entry never outlives its token's `exp`**: moka drops it at `exp` (a per-entry
//!   time-to-live, [`ExpireAtExp`]), and every hit checks `now < exp` again, so a coarse clock in
//!   the cache cannot stretch it. The verifier's clock-skew leeway is not granted by the cache: in
//!   the leeway window past `exp`, a token is verified in full (and accepted or refused exactly as
//!   without the cache), and is not cached again.
//! - **Key removal**: when the replica installs a JWKS, entries whose key it no longer holds are
//!   invalidated ([`TokenCache::retain_keys`]): those whose `kid` has left it, and those whose
//!   `kid` now names other key material (a JWKS may reuse a `kid`; this project's issuer never
//!   does, naming each key by its RFC 7638 thumbprint, but a replica may trust another issuer).
//!   moka guarantees that `get` never returns an entry an invalidation predicate has matched,
//!   even before the entry is swept, so a removed key's tokens are refused from then on, cached
//!   or not.
//! - **Bounded**: at most [`CAPACITY`] entries. Filling it takes valid tokens, each of which had
//!   to pass a full verification first: it cannot be grown by garbage.

use auth_core::claims::AccessClaims;
use auth_core::verify::KeyFingerprint;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Entries at most: a few megabytes of claims at a few hundred bytes each.
pub const CAPACITY: u64 = 10_000;

/// SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// What an entry is found by: the issuer whose rules the verdict applied and the exact token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The issuer whose rules (`iss`, `aud`, `typ`) the token passed.
    issuer: Arc<str>,
    /// The exact bytes of the token, its header's `kid` included.
    token: TokenHash,
}

impl CacheKey {
    /// The key of `token`, for `issuer`.
    pub fn new(issuer: Arc<str>, token: &str) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        CacheKey {
            issuer,
            token: hash,
        }
    }
}

#[derive(Clone)]
struct Entry {
    claims: Arc<AccessClaims>,
    /// The key (from the JWKS) that verified the signature: what key removal purges by.
    kid: Arc<str>,
    /// That key's material: a `kid` that comes to name other material purges the entry too.
    fingerprint: KeyFingerprint,
    /// How long the entry may live from its insertion: until the token's `exp`.
    time_to_live: Duration,
}

/// moka's per-entry expiry: an entry lives from its insertion until its token's `exp`.
struct ExpireAtExp;

impl moka::Expiry<CacheKey, Entry> for ExpireAtExp {
    fn expire_after_create(&self, _: &CacheKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.time_to_live)
    }
}

pub struct TokenCache {
    entries: Cache<CacheKey, Entry>,
}

impl TokenCache {
    pub fn new(capacity: u64) -> Self {
        TokenCache {
            entries: Cache::builder()
                .max_capacity(capacity.max(1))
                .expire_after(ExpireAtExp)
                // Needed by `retain_keys`.
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The claims of a token verified before, if its `exp` is still ahead of `now` (seconds since
    /// the epoch).
    pub fn get(&self, key: &CacheKey, now: u64) -> Option<AccessClaims> {
        let entry = self.entries.get(key)?;
        if now < entry.claims.exp {
            return Some(AccessClaims::clone(&entry.claims));
        }
        self.entries.invalidate(key);
        None
    }

    /// Remember that the token of `key` verified with the key `kid` (whose material has
    /// `fingerprint`) and gave `claims`, until its `exp`. A token already at or past its `exp`
    /// (accepted within the leeway) is not stored.
    pub fn insert(
        &self,
        key: CacheKey,
        (kid, fingerprint): (&str, KeyFingerprint),
        claims: AccessClaims,
        now: u64,
    ) {
        let Some(left) = claims.exp.checked_sub(now).filter(|&left| left > 0) else {
            return;
        };
        let entry = Entry {
            claims: Arc::new(claims),
            kid: kid.into(),
            fingerprint,
            time_to_live: Duration::from_secs(left),
        };
        self.entries.insert(key, entry);
    }

    /// Forget the token of `key`.
    pub fn remove(&self, key: &CacheKey) {
        self.entries.invalidate(key);
    }

    /// Keep only the entries whose verifying key `keep` accepts, by `kid` and fingerprint (the
    /// keys of the JWKS just installed). From the moment this returns, no other entry is served;
    /// moka sweeps them out later.
    pub fn retain_keys(
        &self,
        keep: impl Fn(&str, &KeyFingerprint) -> bool + Send + Sync + 'static,
    ) {
        let invalidated = self
            .entries
            .invalidate_entries_if(move |_, entry| !keep(&entry.kid, &entry.fingerprint));
        if let Err(e) = invalidated {
            // Cannot happen (the builder enables invalidation closures); if it ever did, losing
            // every entry is safe where serving a removed key's entry is not.
            tracing::error!(error = %e, "cannot invalidate by kid; clearing the token cache");
            self.entries.invalidate_all();
        }
    }

    /// Entries held, once moka's pending maintenance has run.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const ISSUER: &str = "http://issuer.test";

    fn claims(sub: &str, exp: u64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: "api.test".into(),
            exp,
            iat: exp - 300,
            nbf: exp - 300,
            jti: format!("jti-{sub}-{exp}"),
            client_id: "demo".into(),
            name: sub.into(),
            roles: vec!["user".into()],
        }
    }

    fn key(token: &str) -> CacheKey {
        CacheKey::new(ISSUER.into(), token)
    }

    #[test]
    fn a_hit_needs_the_exact_same_token() {
        let cache = TokenCache::new(10);
        let token = "aaa.bbb.ccc";
        cache.insert(key(token), ("k1", [1; 32]), claims("bob", NOW + 60), NOW);
        assert_eq!(cache.get(&key(token), NOW).unwrap().sub, "bob");
        // One changed character, e.g. in the signature: a miss, so full verification happens.
        assert!(cache.get(&key("aaa.bbb.ccd"), NOW).is_none());
    }

    /// The same token bytes verified for one issuer are no hit for another issuer: the verdict
    /// is only reused for what was actually trusted.
    #[test]
    fn the_key_includes_the_issuer() {
        let cache = TokenCache::new(10);
        let token = "aaa.bbb.ccc";
        cache.insert(key(token), ("k1", [1; 32]), claims("bob", NOW + 60), NOW);
        assert!(cache.get(&key(token), NOW).is_some());
        let other_issuer = CacheKey::new("http://evil.test".into(), token);
        assert!(cache.get(&other_issuer, NOW).is_none(), "another issuer");
    }

    #[test]
    fn an_entry_never_outlives_its_tokens_exp() {
        let cache = TokenCache::new(10);
        let k = key("t");
        let exp = NOW + 60;
        cache.insert(k.clone(), ("k1", [1; 32]), claims("bob", exp), NOW);
        assert!(cache.get(&k, exp - 1).is_some());
        // At `exp` the token is expired (RFC 7519: "before" the expiration time): a miss, so the
        // verifier decides, leeway and all.
        assert!(cache.get(&k, exp).is_none());
        // And the entry is gone, not just hidden.
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&k, exp - 1).is_none());
    }

    /// A token accepted within the verifier's leeway past `exp` is not stored at all.
    #[test]
    fn a_token_at_or_past_its_exp_is_not_stored() {
        let cache = TokenCache::new(10);
        for exp in [NOW - 5, NOW] {
            cache.insert(
                key(&format!("t{exp}")),
                ("k1", [1; 32]),
                claims("bob", exp),
                NOW,
            );
        }
        assert_eq!(cache.len(), 0);
    }

    /// moka's own time-to-live removes an entry at its `exp` on the real clock, without a get.
    #[test]
    fn moka_expires_an_entry_at_its_exp() {
        let cache = TokenCache::new(10);
        let now = auth_core::now_secs();
        cache.insert(key("short"), ("k1", [1; 32]), claims("bob", now + 1), now);
        cache.insert(key("long"), ("k1", [1; 32]), claims("ann", now + 600), now);
        assert_eq!(cache.len(), 2);
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&key("long"), now).is_some());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(10);
        for i in 0..200 {
            let token = format!("flood-{i}");
            cache.insert(key(&token), ("k1", [1; 32]), claims("f", NOW + 1000), NOW);
        }
        assert!(cache.len() <= 10, "{}", cache.len());
    }

    #[test]
    fn entries_of_a_key_that_left_the_jwks_are_never_served_again() {
        let cache = TokenCache::new(10);
        let (old, new) = (key("signed-by-old"), key("signed-by-new"));
        cache.insert(
            old.clone(),
            ("old-kid", [1; 32]),
            claims("a", NOW + 60),
            NOW,
        );
        cache.insert(
            new.clone(),
            ("new-kid", [2; 32]),
            claims("b", NOW + 60),
            NOW,
        );
        cache.retain_keys(|kid, _| kid == "new-kid");
        // Refused at once, before any sweep.
        assert!(cache.get(&old, NOW).is_none());
        assert!(cache.get(&new, NOW).is_some());
        assert_eq!(cache.len(), 1);
    }

    /// Other key material published under a `kid` already cached: the entries verified by the
    /// old material are never served again, though the `kid` is still there.
    #[test]
    fn entries_of_a_kid_that_names_another_key_now_are_never_served_again() {
        let cache = TokenCache::new(10);
        let (old, other) = (key("signed-by-old-material"), key("signed-by-other-kid"));
        cache.insert(old.clone(), ("k1", [1; 32]), claims("a", NOW + 60), NOW);
        cache.insert(other.clone(), ("k2", [2; 32]), claims("b", NOW + 60), NOW);
        // The new JWKS: k1 now holds material [9; 32]; k2 is unchanged.
        cache.retain_keys(|kid, fingerprint| match kid {
            "k1" => *fingerprint == [9; 32],
            "k2" => *fingerprint == [2; 32],
            _ => false,
        });
        assert!(cache.get(&old, NOW).is_none());
        assert!(cache.get(&other, NOW).is_some());
    }
}
