//! The issuer's public keys, as a replica holds them.
//!
//! A replica verifies tokens alone, so it needs the issuer's public keys, and only those. It
//! loads them at start-up (from `JWKS_URL` or `JWKS_FILE`, or from the `jwks_uri` that the
//! issuer's discovery document names: `discovery.rs`) and is not ready until it has some.
//! After that, the network is touched in two cases only, never per request:
//!
//! - every `JWKS_REFRESH_SECS` (60 s), so a key the issuer has published is here before its first
//!   token (the issuer publishes a key well before signing with it: see auth-issuer's
//!   `keyring.rs`), and a key it has retired or revoked stops being trusted here too;
//! - a token names a `kid` the replica does not know: the JWKS is fetched again, but at most once
//!   every `JWKS_REFETCH_SECS`, so a flood of tokens with made-up `kid`s cannot turn the replica
//!   into a denial-of-service amplifier against the issuer. Requests that meet the same unknown
//!   `kid` while that refetch is in flight wait for it, instead of being refused by the limit.
//!
//! Fetches may overlap (a periodic one and a refetch), and the slower one may hold the older key
//! set. So the key set only moves forward: each fetch takes a number when it starts, and its
//! result is installed only if no fetch started later has been installed already.
//!
//! A failed fetch keeps the keys already held: an issuer outage must not take the replicas down.
//!
//! Before the first keys, a failed fetch is retried every second, the replica not ready
//! meanwhile. With a JWKS URL or file that goes on until it works. With discovery there is a
//! bound (`DISCOVERY_TIMEOUT_SECS`): a discovery document that is refused (its `issuer` is not
//! `ISSUER_URL`) or a `jwks_uri` the replica cannot reach is a configuration to fix, and a
//! replica that exits says so louder (its orchestrator shows it restarting) than one that is
//! silently never ready.
//!
//! With `TOKEN_CACHE=on`, tokens verified once are remembered until they expire
//! (`token_cache.rs`), keyed by the issuer and the token's SHA-256; each entry records the key
//! that verified it (`kid` and fingerprint), and each installed fetch invalidates the entries
//! whose key the JWKS no longer holds.

use crate::settings::JwksSource;
use crate::token_cache::{self, CacheKey, TokenCache};
use anyhow::Context;
use auth_core::claims::AccessClaims;
use auth_core::keys::Jwks;
use auth_core::telemetry::{Counter, Metrics};
use auth_core::verify::{Rejection, TokenRules, TrustedKeys, kid_of, verify};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the network is touched.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    /// An unknown `kid` refetches at most this often (`JWKS_REFETCH_SECS`).
    pub min_refetch: Duration,
    /// The JWKS is re-read this often anyway (`JWKS_REFRESH_SECS`).
    pub refresh: Duration,
}

pub struct ReplicaKeys {
    installed: RwLock<Installed>,
    /// Fetches started so far: the next fetch's number is this plus one.
    fetches_started: AtomicU64,
    source: JwksSource,
    /// The JWKS URL found through discovery, once found (`JwksSource::Discovery` only).
    discovered: OnceLock<String>,
    http: reqwest::Client,
    intervals: Intervals,
    /// When the last unknown-kid refetch started. Held across that refetch, so that requests
    /// with a new kid queue behind the fetch that brings it.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    rules: TokenRules,
    /// The issuer `rules` trust: part of every cache key.
    issuer: Arc<str>,
    /// Verified tokens, when `TOKEN_CACHE=on`.
    cache: Option<TokenCache>,
    counters: FetchCounters,
}

/// The key set in force, and the number of the fetch it came from.
struct Installed {
    fetch: u64,
    keys: Arc<TrustedKeys>,
}

/// JWKS fetches by what caused them: unknown-kid refetches are the ones a well-run rotation
/// never needs.
#[derive(Default)]
struct FetchCounters {
    scheduled: Counter,
    unknown_kid: Counter,
}

impl ReplicaKeys {
    pub fn new(
        source: JwksSource,
        intervals: Intervals,
        rules: TokenRules,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build()?;
        Ok(ReplicaKeys {
            installed: RwLock::new(Installed {
                fetch: 0,
                keys: Arc::new(TrustedKeys::default()),
            }),
            fetches_started: AtomicU64::new(0),
            source,
            discovered: OnceLock::new(),
            http,
            intervals,
            last_refetch: tokio::sync::Mutex::new(None),
            issuer: rules.issuer().into(),
            rules,
            cache: None,
            counters: FetchCounters::default(),
        })
    }

    /// With `enabled`, remember verified tokens until their `exp` ([`TokenCache`]).
    pub fn with_token_cache(mut self, enabled: bool) -> Self {
        self.cache = enabled.then(|| TokenCache::new(token_cache::CAPACITY));
        self
    }

    /// Count fetches in `metrics` (`authscale_jwks_fetches_total`, by trigger).
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        const NAME: &str = "authscale_jwks_fetches_total";
        const HELP: &str = "JWKS fetches started, by trigger: scheduled (start-up and periodic) or an unknown kid.";
        self.counters = FetchCounters {
            scheduled: metrics.counter(NAME, HELP, &[("trigger", "scheduled")]),
            unknown_kid: metrics.counter(NAME, HELP, &[("trigger", "unknown_kid")]),
        };
        self
    }

    /// Whether any key is loaded (readiness).
    pub fn is_loaded(&self) -> bool {
        !self.snapshot().is_empty()
    }

    fn snapshot(&self) -> Arc<TrustedKeys> {
        let installed = self.installed.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&installed.keys)
    }

    /// Verify an access token; a `kid` we do not know may trigger one rate-limited refetch.
    /// With the cache on, a token verified before (the same bytes) and not expired is accepted
    /// from the cache.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, Rejection> {
        let Some(cache) = &self.cache else {
            return self.verify_fully(token).await.map(|(claims, _)| claims);
        };
        // A hit reads nothing of the token but its hash: the header (and its kid) was read when
        // the same bytes were verified.
        let key = CacheKey::new(Arc::clone(&self.issuer), token);
        let now = auth_core::now_secs();
        if let Some(claims) = cache.get(&key, now) {
            return Ok(claims);
        }
        let (claims, verified_by) = self.verify_fully(token).await?;
        // A verified token has a kid, and the keys that verified it hold that kid; without
        // either, nothing to cache.
        let Some(kid) = kid_of(token) else {
            return Ok(claims);
        };
        let Some(fingerprint) = verified_by.fingerprint(&kid) else {
            return Ok(claims);
        };
        cache.insert(key.clone(), (&kid, fingerprint), claims.clone(), now);
        // A JWKS fetch may have dropped this key, or put other material under its kid (and
        // purged the cache), while we verified with the previous keys: check again after
        // inserting, so no entry of a removed key can outlive the purge.
        if !self.snapshot().holds(&kid, &fingerprint) {
            cache.remove(&key);
        }
        Ok(claims)
    }

    /// The signature and every rule, no cache; with the claims, the keys that verified them.
    async fn verify_fully(
        &self,
        token: &str,
    ) -> Result<(AccessClaims, Arc<TrustedKeys>), Rejection> {
        let keys = self.snapshot();
        match verify::<AccessClaims>(token, &keys, &self.rules) {
            Err(Rejection::UnknownKey) if self.refetch_for(token).await => {
                let keys = self.snapshot();
                verify::<AccessClaims>(token, &keys, &self.rules).map(|claims| (claims, keys))
            }
            other => other.map(|claims| (claims, keys)),
        }
    }

    /// Refetch if the token names a kid we lack and the last refetch is old enough. Returns
    /// whether the kid is known afterwards.
    async fn refetch_for(&self, token: &str) -> bool {
        let Some(kid) = kid_of(token) else {
            return false;
        };
        // Held until the fetch is done: a request with the same kid waits here, then finds it.
        let asked = Instant::now();
        let mut last = self.last_refetch.lock().await;
        if self.snapshot().contains(&kid) {
            return true;
        }
        // A refetch that started while this request waited for the lock fetched the whole JWKS,
        // for this request too: fetching again would only line the waiting requests up one whole
        // fetch after another (with a `JWKS_REFETCH_SECS` shorter than a fetch can take), and
        // keep each of them waiting for all the fetches before it.
        if last.is_some_and(|t| t >= asked || t.elapsed() < self.intervals.min_refetch) {
            return false;
        }
        *last = Some(Instant::now());
        self.counters.unknown_kid.inc();
        match self.fetch().await {
            Ok(Some(n)) => tracing::info!(keys = n, "JWKS refetched for an unknown kid"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "JWKS refetch failed; keeping the keys held"),
        }
        self.snapshot().contains(&kid)
    }

    /// Fetch the JWKS now and install it, unless a fetch that started later was installed
    /// first. Returns how many keys were installed, or `None` when the result was superseded.
    pub async fn fetch(&self) -> anyhow::Result<Option<usize>> {
        let number = self.fetches_started.fetch_add(1, Ordering::Relaxed) + 1;
        let jwks: Jwks = match &self.source {
            JwksSource::Url(url) => self.fetch_url(url).await?,
            JwksSource::Discovery(_) => {
                let url = self
                    .discovered
                    .get()
                    .context("the JWKS URL is not discovered yet")?;
                self.fetch_url(url).await?
            }
            JwksSource::File(path) => serde_json::from_slice(&tokio::fs::read(path).await?)?,
        };
        let set = TrustedKeys::from_jwks(&jwks);
        anyhow::ensure!(!set.is_empty(), "the JWKS holds no RS256 signing key");
        let n = set.len();
        {
            let mut installed = self.installed.write().unwrap_or_else(|p| p.into_inner());
            if installed.fetch > number {
                return Ok(None);
            }
            *installed = Installed {
                fetch: number,
                keys: Arc::new(set),
            };
        }
        if let Some(cache) = &self.cache {
            // Against what is installed now, which a later fetch may already have replaced.
            let keys = self.snapshot();
            cache.retain_keys(move |kid, fingerprint| keys.holds(kid, fingerprint));
        }
        Ok(Some(n))
    }

    async fn fetch_url(&self, url: &str) -> anyhow::Result<Jwks> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        Ok(response.json().await?)
    }

    /// Discover the JWKS URL if that is how keys are found and it is not known yet, then fetch.
    async fn load(&self) -> anyhow::Result<()> {
        if let JwksSource::Discovery(discovery) = &self.source
            && self.discovered.get().is_none()
        {
            let url = discovery.find_jwks(&self.http).await?;
            tracing::info!(jwks_uri = %url, issuer = %discovery.issuer, "JWKS found through discovery");
            let _ = self.discovered.set(url);
        }
        self.counters.scheduled.inc();
        self.fetch().await.map(drop)
    }

    /// Load the keys in the background: retry every second until the first success (the replica
    /// stays not-ready meanwhile), then refresh every `JWKS_REFRESH_SECS`.
    ///
    /// The task ends only when it gives up: with discovery, when no keys were loaded within
    /// `DISCOVERY_TIMEOUT_SECS`. It then returns why, and the replica exits with that error.
    pub fn spawn_loader(self: Arc<Self>) -> tokio::task::JoinHandle<anyhow::Error> {
        tokio::spawn(async move {
            let bound = match &self.source {
                JwksSource::Discovery(discovery) => Some(discovery.timeout),
                JwksSource::Url(_) | JwksSource::File(_) => None,
            };
            let mut last_error = None;
            let first_load = async {
                loop {
                    match self.load().await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "JWKS not loaded yet; retrying in 1 s");
                            last_error = Some(e);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            };
            let loaded = match bound {
                Some(bound) => tokio::time::timeout(bound, first_load).await.is_ok(),
                None => {
                    first_load.await;
                    true
                }
            };
            if !loaded {
                let why = last_error.unwrap_or_else(|| anyhow::anyhow!("no answer"));
                let secs = bound.unwrap_or_default().as_secs();
                return why.context(format!(
                    "no verification keys within DISCOVERY_TIMEOUT_SECS ({secs} s); giving up"
                ));
            }
            tracing::info!(keys = self.snapshot().len(), "JWKS loaded");
            loop {
                tokio::time::sleep(self.intervals.refresh).await;
                self.counters.scheduled.inc();
                if let Err(e) = self.fetch().await {
                    tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping the keys held");
                }
            }
        })
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

    /// `token` with its header naming `kid` instead (its signature no longer matters: no key
    /// with that kid exists).
    fn with_kid(token: &str, kid: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": "RS256", "typ": ACCESS_TYP, "kid": kid});
        let (_, rest) = token.split_once('.').unwrap();
        format!("{}.{rest}", b64.encode(header.to_string()))
    }

    fn jwks_of(keys: &[&SigningKey]) -> Jwks {
        Jwks {
            keys: keys.iter().map(|k| k.public_jwk().clone()).collect(),
        }
    }

    fn write_jwks(path: &std::path::Path, keys: &[&SigningKey]) {
        std::fs::write(path, serde_json::to_vec(&jwks_of(keys)).unwrap()).unwrap();
    }

    /// Keys from the JWKS file at `path`, for `audience`, with the token cache on, fetched once.
    async fn cached_keys(path: &std::path::Path, audience: &str) -> ReplicaKeys {
        let keys = ReplicaKeys::new(
            JwksSource::File(path.to_owned()),
            RARELY,
            TokenRules::access(ISS, audience, 30),
        )
        .unwrap()
        .with_token_cache(true);
        keys.fetch().await.unwrap();
        keys
    }

    /// No refetch or refresh within a test, unless a test says otherwise.
    const RARELY: Intervals = Intervals {
        min_refetch: Duration::from_secs(3600),
        refresh: Duration::from_secs(3600),
    };

    /// A real HTTP JWKS endpoint on a free port: it answers each request with the JWKS and
    /// delay configured when the request arrives, and counts requests.
    struct JwksServer {
        url: String,
        answer: Arc<std::sync::Mutex<(Jwks, Duration)>>,
        requests: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl JwksServer {
        async fn start(jwks: Jwks) -> Self {
            use axum::extract::State;
            type Shared = (
                Arc<std::sync::Mutex<(Jwks, Duration)>>,
                Arc<std::sync::atomic::AtomicUsize>,
            );
            let answer = Arc::new(std::sync::Mutex::new((jwks, Duration::ZERO)));
            let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let app = axum::Router::new()
                .route(
                    "/jwks",
                    axum::routing::get(|State((answer, requests)): State<Shared>| async move {
                        let (jwks, delay) = answer.lock().unwrap().clone();
                        requests.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        axum::Json(jwks)
                    }),
                )
                .with_state((Arc::clone(&answer), Arc::clone(&requests)));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            JwksServer {
                url,
                answer,
                requests,
            }
        }

        /// From now on, answer with `jwks` after `delay`.
        fn answer(&self, jwks: Jwks, delay: Duration) {
            *self.answer.lock().unwrap() = (jwks, delay);
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }

        fn keys(&self, intervals: Intervals) -> Arc<ReplicaKeys> {
            let source = JwksSource::Url(self.url.clone());
            let rules = TokenRules::access(ISS, AUD, 30);
            Arc::new(ReplicaKeys::new(source, intervals, rules).unwrap())
        }
    }

    /// A slow fetch of the old JWKS (say, a periodic refresh started just before the issuer
    /// published a key) finishing after a later fetch of the new one must not undo it.
    #[tokio::test]
    async fn a_slow_fetch_never_replaces_a_newer_key_set() {
        let (old, new) = (
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
        );
        let server = JwksServer::start(jwks_of(&[&old])).await;
        let keys = server.keys(RARELY);
        server.answer(jwks_of(&[&old]), Duration::from_millis(700));
        let slow = tokio::spawn({
            let keys = Arc::clone(&keys);
            async move { keys.fetch().await.unwrap() }
        });
        while server.requests() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.answer(jwks_of(&[&old, &new]), Duration::ZERO);
        assert_eq!(keys.fetch().await.unwrap(), Some(2));
        assert_eq!(slow.await.unwrap(), None, "superseded, not installed");
        assert!(keys.snapshot().contains(new.kid()));
        assert_eq!(keys.verify(&token(&new)).await.unwrap().sub, "bob");
    }

    /// The first token of a new key arrives at many requests at once: all of them wait for the
    /// one refetch and are accepted; made-up kids are still limited to one refetch per interval.
    #[tokio::test]
    async fn concurrent_requests_with_a_new_kid_wait_for_one_refetch() {
        const REQUESTS: usize = 20;
        let (old, new, made_up) = (
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
        );
        let server = JwksServer::start(jwks_of(&[&old])).await;
        let keys = server.keys(RARELY);
        keys.fetch().await.unwrap();
        server.answer(jwks_of(&[&old, &new]), Duration::from_millis(300));

        let by_new = token(&new);
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..REQUESTS {
            let (keys, token) = (Arc::clone(&keys), by_new.clone());
            requests.spawn(async move { keys.verify(&token).await });
        }
        let results = requests.join_all().await;
        let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(server.requests(), 2, "the load and one refetch");
        assert_eq!(keys.counters.unknown_kid.get(), 1);

        // A kid the issuer never published: refused, and no second refetch within the interval.
        assert_eq!(
            keys.verify(&token(&made_up)).await.unwrap_err(),
            Rejection::UnknownKey
        );
        assert_eq!(server.requests(), 2);
    }

    /// Without a rate limit on refetches (`JWKS_REFETCH_SECS=0`), requests with made-up kids
    /// that arrive together still share fetches: one that waited while a refetch ran does not
    /// start another, so no request waits for more than the fetch it found running and one more.
    #[tokio::test]
    async fn requests_that_waited_for_a_refetch_do_not_start_another() {
        const REQUESTS: usize = 20;
        let old = SigningKey::generate(KeyBits::B2048).unwrap();
        let server = JwksServer::start(jwks_of(&[&old])).await;
        let keys = server.keys(Intervals {
            min_refetch: Duration::ZERO,
            ..RARELY
        });
        keys.fetch().await.unwrap();
        server.answer(jwks_of(&[&old]), Duration::from_millis(200));

        let signed = token(&old);
        let made_up: Vec<String> = (0..REQUESTS)
            .map(|i| with_kid(&signed, &format!("made-up-{i}")))
            .collect();
        let mut requests = tokio::task::JoinSet::new();
        for token in made_up {
            let keys = Arc::clone(&keys);
            requests.spawn(async move { keys.verify(&token).await });
        }
        for result in requests.join_all().await {
            assert_eq!(result.unwrap_err(), Rejection::UnknownKey);
        }
        // The load, the first refetch, and at most one more for the requests that arrived
        // while it ran; one refetch per request would be 20.
        let refetches = server.requests() - 1;
        assert!((1..=2).contains(&refetches), "{refetches} refetches");
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
        let keys = cached_keys(&path, AUD).await;

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

    /// A JWKS that publishes other key material under a kid already cached: the tokens the old
    /// material signed are refused from then on (the full verification's verdict), cached or
    /// not, while the kid itself stays trusted for the new material.
    #[tokio::test]
    async fn a_cached_token_is_refused_once_its_kid_names_another_key() {
        let (old, other) = (
            SigningKey::generate(KeyBits::B2048).unwrap(),
            SigningKey::generate(KeyBits::B2048).unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        write_jwks(&path, &[&old]);
        let keys = cached_keys(&path, AUD).await;
        let by_old = token(&old);
        assert!(keys.verify(&by_old).await.is_ok());
        assert!(keys.verify(&by_old).await.is_ok(), "a hit");

        // The same kid, now naming the other key's material.
        let mut reused = other.public_jwk().clone();
        reused.kid = old.kid().to_owned();
        let jwks = Jwks { keys: vec![reused] };
        std::fs::write(&path, serde_json::to_vec(&jwks).unwrap()).unwrap();
        keys.fetch().await.unwrap();
        assert!(keys.snapshot().contains(old.kid()));
        assert_eq!(
            keys.verify(&by_old).await.unwrap_err(),
            Rejection::Signature
        );
    }

    /// A token that fails verification is never cached, so it fails every time.
    #[tokio::test]
    async fn failures_are_not_cached() {
        let key = SigningKey::generate(KeyBits::B2048).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        write_jwks(&path, &[&key]);
        let keys = cached_keys(&path, "another-audience").await;
        let token = token(&key);
        for _ in 0..2 {
            assert_eq!(keys.verify(&token).await.unwrap_err(), Rejection::Audience);
        }
        assert_eq!(keys.cache.as_ref().unwrap().len(), 0);
    }
}
