//! A replica's settings, read once from the environment at start-up.
//!
//! The ones the issuer shares (listening, logging, request limits, `ISSUER_URL`, `AUDIENCE`,
//! Redis, the session idle timeout) are read by `auth_core::settings`, with the same defaults
//! in both services; the rest are the replica's own.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `LISTEN_ADDR` | `127.0.0.1:9100` | where the replica listens |
//! | `API_MODE` | `jwt` | `jwt`: verify bearer tokens locally; `session`: look the `sid` cookie up in Redis |
//! | `REPLICA_ID` | `<host name>:<port>` | sent back in `X-Replica` |
//! | `ISSUER_URL` | `http://127.0.0.1:8080` | the only `iss` accepted |
//! | `AUDIENCE` | `authscale-api` | the only `aud` accepted |
//! | `JWKS_URL` | (unset: discovery) | where public keys come from (jwt mode) |
//! | `JWKS_FILE` | (unset) | read keys from this file instead of `JWKS_URL` |
//! | `DISCOVERY_URL` | (unset: `ISSUER_URL`) | with neither of the two above, fetch `<this>/.well-known/openid-configuration` (see `discovery.rs`); an error with either of them |
//! | `DISCOVERY_TIMEOUT_SECS` | `60` | discovery and the first JWKS load must succeed within this long, or the replica exits |
//! | `JWKS_REFETCH_SECS` | `5` | an unknown `kid` refetches the JWKS at most this often |
//! | `JWKS_REFRESH_SECS` | `60` | the JWKS is re-read this often anyway: a key revoked or retired by the issuer is dropped within it |
//! | `LEEWAY_SECS` | `30` | clock skew allowed on `exp`/`nbf` (at most 30) |
//! | `REDIS_URL` | `redis://127.0.0.1:6379` | the session store (session mode) |
//! | `REDIS_CLUSTER_NODES` | (unset) | instead of `REDIS_URL`: a Redis Cluster, as a comma-separated list of some of its nodes' URLs |
//! | `REDIS_USERNAME` | (unset: `default`) | the Redis ACL user to log in as |
//! | `REDIS_PASSWORD_FILE` | (unset) | a file holding its password (see `auth_core::store_credentials`) |
//! | `REDIS_PASSWORD` | (unset) | the password itself, where a file is not practical |
//! | `SESSION_IDLE_TTL_SECS` | `1800` | a session's idle timeout, renewed on each use |
//! | `WORKER_THREADS` | number of CPUs | tokio worker threads (1 for CPU-quota experiments) |
//! | `TOKEN_CACHE` | `off` | `on`: remember verified access tokens until they expire (see `token_cache.rs`) |
//! | `LOG_FORMAT` | `pretty` | `pretty` or `json` |

use auth_core::service;
use auth_core::settings::{self as env, RedisSettings, ServiceSettings, TokenParties};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How a replica learns who is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Verify the bearer access token with the issuer's public key: no shared state.
    Jwt,
    /// Look the `sid` cookie up in Redis on every request.
    Session,
}

impl Mode {
    /// The path prefix the mode serves under, as the contract names it.
    pub fn prefix(self) -> &'static str {
        match self {
            Mode::Jwt => "/api",
            Mode::Session => "/sapi",
        }
    }

    /// The `auth` field of `/me`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Jwt => "jwt",
            Mode::Session => "session",
        }
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "jwt" | "token" => Ok(Mode::Jwt),
            "session" => Ok(Mode::Session),
            other => Err(format!("unknown API_MODE {other:?} (use jwt or session)")),
        }
    }
}

/// Where the public keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    /// `JWKS_URL`: this URL, as it is.
    Url(String),
    /// `JWKS_FILE`: this file.
    File(PathBuf),
    /// Neither: ask the issuer's discovery document where its JWKS is (`discovery.rs`).
    Discovery(Discovery),
}

/// How to find the JWKS from the issuer URL alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// `ISSUER_URL`: the discovery document's `issuer` must equal it exactly.
    pub issuer: String,
    /// `DISCOVERY_URL`, when set: where this replica reaches the issuer, if not at `issuer`
    /// (in compose, the issuer's address inside the network rather than its public one).
    pub reach_at: Option<String>,
    /// How long discovery and the first JWKS load may take before the replica gives up.
    pub timeout: Duration,
}

/// Where a replica listens when `LISTEN_ADDR` is unset.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 9100));

#[derive(Debug, Clone)]
pub struct Settings {
    pub service: ServiceSettings,
    pub mode: Mode,
    pub replica_id: String,
    pub tokens: TokenParties,
    pub jwks: JwksSource,
    pub jwks_refetch_secs: u64,
    pub jwks_refresh_secs: u64,
    pub leeway_secs: u64,
    pub redis: RedisSettings,
    pub session_idle_ttl: u64,
    pub worker_threads: Option<usize>,
    pub token_cache: bool,
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Self> {
        let service = ServiceSettings::from_env(DEFAULT_LISTEN)?;
        let tokens = TokenParties::from_env()?;
        // A DISCOVERY_URL that is silently ignored would leave its operator believing the keys
        // come from somewhere they do not.
        anyhow::ensure!(
            env::optional("DISCOVERY_URL").is_none()
                || (env::optional("JWKS_URL").is_none() && env::optional("JWKS_FILE").is_none()),
            "DISCOVERY_URL is used only without JWKS_URL and JWKS_FILE: set one way to find the keys"
        );
        let jwks = match (env::optional("JWKS_FILE"), env::optional("JWKS_URL")) {
            (Some(path), _) => JwksSource::File(path.into()),
            (None, Some(url)) => JwksSource::Url(url),
            (None, None) => {
                let timeout = env::parse("DISCOVERY_TIMEOUT_SECS", 60u64)?;
                anyhow::ensure!(timeout >= 1, "DISCOVERY_TIMEOUT_SECS must be at least 1");
                JwksSource::Discovery(Discovery {
                    issuer: tokens.issuer.clone(),
                    reach_at: env::optional("DISCOVERY_URL"),
                    timeout: Duration::from_secs(timeout),
                })
            }
        };
        let leeway_secs = env::parse("LEEWAY_SECS", 30u64)?;
        anyhow::ensure!(
            leeway_secs <= auth_core::verify::MAX_LEEWAY_SECS,
            "LEEWAY_SECS must be at most 30 (RFC 8725 asks for a small leeway)"
        );
        let jwks_refresh_secs = env::parse("JWKS_REFRESH_SECS", 60u64)?;
        anyhow::ensure!(
            jwks_refresh_secs >= 1,
            "JWKS_REFRESH_SECS must be at least 1"
        );
        Ok(Settings {
            mode: env::parse("API_MODE", Mode::Jwt)?,
            replica_id: env::optional("REPLICA_ID")
                .unwrap_or_else(|| service::default_instance_id(service.listen, "replica")),
            service,
            tokens,
            jwks,
            jwks_refetch_secs: env::parse("JWKS_REFETCH_SECS", 5)?,
            jwks_refresh_secs,
            leeway_secs,
            redis: RedisSettings::from_env()?,
            session_idle_ttl: env::session_idle_ttl()?,
            worker_threads: env::optional("WORKER_THREADS")
                .map(|_| env::parse("WORKER_THREADS", 1usize))
                .transpose()?,
            token_cache: env::flag("TOKEN_CACHE", false)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_name_their_prefix() {
        assert_eq!("JWT".parse::<Mode>().unwrap(), Mode::Jwt);
        assert_eq!("session".parse::<Mode>().unwrap().prefix(), "/sapi");
        assert!("cookie".parse::<Mode>().is_err());
    }
}
