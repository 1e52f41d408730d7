//! A replica's settings, read once from the environment at start-up.
//!
//! The ones the issuer shares (listening, logging, request limits, `ISSUER_URL`, `AUDIENCE`,
//! Redis, the session idle timeout) are read by `auth_core::settings`, with the same defaults
//! in both services; the rest are the replica's own.
//!
//! Each setting is declared once, below in [`SETTINGS`], with its default and meaning: the
//! reading code uses that declaration, and docs/CONFIGURATION.md's replica table is written from
//! it (`cargo xtask settings-doc`; the `docs_table_matches` test fails when they differ).

use auth_core::service;
use auth_core::settings::{self as env, RedisSettings, ServiceSettings, TokenParties};
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

auth_core::settings! {
    /// A replica's own settings; the ones it shares with the issuer are
    /// [`auth_core::settings::SHARED`].
    pub SETTINGS {
        LISTEN_ADDR = "127.0.0.1:9100" => "where the replica listens",
        API_MODE = "jwt" => "`jwt`: verify bearer tokens locally; `session`: look the `sid` cookie up in Redis",
        REPLICA_ID = _ ("`<hostname>:<port>`") => "the `X-Replica` value",
        JWKS_URL = _ ("unset: found through discovery") => "where public keys come from",
        JWKS_FILE = _ ("unset") => "read the JWKS from a file instead",
        DISCOVERY_URL = _ ("unset: `ISSUER_URL`") => "with neither `JWKS_URL` nor `JWKS_FILE`: where the replica reaches the issuer to read `/.well-known/openid-configuration`, when not at `ISSUER_URL` (see below); set together with either of them, the replica does not start",
        DISCOVERY_TIMEOUT_SECS = "60" => "with discovery: if no keys are loaded within this long (document refused or unreachable, JWKS unreachable), the replica exits with the reason",
        JWKS_REFETCH_SECS = "5" => "an unknown `kid` refetches the JWKS at most this often",
        JWKS_REFRESH_SECS = "60" => "the JWKS is re-read this often anyway: a key retired or revoked by the issuer is dropped within it",
        LEEWAY_SECS = "30" => "clock-skew allowance on `exp`/`nbf`, at most 30",
        WORKER_THREADS = _ ("CPU count") => "tokio worker threads (1 for CPU-quota experiments)",
        TOKEN_CACHE = "off" => "`on`: remember verified access tokens until their `exp` (at most 10 000, in a moka cache keyed by the issuer and the token's SHA-256); entries of a key that leaves the JWKS, or whose `kid` comes to name other key material, are never served again (`crates/api/src/token_cache.rs`)",
    }
}

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
        let service = ServiceSettings::from_env(&LISTEN_ADDR)?;
        let tokens = TokenParties::from_env()?;
        // A DISCOVERY_URL that is silently ignored would leave its operator believing the keys
        // come from somewhere they do not.
        anyhow::ensure!(
            DISCOVERY_URL.optional().is_none()
                || (JWKS_URL.optional().is_none() && JWKS_FILE.optional().is_none()),
            "DISCOVERY_URL is used only without JWKS_URL and JWKS_FILE: set one way to find the keys"
        );
        let jwks = match (JWKS_FILE.optional(), JWKS_URL.optional()) {
            (Some(path), _) => JwksSource::File(path.into()),
            (None, Some(url)) => JwksSource::Url(url),
            (None, None) => {
                let timeout: u64 = DISCOVERY_TIMEOUT_SECS.parse()?;
                anyhow::ensure!(timeout >= 1, "DISCOVERY_TIMEOUT_SECS must be at least 1");
                JwksSource::Discovery(Discovery {
                    issuer: tokens.issuer.clone(),
                    reach_at: DISCOVERY_URL.optional(),
                    timeout: Duration::from_secs(timeout),
                })
            }
        };
        let leeway_secs: u64 = LEEWAY_SECS.parse()?;
        anyhow::ensure!(
            leeway_secs <= auth_core::verify::MAX_LEEWAY_SECS,
            "LEEWAY_SECS must be at most 30 (RFC 8725 asks for a small leeway)"
        );
        let jwks_refresh_secs: u64 = JWKS_REFRESH_SECS.parse()?;
        anyhow::ensure!(
            jwks_refresh_secs >= 1,
            "JWKS_REFRESH_SECS must be at least 1"
        );
        Ok(Settings {
            mode: API_MODE.parse()?,
            replica_id: REPLICA_ID
                .optional()
                .unwrap_or_else(|| service::default_instance_id(service.listen, "replica")),
            service,
            tokens,
            jwks,
            jwks_refetch_secs: JWKS_REFETCH_SECS.parse()?,
            jwks_refresh_secs,
            leeway_secs,
            redis: RedisSettings::from_env()?,
            session_idle_ttl: env::session_idle_ttl()?,
            worker_threads: WORKER_THREADS.parse_optional()?,
            token_cache: TOKEN_CACHE.flag()?,
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

    #[test]
    fn defaults_alone_are_valid() {
        // The test process sets none of a replica's variables: every declared default is read.
        let settings = Settings::from_env().expect("the declared defaults make valid settings");
        assert_eq!(settings.mode, Mode::Jwt);
        assert!(!settings.token_cache);
        assert_eq!(settings.service.listen.port(), 9100);
    }

    #[test]
    fn docs_table_matches() {
        auth_core::settings_doc::check("api", SETTINGS);
    }
}
