//! Settings from environment variables, and the settings both services share.
//!
//! Every service reads its configuration from the environment (twelve-factor style), so the same
//! binary runs under `cargo xtask up`, the tests and docker compose. Each setting has a
//! documented default; a value that is present but unreadable stops the service at start-up with
//! a message naming the variable, rather than being silently replaced by the default.
//!
//! **Each setting is declared once**, as a [`Setting`]: its name, its default and what it means,
//! in a table made by the [`settings!`](crate::settings!) macro (this module's [`SHARED`], the
//! issuer's and a replica's `SETTINGS`). The same declaration is what the service reads the
//! variable with ([`Setting::parse`], [`Setting::string`], [`Setting::optional`],
//! [`Setting::flag`]) and what docs/CONFIGURATION.md's tables are written from
//! ([`crate::settings_doc`]), so the code's default, the docs' default and the docs' meaning
//! cannot drift apart: a unit test in each crate fails when the docs differ from its table.
//!
//! Settings the issuer and the replicas must agree on are read here, once, with one default
//! each: how a service logs and limits requests ([`ServiceSettings`]), who signs tokens and who
//! they are for ([`TokenParties`]), the Redis connection ([`RedisSettings`]) and a session's
//! idle timeout ([`session_idle_ttl`]). Were they read in each service, a default changed in one
//! place would silently split the two. `LISTEN_ADDR` is the exception: each service declares its
//! own, since they share a host in development and need different ports.

use crate::limits::RequestLimits;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::str::FromStr;

/// One environment variable a service reads: declared once (with [`settings!`](crate::settings!))
/// and used both to read the variable and to write its row of docs/CONFIGURATION.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The variable's name.
    pub name: &'static str,
    /// What an unset (or empty) variable stands for, written as one would set it. `None`: unset
    /// means "absent", or the default is computed at start-up ([`Setting::parse_or`]).
    pub default: Option<&'static str>,
    /// Shown in the docs after the default (`(14 days)`), or in its place when there is none
    /// (`CPU count, at most 8`).
    pub default_note: &'static str,
    /// What the setting does, as the docs say it (Markdown).
    pub meaning: &'static str,
}

/// Declare a table of [`Setting`]s: one `const` per setting, named as its variable, and one
/// `const` slice of them all, which the service's docs table is written from. Each entry is
/// `NAME = "default" => "meaning"`, or `NAME = _ => "meaning"` for a setting unset by default,
/// with an optional note in parentheses after the default:
///
/// ```
/// auth_core::settings! {
///     /// The example's settings.
///     pub EXAMPLE {
///         PORT = "8080" => "where to listen",
///         TTL_SECS = "1209600" ("(14 days)") => "how long a token lives",
///         WORKERS = _ ("CPU count") => "threads",
///     }
/// }
/// assert_eq!(EXAMPLE.len(), 3);
/// assert_eq!(TTL_SECS.default, Some("1209600"));
/// ```
#[macro_export]
macro_rules! settings {
    (@default _) => { None };
    (@default $value:literal) => { Some($value) };
    (@note) => { "" };
    (@note $note:literal) => { $note };
    (
        $(#[$attr:meta])*
        $vis:vis $table:ident {
            $( $name:ident = $default:tt $( ($note:literal) )? => $meaning:literal ),* $(,)?
        }
    ) => {
        $(
            $vis const $name: $crate::settings::Setting = $crate::settings::Setting {
                name: stringify!($name),
                default: $crate::settings!(@default $default),
                default_note: $crate::settings!(@note $($note)?),
                meaning: $meaning,
            };
        )*
        $(#[$attr])*
        $vis const $table: &[$crate::settings::Setting] = &[$($name),*];
    };
}

impl Setting {
    /// The variable's value, or `None` when it is unset or empty (the default is not used).
    pub fn optional(&self) -> Option<String> {
        std::env::var(self.name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The variable's value, or the default when it is unset or empty (`""` without one).
    pub fn string(&self) -> String {
        self.optional()
            .unwrap_or_else(|| self.default.unwrap_or_default().to_owned())
    }

    /// The variable parsed as `T`, or the default parsed when unset; an unparsable value is an
    /// error naming the variable.
    pub fn parse<T>(&self) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional() {
            Some(raw) => parse_value(self.name, Some(raw), None),
            None => self.parse_default(),
        }
    }

    /// The variable parsed as `T`, or `computed` when unset: for a default worked out at
    /// start-up (the declaration's note says how).
    pub fn parse_or<T>(&self, computed: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        parse_value(self.name, self.optional(), Some(computed))
    }

    /// The variable parsed as `T`, or `None` when unset: for a setting whose absence means
    /// "let the library decide" (the declaration's note says what that is).
    pub fn parse_optional<T>(&self) -> anyhow::Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.optional()
            .map(|raw| parse_value(self.name, Some(raw), None))
            .transpose()
    }

    /// A boolean: `1/true/yes/on` or `0/false/no/off`, any case; the default when unset.
    pub fn flag(&self) -> anyhow::Result<bool> {
        let raw = self.optional().or(self.default.map(str::to_owned));
        match raw.map(|v| v.to_ascii_lowercase()) {
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => bail!(
                "environment variable {}={v:?} is not a boolean (use true or false)",
                self.name
            ),
            None => bail!("{} is declared without a default", self.name),
        }
    }

    /// The declared default, parsed. An error here is the declaration's, not the operator's,
    /// and every default is read by the crates' `defaults_alone_are_valid` tests.
    fn parse_default<T>(&self) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let Some(default) = self.default else {
            bail!("{} is declared without a default", self.name)
        };
        default
            .parse::<T>()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("the declared default of {} is not valid", self.name))
    }
}

/// The pure half of [`Setting::parse_or`], apart from the environment so it can be tested.
fn parse_value<T>(name: &str, raw: Option<String>, default: Option<T>) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match (raw, default) {
        (None, Some(default)) => Ok(default),
        (None, None) => bail!("{name} is declared without a default"),
        (Some(v), _) => v
            .parse::<T>()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("environment variable {name}={v:?} is not valid")),
    }
}

crate::settings! {
    /// The settings both services read, with one default for both (`LISTEN_ADDR` is each
    /// service's own).
    pub SHARED {
        ISSUER_URL = "http://127.0.0.1:8080" => "`iss` of every token; the public URL of the issuer",
        AUDIENCE = "authscale-api" => "`aud` of access tokens; must differ from `ISSUER_URL` (refresh tokens use the issuer as their audience), or neither service starts",
        REDIS_URL = "redis://127.0.0.1:6379" => "the store: refresh families, login limits and sessions for the issuer, sessions for a session replica",
        REDIS_CLUSTER_NODES = _ ("unset") => "instead of `REDIS_URL` (not with it): a Redis Cluster, as a comma-separated list of some of its nodes' URLs; the client finds the others",
        REDIS_USERNAME = _ ("unset (`default`)") => "the Redis ACL user to log in as",
        REDIS_PASSWORD_FILE = _ ("unset") => "a file holding its password (one trailing newline ignored); compose mounts one per service",
        REDIS_PASSWORD = _ ("unset") => "the password itself, where a file is not practical (not with `REDIS_PASSWORD_FILE`)",
        SESSION_IDLE_TTL_SECS = "1800" => "session idle timeout, renewed on each request; at least 1, or neither service starts",
        MAX_CONCURRENT_REQUESTS = "1024" => "requests in flight (all routes together) before new ones are shed with 503; `/healthz`, `/readyz` and `/metrics` do not count and are not shed (they have 32 slots of their own)",
        REQUEST_TIMEOUT_SECS = "10" => "a request taking longer is answered 503 (behind the project's nginx, a try on a replica ends at 3 s and a GET goes to another replica)",
        LOG_FORMAT = "pretty" => "`pretty`, or `json` for one JSON object per line",
        RUST_LOG = "info" => "log filter",
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
    /// Read from the environment; `listen` is the service's own `LISTEN_ADDR` declaration.
    pub fn from_env(listen: &Setting) -> anyhow::Result<Self> {
        Ok(ServiceSettings {
            listen: listen.parse()?,
            log_format: LOG_FORMAT.parse()?,
            limits: RequestLimits::from_env()?,
        })
    }
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
            issuer: ISSUER_URL.string(),
            audience: AUDIENCE.string(),
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
    let secs: u64 = SESSION_IDLE_TTL_SECS.parse()?;
    anyhow::ensure!(secs >= 1, "SESSION_IDLE_TTL_SECS must be at least 1");
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Environment variables are process-global; each test uses its own names.

    #[test]
    fn unset_gives_default_and_garbage_gives_an_error_naming_the_variable() {
        assert_eq!(UNSET.parse::<u64>().unwrap(), 7);
        assert_eq!(UNSET.parse_or::<u64>(9).unwrap(), 9);
        assert_eq!(parse_value("X", Some("12".into()), Some(7u64)).unwrap(), 12);
        let err = parse_value("ACCESS_TTL_SECS", Some("5m".into()), Some(7u64)).unwrap_err();
        assert!(format!("{err:#}").contains("ACCESS_TTL_SECS=\"5m\""));
    }

    crate::settings! {
        TEST_TABLE {
            AUTHCORE_TEST_UNSET = "7" => "a variable no one sets",
            AUTHCORE_TEST_NO_DEFAULT = _ ("unset") => "nor this one",
            AUTHCORE_TEST_BAD_DEFAULT = "seven" => "a declaration's mistake",
        }
    }
    const UNSET: Setting = AUTHCORE_TEST_UNSET;

    #[test]
    fn a_missing_or_bad_default_is_an_error_naming_the_declaration() {
        assert_eq!(TEST_TABLE.len(), 3);
        let err = AUTHCORE_TEST_NO_DEFAULT.parse::<u64>().unwrap_err();
        assert!(format!("{err:#}").contains("AUTHCORE_TEST_NO_DEFAULT is declared without"));
        let err = AUTHCORE_TEST_BAD_DEFAULT.parse::<u64>().unwrap_err();
        assert!(format!("{err:#}").contains("declared default of AUTHCORE_TEST_BAD_DEFAULT"));
        assert_eq!(AUTHCORE_TEST_NO_DEFAULT.string(), "");
        assert_eq!(AUTHCORE_TEST_NO_DEFAULT.optional(), None);
    }

    #[test]
    fn every_shared_default_is_read_without_error() {
        // The test process sets none of these: each reader falls back to its declared default.
        assert_eq!(LOG_FORMAT.parse::<LogFormat>().unwrap(), LogFormat::Pretty);
        assert!(TokenParties::from_env().is_ok());
        assert!(matches!(
            RedisSettings::from_env().unwrap().target,
            crate::store::Target::Node(_)
        ));
        assert_eq!(session_idle_ttl().unwrap(), 1800);
        assert!(RequestLimits::from_env().is_ok());
    }

    #[test]
    fn docs_table_matches() {
        crate::settings_doc::check("both", SHARED);
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
