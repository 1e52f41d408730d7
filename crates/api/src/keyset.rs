//! The issuer's public keys, as a replica holds them.
//!
//! A replica verifies tokens alone, so it needs the issuer's public keys, and only those. It
//! loads them at start-up (from `JWKS_URL` or `JWKS_FILE`) and is not ready until it has some.
//! After that, the network is touched in two cases only, never per request:
//!
//! - a token names a `kid` the replica does not know (the issuer may have rotated its key): the
//!   JWKS is fetched again, but at most once every `JWKS_REFETCH_SECS`, so a flood of tokens with
//!   made-up `kid`s cannot turn the replica into a denial-of-service amplifier against the issuer;
//! - every five minutes, so a key the issuer has retired stops being trusted here too.
//!
//! A failed fetch keeps the keys already held: an issuer outage must not take the replicas down.
//!
//! With `TOKEN_CACHE=on`, tokens verified once are remembered until they expire
//! (`token_cache.rs`); each fetch purges the entries whose key has left the JWKS.

use crate::configuration::JwksSource;
use crate::token_cache::{self, TokenCache};
use auth_core::claims::AccessClaims;
use auth_core::keys::Jwks;
use auth_core::verify::{KeySet, Rejection, TokenRules, kid_of, verify};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often the JWKS is refetched regardless of unknown kids.
const PERIODIC_REFRESH: Duration = Duration::from_secs(300);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Keys {
    current: RwLock<Arc<KeySet>>,
    source: JwksSource,
    http: reqwest::Client,
    min_refetch_interval: Duration,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    rules: TokenRules,
    /// Verified tokens, when `TOKEN_CACHE=on`.
    cache: Option<TokenCache>,
}

impl Keys {
    pub fn new(
        source: JwksSource,
        min_refetch_interval: Duration,
        rules: TokenRules,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        Ok(Keys {
            current: RwLock::new(Arc::new(KeySet::default())),
            source,
            http,
            min_refetch_interval,
            last_fetch: tokio::sync::Mutex::new(None),
            rules,
            cache: None,
        })
    }

    /// With `enabled`, remember verified tokens ([`TokenCache`]), re-checking their expiry with
    /// the verifier's `leeway_secs` on every hit.
    pub fn with_token_cache(mut self, enabled: bool, leeway_secs: u64) -> Self {
        self.cache = enabled.then(|| TokenCache::new(token_cache::CAPACITY, leeway_secs));
        self
    }

    /// Whether any key is loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        !self.snapshot().is_empty()
    }

    fn snapshot(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verify an access token; a `kid` we do not know may trigger one rate-limited refetch.
    /// With the cache on, a token verified before (the same bytes) and not expired is accepted
    /// from the cache.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, Rejection> {
        let Some(cache) = &self.cache else {
            return self.verify_fully(token).await;
        };
        let hash = TokenCache::hash(token);
        let now = auth_core::now_secs();
        if let Some(claims) = cache.get(&hash, now) {
            return Ok(claims);
        }
        let claims = self.verify_fully(token).await?;
        if let Some(kid) = kid_of(token) {
            cache.insert(hash, kid.clone(), claims.clone(), now);
            // A JWKS fetch may have dropped this kid (and purged the cache) while we verified
            // with the previous keys: check again after inserting, so no entry of a retired key
            // can outlive the purge.
            if !self.snapshot().contains(&kid) {
                cache.remove(&hash);
            }
        }
        Ok(claims)
    }

    /// The signature and every rule, no cache.
    async fn verify_fully(&self, token: &str) -> Result<AccessClaims, Rejection> {
        match verify::<AccessClaims>(token, &self.snapshot(), &self.rules) {
            Err(Rejection::UnknownKey) if self.refetch_for(token).await => {
                verify::<AccessClaims>(token, &self.snapshot(), &self.rules)
            }
            other => other,
        }
    }

    /// Refetch if the token names a kid we lack and the last fetch is old enough. Returns whether
    /// the kid is known afterwards.
    async fn refetch_for(&self, token: &str) -> bool {
        let Some(kid) = kid_of(token) else {
            return false;
        };
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while we waited for the lock.
        if self.snapshot().contains(&kid) {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch_interval) {
            return false;
        }
        *last = Some(Instant::now());
        drop(last);
        match self.fetch().await {
            Ok(n) => tracing::info!(keys = n, "JWKS refetched for an unknown kid"),
            Err(e) => tracing::warn!(error = %e, "JWKS refetch failed; keeping the keys held"),
        }
        self.snapshot().contains(&kid)
    }

    /// Fetch the JWKS now and replace the keys held. Returns how many keys were loaded.
    pub async fn fetch(&self) -> anyhow::Result<usize> {
        let jwks: Jwks = match &self.source {
            JwksSource::Url(url) => {
                self.http
                    .get(url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?
            }
            JwksSource::File(path) => serde_json::from_slice(&tokio::fs::read(path).await?)?,
        };
        let set = KeySet::from_jwks(&jwks);
        anyhow::ensure!(!set.is_empty(), "the JWKS holds no RS256 signing key");
        let n = set.len();
        let set = Arc::new(set);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&set);
        if let Some(cache) = &self.cache {
            let purged = cache.retain_kids(|kid| set.contains(kid));
            if purged > 0 {
                tracing::info!(
                    purged,
                    "cached tokens of keys no longer in the JWKS dropped"
                );
            }
        }
        Ok(n)
    }

    /// Load the keys in the background: retry every second until the first success (the replica
    /// stays not-ready meanwhile), then refresh periodically.
    pub fn spawn_loader(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                match self.fetch().await {
                    Ok(n) => {
                        tracing::info!(keys = n, "JWKS loaded");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "JWKS not loaded yet; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            loop {
                tokio::time::sleep(PERIODIC_REFRESH).await;
                if let Err(e) = self.fetch().await {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping the keys held");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::claims::ACCESS_TYP;
    use auth_core::keys::{KeyBits, SigningKey};
    use auth_core::sign::sign_jwt;

    const ISS: &str = "http://issuer.test";
    const AUD: &str = "api.test";

    fn token(key: &SigningKey) -> String {
        let now = auth_core::now_secs();
        let claims = AccessClaims {
            iss: ISS.into(),
            sub: "bob".into(),
            aud: AUD.into(),
            exp: now + 300,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            client_id: "demo".into(),
            name: "Bob".into(),
            roles: vec!["user".into()],
        };
        sign_jwt(key, ACCESS_TYP, &claims).unwrap()
    }

    fn write_jwks(path: &std::path::Path, keys: &[&SigningKey]) {
        let jwks = Jwks {
            keys: keys.iter().map(|k| k.public_jwk().clone()).collect(),
        };
        std::fs::write(path, serde_json::to_vec(&jwks).unwrap()).unwrap();
    }

    /// Rotation with the cache on: once the old key has left the JWKS, a token it signed is
    /// refused, although it was cached (and is still unexpired).
    #[tokio::test]
    async fn a_cached_token_is_refused_once_its_key_leaves_the_jwks() {
        let (old, new) = (
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        write_jwks(&path, &[&old, &new]);
        let keys = Keys::new(
            JwksSource::File(path.clone()),
            Duration::from_secs(3600),
            TokenRules::access(ISS, AUD, 30),
        )
        .unwrap()
        .with_token_cache(true, 30);
        keys.fetch().await.unwrap();

        let (by_old, by_new) = (token(&old), token(&new));
        assert_eq!(keys.verify(&by_old).await.unwrap().sub, "bob");
        assert_eq!(keys.verify(&by_new).await.unwrap().sub, "bob");
        // Both are cached now and would be hits.
        assert_eq!(keys.cache.as_ref().unwrap().len(), 2);
        assert!(keys.verify(&by_old).await.is_ok());

        write_jwks(&path, &[&new]);
        keys.fetch().await.unwrap();
        assert_eq!(keys.cache.as_ref().unwrap().len(), 1);
        assert_eq!(
            keys.verify(&by_old).await.unwrap_err(),
            Rejection::UnknownKey
        );
        assert!(keys.verify(&by_new).await.is_ok());
    }

    /// A token that fails verification is never cached, so it fails every time.
    #[tokio::test]
    async fn failures_are_not_cached() {
        let key = SigningKey::generate(KeyBits::B2048).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        write_jwks(&path, &[&key]);
        let keys = Keys::new(
            JwksSource::File(path),
            Duration::from_secs(3600),
            TokenRules::access(ISS, "another-audience", 30),
        )
        .unwrap()
        .with_token_cache(true, 30);
        keys.fetch().await.unwrap();
        let token = token(&key);
        for _ in 0..2 {
            assert_eq!(keys.verify(&token).await.unwrap_err(), Rejection::Audience);
        }
        assert_eq!(keys.cache.as_ref().unwrap().len(), 0);
    }
}
