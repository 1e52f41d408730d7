//! An optional cache of verified access tokens (`TOKEN_CACHE=on`; off by default).
//!
//! Verifying an RS256 token costs one RSA public-key operation with AWS-LC: cheap next to a
//! network round trip to a session store, but most of what a token replica spends on a small
//! request (the load-test report has the measured figures). A client sends the same access token with every call until it expires, so a
//! replica can remember "this exact token verified, with these claims" and skip the RSA work the
//! next time. The load test runs with the cache off and on, so both the raw cost of RS256 and what
//! the cache buys are visible.
//!
//! What keeps it as strict as verifying every time:
//!
//! - **The key is a SHA-256 of the whole token** (header, claims and signature). A hit means the
//!   very same bytes were verified before; a token differing in any bit, the signature included,
//!   misses and is verified in full. The token itself is not stored.
//! - **Only successful verifications are stored**, with the claims they produced.
//! - **Expiry is checked again on every hit**, with the verifier's own rule and leeway
//!   (`exp + leeway >= now`, as jsonwebtoken does): an entry lives exactly as long as its token
//!   would still pass the `exp` check, and an expired entry is dropped when it is found. (`nbf`,
//!   `iss`, `aud`, `typ` and the signature cannot change their verdict with time.)
//! - **Key rotation**: when the replica fetches the JWKS again, entries signed with a key that
//!   has left it are purged ([`TokenCache::retain_kids`]): a retired key's tokens are refused
//!   from then on, cached or not.
//! - **Bounded**: at most [`CAPACITY`] entries. When it is full, expired entries go first; if
//!   that frees too little, arbitrary entries are evicted until a tenth of the room is free again
//!   (so the sweep runs once per many inserts, not on each). Filling it takes valid tokens, each
//!   of which had to pass a full verification first: it cannot be grown by garbage.

use auth_core::claims::AccessClaims;
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries at most: about 5 MB of claims at a few hundred bytes each.
pub const CAPACITY: usize = 10_000;

/// SHA-256 of a token: what entries are keyed by.
pub type TokenHash = [u8; 32];

struct Entry {
    claims: AccessClaims,
    /// The key that verified it, to purge it when that key leaves the JWKS.
    kid: String,
}

pub struct TokenCache {
    entries: Mutex<HashMap<TokenHash, Entry>>,
    capacity: usize,
    /// The verifier's clock-skew allowance on `exp`.
    leeway_secs: u64,
}

impl TokenCache {
    pub fn new(capacity: usize, leeway_secs: u64) -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            leeway_secs,
        }
    }

    /// The cache key of `token`.
    pub fn hash(token: &str) -> TokenHash {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        hash
    }

    /// The claims of a token verified before, if it would still pass the `exp` check at `now`
    /// (seconds since the epoch). An entry past that is removed.
    pub fn get(&self, hash: &TokenHash, now: u64) -> Option<AccessClaims> {
        let mut entries = self.lock();
        let entry = entries.get(hash)?;
        if self.is_live(entry, now) {
            return Some(entry.claims.clone());
        }
        entries.remove(hash);
        None
    }

    /// Remember that the token with `hash` verified with key `kid` and gave `claims`.
    pub fn insert(&self, hash: TokenHash, kid: String, claims: AccessClaims, now: u64) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&hash) {
            entries.retain(|_, entry| self.is_live(entry, now));
            let target = self.capacity - self.capacity.div_ceil(10);
            if entries.len() > target {
                let excess = entries.len() - target;
                let victims: Vec<TokenHash> = entries.keys().take(excess).copied().collect();
                for victim in victims {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(hash, Entry { claims, kid });
    }

    /// Forget the token with `hash`.
    pub fn remove(&self, hash: &TokenHash) {
        self.lock().remove(hash);
    }

    /// Keep only the entries whose key `keep` accepts (the kids of the JWKS just fetched).
    /// Returns how many were removed.
    pub fn retain_kids(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, entry| keep(&entry.kid));
        before - entries.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The verifier's rule: expired when `exp < now - leeway`.
    fn is_live(&self, entry: &Entry, now: u64) -> bool {
        entry.claims.exp.saturating_add(self.leeway_secs) >= now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Entry>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that matters:
        // at worst an entry is missing, which is a miss.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const LEEWAY: u64 = 30;

    fn claims(sub: &str, exp: u64) -> AccessClaims {
        AccessClaims {
            iss: "http://issuer.test".into(),
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

    #[test]
    fn a_hit_needs_the_exact_same_token() {
        let cache = TokenCache::new(10, LEEWAY);
        let token = "aaa.bbb.ccc";
        cache.insert(
            TokenCache::hash(token),
            "k1".into(),
            claims("bob", NOW + 60),
            NOW,
        );
        assert_eq!(cache.get(&TokenCache::hash(token), NOW).unwrap().sub, "bob");
        // One changed character, e.g. in the signature: a miss, so full verification happens.
        assert!(cache.get(&TokenCache::hash("aaa.bbb.ccd"), NOW).is_none());
    }

    #[test]
    fn entries_expire_with_their_token_under_the_same_leeway_as_verification() {
        let cache = TokenCache::new(10, LEEWAY);
        let hash = TokenCache::hash("t");
        let exp = NOW + 60;
        cache.insert(hash, "k1".into(), claims("bob", exp), NOW);
        // Accepted up to exp + leeway, exactly like jsonwebtoken's `exp < now - leeway` rule.
        assert!(cache.get(&hash, exp).is_some());
        assert!(cache.get(&hash, exp + LEEWAY).is_some());
        assert!(cache.get(&hash, exp + LEEWAY + 1).is_none());
        // And an expired entry is gone, not just hidden.
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&hash, exp).is_none());
    }

    #[test]
    fn the_cache_stays_bounded_evicting_expired_entries_first() {
        let cache = TokenCache::new(10, 0);
        // Five that will have expired, five that stay valid.
        for i in 0..5 {
            let hash = TokenCache::hash(&format!("old-{i}"));
            cache.insert(hash, "k1".into(), claims("old", NOW + 10), NOW);
        }
        for i in 0..5 {
            let hash = TokenCache::hash(&format!("new-{i}"));
            cache.insert(hash, "k1".into(), claims("new", NOW + 1000), NOW);
        }
        assert_eq!(cache.len(), 10);
        let later = NOW + 100;
        cache.insert(
            TokenCache::hash("one-more"),
            "k1".into(),
            claims("x", NOW + 1000),
            later,
        );
        // The expired five were swept; every valid one survived.
        assert_eq!(cache.len(), 6);
        for i in 0..5 {
            assert!(
                cache
                    .get(&TokenCache::hash(&format!("new-{i}")), later)
                    .is_some()
            );
        }
        // Full of valid entries: arbitrary ones go, and the size never exceeds the capacity.
        for i in 0..100 {
            let hash = TokenCache::hash(&format!("flood-{i}"));
            cache.insert(hash, "k1".into(), claims("f", NOW + 1000), later);
            assert!(cache.len() <= 10, "{}", cache.len());
        }
        assert!(
            cache.get(&TokenCache::hash("flood-99"), later).is_some(),
            "the newest entry is kept"
        );
    }

    #[test]
    fn entries_of_a_key_that_left_the_jwks_are_purged() {
        let cache = TokenCache::new(10, LEEWAY);
        let (old, new) = (
            TokenCache::hash("signed-by-old"),
            TokenCache::hash("signed-by-new"),
        );
        cache.insert(old, "old-kid".into(), claims("a", NOW + 60), NOW);
        cache.insert(new, "new-kid".into(), claims("b", NOW + 60), NOW);
        let removed = cache.retain_kids(|kid| kid == "new-kid");
        assert_eq!(removed, 1);
        assert!(cache.get(&old, NOW).is_none());
        assert!(cache.get(&new, NOW).is_some());
    }
}
