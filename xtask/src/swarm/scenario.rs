//! The swarm test's phases, in order (the list is in [`super`]'s comment). Each drives the
//! stack through nginx, on the manager's published port, with testkit's [`Client`], and looks
//! at the swarm through the manager's `docker` ([`Hosts::docker`]).

use super::hosts::Hosts;
use crate::compose::docker::{output_of, short};
use crate::compose::scenario::{contract, no_failures, replicas_until, session_sid, wait_ready};
use crate::timings::Timings;
use anyhow::{Context, ensure};
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::stream::{Settings, Stream, StreamReport};
use testkit::wait::{self, Poll};
use testkit::{Auth, Client, Pair};

const STACK: &str = "authscale";
/// The hosts' roles: the manager (nginx is pinned to managers), a worker that gets killed, and
/// the store's node.
const MANAGER: usize = 0;
const WORKER: usize = 1;
const STORE: usize = 2;
pub(super) const IMAGES: [&str; 4] = [
    "authscale/auth-issuer:latest",
    "authscale/api:latest",
    "authscale/nginx:latest",
    "authscale/redis:bookworm",
];
/// Where the deploy/ directory goes on the manager, as a user's checkout would be.
const CHECKOUT: &str = "/authscale";
/// The steady stream while a host dies or the token replicas are replaced.
const CLIENTS: usize = 20;
/// How the issuers are told which secret files they read (uid 10001 reads them, nobody else).
const SECRET_OWNER: &str = "uid=10001,gid=10001,mode=0400";

pub fn drive(timings: &mut Timings, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let hosts = timings.phase("3 Docker hosts; a swarm of 1 manager and 2 workers", || {
        let hosts = Hosts::start(3)?;
        hosts.form_swarm()?;
        Ok(hosts)
    })?;
    timings.phase(
        "load the images into every host (docker save | docker load)",
        || hosts.load_images(&IMAGES),
    )?;
    let client = Client::fresh_connections(&format!("http://{}:8080", hosts.ip(MANAGER)?))?;
    let result = phases(timings, runtime, &hosts, &client);
    if result.is_err() {
        print_diagnostics(&hosts);
    }
    result
}

fn phases(
    timings: &mut Timings,
    runtime: &tokio::runtime::Runtime,
    hosts: &Hosts,
    client: &Client,
) -> anyhow::Result<()> {
    timings.phase("deploy the stack (secrets.sh, docker stack deploy)", || {
        deploy(hosts)?;
        runtime.block_on(wait_ready(client, Duration::from_secs(180)))?;
        // Ready through nginx means one task of each kind; the phases below want them all.
        wait::blocking_until("every task running", Duration::from_secs(120), || {
            converged(hosts, "")
        })
    })?;
    say(&format!("nginx on {}", client.base()));
    timings.phase("contract through nginx", || {
        runtime.block_on(contract(client))
    })?;
    timings.phase("token replicas on 2 hosts, every one answering", || {
        spread(hosts, runtime, client)
    })?;
    timings.phase(
        "a refresh token minted by one issuer, rotated by the other",
        || runtime.block_on(across_issuers(client)),
    )?;
    timings.phase(
        "key rotation as a secret rotation, across both issuers",
        || rotate_key(hosts, runtime, client),
    )?;
    timings.phase("a worker host killed under a stream of GET /api/me", || {
        host_killed(hosts, runtime, client)
    })?;
    timings.phase(
        "rolling update of the token replicas under the stream",
        || rolling_update(hosts, runtime, client),
    )?;
    timings.phase("the store's host cut off, then back: nothing lost", || {
        store_cut_off(hosts, runtime, client)
    })?;
    timings.phase("scale to 6 token replicas: all 6 serve", || {
        hosts.docker(
            MANAGER,
            &["service", "scale", "--detach=false", &service("api=6")],
        )?;
        let ids = task_containers(hosts, "api")?;
        ensure!(ids.len() == 6, "{} api tasks run, not 6", ids.len());
        runtime.block_on(async {
            let token = client.login("bob", "builder").await?.access;
            replicas_until(client, "/api/me", Auth::Bearer(&token), &ids).await
        })?;
        Ok(())
    })?;
    timings.phase(
        "docker stack rm: only the secrets and the volume stay",
        || stack_removed(hosts),
    )
}

fn say(line: &str) {
    eprintln!("swarm test: {line}");
}

fn service(name: &str) -> String {
    format!("{STACK}_{name}")
}

/// As a user on the manager: label the store's node, make the secrets, deploy.
fn deploy(hosts: &Hosts) -> anyhow::Result<()> {
    let store = hosts.node_id(STORE)?;
    hosts.docker(
        MANAGER,
        &[
            "node",
            "update",
            "--label-add",
            "authscale.store=true",
            &store,
        ],
    )?;
    hosts.sh(MANAGER, &format!("mkdir -p {CHECKOUT}"))?;
    let mut copy = Command::new("docker");
    copy.arg("cp")
        .arg(stack::workspace_root().join("deploy"))
        .arg(format!("{}:{CHECKOUT}/deploy", hosts.name(MANAGER)));
    output_of(copy, "docker cp deploy/ to the manager")?;
    hosts.sh(
        MANAGER,
        &format!(
            "cd {CHECKOUT} && deploy/swarm/secrets.sh && \
             AUTHSCALE_APP_CONSTRAINT='node.labels.authscale.store != true' \
             docker stack deploy -c deploy/swarm/stack.yml {STACK}"
        ),
    )?;
    Ok(())
}

/// Full ids of the running containers of a service, on every host that answers.
fn task_containers(hosts: &Hosts, name: &str) -> anyhow::Result<Vec<String>> {
    let filter = format!("label=com.docker.swarm.service.name={}", service(name));
    let mut ids = Vec::new();
    for host in 0..hosts.count() {
        if let Ok(found) = hosts.docker(host, &["ps", "-q", "--no-trunc", "--filter", &filter]) {
            ids.extend(found.split_whitespace().map(str::to_owned));
        }
    }
    Ok(ids)
}

/// The nodes (host names) where a service's tasks run now.
fn task_nodes(hosts: &Hosts, name: &str) -> anyhow::Result<Vec<String>> {
    let text = hosts.docker(
        MANAGER,
        &[
            "service",
            "ps",
            "--filter",
            "desired-state=running",
            "--format",
            "{{.Node}} {{.CurrentState}}",
            &service(name),
        ],
    )?;
    Ok(text
        .lines()
        .filter(|line| line.contains(" Running"))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect())
}

fn spread(hosts: &Hosts, runtime: &tokio::runtime::Runtime, client: &Client) -> anyhow::Result<()> {
    let nodes: BTreeSet<String> = task_nodes(hosts, "api")?.into_iter().collect();
    ensure!(nodes.len() >= 2, "the token replicas run on {nodes:?} only");
    ensure!(
        !nodes.contains(hosts.name(STORE)),
        "a token replica runs on the store's node"
    );
    let ids = task_containers(hosts, "api")?;
    ensure!(ids.len() == 3, "{} api tasks, not 3", ids.len());
    let seen = runtime.block_on(async {
        let token = client.login("bob", "builder").await?.access;
        replicas_until(client, "/api/me", Auth::Bearer(&token), &ids).await
    })?;
    eprintln!("swarm test: token replicas on {nodes:?}, answering as {seen:?}");
    Ok(())
}

/// A call to the issuer: its answer and which issuer gave it.
async fn issuer_call(request: reqwest::RequestBuilder) -> anyhow::Result<(Pair, String)> {
    let response = request.send().await?;
    let issuer = response
        .headers()
        .get("x-issuer")
        .and_then(|v| v.to_str().ok())
        .context("an issuer answer without X-Issuer")?
        .to_owned();
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == StatusCode::OK, "{status} from {issuer}: {body}");
    Ok((Pair::from_json(&body)?, issuer))
}

/// Logs in, then refreshes until an issuer other than the one that minted the refresh token
/// rotates it (nginx balances round robin over the issuers, so that is the first or second).
async fn across_issuers(client: &Client) -> anyhow::Result<()> {
    let (mut pair, mut minted_by) = issuer_call(client.login_request("bob", "builder")).await?;
    for _ in 0..10 {
        let (next, rotated_by) = issuer_call(client.refresh_request(&pair.refresh)).await?;
        if rotated_by != minted_by {
            eprintln!("swarm test: minted by {minted_by}, rotated by {rotated_by}");
            let status = client.status("/api/me", Auth::Bearer(&next.access)).await?;
            ensure!(
                status == 200,
                "/api/me with the rotated pair's token: {status}"
            );
            return Ok(());
        }
        (pair, minted_by) = (next, rotated_by);
    }
    anyhow::bail!("ten refreshes in a row were answered by {minted_by}: is there one issuer?")
}

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let header = jwt.split('.').next().context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header)?;
    let header: Value = serde_json::from_slice(&bytes)?;
    header["kid"].as_str().map(str::to_owned).context("no kid")
}

fn rotate_key(
    hosts: &Hosts,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<()> {
    let before = runtime.block_on(client.login("alice", "wonderland"))?;
    let old_kid = kid_of(&before.access)?;
    let issuer = service("auth-issuer");
    hosts.sh(
        MANAGER,
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | \
         docker secret create authscale_signing_key_2 - >/dev/null",
    )?;
    // Step 1: published by every issuer, signing nothing yet.
    let started = Instant::now();
    hosts.docker(
        MANAGER,
        &[
            "service",
            "update",
            "--quiet",
            "--detach=false",
            "--secret-add",
            &format!("source=authscale_signing_key_2,target=signing_key_next,{SECRET_OWNER}"),
            &issuer,
        ],
    )?;
    // Every answer, from either issuer, publishes both keys.
    let published = runtime.block_on(every_jwks(client))?;
    ensure!(
        published
            .iter()
            .all(|kids| kids.len() == 2 && kids.contains(&old_kid)),
        "the JWKS answers after step 1: {published:?}"
    );
    let during = runtime.block_on(client.login("alice", "wonderland"))?;
    ensure!(
        kid_of(&during.access)? == old_kid,
        "the next key signed before step 2"
    );
    eprintln!(
        "swarm test: step 1 (publish) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Step 2: the new key signs; the old one stays trusted as the previous one.
    let started = Instant::now();
    hosts.docker(
        MANAGER,
        &[
            "service",
            "update",
            "--quiet",
            "--detach=false",
            "--secret-rm",
            "authscale_signing_key",
            "--secret-rm",
            "authscale_signing_key_2",
            "--secret-add",
            &format!("source=authscale_signing_key_2,target=signing_key,{SECRET_OWNER}"),
            "--secret-add",
            &format!("source=authscale_signing_key,target=signing_key_previous,{SECRET_OWNER}"),
            &issuer,
        ],
    )?;
    eprintln!(
        "swarm test: step 2 (sign with the new key) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let published = runtime.block_on(every_jwks(client))?;
    ensure!(
        published
            .iter()
            .all(|kids| *kids == published[0] && kids.contains(&old_kid)),
        "the JWKS answers after step 2 are not the new and the previous key: {published:?}"
    );
    runtime.block_on(async {
        for _ in 0..4 {
            let after = client.login("alice", "wonderland").await?;
            let new_kid = kid_of(&after.access)?;
            ensure!(new_kid != old_kid, "an issuer still signs with the old key");
            ensure!(
                published[0].contains(&new_kid),
                "{new_kid} is not in the JWKS"
            );
            let status = client
                .status("/api/me", Auth::Bearer(&after.access))
                .await?;
            ensure!(status == 200, "/api/me with a new-key token: {status}");
        }
        // Tokens of the old key: the access token still verifies at the replicas, and the
        // refresh token is rotated by the new issuers.
        let status = client
            .status("/api/me", Auth::Bearer(&before.access))
            .await?;
        ensure!(status == 200, "/api/me with an old-key token: {status}");
        let rotated = client.refresh(&before.refresh).await?;
        ensure!(
            kid_of(&rotated.access)? != old_kid,
            "rotated with the old key"
        );
        client.refresh(&during.refresh).await?;
        Ok(())
    })
}

/// The kids of four JWKS answers in a row (nginx takes turns over the issuers), one set each.
async fn every_jwks(client: &Client) -> anyhow::Result<Vec<BTreeSet<String>>> {
    let mut answers = Vec::new();
    for _ in 0..4 {
        let jwks = client.jwks().await?;
        let keys = jwks["keys"].as_array().context("a JWKS without keys")?;
        answers.push(
            keys.iter()
                .filter_map(|key| key["kid"].as_str().map(str::to_owned))
                .collect(),
        );
    }
    Ok(answers)
}

/// A stream of `GET /api/me` from [`CLIENTS`] clients until stopped.
fn start_stream(runtime: &tokio::runtime::Runtime, client: &Client) -> anyhow::Result<Stream> {
    let token = runtime.block_on(client.login("bob", "builder"))?.access;
    let settings = Settings {
        clients: CLIENTS,
        run_for: None,
        pause: Duration::ZERO,
    };
    let _in_runtime = runtime.enter();
    Ok(Stream::start(client, settings, move |client| {
        client.get("/api/me", Auth::Bearer(&token))
    })?)
}

fn stop_stream(runtime: &tokio::runtime::Runtime, stream: Stream, what: &str) -> StreamReport {
    stream.stop();
    let report = runtime.block_on(stream.finish());
    eprintln!(
        "swarm test: {what}: {} requests from {CLIENTS} clients, {} failed, {} resent after \
         nginx closed a kept-alive connection, slowest {} ms",
        report.requests,
        report.failures.len(),
        report.resent.len(),
        report.slowest.as_millis()
    );
    report
}

/// Every service has all its replicas running, none on `dead`.
fn converged(hosts: &Hosts, dead: &str) -> anyhow::Result<Poll<()>> {
    let mut waiting = Vec::new();
    for (name, want) in [
        ("api", 3),
        ("session-api", 3),
        ("auth-issuer", 2),
        ("nginx", 1),
    ] {
        let nodes = task_nodes(hosts, name)?;
        let alive = nodes.iter().filter(|n| n.as_str() != dead).count();
        if alive != want || nodes.len() != want {
            waiting.push(format!("{name}: {nodes:?}"));
        }
    }
    Ok(if waiting.is_empty() {
        Poll::Ready(())
    } else {
        Poll::Pending(waiting.join("; "))
    })
}

fn host_killed(
    hosts: &Hosts,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<()> {
    let victim = hosts.name(WORKER).to_owned();
    let on_victim: Vec<String> = ["api", "session-api", "auth-issuer"]
        .iter()
        .flat_map(|name| {
            let nodes = task_nodes(hosts, name).unwrap_or_default();
            let count = nodes.iter().filter(|n| **n == victim).count();
            (count > 0).then(|| format!("{count} {name}"))
        })
        .collect();
    ensure!(
        !on_victim.is_empty(),
        "no task runs on {victim}: its death would test nothing"
    );
    say(&format!("on {victim}: {}", on_victim.join(", ")));
    let stream = start_stream(runtime, client)?;
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    let ip = hosts.power_off(WORKER)?;
    let rescheduled = wait::blocking_until(
        "every task running again, none on the killed host",
        Duration::from_secs(120),
        || converged(hosts, &victim),
    );
    let took = killed.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let report = stop_stream(runtime, stream, "while a host was killed");
    rescheduled?;
    say(&format!(
        "{victim} killed; its tasks ran again on the other host {:.1} s later",
        took.as_secs_f64()
    ));
    no_failures(&report, "while a host was killed")?;
    // The host comes back and rejoins: it is a worker again, ready for the phases below.
    let restarted = Instant::now();
    hosts.restart(WORKER, &ip)?;
    let node = hosts.node_id(WORKER)?;
    wait::blocking_until("the host rejoins as Ready", Duration::from_secs(60), || {
        let state = hosts.docker(
            MANAGER,
            &["node", "inspect", "--format", "{{.Status.State}}", &node],
        )?;
        anyhow::Ok(match state.trim() {
            "ready" => Poll::Ready(()),
            other => Poll::Pending(other.to_owned()),
        })
    })?;
    say(&format!(
        "{victim} started again and rejoined in {:.1} s",
        restarted.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn rolling_update(
    hosts: &Hosts,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<()> {
    let before: BTreeSet<String> = task_containers(hosts, "api")?.into_iter().collect();
    let stream = start_stream(runtime, client)?;
    std::thread::sleep(Duration::from_secs(2));
    let started = Instant::now();
    let updated = hosts.docker(
        MANAGER,
        &[
            "service",
            "update",
            "--force",
            "--quiet",
            "--detach=false",
            &service("api"),
        ],
    );
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let report = stop_stream(runtime, stream, "during the rolling update");
    updated?;
    let after: BTreeSet<String> = task_containers(hosts, "api")?.into_iter().collect();
    ensure!(
        before.is_disjoint(&after) && after.len() == 3,
        "not every token replica was replaced: before {before:?}, after {after:?}"
    );
    say(&format!(
        "3 token replicas replaced one at a time in {:.1} s",
        took.as_secs_f64()
    ));
    no_failures(&report, "during the rolling update")
}

fn store_cut_off(
    hosts: &Hosts,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<()> {
    let (pair, sid, spent) = runtime.block_on(async {
        let pair = client.login("bob", "builder").await?;
        let sid = session_sid(client, "alice", "wonderland").await?;
        let spent = client.login("bob", "builder").await?;
        let status = client.logout_request(&spent.refresh).send().await?.status();
        ensure!(status.is_success(), "logout answered {status}");
        anyhow::Ok((pair, sid, spent))
    })?;
    // Past appendfsync everysec: these writes are on the store's disk.
    std::thread::sleep(Duration::from_millis(2500));
    let ip = hosts.ip(STORE)?;
    let cut = Instant::now();
    hosts.cut_off(STORE)?;
    runtime.block_on(async {
        wait::until("/sapi/me answers 503", Duration::from_secs(30), || async {
            let status = client.status("/sapi/me", Auth::Sid(&sid)).await?;
            anyhow::Ok(match status {
                StatusCode::SERVICE_UNAVAILABLE => Poll::Ready(()),
                other => Poll::Pending(other.to_string()),
            })
        })
        .await?;
        for _ in 0..20 {
            let status = client.status("/api/me", Auth::Bearer(&pair.access)).await?;
            ensure!(status == 200, "/api/me answered {status} without the store");
        }
        anyhow::Ok(())
    })?;
    say(&format!(
        "store cut off: /sapi/me 503 after {:.1} s, /api/me 200",
        cut.elapsed().as_secs_f64()
    ));
    // Its Redis dies while nobody can reach it: what comes back is a new task that has only
    // the append-only file on the node's volume to go by.
    let killed = redis_container(hosts)?;
    hosts.docker(STORE, &["kill", &killed])?;
    hosts.reconnect(STORE, &ip)?;
    let back = Instant::now();
    runtime.block_on(async {
        wait::until(
            "/sapi/me answers 200 again",
            Duration::from_secs(120),
            || async {
                let status = client.status("/sapi/me", Auth::Sid(&sid)).await?;
                anyhow::Ok(match status {
                    StatusCode::OK => Poll::Ready(()),
                    other => Poll::Pending(other.to_string()),
                })
            },
        )
        .await?;
        say(&format!(
            "store reconnected, its Redis restarted: the same session served again after {:.1} s",
            back.elapsed().as_secs_f64()
        ));
        let now = redis_container(hosts)?;
        ensure!(
            now != killed,
            "Redis is still the container that was killed"
        );
        client
            .refresh(&pair.refresh)
            .await
            .context("the refresh token from before the cut")?;
        let refused = client.refresh(&spent.refresh).await;
        ensure!(
            matches!(&refused, Err(testkit::Error::Api(e)) if e.status == 401),
            "a logged-out refresh token after the cut: {refused:?}"
        );
        Ok(())
    })
}

/// The running Redis container on the store's host.
fn redis_container(hosts: &Hosts) -> anyhow::Result<String> {
    let filter = format!("label=com.docker.swarm.service.name={}", service("redis"));
    let ids = hosts.docker(STORE, &["ps", "-q", "--no-trunc", "--filter", &filter])?;
    ids.split_whitespace()
        .next()
        .map(str::to_owned)
        .context("no Redis container runs on the store's host")
}

/// `docker stack rm`: services, tasks and networks go; the secrets and Redis's volume stay
/// (what a redeploy needs to find the same keys and data).
fn stack_removed(hosts: &Hosts) -> anyhow::Result<()> {
    hosts.docker(MANAGER, &["stack", "rm", STACK])?;
    wait::blocking_until(
        "the stack's containers gone",
        Duration::from_secs(60),
        || {
            let mut left = Vec::new();
            for host in 0..hosts.count() {
                let filter = format!("label=com.docker.stack.namespace={STACK}");
                let ids = hosts.docker(host, &["ps", "-aq", "--filter", &filter])?;
                left.extend(
                    ids.split_whitespace()
                        .map(|id| format!("{}: {}", hosts.name(host), short(id))),
                );
            }
            anyhow::Ok(if left.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(left.join(", "))
            })
        },
    )?;
    let services = hosts.docker(MANAGER, &["service", "ls", "-q"])?;
    ensure!(services.trim().is_empty(), "services left: {services}");
    let networks = hosts.docker(
        MANAGER,
        &[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label=com.docker.stack.namespace={STACK}"),
        ],
    )?;
    ensure!(networks.trim().is_empty(), "networks left: {networks}");
    let secrets = hosts.docker(MANAGER, &["secret", "ls", "--format", "{{.Name}}"])?;
    for kept in ["authscale_signing_key_2", "authscale_redis_issuer_password"] {
        ensure!(
            secrets.lines().any(|name| name == kept),
            "the secret {kept} went with the stack: {secrets}"
        );
    }
    let volumes = hosts.docker(STORE, &["volume", "ls", "--format", "{{.Name}}"])?;
    ensure!(
        volumes.contains(&format!("{STACK}_redis-data")),
        "Redis's volume went with the stack: {volumes}"
    );
    Ok(())
}

fn print_diagnostics(hosts: &Hosts) {
    eprintln!("swarm test: state at the failure:");
    for args in [
        vec!["node", "ls"],
        vec!["service", "ls"],
        vec!["stack", "ps", "--no-trunc", STACK],
    ] {
        match hosts.docker(MANAGER, &args) {
            Ok(text) => eprintln!("$ docker {}\n{text}", args.join(" ")),
            Err(e) => eprintln!("$ docker {}: {e:#}", args.join(" ")),
        }
    }
    for name in ["nginx", "auth-issuer", "redis"] {
        if let Ok(text) = hosts.docker(
            MANAGER,
            &["service", "logs", "--tail", "15", &service(name)],
        ) {
            eprintln!("--- {name}\n{text}");
        }
    }
}
