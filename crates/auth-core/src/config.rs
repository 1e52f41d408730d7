//! Settings from environment variables.
//!
//! Every service reads its configuration from the environment (twelve-factor style), so the same
//! binary runs under `cargo xtask up`, the tests and docker compose. Each setting has a
//! documented default; a value that is present but unreadable stops the service at start-up with
//! a message naming the variable, rather than being silently replaced by the default.

use anyhow::{Context, bail};
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
    fn log_format_parses_both_spellings() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("pretty".parse::<LogFormat>().unwrap(), LogFormat::Pretty);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
