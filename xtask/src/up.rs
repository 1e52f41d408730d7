//! `cargo xtask up`: the whole stack on this machine until Ctrl-C.
//!
//! 1. Check that the port is free and nginx and redis-server are installed (before a build that
//!    may take minutes, not after).
//! 2. Build `auth-issuer` and `api` (release unless `--debug`).
//! 3. Empty `.stack/` at the workspace root, keeping only the issuer's key, so tokens issued
//!    before a restart still verify after it, and Redis's data dir `redis/`, which `--persist`
//!    uses (see [`stack::redis`] for what it keeps and what it can lose).
//! 4. Start the stack through the `stack` crate, exactly as the tests do, and print what runs
//!    where, with curl lines to try it and the address of the demo page.
//! 5. Wait for Ctrl-C, SIGTERM or SIGHUP (or a process that dies), then stop everything.

use crate::packages;
use anyhow::{Context, bail};
use stack::{Binaries, Profile, Stack, StackConfig, workspace_root};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// What in the work dir survives a restart (everything else there is recreated): the issuer's
/// key, and Redis's append-only file, used by `--persist` and left alone without it (so one run
/// without the flag does not delete what the next run with it would have brought back).
const KEPT: [&str; 2] = ["issuer-key.pem", "redis"];

/// What `cargo xtask up` was asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct UpOptions {
    pub jwt_replicas: usize,
    pub session_replicas: usize,
    pub port: u16,
    pub profile: Profile,
    /// `--access-ttl`: access-token lifetime in seconds, with no clock-skew leeway.
    pub access_ttl: Option<u64>,
    /// `--persist`: Redis keeps its data in `.stack/redis/` (append-only file, fsync every
    /// second), so sessions and spent refresh tokens survive a restart.
    pub persist: bool,
    /// `--login-rate`: nginx's per-address limit on the password routes (`10r/s` by default).
    pub login_rate: Option<String>,
    /// `--redis-shards`: 1, one redis-server; 3 or more, a Redis Cluster of that many masters.
    pub redis_shards: usize,
    /// `--store-delay-ms`: the delay the launcher's proxy adds each way between the services and
    /// Redis (`None`: no proxy).
    pub store_delay: Option<Duration>,
}

/// The environment for access tokens that live `secs` seconds and are refused the moment they
/// expire: `ACCESS_TTL_SECS` for the issuer, and `LEEWAY_SECS=0` for the replicas, which by
/// default accept a token up to 30 s past its `exp` (clock skew between machines; on one machine
/// there is none). Used by `up --access-ttl` and the browser test.
pub fn short_token_env(secs: u64) -> Vec<(String, String)> {
    vec![
        ("ACCESS_TTL_SECS".to_owned(), secs.to_string()),
        ("LEEWAY_SECS".to_owned(), "0".to_owned()),
    ]
}

pub fn up(options: UpOptions) -> anyhow::Result<()> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, options.port));
    // Before the build: a busy port should not cost minutes of compiling first.
    if let Err(e) = stack::ports::ensure_free(listen) {
        bail!("{e:#}; stop it, or choose another port with --port");
    }
    packages::ensure_installed()?;

    eprintln!(
        "building auth-issuer and api ({})…",
        options.profile.as_str()
    );
    // Outside the async runtime: a build blocks, and a Ctrl-C now simply ends cargo and us.
    let binaries = Binaries::build(options.profile)?;

    let work_dir = workspace_root().join(".stack");
    fresh_work_dir(&work_dir)?;
    let mut config = StackConfig::new(binaries, work_dir);
    config.jwt_replicas = options.jwt_replicas;
    config.session_replicas = options.session_replicas;
    config.nginx_listen = Some(listen);
    if let Some(secs) = options.access_ttl {
        config.env = short_token_env(secs);
    }
    config.redis_aof = options.persist;
    config.login_rate = options.login_rate;
    config.redis_shards = options.redis_shards;
    config.store_delay = options.store_delay;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run(config))
}

/// Empties the work dir, except for the issuer's key.
fn fresh_work_dir(work_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;
    for entry in std::fs::read_dir(work_dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|name| KEPT.iter().any(|kept| name == *kept))
        {
            continue;
        }
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

async fn run(config: StackConfig) -> anyhow::Result<()> {
    // Listen for signals from now on, so that a Ctrl-C during the start-up also stops cleanly.
    let mut stop = StopSignals::new()?;
    let replicas = config.jwt_replicas + config.session_replicas;
    eprintln!("starting redis, the issuer, {replicas} replicas and nginx…");
    let mut stack = tokio::select! {
        started = Stack::start(config) => started?,
        signal = stop.recv() => bail!("{signal} during start-up: stopped everything"),
    };
    println!("\n{}", stack.describe());
    println!("{}", try_it(&stack));
    eprintln!("running; press Ctrl-C to stop everything.");

    let outcome = watch(&mut stack, &mut stop).await;
    eprintln!("stopping…");
    let stopped = stack.shutdown().await;
    eprintln!("stopped.");
    outcome.and(stopped)
}

/// Waits for a stop signal, checking every second that every process still runs: a service
/// that crashed is reported at once instead of being found later by a failing curl.
async fn watch(stack: &mut Stack, stop: &mut StopSignals) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            signal = stop.recv() => {
                eprintln!("{signal} received");
                return Ok(());
            }
            _ = tick.tick() => {
                let Err(dead) = stack.check_alive() else { continue };
                // A Ctrl-C in the terminal reaches the services too (one process group), and one
                // may exit a moment before we see the signal: that is a stop, not a crash.
                let grace = Duration::from_millis(300);
                return match tokio::time::timeout(grace, stop.recv()).await {
                    Ok(signal) => {
                        eprintln!("{signal} received");
                        Ok(())
                    }
                    Err(_) => Err(dead),
                };
            }
        }
    }
}

/// Ctrl-C (SIGINT), SIGTERM (e.g. `kill`, docker stop) and SIGHUP (terminal closed).
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> anyhow::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The name of the next signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// Copy-paste examples against the running stack.
fn try_it(stack: &Stack) -> String {
    let base = stack.base_url();
    let jar: PathBuf = stack.work_dir().join("cookies.txt");
    let jar = jar.display();
    let metrics = stack
        .replica_urls(stack::Mode::Jwt)
        .first()
        .map_or_else(|| stack.issuer_url(), Clone::clone);
    let persist = if stack.redis_persistent() {
        "\nRedis keeps its data in .stack/redis/ (--persist): sessions and spent refresh tokens\n\
         survive a restart; a crash of the machine can lose about the last second of writes.\n"
    } else {
        ""
    };
    format!(
        r#"{persist}open {base}/ in a browser: the demo page shows the flows of both kinds of login.
every route, request, answer and error: {base}/openapi.json (OpenAPI 3.1)

try it:
  # a token pair for alice, then the token API with the access token
  TOKEN=$(curl -s -X POST {base}/auth/login -H 'content-type: application/json' \
    -d '{{"username":"alice","password":"wonderland"}}' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -i {base}/api/me -H "authorization: Bearer $TOKEN"

  # a session for alice (cookie jar), then the session API
  curl -i -c {jar} -X POST {base}/auth/session/login -H 'content-type: application/json' \
    -d '{{"username":"alice","password":"wonderland"}}'
  curl -i -b {jar} {base}/sapi/me

  # one replica's metrics, directly (not through nginx)
  curl -s {metrics}/metrics | head -20
"#
    )
}
