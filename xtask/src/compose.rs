//! `cargo xtask compose-test`: docker-compose.yml end to end, built without a registry.
//!
//! The path most users take first is `docker compose up`; this proves it works, on a machine
//! where a Docker engine runs but no image can be pulled:
//!
//! 1. **build**: `deploy/offline-images.sh` builds every image the compose file names (a
//!    debootstrapped Debian bookworm as the base, the services from binaries built on the host).
//! 2. **up**: the project `authscale-e2e` with `deploy/docker-compose.offline.yml` on top, with
//!    the default 3 token and 3 session replicas, nginx published on a free port.
//! 3. **contract**: the public HTTP contract (API.md) through nginx: JWKS, login, `/api/me`,
//!    roles, refresh rotation and reuse detection, session login, `/sapi/me`, logout.
//! 4. **replicas**: `X-Replica` shows 3 distinct token and 3 distinct session replicas, and they
//!    are exactly the running containers.
//! 5. **kill**: one token replica is `docker kill`ed while 20 clients call `/api/me` without a
//!    pause over kept-alive connections; not one request may fail, and nginx must drop the dead
//!    address. (nginx reloads for that, which closes idle kept-alive connections: a request
//!    caught by that is sent again once, as HTTP allows, and counted; see [`Stream`].)
//! 6. **scale**: `up --scale api=4`; the new container serves, 4 distinct replicas answer.
//! 7. **store**: only the issuer and the session replicas reach Redis, each as its own ACL user
//!    limited to its own keys and commands; `default` cannot log in (see [`store`]).
//! 8. **redis restarted**: a session and a refresh token made just before Redis is killed
//!    (SIGKILL) or restarted still work after it: its append-only file kept them.
//! 9. **redis down**: Redis stopped, `/api/me` still answers 200 and `/sapi/me` 503.
//! 10. **redis without its files**: its volume removed, Redis started again; the session and the
//!     refresh token from before step 9 are refused (401), new ones work.
//! 11. **down**: `down -v --remove-orphans`, also when a step fails (a guard's `Drop`) or on
//!     Ctrl-C; nothing of the project may be left.
//!
//! `cargo xtask test` runs this after the cargo tests when `docker info` answers, and prints
//! why it skipped it otherwise. Works with `docker compose` (v2) and `docker-compose` (v1).

mod store;

use anyhow::{Context, bail, ensure};
use stack::workspace_root;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The compose project: its own containers, network and volume, whatever else runs.
const PROJECT: &str = "authscale-e2e";
/// Set to anything to skip the compose test in `cargo xtask test`.
const SKIP_VAR: &str = "AUTHSCALE_SKIP_COMPOSE_TEST";
/// Host port for nginx; a free one when unset (8080 may be taken by `cargo xtask up`).
const PORT_VAR: &str = "AUTHSCALE_E2E_HTTP_PORT";
/// The steady stream while a replica is killed.
const CLIENTS: usize = 20;
const STREAM_FOR: Duration = Duration::from_secs(8);
const KILL_AFTER: Duration = Duration::from_secs(3);

/// For `cargo xtask test`: the compose test when a Docker engine answers, otherwise a line
/// saying why not.
pub fn run_if_available() -> anyhow::Result<()> {
    if std::env::var_os(SKIP_VAR).is_some() {
        eprintln!("compose test SKIPPED: {SKIP_VAR} is set");
        return Ok(());
    }
    match Compose::find() {
        Ok(compose) => run(compose),
        Err(reason) => {
            eprintln!("compose test SKIPPED: {reason}");
            Ok(())
        }
    }
}

/// `cargo xtask compose-test`: like [`run_if_available`], but no Docker is an error.
pub fn compose_test() -> anyhow::Result<()> {
    match Compose::find() {
        Ok(compose) => run(compose),
        Err(reason) => bail!("cannot run the compose test: {reason}"),
    }
}

/// How to call compose here: `docker compose` (v2) if the plugin exists, else `docker-compose`.
#[derive(Debug, Clone)]
struct Compose {
    program: &'static str,
    args: &'static [&'static str],
}

impl Compose {
    /// The compose command, once `docker info` shows that an engine answers; otherwise why not.
    fn find() -> Result<Compose, String> {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output();
        match info {
            Err(e) => return Err(format!("docker is not installed ({e})")),
            Ok(output) if !output.status.success() => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                return Err(format!("no Docker engine answers (`docker info`: {first})"));
            }
            Ok(_) => {}
        }
        let answers = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .arg("version")
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|output| output.status.success())
        };
        if answers("docker", &["compose"]) {
            Ok(Compose {
                program: "docker",
                args: &["compose"],
            })
        } else if answers("docker-compose", &[]) {
            Ok(Compose {
                program: "docker-compose",
                args: &[],
            })
        } else {
            Err(
                "a Docker engine answers, but neither `docker compose` nor `docker-compose` \
                 is installed (apt-get install docker-compose)"
                    .to_owned(),
            )
        }
    }

    fn name(&self) -> String {
        [self.program]
            .iter()
            .chain(self.args)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The running compose project. Dropping it tears everything down.
struct Project {
    compose: Compose,
    root: PathBuf,
    port: u16,
    down: bool,
}

impl Project {
    /// `<compose> -p authscale-e2e -f docker-compose.yml -f deploy/docker-compose.offline.yml`.
    fn command(&self) -> Command {
        project_command(&self.compose, &self.root, self.port)
    }

    /// Runs a compose subcommand; fails with its output when it fails.
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.command();
        command.args(args);
        output_of(
            command,
            &format!("{} {}", self.compose.name(), args.join(" ")),
        )
    }

    /// Full ids of the project's containers of `service`: the running ones, or all with `all`.
    fn containers(&self, service: &str, all: bool) -> anyhow::Result<Vec<String>> {
        let mut command = Command::new("docker");
        command.args(["ps", "-q", "--no-trunc"]);
        if all {
            command.arg("-a");
        }
        command.args([
            "--filter",
            &format!("label=com.docker.compose.project={PROJECT}"),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        let text = output_of(command, "docker ps")?;
        Ok(text.split_whitespace().map(str::to_owned).collect())
    }

    /// The config nginx runs with now, as the entrypoint rendered it.
    fn nginx_config(&self) -> anyhow::Result<String> {
        let nginx = self.containers("nginx", false)?;
        let id = nginx.first().context("no nginx container runs")?;
        let mut command = Command::new("docker");
        command.args(["exec", id, "cat", "/var/lib/authscale-nginx/nginx.conf"]);
        output_of(command, "docker exec nginx cat nginx.conf")
    }

    /// How many times the nginx entrypoint has reloaded nginx so far (it logs each one).
    fn nginx_reloads(&self) -> anyhow::Result<usize> {
        let nginx = self.containers("nginx", false)?;
        let id = nginx.first().context("no nginx container runs")?;
        let output = Command::new("docker")
            .args(["logs", id])
            .stdin(Stdio::null())
            .output()
            .context("cannot run docker logs")?;
        let text =
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        Ok(text
            .lines()
            .filter(|line| line.contains("; reloading"))
            .count())
    }

    /// What a failure needs to be understood: the containers and the last lines of each log.
    fn print_diagnostics(&self) {
        eprintln!("compose test: state at the failure:");
        let mut ps = self.command();
        ps.arg("ps");
        let _ = ps.status();
        let mut logs = self.command();
        logs.args(["logs", "--no-color", "--tail", "15"]);
        let _ = logs.status();
    }

    /// `down -v --remove-orphans`, then a check that nothing of the project is left.
    fn down(&mut self) -> anyhow::Result<()> {
        self.down = true;
        down(&self.compose, &self.root, self.port)?;
        let left = self.containers_left()?;
        ensure!(
            left.is_empty(),
            "left behind after down: {}",
            left.join(", ")
        );
        Ok(())
    }

    /// Containers, networks and volumes still labelled with the project.
    fn containers_left(&self) -> anyhow::Result<Vec<String>> {
        let label = format!("label=com.docker.compose.project={PROJECT}");
        let mut left = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-a", "-q", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
        ] {
            let mut command = Command::new("docker");
            command.args(&args);
            for id in output_of(command, "docker ls")?.split_whitespace() {
                left.push(format!("{what} {id}"));
            }
        }
        Ok(left)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if !self.down {
            eprintln!("compose test: tearing down {PROJECT}");
            if let Err(e) = down(&self.compose, &self.root, self.port) {
                eprintln!("compose test: {e:#}");
            }
        }
    }
}

fn project_command(compose: &Compose, root: &Path, port: u16) -> Command {
    let mut command = Command::new(compose.program);
    command
        .current_dir(root)
        .args(compose.args)
        .args(["-p", PROJECT, "-f", "docker-compose.yml"])
        .args(["-f", "deploy/docker-compose.offline.yml"])
        .env("AUTHSCALE_HTTP_PORT", port.to_string())
        .env("AUTHSCALE_HTTP_ADDR", "127.0.0.1")
        .stdin(Stdio::null());
    command
}

fn down(compose: &Compose, root: &Path, port: u16) -> anyhow::Result<()> {
    let mut command = project_command(compose, root, port);
    command.args(["down", "-v", "--remove-orphans", "--timeout", "5"]);
    output_of(command, "compose down").map(drop)
}

/// stdout of a command that must succeed; its stderr in the error otherwise.
fn output_of(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Phases and how long each took, printed as they end and once more at the end.
struct Timings {
    started: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Timings {
    fn phase<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        eprintln!("compose test: {name}…");
        let start = Instant::now();
        let result = f().with_context(|| format!("compose test, phase {name:?}"))?;
        let took = start.elapsed();
        eprintln!("compose test: {name}: done in {:.1} s", took.as_secs_f64());
        self.phases.push((name, took));
        Ok(result)
    }

    fn print(&self) {
        eprintln!(
            "compose test: PASSED in {:.1} s",
            self.started.elapsed().as_secs_f64()
        );
        for (name, took) in &self.phases {
            eprintln!("  {:>6.1} s  {name}", took.as_secs_f64());
        }
    }
}

fn run(compose: Compose) -> anyhow::Result<()> {
    let root = workspace_root();
    let mut timings = Timings {
        started: Instant::now(),
        phases: Vec::new(),
    };
    eprintln!("compose test: using `{}`", compose.name());
    timings.phase(
        "build the images offline (deploy/offline-images.sh)",
        || {
            let status = Command::new("bash")
                .arg(root.join("deploy/offline-images.sh"))
                .current_dir(&root)
                .stdin(Stdio::null())
                .status()
                .context("cannot run deploy/offline-images.sh")?;
            ensure!(
                status.success(),
                "deploy/offline-images.sh failed ({status})"
            );
            Ok(())
        },
    )?;

    let port = match std::env::var(PORT_VAR) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{PORT_VAR} must be a port number, not {value:?}"))?,
        Err(_) => stack::ports::free_port()?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Ctrl-C would end this process before any Drop runs: tear down from here instead.
    {
        let (compose, root) = (compose.clone(), root.clone());
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("compose test: interrupted; tearing down {PROJECT}");
                let _ = down(&compose, &root, port);
                std::process::exit(130);
            }
        });
    }
    // Whatever an earlier, interrupted run left.
    down(&compose, &root, port)?;
    let mut project = Project {
        compose,
        root,
        port,
        down: false,
    };
    let base = format!("http://127.0.0.1:{port}");
    let http = Http::new(&base)?;
    let result = drive(&mut timings, &project, &runtime, &http);
    if result.is_err() {
        project.print_diagnostics();
    }
    // Torn down pass or fail (and by Drop if this is not reached).
    let teardown = timings.phase("down -v --remove-orphans", || project.down());
    result?;
    teardown?;
    timings.print();
    print_image_sizes();
    Ok(())
}

/// Every phase between `up` and `down`.
fn drive(
    timings: &mut Timings,
    project: &Project,
    runtime: &tokio::runtime::Runtime,
    http: &Http,
) -> anyhow::Result<()> {
    timings.phase("up: redis, issuer, 3 + 3 replicas, nginx", || {
        project.run(&["up", "-d", "--no-build"])?;
        runtime.block_on(http.wait_ready(Duration::from_secs(90)))
    })?;
    eprintln!("compose test: nginx on {}", http.base);

    timings.phase("contract through nginx", || {
        runtime.block_on(contract(http))
    })?;

    timings.phase("3 distinct replicas of each kind", || {
        runtime.block_on(async {
            let token = http.login("bob", "builder").await?;
            let sid = http.session_login("alice", "wonderland").await?;
            let api = project.containers("api", false)?;
            let session = project.containers("session-api", false)?;
            ensure!(
                api.len() == 3 && session.len() == 3,
                "not 3 + 3 replicas: {api:?} {session:?}"
            );
            let seen_api = http
                .replicas_until("/api/me", Auth::Bearer(&token), &api)
                .await?;
            let seen_session = http
                .replicas_until("/sapi/me", Auth::Cookie(&sid), &session)
                .await?;
            eprintln!("compose test: /api/ served by {seen_api:?}, /sapi/ by {seen_session:?}");
            Ok(())
        })
    })?;

    let killed = timings.phase("kill a token replica under a steady stream of GET /api/me", || {
        let token = runtime.block_on(http.login("bob", "builder"))?;
        let api = project.containers("api", false)?;
        let victim = api.first().context("no api container")?.clone();
        let victim_server = format!("server {}:8080 ", ip_of(&victim)?);
        ensure!(
            project.nginx_config()?.contains(&victim_server),
            "nginx's config has no `{victim_server}` line before the kill"
        );
        let reloads_before = project.nginx_reloads()?;
        let stream = Stream::start(runtime, http, &token)?;
        std::thread::sleep(KILL_AFTER);
        let kill_started = Instant::now();
        let mut kill = Command::new("docker");
        kill.args(["kill", &victim]);
        output_of(kill, "docker kill")?;
        eprintln!(
            "compose test: killed {} {:.1} s into the stream (docker kill took {} ms)",
            short(&victim),
            KILL_AFTER.as_secs_f64(),
            kill_started.elapsed().as_millis()
        );
        let report = stream.finish(runtime)?;
        let reloads = project.nginx_reloads()?.saturating_sub(reloads_before);
        eprintln!(
            "compose test: {} requests from {CLIENTS} clients in {:.1} s, {} failed, slowest {} \
             ms; nginx reloaded {reloads} time(s) and closed {} kept-alive connection(s) under a \
             request, which the client sent again",
            report.requests,
            STREAM_FOR.as_secs_f64(),
            report.failures.len(),
            report.slowest_ms,
            report.retried.len(),
        );
        ensure!(
            report.retried.len() <= CLIENTS * reloads,
            "{} requests needed a retry, more than one per connection and reload: {:?}",
            report.retried.len(),
            &report.retried[..report.retried.len().min(5)]
        );
        ensure!(
            report.failures.is_empty(),
            "{} of {} requests failed while a replica was killed, e.g. {:?}",
            report.failures.len(),
            report.requests,
            &report.failures[..report.failures.len().min(5)]
        );
        ensure!(report.requests > 100, "only {} requests in the stream", report.requests);
        // nginx has re-resolved the service and dropped the dead address by now (it polls every
        // second; the stream went on for seconds after the kill): the two others serve all.
        ensure!(
            !project.nginx_config()?.contains(&victim_server),
            "nginx's config still has `{victim_server}` after the kill"
        );
        let alive: Vec<String> = api.iter().filter(|id| **id != victim).cloned().collect();
        runtime.block_on(async {
            let seen = http.replicas_until("/api/me", Auth::Bearer(&token), &alive).await?;
            for _ in 0..20 {
                let replica = http.me("/api/me", Auth::Bearer(&token)).await?;
                ensure!(!victim.starts_with(host_of(&replica)), "the killed replica answered");
            }
            eprintln!("compose test: after the kill, /api/ served by {seen:?}");
            Ok(())
        })?;
        Ok(victim)
    })?;

    timings.phase("scale to 4 token replicas; the new one serves", || {
        let before = project.containers("api", true)?;
        project.run(&[
            "up",
            "-d",
            "--no-build",
            "--scale",
            "api=4",
            "--scale",
            "session-api=3",
        ])?;
        let after = project.containers("api", false)?;
        ensure!(
            after.len() == 4,
            "{} api containers run, not 4",
            after.len()
        );
        let new: Vec<&String> = after.iter().filter(|id| !before.contains(id)).collect();
        ensure!(!new.is_empty(), "no new api container after --scale api=4");
        eprintln!(
            "compose test: new: {}; the killed {} is {}",
            new.iter()
                .map(|id| short(id))
                .collect::<Vec<_>>()
                .join(", "),
            short(&killed),
            if after.contains(&killed) {
                "running again"
            } else {
                "gone"
            }
        );
        runtime.block_on(async {
            let token = http.login("bob", "builder").await?;
            let seen = http
                .replicas_until("/api/me", Auth::Bearer(&token), &after)
                .await?;
            eprintln!("compose test: /api/ served by {seen:?}");
            Ok(())
        })
    })?;

    timings.phase(
        "the store: its network and ACL users (issuer, session; default off)",
        || store::isolation(project),
    )?;

    timings.phase(
        "kill -9 and restart redis: a session and a refresh token survive",
        || runtime.block_on(store::survives_restart(project, http)),
    )?;

    let (sid, refresh) = timings.phase("stop redis: /api/me 200, /sapi/me 503", || {
        let (pair, sid) = runtime.block_on(async {
            Ok::<_, anyhow::Error>((
                http.login_pair("bob", "builder").await?,
                http.session_login("alice", "wonderland").await?,
            ))
        })?;
        let token = pair["access_token"].as_str().context("no access_token")?;
        let refresh = pair["refresh_token"]
            .as_str()
            .context("no refresh_token")?
            .to_owned();
        project.run(&["stop", "--timeout", "5", "redis"])?;
        runtime.block_on(async {
            let stopped = Instant::now();
            // The session replicas notice on their next Redis command: the first request.
            let deadline = stopped + Duration::from_secs(20);
            loop {
                let status = http.status("/sapi/me", Auth::Cookie(&sid)).await?;
                if status == 503 {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "/sapi/me still answers {status}, not 503"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            eprintln!(
                "compose test: /sapi/me answered 503 {} ms after redis stopped",
                stopped.elapsed().as_millis()
            );
            for _ in 0..20 {
                let api = http.status("/api/me", Auth::Bearer(token)).await?;
                ensure!(api == 200, "/api/me answered {api} with redis stopped");
                let sapi = http.status("/sapi/me", Auth::Cookie(&sid)).await?;
                ensure!(sapi == 503, "/sapi/me answered {sapi} with redis stopped");
            }
            Ok(())
        })?;
        Ok((sid, refresh))
    })?;

    timings.phase(
        "redis back without its files: the old session and refresh token refused",
        || {
            runtime.block_on(store::forgets_without_its_files(
                project, http, &sid, &refresh,
            ))
        },
    )?;
    Ok(())
}

/// The public contract (docs/API.md), through nginx.
async fn contract(http: &Http) -> anyhow::Result<()> {
    // JWKS: public keys only.
    let (status, jwks) = http.get_json("/.well-known/jwks.json", Auth::None).await?;
    ensure!(status == 200, "JWKS answered {status}");
    let keys = jwks["keys"].as_array().context("JWKS without keys")?;
    ensure!(!keys.is_empty(), "JWKS has no key");
    for key in keys {
        ensure!(
            key["kty"] == "RSA" && key["alg"] == "RS256" && key["use"] == "sig",
            "{key}"
        );
        ensure!(
            key["kid"].is_string() && key["n"].is_string() && key["e"].is_string(),
            "{key}"
        );
        ensure!(key.get("d").is_none(), "the JWKS has a private part");
    }

    // Token login, the token replicas.
    let pair = http.login_pair("bob", "builder").await?;
    let access = pair["access_token"].as_str().context("no access_token")?;
    ensure!(pair["token_type"] == "Bearer", "{pair}");
    ensure!(
        pair["expires_in"].is_u64() && pair["refresh_expires_in"].is_u64(),
        "{pair}"
    );
    let (status, me) = http.get_json("/api/me", Auth::Bearer(access)).await?;
    ensure!(
        status == 200 && me["auth"] == "jwt" && me["sub"] == "bob",
        "/api/me: {status} {me}"
    );
    let (status, jobs) = http
        .get_json("/api/jobs/3/applicants", Auth::Bearer(access))
        .await?;
    ensure!(
        status == 200 && jobs["job_id"] == 3,
        "applicants: {status} {jobs}"
    );
    let (status, _) = http.get_json("/api/me", Auth::None).await?;
    ensure!(status == 401, "/api/me without a token answered {status}");
    let (status, _) = http.get_json("/api/me", Auth::Bearer("not.a.jwt")).await?;
    ensure!(status == 401, "/api/me with a bad token answered {status}");
    let alice = http.login_pair("alice", "wonderland").await?;
    let alice_access = alice["access_token"].as_str().context("no access_token")?;
    let (status, _) = http
        .get_json("/api/jobs/3/applicants", Auth::Bearer(alice_access))
        .await?;
    ensure!(
        status == 403,
        "applicants without the recruiter role answered {status}"
    );

    // Refresh rotation; the spent token again is reuse and revokes the family.
    let refresh = pair["refresh_token"].as_str().context("no refresh_token")?;
    let (status, rotated) = http.refresh(refresh).await?;
    ensure!(status == 200, "refresh answered {status}: {rotated}");
    let next = rotated["refresh_token"]
        .as_str()
        .context("no new refresh_token")?;
    ensure!(next != refresh, "refresh did not rotate");
    let (status, reuse) = http.refresh(refresh).await?;
    ensure!(
        status == 401 && reuse["error"] == "invalid_grant",
        "reuse: {status} {reuse}"
    );
    let (status, _) = http.refresh(next).await?;
    ensure!(
        status == 401,
        "the family survived reuse: the successor answered {status}"
    );

    // Sessions, the session replicas.
    let sid = http.session_login("alice", "wonderland").await?;
    let (status, me) = http.get_json("/sapi/me", Auth::Cookie(&sid)).await?;
    ensure!(
        status == 200 && me["auth"] == "session" && me["sub"] == "alice",
        "{status} {me}"
    );
    let status = http
        .send(http.post("/auth/session/logout"), Auth::Cookie(&sid))
        .await?
        .status();
    ensure!(status == 204, "session logout answered {status}");
    let (status, _) = http.get_json("/sapi/me", Auth::Cookie(&sid)).await?;
    ensure!(status == 401, "/sapi/me after logout answered {status}");
    Ok(())
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The value of the `sid` cookie.
    Cookie(&'a str),
}

/// A client for nginx's address: no proxy from the environment, a timeout on everything.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client that opens a new connection for every request: for the checks, which must not
    /// depend on how a client handles a kept-alive connection that nginx closes when it reloads.
    fn new(base: &str) -> anyhow::Result<Http> {
        Http::build(base, reqwest::Client::builder().pool_max_idle_per_host(0))
    }

    /// A client that keeps its connections alive, as a browser or a load generator does: for
    /// the steady stream (see [`Stream`]), one per simulated client, so that each has its own
    /// pool and a request sent again after a reload goes out on a new connection, not on another
    /// idle connection that the same reload closed.
    fn keep_alive(&self) -> anyhow::Result<Http> {
        Http::build(&self.base, reqwest::Client::builder())
    }

    fn build(base: &str, builder: reqwest::ClientBuilder) -> anyhow::Result<Http> {
        let client = builder
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Http {
            client,
            base: base.to_owned(),
        })
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        auth: Auth<'_>,
    ) -> anyhow::Result<reqwest::Response> {
        let request = match auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Cookie(sid) => request.header("cookie", format!("sid={sid}")),
        };
        Ok(request.send().await?)
    }

    async fn get_json(
        &self,
        path: &str,
        auth: Auth<'_>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let response = self.send(self.get(path), auth).await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }

    async fn status(&self, path: &str, auth: Auth<'_>) -> anyhow::Result<u16> {
        Ok(self.send(self.get(path), auth).await?.status().as_u16())
    }

    /// nginx and at least one replica of each kind answer, and the issuer serves its keys.
    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let probe = async {
                let jwks = self.status("/.well-known/jwks.json", Auth::None).await?;
                let api = self.status("/api/me", Auth::None).await?;
                let sapi = self.status("/sapi/me", Auth::None).await?;
                anyhow::Ok((jwks, api, sapi))
            };
            let last = match probe.await {
                Ok((200, 401, 401)) => return Ok(()),
                Ok(statuses) => format!("jwks, /api/me, /sapi/me answered {statuses:?}"),
                Err(e) => format!("{e:#}"),
            };
            ensure!(
                Instant::now() < deadline,
                "not ready after {timeout:?}: {last}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn login_pair(
        &self,
        username: &str,
        password: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::json!({ "username": username, "password": password });
        let response = self
            .send(self.post("/auth/login").json(&body), Auth::None)
            .await?;
        let status = response.status();
        let pair: serde_json::Value = response.json().await?;
        ensure!(
            status == 200,
            "login as {username} answered {status}: {pair}"
        );
        Ok(pair)
    }

    /// A fresh access token.
    async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let pair = self.login_pair(username, password).await?;
        Ok(pair["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned())
    }

    async fn refresh(&self, token: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let body = serde_json::json!({ "refresh_token": token });
        let response = self
            .send(self.post("/auth/refresh").json(&body), Auth::None)
            .await?;
        let status = response.status().as_u16();
        Ok((
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        ))
    }

    /// A new session's `sid` cookie value.
    async fn session_login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({ "username": username, "password": password });
        let request = self.post("/auth/session/login").json(&body);
        let response = self.send(request, Auth::None).await?;
        ensure!(
            response.status() == 204,
            "session login answered {}",
            response.status()
        );
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .context("session login without Set-Cookie")?;
        ensure!(
            cookie.contains("HttpOnly"),
            "the sid cookie is not HttpOnly: {cookie}"
        );
        let sid = cookie
            .split(';')
            .next()
            .and_then(|pair| pair.trim().strip_prefix("sid="))
            .context("Set-Cookie is not sid=…")?;
        Ok(sid.to_owned())
    }

    /// One authenticated `me` call: the replica id, checked against the body's.
    async fn me(&self, path: &str, auth: Auth<'_>) -> anyhow::Result<String> {
        let response = self.send(self.get(path), auth).await?;
        let status = response.status();
        let header = response
            .headers()
            .get("x-replica")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        ensure!(status == 200, "{path} answered {status}: {body}");
        let replica = header.with_context(|| format!("{path} without X-Replica"))?;
        ensure!(
            body["replica"] == replica.as_str(),
            "X-Replica {replica} but body {body}"
        );
        Ok(replica)
    }

    /// Calls `path` until every container in `expected` has answered, and only those (by the
    /// replica id, `<hostname>:<port>`, whose hostname is the container id's first 12 digits).
    async fn replicas_until(
        &self,
        path: &str,
        auth: Auth<'_>,
        expected: &[String],
    ) -> anyhow::Result<BTreeSet<String>> {
        let want: BTreeSet<&str> = expected.iter().map(|id| short(id)).collect();
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < want.len() {
            let replica = self.me(path, auth).await?;
            let host = host_of(&replica).to_owned();
            ensure!(
                want.contains(host.as_str()),
                "{replica} is not one of {want:?}"
            );
            seen.insert(host);
            ensure!(
                Instant::now() < deadline,
                "after 30 s, {path} was served by {seen:?} only, not all of {want:?}"
            );
        }
        Ok(seen)
    }
}

/// A container's address on the project network.
fn ip_of(container: &str) -> anyhow::Result<String> {
    let mut command = Command::new("docker");
    command.args([
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        container,
    ]);
    let text = output_of(command, "docker inspect")?;
    let ip = text
        .split_whitespace()
        .next()
        .context("a container without an address")?;
    Ok(ip.to_owned())
}

/// The first 12 hex digits of a container id: its hostname, and so its replica id's host.
fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn host_of(replica: &str) -> &str {
    replica.rsplit_once(':').map_or(replica, |(host, _)| host)
}

/// [`CLIENTS`] loops of GET /api/me for [`STREAM_FOR`], over keep-alive connections, counting
/// what was not a 200.
///
/// One thing is retried, once, as RFC 9112 (9.3.1) lets a client retry an idempotent request
/// and as browsers and curl do: a request on a kept-alive connection that nginx closed before
/// answering. nginx does that when it reloads (here: when the set of replicas changes), because
/// the old workers close their idle client connections; one whose next request was already on
/// its way is closed too. Those retries are counted and reported, and there can be at most one
/// per connection and reload; anything else (a status other than 200, a timeout, a failed retry)
/// is a failure.
struct Stream {
    tasks: Vec<tokio::task::JoinHandle<(Vec<String>, Vec<String>)>>,
    requests: Arc<AtomicU64>,
    slowest_ms: Arc<AtomicU64>,
}

struct StreamReport {
    requests: u64,
    failures: Vec<String>,
    /// Requests sent again after nginx closed their kept-alive connection (see [`Stream`]).
    retried: Vec<String>,
    slowest_ms: u64,
}

/// A connection closed under a request, before any answer: what a reload does to a kept-alive
/// connection. (A timeout or an HTTP error status is something else.)
fn closed_before_answer(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    [
        "connection closed before message completed",
        "connection reset",
        "broken pipe",
    ]
    .iter()
    .any(|symptom| text.to_lowercase().contains(symptom))
}

impl Stream {
    fn start(
        runtime: &tokio::runtime::Runtime,
        http: &Http,
        token: &str,
    ) -> anyhow::Result<Stream> {
        let requests = Arc::new(AtomicU64::new(0));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + STREAM_FOR;
        let clients = (0..CLIENTS)
            .map(|_| http.keep_alive())
            .collect::<anyhow::Result<Vec<Http>>>()?;
        let tasks = clients
            .into_iter()
            .map(|http| {
                let token = token.to_owned();
                let (requests, slowest_ms) = (requests.clone(), slowest_ms.clone());
                runtime.spawn(async move {
                    let (mut failures, mut retried) = (Vec::new(), Vec::new());
                    while Instant::now() < until {
                        let start = Instant::now();
                        let mut result = http.status("/api/me", Auth::Bearer(&token)).await;
                        if let Err(e) = &result
                            && closed_before_answer(e)
                        {
                            retried.push(format!("{e:#}"));
                            result = http.status("/api/me", Auth::Bearer(&token)).await;
                        }
                        match result {
                            Ok(200) => {}
                            Ok(status) => failures.push(format!("status {status}")),
                            Err(e) => failures.push(format!("{e:#}")),
                        }
                        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                        slowest_ms.fetch_max(ms, Ordering::Relaxed);
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                    (failures, retried)
                })
            })
            .collect();
        Ok(Stream {
            tasks,
            requests,
            slowest_ms,
        })
    }

    fn finish(self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<StreamReport> {
        let (mut failures, mut retried) = (Vec::new(), Vec::new());
        for task in self.tasks {
            let (task_failures, task_retried) = runtime.block_on(task)?;
            failures.extend(task_failures);
            retried.extend(task_retried);
        }
        Ok(StreamReport {
            requests: self.requests.load(Ordering::Relaxed),
            failures,
            retried,
            slowest_ms: self.slowest_ms.load(Ordering::Relaxed),
        })
    }
}

fn print_image_sizes() {
    let mut command = Command::new("docker");
    command.args([
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Size}}",
    ]);
    if let Ok(text) = output_of(command, "docker image ls") {
        eprintln!("compose test: images:");
        for line in text
            .lines()
            .filter(|l| l.starts_with("authscale/") || l.starts_with("debian:bookworm-slim"))
        {
            eprintln!("  {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str) -> String {
        std::fs::read_to_string(workspace_root().join(path)).unwrap()
    }

    /// From the `runtime` stage to the end, with the binaries' source made the same.
    fn runtime_stages(dockerfile: &str) -> String {
        let start = dockerfile.find("FROM ${RUNTIME_IMAGE} AS runtime").unwrap();
        dockerfile[start..].replace("COPY --from=builder /src/target/release/", "COPY ")
    }

    /// The offline images must be the images a registry build makes, apart from where the
    /// binaries come from.
    #[test]
    fn offline_and_source_builds_share_the_runtime() {
        let source = read("deploy/docker/services.Dockerfile");
        let prebuilt = read("deploy/docker/services-prebuilt.Dockerfile");
        assert_eq!(runtime_stages(&source), runtime_stages(&prebuilt));
    }

    /// Every image the compose files name is one the offline script builds.
    #[test]
    fn the_offline_script_builds_every_image_compose_names() {
        let script = read("deploy/offline-images.sh");
        let compose = read("docker-compose.yml") + &read("deploy/docker-compose.offline.yml");
        let images: BTreeSet<&str> = compose
            .lines()
            .filter_map(|line| line.trim().strip_prefix("image: "))
            .filter(|image| image.starts_with("authscale/"))
            .collect();
        assert_eq!(images.len(), 4, "{images:?}");
        for image in images {
            assert!(
                script.contains(&format!("={image}\n")),
                "{image} is not built offline"
            );
        }
    }

    fn render(template: &Path) -> std::process::Output {
        Command::new("sh")
            .arg(workspace_root().join("deploy/docker/nginx-entrypoint.sh"))
            .arg("render")
            .env("TEMPLATE", template)
            .env("ISSUER_HOST", "localhost")
            .env("API_HOST", "localhost")
            .env("SESSION_API_HOST", "no-such-host.invalid")
            .output()
            .unwrap()
    }

    /// The compose entrypoint fills every placeholder of the real template, and nginx accepts
    /// the result (the same check as the launcher's, crates/stack/src/nginx.rs).
    #[test]
    fn the_compose_entrypoint_renders_the_template() {
        let template = workspace_root().join("deploy/nginx/nginx.conf.template");
        let output = render(&template);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let config = String::from_utf8(output.stdout).unwrap();
        assert!(!config.contains("{{"), "a placeholder is left");
        assert!(config.contains("listen 0.0.0.0:8080;"));
        assert!(config.contains("server 127.0.0.1:8080 max_fails=1 fail_timeout=2s;"));
        // A name that does not resolve: a `down` server, as the launcher writes for none.
        assert!(config.contains("server 127.0.0.1:1 down;"));

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, &config).unwrap();
        let nginx = stack::programs::nginx().unwrap();
        stack::nginx::test_config(&nginx, dir.path(), &conf).unwrap();
    }

    /// A placeholder the entrypoint does not know stops it, loudly.
    #[test]
    fn the_compose_entrypoint_refuses_an_unknown_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("nginx.conf.template");
        std::fs::write(&template, "listen {{LISTEN}};\nroot {{NEW_THING}};\n").unwrap();
        let output = render(&template);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("{{NEW_THING}}"), "{stderr}");
    }

    #[test]
    fn replica_ids_name_their_container() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(host_of("0123456789ab:8080"), "0123456789ab");
        assert_eq!(host_of("jwt-1"), "jwt-1");
    }
}
