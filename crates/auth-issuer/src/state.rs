//! What every handler of the issuer can reach: the [`Issuer`], shared as an [`IssuerState`].

use crate::families::Rules;
use crate::key_files::KeyFiles;
use crate::keyring::{Keyring, Pending};
use crate::settings::Settings;
use crate::users::Users;
use auth_core::store::{self, Store};
use auth_core::telemetry::{Counter, Metrics};
use auth_core::verify::TokenRules;
use std::sync::{Arc, RwLock};

/// The handlers' state: one [`Issuer`], shared by every request.
pub type IssuerState = Arc<Issuer>;

/// The issuer: its settings, users, keys, store and metrics.
pub struct Issuer {
    pub settings: Settings,
    pub users: Users,
    /// The keys in force; replaced whole when a rotation is noticed (see keyring.rs).
    pub keyring: RwLock<Arc<Keyring>>,
    pub key_files: KeyFiles,
    pub refresh_rules: TokenRules,
    pub store: Store,
    pub metrics: IssuerMetrics,
}

impl Issuer {
    /// The keys in force right now.
    pub fn keyring(&self) -> Arc<Keyring> {
        Arc::clone(&self.keyring.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The lifetimes and windows of refresh-token families (families.rs).
    pub fn family_rules(&self) -> Rules {
        Rules {
            refresh_ttl: self.settings.refresh_ttl,
            family_max_ttl: self.settings.refresh_max_ttl,
            grace_ms: self.settings.refresh_grace_ms,
            retry_window_secs: self.settings.refresh_retry_window_secs,
        }
    }

    /// Re-read the key files; log when the signing key changed.
    pub fn reload_keys(&self) {
        let previous = self.keyring();
        match self.key_files.keyring(
            Some(&previous),
            self.settings.lifetimes(),
            auth_core::now_secs(),
        ) {
            Ok(ring) => {
                if ring.signing.kid() != previous.signing.kid() {
                    tracing::info!(
                        kid = ring.signing.kid(),
                        previous = previous.signing.kid(),
                        "signing key rotated"
                    );
                }
                let kid_of = |r: &Keyring| r.mounted_previous.as_ref().map(|m| m.jwk.kid.clone());
                if kid_of(&ring) != kid_of(&previous) {
                    tracing::info!(
                        kid = kid_of(&ring).unwrap_or_default(),
                        "key at KEY_PREVIOUS_PATH changed (empty: none); retired as of now"
                    );
                }
                for next in &ring.pending {
                    if previous.pending.iter().any(|p| p.jwk.kid == next.jwk.kid) {
                        continue;
                    }
                    if next.activate_at == Pending::UNTIL_INSTALLED {
                        tracing::info!(
                            kid = next.jwk.kid,
                            "new key published from KEY_NEXT_PATH; it signs once mounted at KEY_PATH"
                        );
                    } else {
                        tracing::info!(
                            kid = next.jwk.kid,
                            activate_at = next.activate_at,
                            "new key published; it signs from activate_at (unix time)"
                        );
                    }
                }
                *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "key reload failed; keeping the keys in force")
            }
        }
    }
}

/// The issuer's own counters, registered once at start-up.
pub struct IssuerMetrics {
    pub registry: Arc<Metrics>,
    pub access_issued: Counter,
    pub refresh_issued: Counter,
    pub logins_ok: Counter,
    pub logins_failed: Counter,
    pub refreshes: Counter,
    pub reuse_detected: Counter,
    pub sessions_created: Counter,
    pub redis_commands: Counter,
}

impl Default for IssuerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl IssuerMetrics {
    pub fn new() -> Self {
        let m = Metrics::new();
        const ISSUED: &str = "authscale_tokens_issued_total";
        const ISSUED_HELP: &str = "Tokens signed, by kind.";
        const LOGINS: &str = "authscale_logins_total";
        const LOGINS_HELP: &str = "Login attempts on both login routes, by result.";
        IssuerMetrics {
            access_issued: m.counter(ISSUED, ISSUED_HELP, &[("kind", "access")]),
            refresh_issued: m.counter(ISSUED, ISSUED_HELP, &[("kind", "refresh")]),
            logins_ok: m.counter(LOGINS, LOGINS_HELP, &[("result", "success")]),
            logins_failed: m.counter(LOGINS, LOGINS_HELP, &[("result", "failure")]),
            refreshes: m.counter(
                "authscale_refreshes_total",
                "Successful refresh-token rotations.",
                &[],
            ),
            reuse_detected: m.counter(
                "authscale_refresh_reuse_detected_total",
                "Spent refresh tokens presented again (each revoked a family).",
                &[],
            ),
            sessions_created: m.counter(
                "authscale_sessions_created_total",
                "Sessions created.",
                &[],
            ),
            redis_commands: store::commands_counter(&m),
            registry: m,
        }
    }
}
