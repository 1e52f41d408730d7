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

use crate::configuration::JwksSource;
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
        })
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
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, Rejection> {
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
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
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
