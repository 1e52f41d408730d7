//! The issuer's settings, read once from the environment at start-up.
//!
//! The ones the replicas share (listening, logging, request limits, `ISSUER_URL`, `AUDIENCE`,
//! Redis, the session idle timeout) are read by `auth_core::settings`, with the same defaults
//! in both services; the rest are the issuer's own.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LISTEN_ADDR` | `127.0.0.1:9000` | where the issuer listens |
//! | `ISSUER_ID` | `<host name>:<port>` | this issuer's name, sent back in `X-Issuer` (several issuers share one `ISSUER_URL`) |
//! | `ISSUER_URL` | `http://127.0.0.1:8080` | `iss` of every token: the public URL clients reach the issuer at |
//! | `AUDIENCE` | `authscale-api` | `aud` of access tokens: the replicas' name |
//! | `CLIENT_ID` | `authscale-demo` | `client_id` claim of access tokens (RFC 9068) |
//! | `ACCESS_TTL_SECS` | `300` | access-token lifetime (5 minutes) |
//! | `REFRESH_TTL_SECS` | `1209600` | refresh-token lifetime (14 days) |
//! | `REFRESH_MAX_TTL_SECS` | `2592000` (30 days) | a family's absolute lifetime: no rotation carries a refresh token past login + this |
//! | `REFRESH_REUSE_GRACE_MS` | `0` (off) | a duplicate refresh within this many ms of the first gets the same new pair instead of revoking the family |
//! | `REFRESH_RETRY_WINDOW_SECS` | `30` | a retry of a refresh whose answer was never produced, from the same client address within this long, gets that answer again instead of revoking (0: off) |
//! | `REDIS_WAIT_REPLICAS` | `0` | replicas that must confirm a rotation, revocation or new session (`WAIT`) before the answer; fewer is a 503 |
//! | `REDIS_WAIT_TIMEOUT_MS` | `500` | how long to wait for them (at most 900) |
//! | `LOGIN_HASH_WORKERS` | CPU count, at most 8 | Argon2id hashes running at once, at most; each holds its own 19 MiB |
//! | `LOGIN_QUEUE` | `64` | logins waiting for a hash worker, at most; past that, 503 `overloaded` at once |
//! | `LOGIN_QUEUE_WAIT_MS` | `2000` | how long a login waits for a worker before 503 `overloaded` |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | the store of refresh families, login counters and sessions |
//! | `REDIS_CLUSTER_NODES` | (unset) | instead of `REDIS_URL`: a Redis Cluster, as a comma-separated list of some of its nodes' URLs |
//! | `REDIS_USERNAME` | (unset: `default`) | the Redis ACL user to log in as |
//! | `REDIS_PASSWORD_FILE` | (unset) | a file holding its password (see `auth_core::store_credentials`) |
//! | `REDIS_PASSWORD` | (unset) | the password itself, where a file is not practical |
//! | `KEY_PATH` | `data/issuer-key.pem` | the private key; generated there (mode 0600) if missing |
//! | `KEY_NEXT_PATH` | (unset) | a read-only key (an orchestrator's secret) to publish before it signs: step 1 of a secret rotation |
//! | `KEY_PREVIOUS_PATH` | (unset) | a read-only key that signed before `KEY_PATH`: published and trusted for refresh tokens while mounted (step 2) |
//! | `KEY_BITS` | `2048` | size of a generated key: 2048, 3072 or 4096 |
//! | `KEY_RELOAD_SECS` | `2` | how often the key files are re-read to notice a rotation |
//! | `KEY_PUBLISH_SECS` | `90` | `rotate-key` publishes the new key this long before it signs; must exceed the replicas' `JWKS_REFRESH_SECS` (60) + `KEY_RELOAD_SECS` + one JWKS fetch, so every replica holds the key before its first token |
//! | `USERS_FILE` | (built-in demo users) | JSON file of users with Argon2id hashes |
//! | `SESSION_IDLE_TTL_SECS` | `1800` | a session expires after this long unused |
//! | `SESSION_MAX_TTL_SECS` | `28800` | and after this long in any case |
//! | `COOKIE_SECURE` | `false` | add `Secure` to the `sid` cookie (turn on behind HTTPS) |
//! | `LOGIN_MAX_FAILURES_PER_USER` | `5` | failed logins per username per window before 429 |
//! | `LOGIN_MAX_FAILURES_PER_ADDR` | `20` | failed logins per client address per window before 429 |
//! | `LOGIN_WINDOW_SECS` | `60` | the throttling window |
//! | `LOG_FORMAT` | `pretty` | `pretty` or `json` |

use crate::hash_pool::HashingLimits;
use crate::key_files::KeyFiles;
use crate::keyring::Lifetimes;
use crate::throttle::LoginLimits;
use auth_core::keys::KeyBits;
use auth_core::settings::{self as env, RedisSettings, ServiceSettings, TokenParties};
use auth_core::store::Acks;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

/// Where the issuer listens when `LISTEN_ADDR` is unset.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9000));

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
        let service = ServiceSettings::from_env(DEFAULT_LISTEN)?;
        let settings = Settings {
            issuer_id: env::optional("ISSUER_ID").unwrap_or_else(|| {
                auth_core::service::default_instance_id(service.listen, "issuer")
            }),
            service,
            tokens: TokenParties::from_env()?,
            client_id: env::string("CLIENT_ID", "authscale-demo"),
            access_ttl: env::parse("ACCESS_TTL_SECS", 300)?,
            refresh_ttl: env::parse("REFRESH_TTL_SECS", 14 * 24 * 3600)?,
            refresh_max_ttl: env::parse("REFRESH_MAX_TTL_SECS", 30 * 24 * 3600)?,
            refresh_grace_ms: env::parse("REFRESH_REUSE_GRACE_MS", 0)?,
            refresh_retry_window_secs: env::parse("REFRESH_RETRY_WINDOW_SECS", 30)?,
            redis_acks: Acks {
                replicas: env::parse("REDIS_WAIT_REPLICAS", 0)?,
                timeout_ms: env::parse("REDIS_WAIT_TIMEOUT_MS", 500)?,
            },
            hashing: HashingLimits {
                workers: env::parse("LOGIN_HASH_WORKERS", default_hash_workers())?,
                queue: env::parse("LOGIN_QUEUE", 64)?,
                wait: std::time::Duration::from_millis(env::parse("LOGIN_QUEUE_WAIT_MS", 2000)?),
            },
            redis: RedisSettings::from_env()?,
            key_path: env::string("KEY_PATH", "data/issuer-key.pem").into(),
            key_next_path: env::optional("KEY_NEXT_PATH").map(PathBuf::from),
            key_previous_path: env::optional("KEY_PREVIOUS_PATH").map(PathBuf::from),
            key_bits: env::parse("KEY_BITS", KeyBits::B2048)?,
            key_reload_secs: env::parse("KEY_RELOAD_SECS", 2u64)?.max(1),
            key_publish_secs: env::parse("KEY_PUBLISH_SECS", 90)?,
            users_file: env::optional("USERS_FILE").map(PathBuf::from),
            session_idle_ttl: env::session_idle_ttl()?,
            session_max_ttl: env::parse("SESSION_MAX_TTL_SECS", 8 * 3600)?,
            cookie_secure: env::flag("COOKIE_SECURE", false)?,
            login_limits: LoginLimits {
                per_user: env::parse("LOGIN_MAX_FAILURES_PER_USER", 5)?,
                per_addr: env::parse("LOGIN_MAX_FAILURES_PER_ADDR", 20)?,
                window_secs: env::parse("LOGIN_WINDOW_SECS", 60)?,
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
}
