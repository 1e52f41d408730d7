//! What every handler of the issuer can reach.

use crate::configuration::Config;
use crate::users::Users;
use auth_core::keys::{Jwks, SigningKey};
use auth_core::store::Store;
use auth_core::telemetry::{Counter, Metrics};
use auth_core::verify::{KeySet, TokenRules};
use std::sync::Arc;

pub type AppState = Arc<State>;

pub struct State {
    pub config: Config,
    pub users: Users,
    pub signing_key: SigningKey,
    /// The public keys, as published: the same set verifies refresh tokens here.
    pub jwks: Jwks,
    pub keys: KeySet,
    pub refresh_rules: TokenRules,
    pub store: Store,
    pub metrics: IssuerMetrics,
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
            redis_commands: m.counter(
                "authscale_redis_commands_total",
                "Commands (round trips) sent to Redis.",
                &[],
            ),
            registry: m,
        }
    }
}
