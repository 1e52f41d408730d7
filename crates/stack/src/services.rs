//! Our own services: the issuer (`auth-issuer`) and the replicas (`api`).
//!
//! Both are configured only through environment variables (twelve-factor style, read by
//! `auth_core::settings`), so the same binary runs here, in docker compose and in production. This
//! module decides those variables:
//!
//! | variable | issuer | replica | value |
//! | --- | --- | --- | --- |
//! | `LISTEN_ADDR` | yes | yes | its own free port on 127.0.0.1 |
//! | `ISSUER_URL` | yes | yes | nginx's base URL: the public `iss` of every token |
//! | `AUDIENCE` | yes | yes | `authscale-api` |
//! | `REDIS_URL` | yes | yes | the stack's redis (when it is one redis-server) |
//! | `REDIS_CLUSTER_NODES` | yes | yes | every node of the stack's Redis Cluster (when it has several shards) |
//! | `KEY_PATH` | yes | | `<work_dir>/issuer-key.pem` (created by the issuer if missing) |
//! | `API_MODE` | | yes | `jwt` or `session` |
//! | `REPLICA_ID` | | yes | `jwt-1`, `jwt-2`, ... `session-1`, ... (the `X-Replica` header) |
//! | `JWKS_URL` | | yes | the issuer's JWKS, directly (not through nginx) |
//! | `LOG_FORMAT` | yes | yes | `pretty`: the logs are read by people |
//!
//! Then the caller's extra variables (`StackConfig::env`, e.g. `ACCESS_TTL_SECS=2`) are applied
//! last, so they override any of the above.
//!
//! Ready means: `GET /readyz` answers 200 (the service itself decides what "ready" takes).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

/// The audience every access token is issued for and every replica requires.
pub const AUDIENCE: &str = "authscale-api";

/// How a replica checks who is calling: a bearer access token (`/api/...`) or a session cookie
/// looked up in redis (`/sapi/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Jwt,
    Session,
}

impl Mode {
    /// The value of `API_MODE`, and the prefix of the replica ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Jwt => "jwt",
            Mode::Session => "session",
        }
    }

    /// The id of the replica at 0-based `index`: `jwt-1`, `session-2`, ...
    pub fn replica_id(self, index: usize) -> String {
        format!("{}-{}", self.as_str(), index + 1)
    }
}

/// What the issuer and all replicas of one stack share.
#[derive(Debug, Clone)]
pub struct Shared<'a> {
    /// nginx's base URL, e.g. `http://127.0.0.1:8080`.
    pub issuer_url: &'a str,
    /// Where the store is: `("REDIS_URL", "redis://127.0.0.1:6379")`, or
    /// `("REDIS_CLUSTER_NODES", "redis://127.0.0.1:7001,redis://127.0.0.1:7002,...")`.
    pub redis_env: (&'static str, &'a str),
    /// Applied last (overrides).
    pub extra_env: &'a [(String, String)],
}

/// The issuer's command line, listening on `listen`, with its key at `key_path`.
pub fn issuer_command(
    binary: &Path,
    work_dir: &Path,
    listen: SocketAddr,
    key_path: &Path,
    shared: &Shared,
) -> Command {
    let mut command = base_command(binary, work_dir, listen, shared);
    command.env("KEY_PATH", key_path);
    with_extra_env(command, shared)
}

/// A replica's command line: `mode`, replica id `id`, verifying tokens with `jwks_url`.
pub fn replica_command(
    binary: &Path,
    work_dir: &Path,
    listen: SocketAddr,
    mode: Mode,
    id: &str,
    jwks_url: &str,
    shared: &Shared,
) -> Command {
    let mut command = base_command(binary, work_dir, listen, shared);
    command
        .env("API_MODE", mode.as_str())
        .env("REPLICA_ID", id)
        .env("JWKS_URL", jwks_url);
    with_extra_env(command, shared)
}

/// The variables both kinds of service get. The working directory is the stack's work dir, so
/// any file a service writes relative to it stays there.
fn base_command(binary: &Path, work_dir: &Path, listen: SocketAddr, shared: &Shared) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(work_dir)
        .env("LISTEN_ADDR", listen.to_string())
        .env("ISSUER_URL", shared.issuer_url)
        .env("AUDIENCE", AUDIENCE)
        .env(shared.redis_env.0, shared.redis_env.1)
        .env("LOG_FORMAT", "pretty");
    command
}

fn with_extra_env(mut command: Command, shared: &Shared) -> Command {
    command.envs(shared.extra_env.iter().map(|(k, v)| (k, v)));
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn env_of<'a>(command: &'a Command, key: &str) -> Option<&'a OsStr> {
        command
            .get_envs()
            .filter(|(k, _)| *k == key)
            .last()
            .and_then(|(_, v)| v)
    }

    #[test]
    fn replicas_get_their_mode_id_and_jwks_and_extra_env_overrides() {
        let extra = vec![
            ("ACCESS_TTL_SECS".to_owned(), "2".to_owned()),
            ("AUDIENCE".to_owned(), "other".to_owned()),
        ];
        let shared = Shared {
            issuer_url: "http://127.0.0.1:8080",
            redis_env: ("REDIS_URL", "redis://127.0.0.1:6379"),
            extra_env: &extra,
        };
        let listen = "127.0.0.1:9000".parse().unwrap();
        let jwks = "http://127.0.0.1:9100/.well-known/jwks.json";
        let command = replica_command(
            Path::new("api"),
            Path::new("/tmp"),
            listen,
            Mode::Session,
            &Mode::Session.replica_id(1),
            jwks,
            &shared,
        );
        assert_eq!(env_of(&command, "API_MODE").unwrap(), "session");
        assert_eq!(env_of(&command, "REPLICA_ID").unwrap(), "session-2");
        assert_eq!(env_of(&command, "JWKS_URL").unwrap(), jwks);
        assert_eq!(env_of(&command, "LISTEN_ADDR").unwrap(), "127.0.0.1:9000");
        assert_eq!(env_of(&command, "ACCESS_TTL_SECS").unwrap(), "2");
        assert_eq!(env_of(&command, "AUDIENCE").unwrap(), "other");
    }
}
