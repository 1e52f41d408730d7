//! The issuer's settings, read once from the environment at start-up.
//!
//! The ones the replicas share (listening, logging, request limits, `ISSUER_URL`, `AUDIENCE`,
//! Redis, the session idle timeout) are read by `auth_core::settings`, with the same defaults
//! in both services; the rest are the issuer's own.
//!
//! Each setting is declared once, below in [`SETTINGS`], with its default and meaning: the
//! reading code uses that declaration, and docs/CONFIGURATION.md's issuer table is written from
//! it (`cargo xtask settings-doc`; the `docs_table_matches` test fails when they differ).

use crate::hash_pool::HashingLimits;
use crate::key_files::KeyFiles;
use crate::keyring::Lifetimes;
use crate::throttle::LoginLimits;
use auth_core::keys::KeyBits;
use auth_core::settings::{self as env, RedisSettings, ServiceSettings, TokenParties};
use auth_core::store::Acks;
use std::path::PathBuf;

auth_core::settings! {
    /// The issuer's own settings; the ones it shares with the replicas are
    /// [`auth_core::settings::SHARED`].
    pub SETTINGS {
        LISTEN_ADDR = "127.0.0.1:9000" => "where the issuer listens",
        ISSUER_ID = _ ("`<hostname>:<port>`") => "this issuer's name, sent back in `X-Issuer` (several issuers share one `ISSUER_URL`)",
        CLIENT_ID = "authscale-demo" => "`client_id` claim of access tokens (RFC 9068)",
        ACCESS_TTL_SECS = "300" => "access-token lifetime (`cargo xtask up --access-ttl` sets it)",
        REFRESH_TTL_SECS = "1209600" ("(14 days)") => "refresh-token lifetime; longer than `ACCESS_TTL_SECS`",
        REFRESH_MAX_TTL_SECS = "2592000" ("(30 days)") => "a family's absolute lifetime: no rotation carries a refresh token past login + this",
        REFRESH_REUSE_GRACE_MS = "0" ("(off)") => "duplicate refreshes within this window get the same successor instead of revoking the family (two tabs refreshing at once); at most 60000",
        REFRESH_RETRY_WINDOW_SECS = "30" => "a retried refresh whose answer was never produced, from the same address within this long, gets that answer again instead of revoking (0: off; at most 300)",
        REDIS_WAIT_REPLICAS = "0" => "replicas that must confirm a login, rotation, revocation or new session (`WAIT`) before the answer; fewer is a 503",
        REDIS_WAIT_TIMEOUT_MS = "500" => "how long to wait for them (1 to 900)",
        LOGIN_HASH_WORKERS = _ ("CPU count, at most 8") => "Argon2id hashes running at once, at most (each holds 19 MiB)",
        LOGIN_QUEUE = "64" => "logins waiting for a hash worker; past that, 503 `overloaded` at once",
        LOGIN_QUEUE_WAIT_MS = "2000" => "how long a login waits for a worker before 503 `overloaded`",
        LOGIN_MAX_FAILURES_PER_USER = "5" => "failed logins per username per window before 429",
        LOGIN_MAX_FAILURES_PER_ADDR = "20" => "failed logins per client address per window before 429",
        LOGIN_WINDOW_SECS = "60" => "the login-throttling window",
        KEY_PATH = "data/issuer-key.pem" => "private key; generated there with mode 0600 if missing",
        KEY_NEXT_PATH = _ ("unset") => "a read-only key (an orchestrator's secret) to publish before it signs: step 1 of a secret rotation",
        KEY_PREVIOUS_PATH = _ ("unset") => "a read-only key that signed before `KEY_PATH`: published and trusted for refresh tokens while mounted (step 2)",
        KEY_BITS = "2048" => "size of a generated key (2048, 3072, 4096)",
        KEY_RELOAD_SECS = "2" => "how often the key files are re-read, to notice `auth-issuer rotate-key`",
        KEY_PUBLISH_SECS = "90" => "`rotate-key` publishes the new key this long before it signs; must exceed the replicas' `JWKS_REFRESH_SECS` + `KEY_RELOAD_SECS` + one fetch (2 s), so no replica meets its `kid` unprepared",
        USERS_FILE = _ ("built-in demo users") => "JSON `{\"users\":[{\"username\",\"name\",\"roles\",\"password_hash\"}]}`; hashes from `auth-issuer hash-password`",
        SESSION_MAX_TTL_SECS = "28800" ("(8 hours)") => "absolute session lifetime; at least `SESSION_IDLE_TTL_SECS`",
        COOKIE_SECURE = "false" => "add `Secure` to the cookie; off because the local demo is plain http on 127.0.0.1; turn it on behind HTTPS",
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub issuer_id: String,
    pub tokens: TokenParties,
    pub client_id: String,
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub refresh_max_ttl: u64,
    pub refresh_grace_ms: u64,
    pub refresh_retry_window_secs: u64,
    pub redis_acks: Acks,
    pub hashing: HashingLimits,
    pub redis: RedisSettings,
    pub key_path: PathBuf,
    pub key_next_path: Option<PathBuf>,
    pub key_previous_path: Option<PathBuf>,
    pub key_bits: KeyBits,
    pub key_reload_secs: u64,
    pub key_publish_secs: u64,
    pub users_file: Option<PathBuf>,
    pub session_idle_ttl: u64,
    pub session_max_ttl: u64,
    pub cookie_secure: bool,
    pub login_limits: LoginLimits,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let service = ServiceSettings::from_env(&LISTEN_ADDR)?;
        let settings = Settings {
            issuer_id: ISSUER_ID.optional().unwrap_or_else(|| {
                auth_core::service::default_instance_id(service.listen, "issuer")
            }),
            service,
            tokens: TokenParties::from_env()?,
            client_id: CLIENT_ID.string(),
            access_ttl: ACCESS_TTL_SECS.parse()?,
            refresh_ttl: REFRESH_TTL_SECS.parse()?,
            refresh_max_ttl: REFRESH_MAX_TTL_SECS.parse()?,
            refresh_grace_ms: REFRESH_REUSE_GRACE_MS.parse()?,
            refresh_retry_window_secs: REFRESH_RETRY_WINDOW_SECS.parse()?,
            redis_acks: Acks {
                replicas: REDIS_WAIT_REPLICAS.parse()?,
                timeout_ms: REDIS_WAIT_TIMEOUT_MS.parse()?,
            },
            hashing: HashingLimits {
                workers: LOGIN_HASH_WORKERS.parse_or(default_hash_workers())?,
                queue: LOGIN_QUEUE.parse()?,
                wait: std::time::Duration::from_millis(LOGIN_QUEUE_WAIT_MS.parse()?),
            },
            redis: RedisSettings::from_env()?,
            key_path: KEY_PATH.string().into(),
            key_next_path: KEY_NEXT_PATH.optional().map(PathBuf::from),
            key_previous_path: KEY_PREVIOUS_PATH.optional().map(PathBuf::from),
            key_bits: KEY_BITS.parse()?,
            key_reload_secs: KEY_RELOAD_SECS.parse::<u64>()?.max(1),
            key_publish_secs: KEY_PUBLISH_SECS.parse()?,
            users_file: USERS_FILE.optional().map(PathBuf::from),
            session_idle_ttl: env::session_idle_ttl()?,
            session_max_ttl: SESSION_MAX_TTL_SECS.parse()?,
            cookie_secure: COOKIE_SECURE.flag()?,
            login_limits: LoginLimits {
                per_user: LOGIN_MAX_FAILURES_PER_USER.parse()?,
                per_addr: LOGIN_MAX_FAILURES_PER_ADDR.parse()?,
                window_secs: LOGIN_WINDOW_SECS.parse()?,
            },
        };
        settings.check()?;
        Ok(settings)
    }

    /// The key files at `KEY_PATH`, generating keys of `KEY_BITS`.
    pub fn key_files(&self) -> KeyFiles {
        KeyFiles {
            path: self.key_path.clone(),
            bits: self.key_bits,
            next: self.key_next_path.clone(),
            previous: self.key_previous_path.clone(),
        }
    }

    /// How long retired keys stay trusted: as long as the tokens they signed.
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.access_ttl >= 1, "ACCESS_TTL_SECS must be at least 1");
        anyhow::ensure!(
            self.refresh_ttl > self.access_ttl,
            "REFRESH_TTL_SECS must be longer than ACCESS_TTL_SECS"
        );
        anyhow::ensure!(
            self.session_max_ttl >= self.session_idle_ttl,
            "SESSION_MAX_TTL_SECS must be at least SESSION_IDLE_TTL_SECS"
        );
        anyhow::ensure!(
            self.refresh_max_ttl >= self.refresh_ttl,
            "REFRESH_MAX_TTL_SECS must be at least REFRESH_TTL_SECS"
        );
        anyhow::ensure!(
            self.refresh_retry_window_secs <= 300,
            "REFRESH_RETRY_WINDOW_SECS must be at most 300: it is for lost answers, not replays"
        );
        anyhow::ensure!(
            self.redis_acks.timeout_ms <= 900,
            "REDIS_WAIT_TIMEOUT_MS must be at most 900 (every store operation has a 1 s deadline)"
        );
        // WAIT with a timeout of 0 waits for ever: the write's answer would hang on a lagging
        // replica instead of failing closed.
        anyhow::ensure!(
            self.redis_acks.replicas == 0 || self.redis_acks.timeout_ms >= 1,
            "REDIS_WAIT_TIMEOUT_MS must be at least 1 when REDIS_WAIT_REPLICAS is set (0 means wait for ever)"
        );
        anyhow::ensure!(
            self.hashing.workers >= 1 && self.hashing.queue >= 1,
            "LOGIN_HASH_WORKERS and LOGIN_QUEUE must be at least 1"
        );
        anyhow::ensure!(
            self.refresh_grace_ms <= 60_000,
            "REFRESH_REUSE_GRACE_MS must be at most 60000: it is for concurrent duplicates, not replays"
        );
        let limits = &self.login_limits;
        anyhow::ensure!(
            limits.per_user >= 1 && limits.per_addr >= 1 && limits.window_secs >= 1,
            "LOGIN_MAX_FAILURES_PER_USER, LOGIN_MAX_FAILURES_PER_ADDR and LOGIN_WINDOW_SECS must be at least 1"
        );
        anyhow::ensure!(
            self.key_publish_secs > self.key_reload_secs,
            "KEY_PUBLISH_SECS must exceed KEY_RELOAD_SECS: a new key must be in every issuer's JWKS before any issuer signs with it"
        );
        Ok(())
    }
}

/// One Argon2id hash per core, but never more than [`MAX_DEFAULT_HASH_WORKERS`] by default: the
/// workers' buffers are the issuer's largest memory, and a bound that grew with the machine's
/// cores would be no bound (a 64-core host would hold 64 buffers of 19 MiB). More is a choice an
/// operator makes with `LOGIN_HASH_WORKERS`.
fn default_hash_workers() -> usize {
    hash_workers_for(std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// [`default_hash_workers`] on a machine with `cores` cores.
fn hash_workers_for(cores: usize) -> usize {
    cores.clamp(1, MAX_DEFAULT_HASH_WORKERS)
}

/// See [`default_hash_workers`]: 8 buffers of 19 MiB stay well inside 256 MiB.
const MAX_DEFAULT_HASH_WORKERS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_number_of_hash_workers_is_bounded_whatever_the_cores() {
        assert_eq!(hash_workers_for(2), 2);
        assert_eq!(hash_workers_for(8), MAX_DEFAULT_HASH_WORKERS);
        assert_eq!(hash_workers_for(64), MAX_DEFAULT_HASH_WORKERS);
        assert!((1..=MAX_DEFAULT_HASH_WORKERS).contains(&default_hash_workers()));
    }

    #[test]
    fn defaults_alone_are_valid() {
        // The test process sets none of the issuer's variables: every declared default is read.
        let settings = Settings::from_env().expect("the declared defaults make valid settings");
        assert_eq!(settings.access_ttl, 300);
        assert_eq!(settings.service.listen.port(), 9000);
    }

    #[test]
    fn a_wait_that_could_block_for_ever_is_refused() {
        let mut settings = Settings::from_env().expect("the declared defaults make valid settings");
        settings.redis_acks = Acks {
            replicas: 1,
            timeout_ms: 0,
        };
        let error = settings.check().unwrap_err().to_string();
        assert!(
            error.contains("REDIS_WAIT_TIMEOUT_MS must be at least 1"),
            "{error}"
        );
        settings.redis_acks.timeout_ms = 1;
        assert!(settings.check().is_ok());
        // With nobody to wait for, the timeout is not used.
        settings.redis_acks = Acks {
            replicas: 0,
            timeout_ms: 0,
        };
        assert!(settings.check().is_ok());
    }

    #[test]
    fn docs_table_matches() {
        auth_core::settings_doc::check("issuer", SETTINGS);
    }
}
