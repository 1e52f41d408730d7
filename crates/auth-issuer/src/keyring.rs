//! The issuer's keys at one moment: the one that signs, the next one, and the retired ones still
//! worth trusting.
//!
//! A key goes through three states (the files behind them are in `key_files.rs`):
//!
//! 1. **Pending**: `auth-issuer rotate-key` creates it with an activation time `KEY_PUBLISH_SECS`
//!    ahead. It is published in the JWKS and trusted for refresh tokens at once, but signs nothing
//!    yet. The delay is for the replicas: they re-read the JWKS every `JWKS_REFRESH_SECS`, so by
//!    the time the first token of the new key exists, every replica already holds the key. None
//!    meets an unknown `kid`, so none has to refetch in a hurry, or refuse, while tokens flow.
//! 2. **Signing**: from the activation time on, until the next key's activation.
//! 3. **Retired**: the previous signing key, public half only (its private half is destroyed: it
//!    never signs again), plus the HMAC key derived from it, which its refresh tokens were signed
//!    with. It stays trusted for as long as a token it signed can still be valid:
//!    - in the JWKS for the access-token lifetime plus the largest leeway a replica may allow:
//!      after that no access token it signed is valid, so it leaves;
//!    - for refresh tokens (verified here only) for the refresh-token lifetime plus leeway, so a
//!      rotation logs nobody out. After that its file, HMAC key included, is deleted.
//!
//! Every key has two uses, each with one algorithm: the RSA key signs access tokens (RS256,
//! verified by the replicas with the JWKS); the HMAC key derived from it signs refresh tokens
//! (HS256, verified by the issuers only; `auth_core::refresh_key` explains why and how). The
//! HMAC key follows its RSA key through every state above: same moment in, same moment out.
//!
//! A stolen key must not enjoy any of that: `rotate-key --revoke-previous` installs a new signing
//! key at once and revokes every other key, so their tokens are refused from the issuers' next
//! reload (`KEY_RELOAD_SECS`) and the replicas' next JWKS refresh. Everybody logs in again.

use auth_core::keys::{Jwk, Jwks, SigningKey};
use auth_core::refresh_key::{RefreshKey, RefreshKeys};
use auth_core::verify::{MAX_LEEWAY_SECS, TrustedKeys};
use std::sync::Arc;

/// The keys in force at one moment.
pub struct Keyring {
    pub signing: Arc<SigningKey>,
    /// Published but not signing yet, soonest first.
    pub pending: Vec<Pending>,
    /// Published at `/.well-known/jwks.json`: the signing key, pending keys, recently retired ones.
    pub jwks: Jwks,
    /// Trusted for refresh tokens: the HMAC keys of the signing, pending and retired keys (a
    /// superset of the JWKS's keys), and those RSA keys for legacy RS256 refresh tokens.
    pub refresh_keys: RefreshKeys,
    /// The PEM the signing key came from, to notice a rotation cheaply.
    pub(crate) pem: String,
    /// The key at `KEY_PREVIOUS_PATH` and when this issuer first saw it there (key_files.rs).
    pub(crate) mounted_previous: Option<Retired>,
}

/// A key waiting for its activation time: its public half, and its HMAC key (another issuer may
/// already sign refresh tokens with it, having promoted it first).
#[derive(Debug, Clone)]
pub struct Pending {
    pub activate_at: u64,
    pub jwk: Jwk,
    pub refresh: RefreshKey,
}

impl Pending {
    /// The activation time of a key at `KEY_NEXT_PATH`: none of its own; it signs once an
    /// operator mounts it at `KEY_PATH` (key_files.rs, "Read-only keys").
    pub const UNTIL_INSTALLED: u64 = u64::MAX;
}

/// A retired key's public half, its HMAC key, and when it stopped signing. The HMAC key is
/// `None` in a record written before refresh tokens were HS256: that key signed no HS256 token.
#[derive(Debug, Clone)]
pub struct Retired {
    pub retired_at: u64,
    pub jwk: Jwk,
    pub refresh: Option<RefreshKey>,
}

/// How long retired keys stay trusted.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
}

impl Lifetimes {
    pub(crate) fn in_jwks(&self, retired: &Retired, now: u64) -> bool {
        now < retired.retired_at + self.access_ttl + MAX_LEEWAY_SECS
    }

    pub(crate) fn for_refresh(&self, retired: &Retired, now: u64) -> bool {
        now < retired.retired_at + self.refresh_ttl + MAX_LEEWAY_SECS
    }
}

impl Keyring {
    /// The keyring at time `now`: the signing key, the pending keys, and the retired keys still
    /// in their windows. A key read twice (a promotion happened while the files were read) is
    /// listed once, in its latest state.
    pub fn assemble(
        signing: Arc<SigningKey>,
        pem: String,
        mut pending: Vec<Pending>,
        retired: &[Retired],
        life: Lifetimes,
        now: u64,
    ) -> Self {
        pending.retain(|p| p.jwk.kid != signing.kid());
        let current = signing.public_jwk().clone();
        let upcoming = pending.iter().map(|p| p.jwk.clone());
        let retired = || {
            retired.iter().filter(|r| {
                r.jwk.kid != current.kid && !pending.iter().any(|p| p.jwk.kid == r.jwk.kid)
            })
        };
        let published = retired()
            .filter(|r| life.in_jwks(r, now))
            .map(|r| r.jwk.clone());
        let jwks = Jwks {
            keys: std::iter::once(current.clone())
                .chain(upcoming.clone())
                .chain(published)
                .collect(),
        };
        let for_refresh: Vec<&Retired> = retired().filter(|r| life.for_refresh(r, now)).collect();
        let legacy_rs256 = TrustedKeys::from_jwks(&Jwks {
            keys: std::iter::once(current.clone())
                .chain(upcoming)
                .chain(for_refresh.iter().map(|r| r.jwk.clone()))
                .collect(),
        });
        let hmac_keys = std::iter::once(signing.refresh_key().clone())
            .chain(pending.iter().map(|p| p.refresh.clone()))
            .chain(for_refresh.iter().filter_map(|r| r.refresh.clone()));
        let refresh_keys = RefreshKeys::new(hmac_keys, legacy_rs256);
        Keyring {
            signing,
            pending,
            jwks,
            refresh_keys,
            pem,
            mounted_previous: None,
        }
    }
}
