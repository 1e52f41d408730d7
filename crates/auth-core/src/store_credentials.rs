//! Where a service finds its Redis credentials: `REDIS_URL`, plus a user name and a password
//! kept out of it.
//!
//! A Redis URL can carry credentials (`redis://user:password@host:6379`), but then the password
//! sits in the environment, which `docker inspect`, `/proc/<pid>/environ` and crash reports show.
//! So the password may come from a file instead (`REDIS_PASSWORD_FILE`, as Docker and Kubernetes
//! secrets are mounted), with the user name beside it (`REDIS_USERNAME`, a Redis ACL user):
//!
//! `REDIS_URL` (or `REDIS_CLUSTER_NODES`), `REDIS_USERNAME`, `REDIS_PASSWORD_FILE` and
//! `REDIS_PASSWORD` are declared, with their defaults, in [`crate::settings::SHARED`].
//!
//! [`redis_target_from_env`] puts them into the URL (or each node's URL) the store connects with
//! (the redis crate reads them back from it into its connection info and sends `AUTH` on every
//! new connection). That URL
//! is a secret from then on: nothing here logs it, and no error message quotes it or the password.

use crate::store::Target;
use anyhow::{Context, bail};
use std::path::Path;

/// Where the store is, with the credentials of `REDIS_USERNAME` and `REDIS_PASSWORD_FILE` (or
/// `REDIS_PASSWORD`) in each URL: the nodes of `REDIS_CLUSTER_NODES` when it is set (every node
/// of a cluster takes the same credentials), otherwise `REDIS_URL`. Setting both is refused:
/// one of them would be silently ignored.
pub fn redis_target_from_env() -> anyhow::Result<Target> {
    use crate::settings::{REDIS_CLUSTER_NODES, REDIS_URL};
    let (username, password) = credentials_from_env()?;
    let (username, password) = (username.as_deref(), password.as_deref());
    match REDIS_CLUSTER_NODES.optional() {
        Some(nodes) => {
            if REDIS_URL.optional().is_some() {
                bail!("set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a cluster), not both");
            }
            let nodes = cluster_nodes(&nodes)?;
            let nodes = nodes
                .into_iter()
                .map(|url| with_credentials(url, username, password))
                .collect::<anyhow::Result<_>>()?;
            Ok(Target::Cluster(nodes))
        }
        None => {
            let url = REDIS_URL.string();
            Ok(Target::Node(with_credentials(&url, username, password)?))
        }
    }
}

/// The URLs of `REDIS_CLUSTER_NODES`: comma-separated, blanks around them ignored, at least one.
fn cluster_nodes(list: &str) -> anyhow::Result<Vec<&str>> {
    let nodes: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect();
    if nodes.is_empty() {
        bail!("REDIS_CLUSTER_NODES names no node (a comma-separated list of redis:// URLs)");
    }
    Ok(nodes)
}

/// `REDIS_USERNAME`, and the password from `REDIS_PASSWORD_FILE` or `REDIS_PASSWORD`.
fn credentials_from_env() -> anyhow::Result<(Option<String>, Option<String>)> {
    use crate::settings::{REDIS_PASSWORD, REDIS_PASSWORD_FILE, REDIS_USERNAME};
    let username = REDIS_USERNAME.optional();
    let password = match (
        REDIS_PASSWORD_FILE.optional(),
        // Not trimmed, unlike the other settings: spaces may be part of a password.
        std::env::var(REDIS_PASSWORD.name)
            .ok()
            .filter(|p| !p.is_empty()),
    ) {
        (Some(_), Some(_)) => {
            bail!("set REDIS_PASSWORD_FILE or REDIS_PASSWORD, not both")
        }
        (Some(path), None) => Some(read_password(Path::new(&path))?),
        (None, password) => password,
    };
    Ok((username, password))
}

/// The password in `path`: its content without one trailing line ending (files written with
/// `echo` or an editor have one; a password never ends with one).
fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read REDIS_PASSWORD_FILE {}", path.display()))?;
    let password = text
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&text);
    if password.is_empty() {
        bail!("REDIS_PASSWORD_FILE {} is empty", path.display());
    }
    Ok(password.to_owned())
}

/// `url` with `username` and `password` in it, percent-encoded where the URL's syntax needs it.
/// The pure half of [`redis_target_from_env`], apart from the environment so it can be tested.
fn with_credentials(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> anyhow::Result<String> {
    let Some(password) = password else {
        if username.is_some() {
            bail!(
                "REDIS_USERNAME is set but no password is (REDIS_PASSWORD_FILE or REDIS_PASSWORD)"
            );
        }
        return Ok(url.to_owned());
    };
    // The error must not quote the URL: it may hold credentials of its own.
    let mut parsed = redis::parse_redis_url(url)
        .context("REDIS_URL is not a valid Redis URL (redis://host:port, rediss://, unix://)")?;
    match parsed.scheme() {
        // A socket path has no authority part: the redis crate reads credentials from the query.
        "unix" | "redis+unix" | "valkey+unix" => {
            if parsed
                .query_pairs()
                .any(|(name, _)| name == "user" || name == "pass")
            {
                bail!(already_there());
            }
            let mut query = parsed.query_pairs_mut();
            if let Some(username) = username {
                query.append_pair("user", username);
            }
            query.append_pair("pass", password);
        }
        _ => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                bail!(already_there());
            }
            let bad = |_| anyhow::anyhow!("REDIS_URL cannot hold credentials");
            parsed.set_username(username.unwrap_or("")).map_err(bad)?;
            parsed.set_password(Some(password)).map_err(bad)?;
        }
    }
    Ok(parsed.into())
}

fn already_there() -> &'static str {
    "REDIS_URL already holds credentials: give them either there or in REDIS_USERNAME and \
     REDIS_PASSWORD_FILE (or REDIS_PASSWORD), not both"
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::IntoConnectionInfo;

    /// What the redis crate will log in with, read back from the URL the way it connects.
    fn credentials(url: &str) -> (Option<String>, Option<String>) {
        let info = url.into_connection_info().unwrap();
        let settings = info.redis_settings();
        (
            settings.username().map(str::to_owned),
            settings.password().map(str::to_owned),
        )
    }

    #[test]
    fn without_credentials_the_url_is_unchanged() {
        let url = with_credentials("redis://redis:6379", None, None).unwrap();
        assert_eq!(url, "redis://redis:6379");
    }

    #[test]
    fn any_password_reaches_the_connection_info_intact() {
        // Every character the URL syntax gives a meaning to.
        let password = "p@ss:w/rd?#%[]! é";
        let url =
            with_credentials("redis://redis:6379/0", Some("session"), Some(password)).unwrap();
        assert_eq!(
            credentials(&url),
            (Some("session".to_owned()), Some(password.to_owned()))
        );
        let info = url.as_str().into_connection_info().unwrap();
        assert_eq!(info.addr().to_string(), "redis:6379");
    }

    #[test]
    fn a_password_alone_logs_in_as_the_default_user() {
        let url = with_credentials("redis://127.0.0.1:6379", None, Some("secret")).unwrap();
        assert_eq!(credentials(&url), (None, Some("secret".to_owned())));
    }

    #[test]
    fn a_unix_socket_takes_them_in_its_query() {
        let url =
            with_credentials("unix:///run/redis.sock", Some("issuer"), Some("a&b=c")).unwrap();
        assert_eq!(
            credentials(&url),
            (Some("issuer".to_owned()), Some("a&b=c".to_owned()))
        );
    }

    #[test]
    fn credentials_in_two_places_or_a_user_without_password_are_refused() {
        let err = with_credentials("redis://u:p@redis:6379", Some("x"), Some("y")).unwrap_err();
        assert!(
            err.to_string().contains("already holds credentials"),
            "{err}"
        );
        let err = with_credentials("redis://redis:6379", Some("issuer"), None).unwrap_err();
        assert!(err.to_string().contains("no password"), "{err}");
    }

    #[test]
    fn errors_never_quote_the_password_or_the_url() {
        let err = with_credentials("nonsense-with-secret", None, Some("hunter2")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            !text.contains("hunter2") && !text.contains("nonsense-with-secret"),
            "{text}"
        );
        let err = with_credentials("redis://u:hunter2@redis", None, Some("x")).unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"));
    }

    #[test]
    fn cluster_nodes_are_a_comma_list_of_at_least_one() {
        assert_eq!(
            cluster_nodes("redis://a:1, redis://b:2,,").unwrap(),
            ["redis://a:1", "redis://b:2"]
        );
        assert!(cluster_nodes(" , ").is_err());
    }

    #[test]
    fn a_password_file_loses_one_line_ending_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        for (content, want) in [
            ("secret\n", "secret"),
            ("secret\r\n", "secret"),
            ("secret", "secret"),
            (" secret \n\n", " secret \n"),
        ] {
            std::fs::write(&path, content).unwrap();
            assert_eq!(read_password(&path).unwrap(), want, "{content:?}");
        }
        std::fs::write(&path, "\n").unwrap();
        assert!(
            read_password(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let missing = read_password(&dir.path().join("missing")).unwrap_err();
        assert!(missing.to_string().contains("REDIS_PASSWORD_FILE"));
    }
}
