//! The compose test's store phases: who can reach Redis, as whom, and what outlives a restart.
//!
//! docker-compose.yml puts Redis on a network of its own (`store`, internal) shared with its two
//! clients only, the issuer and the session replicas; each logs in as an ACL user of its own with
//! a password made at the first start (deploy/docker/redis-entrypoint.sh); and Redis keeps an
//! append-only file on a named volume. Each of those is checked where it would break:
//!
//! - [`isolation`]: a token replica and nginx cannot open a TCP connection to Redis, by name or by
//!   address, while a session replica can (and the probe works in both images: they reach the
//!   issuer). Every ACL user is refused what it must not do (NOPERM) and allowed what its code
//!   does; `default` cannot log in, nor can one client with another's password.
//! - [`survives_restart`]: a session and a refresh token made just before Redis is killed (SIGKILL,
//!   a crash) are still good once it is back, and again after a clean restart.
//! - [`forgets_without_its_files`]: Redis back on an empty volume: a refresh token and a session
//!   from before are refused (401 `invalid_grant` for the token), and new logins work.

use super::docker::{self, Project, ip_of, output_of, short};
use super::scenario::session_sid;
use anyhow::{Context, bail, ensure};
use reqwest::StatusCode;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::wait::{self, Poll};
use testkit::{ApiError, Auth, Client, Error, Pair};

/// Where docker-compose.yml mounts a client's Redis password.
const PASSWORD_FILE: &str = "/run/secrets/redis/password";
/// The health check's password, in the redis container (deploy/docker/redis-entrypoint.sh).
const HEALTH_PASSWORD_FILE: &str = "/run/authscale/redis-secrets/health.password";
/// How long Redis may take to come back and its clients to reconnect.
const BACK_WITHIN: Duration = Duration::from_secs(30);

/// Whether `container` can open a TCP connection to `host:port` within 2 s (bash's /dev/tcp:
/// the slim images have no nc). A probe that cannot run at all is an error, not a "no".
fn reaches(container: &str, host: &str, port: u16) -> anyhow::Result<bool> {
    let status = Command::new("docker")
        .args(["exec", container, "timeout", "2", "bash", "-c"])
        .arg("exec 3<>/dev/tcp/$0/$1")
        .args([host, &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run docker exec")?;
    match status.code() {
        Some(0) => Ok(true),
        // Refused, unreachable, unknown name (1), or no answer in time (124).
        Some(1 | 124) => Ok(false),
        _ => bail!(
            "the connection probe did not run in {} ({status})",
            short(container)
        ),
    }
}

/// Whether `path` exists in `container`.
fn has_file(container: &str, path: &str) -> anyhow::Result<bool> {
    let status = Command::new("docker")
        .args(["exec", container, "test", "-e", path])
        .stdin(Stdio::null())
        .status()
        .context("cannot run docker exec")?;
    Ok(status.success())
}

/// The Redis password in `file` in `container` (never printed).
fn password_in(container: &str, file: &str) -> anyhow::Result<String> {
    let mut command = Command::new("docker");
    command.args(["exec", container, "cat", file]);
    let text = output_of(command, "reading a Redis password")?;
    let password = text.trim_end().to_owned();
    ensure!(
        !password.is_empty(),
        "{} has an empty {file}",
        short(container)
    );
    Ok(password)
}

/// What `redis-cli ARGS` prints in the redis container, logged in as `(user, password)` or not
/// at all. redis-cli exits 0 on an error reply too, so callers read the text. The password goes
/// through the environment (`-e REDISCLI_AUTH` copies it from ours), never a command line.
fn redis_cli(redis: &str, login: Option<(&str, &str)>, args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("docker");
    command.arg("exec");
    if let Some((_, password)) = login {
        command
            .args(["-e", "REDISCLI_AUTH"])
            .env("REDISCLI_AUTH", password);
    }
    command.args([redis, "redis-cli", "--no-auth-warning"]);
    if let Some((user, _)) = login {
        command.args(["--user", user]);
    }
    let output = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run docker exec redis-cli")?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr))
}

/// An ACL refusal, as Redis words it for a command and for a key touched by a script.
fn refused(reply: &str) -> bool {
    ["NOPERM", "no permissions", "can't access"]
        .iter()
        .any(|marker| reply.contains(marker))
}

/// `args` as `who` must be refused by the ACL.
fn must_refuse(redis: &str, who: (&str, &str), args: &[&str]) -> anyhow::Result<()> {
    let reply = redis_cli(redis, Some(who), args)?;
    ensure!(
        refused(&reply),
        "Redis let {} run {args:?}: {}",
        who.0,
        reply.trim()
    );
    Ok(())
}

/// `args` as `who` must be allowed, and answer `want`.
fn must_answer(redis: &str, who: (&str, &str), args: &[&str], want: &str) -> anyhow::Result<()> {
    let reply = redis_cli(redis, Some(who), args)?;
    ensure!(
        reply.trim() == want,
        "{} running {args:?} got {:?}, not {want:?}",
        who.0,
        reply.trim()
    );
    Ok(())
}

/// The network and the ACL users (see the module comment).
pub(super) fn isolation(project: &Project) -> anyhow::Result<()> {
    let redis = project.one("redis")?;
    let redis_ip = ip_of(&redis)?;
    let issuer = project.one("auth-issuer")?;
    let session = project.one("session-api")?;

    // The network: Redis's clients reach it, nothing else does, not even by address.
    ensure!(
        reaches(&session, "redis", 6379)?,
        "a session replica cannot reach redis:6379"
    );
    ensure!(
        reaches(&issuer, "redis", 6379)?,
        "the issuer cannot reach redis:6379"
    );
    for (what, id) in [
        ("a token replica", project.one("api")?),
        ("nginx", project.one("nginx")?),
    ] {
        ensure!(
            reaches(&id, "auth-issuer", 8080)?,
            "{what} cannot reach the issuer: the probe proves nothing"
        );
        for host in ["redis", redis_ip.as_str()] {
            ensure!(
                !reaches(&id, host, 6379)?,
                "{what} ({}) reaches Redis at {host}:6379",
                short(&id)
            );
        }
        ensure!(
            !has_file(&id, PASSWORD_FILE)?,
            "{what} has a Redis password"
        );
    }
    eprintln!("compose test: Redis ({redis_ip}) reached by the issuer and session replicas only");

    // The users.
    let issuer_password = password_in(&issuer, PASSWORD_FILE)?;
    let session_password = password_in(&session, PASSWORD_FILE)?;
    let health_password = password_in(&redis, HEALTH_PASSWORD_FILE)?;
    ensure!(
        issuer_password != session_password,
        "the issuer and the session replicas share a Redis password"
    );
    let as_issuer = ("issuer", issuer_password.as_str());
    let as_session = ("session", session_password.as_str());
    let as_health = ("health", health_password.as_str());

    let reply = redis_cli(&redis, None, &["PING"])?;
    ensure!(
        reply.contains("NOAUTH"),
        "PING without logging in: {}",
        reply.trim()
    );
    for who in [
        ("default", session_password.as_str()),
        ("default", "anything"),
        ("issuer", session_password.as_str()),
        ("session", issuer_password.as_str()),
    ] {
        let reply = redis_cli(&redis, Some(who), &["PING"])?;
        ensure!(
            reply.contains("WRONGPASS") && !reply.contains("PONG"),
            "{} logged in with a password that is not its own: {}",
            who.0,
            reply.trim()
        );
    }

    // The issuer: its three key spaces, scripts, WAIT; nothing that spans or runs the server.
    for key in ["rt:e2e-probe", "login:e2e-probe", "session:e2e-probe"] {
        must_answer(&redis, as_issuer, &["SET", key, "v", "EX", "60"], "OK")?;
    }
    must_answer(&redis, as_issuer, &["WAIT", "0", "0"], "0")?;
    must_answer(
        &redis,
        as_issuer,
        &[
            "EVAL",
            "return redis.call('GET', KEYS[1])",
            "1",
            "rt:e2e-probe",
        ],
        "v",
    )?;
    for args in [
        &["FLUSHALL"][..],
        &["FLUSHDB"],
        &["CONFIG", "GET", "maxmemory"],
        &["KEYS", "*"],
        &["ACL", "LIST"],
        &["SET", "other:e2e-probe", "v"],
    ] {
        must_refuse(&redis, as_issuer, args)?;
    }

    // A session replica: read, renew, delete `session:*`, by command or by script; nothing else.
    must_answer(&redis, as_session, &["GET", "session:e2e-probe"], "v")?;
    must_answer(
        &redis,
        as_session,
        &["EXPIRE", "session:e2e-probe", "60"],
        "1",
    )?;
    let renew_or_end = "local v = redis.call('GET', KEYS[1]) \
                        if v then redis.call('EXPIRE', KEYS[1], 60) end \
                        if ARGV[1] == 'end' then redis.call('DEL', KEYS[1]) end \
                        return v";
    let sha = redis_cli(&redis, Some(as_session), &["SCRIPT", "LOAD", renew_or_end])?;
    let sha = sha.trim();
    ensure!(
        sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "SCRIPT LOAD as session: {sha}"
    );
    let run = |key, arg| ["EVALSHA", sha, "1", key, arg];
    must_answer(&redis, as_session, &run("session:e2e-probe", "renew"), "v")?;
    must_answer(&redis, as_session, &run("session:e2e-probe", "end"), "v")?;
    must_answer(&redis, as_session, &run("session:e2e-probe", "renew"), "")?;
    for args in [
        &["GET", "rt:e2e-probe"][..],
        &["GET", "login:e2e-probe"],
        &["DEL", "rt:e2e-probe"],
        &["SET", "login:e2e-probe", "x"],
        &["SET", "session:e2e-forged", "x"],
        // GETEX ... PERSIST would take a session's expiry away.
        &["GETEX", "session:e2e-probe", "PERSIST"],
        &["PERSIST", "session:e2e-probe"],
        &run("rt:e2e-probe", "end"),
        &["EVAL", "return 1", "0"],
        &["FLUSHALL"],
        &["CONFIG", "GET", "maxmemory"],
        &["KEYS", "*"],
    ] {
        must_refuse(&redis, as_session, args)?;
    }
    // The health check: PING and nothing else.
    must_answer(&redis, as_health, &["PING"], "PONG")?;
    must_refuse(&redis, as_health, &["GET", "session:e2e-probe"])?;

    // The probe keys were there all along: the refusals above changed nothing.
    must_answer(
        &redis,
        as_issuer,
        &["DEL", "rt:e2e-probe", "login:e2e-probe"],
        "2",
    )?;
    eprintln!("compose test: ACL users issuer and session refused what is not theirs; default off");
    Ok(())
}

/// Polls `/sapi/me` with `sid` until Redis is back (no more 503) and returns that status.
async fn session_status_once_back(client: &Client, sid: &str) -> anyhow::Result<StatusCode> {
    wait::until("/sapi/me answers other than 503", BACK_WITHIN, || async {
        let status = client.status("/sapi/me", Auth::Sid(sid)).await?;
        anyhow::Ok(match status {
            StatusCode::SERVICE_UNAVAILABLE => Poll::Pending(status.to_string()),
            other => Poll::Ready(other),
        })
    })
    .await
}

/// Presents `token` to /auth/refresh until Redis is back (no more 503): the next pair, or the
/// refusal.
async fn refresh_once_back(client: &Client, token: &str) -> anyhow::Result<Result<Pair, ApiError>> {
    wait::until(
        "/auth/refresh answers other than 503",
        BACK_WITHIN,
        || async {
            anyhow::Ok(match client.refresh(token).await {
                Ok(pair) => Poll::Ready(Ok(pair)),
                Err(Error::Api(refusal)) if refusal.status == StatusCode::SERVICE_UNAVAILABLE => {
                    Poll::Pending(refusal.to_string())
                }
                Err(Error::Api(refusal)) => Poll::Ready(Err(refusal)),
                Err(other) => return Err(other.into()),
            })
        },
    )
    .await
}

/// The session still signs in and the refresh token still rotates: the successor.
async fn both_still_good(
    client: &Client,
    sid: &str,
    refresh: &str,
    after: &str,
) -> anyhow::Result<String> {
    let started = Instant::now();
    let status = session_status_once_back(client, sid).await?;
    ensure!(
        status == 200,
        "{after}, the session answered {status}: it was lost"
    );
    let next = match refresh_once_back(client, refresh).await? {
        Ok(pair) => pair.refresh,
        Err(refusal) => bail!("{after}, the refresh token answered {refusal}"),
    };
    eprintln!(
        "compose test: {after}, the session and the refresh token work ({} ms)",
        started.elapsed().as_millis()
    );
    Ok(next)
}

/// How long `appendfsync everysec` may hold an answered write before it reaches the file, with a
/// margin.
const EVERYSEC_WINDOW: Duration = Duration::from_millis(3500);

/// A session and a refresh token outlive a crash of Redis and a restart.
pub(super) async fn survives_restart(project: &Project, client: &Client) -> anyhow::Result<()> {
    let sid = session_sid(client, "alice", "wonderland").await?;
    let pair = client.login("bob", "builder").await?;
    let refresh = &pair.refresh;
    // `appendfsync everysec` promises what is older than its window: Redis fsyncs once a second
    // and, while an fsync is still running on a slow disk, holds new writes back for up to 2 s
    // although it has answered them. A crash inside that window may lose them, so the writes get
    // past it first; docs/SECURITY.md says what a loss of the last seconds can bring back.
    tokio::time::sleep(EVERYSEC_WINDOW).await;
    // Then a crash: SIGKILL, no chance to write anything on the way out.
    let redis = project.one("redis")?;
    docker::kill(&redis)?;
    start_again(&redis)?;
    let refresh = both_still_good(client, &sid, refresh, "after kill -9 of Redis").await?;

    project.run(&["restart", "--timeout", "5", "redis"])?;
    both_still_good(client, &sid, &refresh, "after a restart of Redis").await?;
    Ok(())
}

/// Starts a killed container again (its restart policy may get there first).
fn start_again(container: &str) -> anyhow::Result<()> {
    let what = format!("{} starts again", short(container));
    wait::blocking_until(&what, BACK_WITHIN, || {
        let mut inspect = Command::new("docker");
        inspect.args(["inspect", "--format", "{{.State.Running}}", container]);
        if output_of(inspect, "docker inspect")?.trim() == "true" {
            return anyhow::Ok(Poll::Ready(()));
        }
        // Fails while the restart policy is already restarting it; the next look sees it.
        let _ = Command::new("docker")
            .args(["start", container])
            .stdin(Stdio::null())
            .output();
        Ok(Poll::Pending("not running".to_owned()))
    })
}

/// Redis, stopped, comes back without its append-only file: what was issued before is refused.
pub(super) async fn forgets_without_its_files(
    project: &Project,
    client: &Client,
    sid: &str,
    refresh: &str,
) -> anyhow::Result<()> {
    project.run(&["rm", "-f", "-s", "redis"])?;
    let mut list = Command::new("docker");
    list.args(["volume", "ls", "-q", "--filter", &docker::project_label()]);
    list.args(["--filter", "label=com.docker.compose.volume=redis-data"]);
    let volumes = output_of(list, "docker volume ls")?;
    let volume = match volumes.split_whitespace().collect::<Vec<_>>()[..] {
        [one] => one.to_owned(),
        ref other => bail!("not one redis-data volume: {other:?}"),
    };
    let mut remove = Command::new("docker");
    remove.args(["volume", "rm", &volume]);
    output_of(remove, "docker volume rm")?;
    project.run(&["up", "-d", "--no-build", "redis"])?;

    let status = session_status_once_back(client, sid).await?;
    ensure!(
        status == 401,
        "a session from before answered {status}, not 401"
    );
    // Only the error code in a message: an accepted refresh's pair holds tokens.
    let refusal = refresh_once_back(client, refresh).await?.err();
    ensure!(
        refusal
            .as_ref()
            .is_some_and(|r| r.status == 401 && r.error == "invalid_grant"),
        "a refresh token from before Redis lost its files answered {}, not 401 invalid_grant: \
         the issuer took the missing record for a token never spent",
        refusal.map_or("200".to_owned(), |r| format!("{} {}", r.status, r.error))
    );
    // Not a broken Redis: what is issued now works.
    let pair = client.login("bob", "builder").await?;
    client.refresh(&pair.refresh).await?;
    eprintln!("compose test: Redis on an empty volume refused the old session and refresh token");
    Ok(())
}
