//! Settings from environment variables, and the settings both services share.
//!
//! Every service reads its configuration from the environment (twelve-factor style), so the same
//! binary runs under `cargo xtask up`, the tests and docker compose. Each setting has a
//! documented default; a value that is present but unreadable stops the service at start-up with
//! a message naming the variable, rather than being silently replaced by the default.
//!
//! The readers ([`string`], [`optional`], [`parse`], [`flag`]) are the only way a service reads
//! a variable. Settings the issuer and the replicas must agree on are read here, once, with one
//! default each: where a service listens and how it logs and limits requests
//! ([`ServiceSettings`]), who signs tokens and who they are for ([`TokenParties`]), the Redis
//! connection ([`RedisSettings`]) and a session's idle timeout ([`session_idle_ttl`]). Were they
//! read in each service, a default changed in one place would silently split the two.

use crate::limits::RequestLimits;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::str::FromStr;

/// The variable's value, or `default` when it is unset or empty.
pub fn string(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => default.to_owned(),
    }
}

/// The variable's value, or `None` when it is unset or empty.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The variable parsed as `T`, or `default` when unset; an unparsable value is an error.
pub fn parse<T>(name: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse_value(name, optional(name), default)
}

/// The pure half of [`parse`], apart from the environment so it can be tested.
fn parse_value<T>(name: &str, raw: Option<String>, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match raw {
        None => Ok(default),
        Some(v) => v
            .parse::<T>()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("environment variable {name}={v:?} is not valid")),
    }
}

/// A boolean: `1/true/yes/on` or `0/false/no/off`, any case.
pub fn flag(name: &str, default: bool) -> anyhow::Result<bool> {
    match optional(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
        Some(v) => bail!("environment variable {name}={v:?} is not a boolean (use true or false)"),
    }
}

/// How logs are written: human-readable lines, or one JSON object per line for log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pretty" | "text" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (use pretty or json)")),
        }
    }
}

/// What the service scaffold ([`crate::service`]) needs from every service's settings.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// `LISTEN_ADDR`: each service has its own default (they share a host in development).
    pub listen: SocketAddr,
    /// `LOG_FORMAT`: `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// `MAX_CONCURRENT_REQUESTS` and `REQUEST_TIMEOUT_SECS` (see [`RequestLimits`]).
    pub limits: RequestLimits,
}

impl ServiceSettings {
    /// Read from the environment; `default_listen` is the service's own `LISTEN_ADDR` default.
    pub fn from_env(default_listen: SocketAddr) -> anyhow::Result<Self> {
        Ok(ServiceSettings {
            listen: listen_addr(default_listen)?,
            log_format: parse("LOG_FORMAT", LogFormat::Pretty)?,
            limits: RequestLimits::from_env()?,
        })
    }
}

/// `LISTEN_ADDR`, or `default`. Read alone by `healthcheck`, which needs nothing else.
pub fn listen_addr(default: SocketAddr) -> anyhow::Result<SocketAddr> {
    parse("LISTEN_ADDR", default)
}

/// Who signs the tokens (`iss`) and who they are for (`aud`). The issuer writes these into every
/// token and a replica accepts no others, so both read them here.
#[derive(Debug, Clone)]
pub struct TokenParties {
    /// `ISSUER_URL`: the public URL clients reach the issuer at.
    pub issuer: String,
    /// `AUDIENCE`: the replicas' name.
    pub audience: String,
}

impl TokenParties {
    pub fn from_env() -> anyhow::Result<Self> {
        let parties = TokenParties {
            issuer: string("ISSUER_URL", "http://127.0.0.1:8080"),
            audience: string("AUDIENCE", "authscale-api"),
        };
        // Refresh tokens name the issuer as their audience: were the two equal, a refresh token
        // would be an access token's audience too.
        anyhow::ensure!(
            parties.audience != parties.issuer,
            "AUDIENCE must differ from ISSUER_URL: refresh tokens use the issuer as their audience"
        );
        Ok(parties)
    }
}

/// The Redis connection: the issuer's store, and a session replica's. Its `Debug` leaves the
/// URLs out: they carry the password, and a settings struct is the kind of thing someone prints
/// with `{:?}` while debugging.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `REDIS_URL`, or the nodes of `REDIS_CLUSTER_NODES`, with `REDIS_USERNAME` and the
    /// password filled in ([`crate::store_credentials`]).
    pub target: crate::store::Target,
}

impl RedisSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(RedisSettings {
            target: crate::store_credentials::redis_target_from_env()?,
        })
    }
}

/// `SESSION_IDLE_TTL_SECS` (default 1800): the issuer sets it on a new session and a session
/// replica renews it on every use, so both must hold the same value.
pub fn session_idle_ttl() -> anyhow::Result<u64> {
    let secs = parse("SESSION_IDLE_TTL_SECS", 1800)?;
    anyhow::ensure!(secs >= 1, "SESSION_IDLE_TTL_SECS must be at least 1");
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Environment variables are process-global; each test uses its own names.

    #[test]
    fn unset_gives_default_and_garbage_gives_an_error_naming_the_variable() {
        assert_eq!(parse::<u64>("AUTHCORE_TEST_UNSET", 7).unwrap(), 7);
        assert_eq!(parse_value("X", Some("12".into()), 7u64).unwrap(), 12);
        let err = parse_value("ACCESS_TTL_SECS", Some("5m".into()), 7u64).unwrap_err();
        assert!(format!("{err:#}").contains("ACCESS_TTL_SECS=\"5m\""));
    }

    #[test]
    fn the_redis_password_never_shows_in_debug_output() {
        use crate::store::Target;
        let url = "redis://issuer:s3cret-pass@127.0.0.1:6379".to_owned();
        for target in [
            Target::Node(url.clone()),
            Target::Cluster(vec![url.clone(), url]),
        ] {
            let shown = format!("{:?}", RedisSettings { target });
            assert!(!shown.contains("s3cret-pass"), "{shown}");
        }
    }

    #[test]
    fn log_format_parses_both_spellings() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("pretty".parse::<LogFormat>().unwrap(), LogFormat::Pretty);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
