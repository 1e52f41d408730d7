//! The compose test's phases between `up` and `down`, in order (the list is in [`super`]'s
//! comment): each one drives the running project through nginx with testkit's [`Client`] and
//! looks at the containers with [`super::docker`]. The store phases are in [`super::store`].

use super::docker::{self, Project, host_of, ip_of, short};
use super::prometheus::{self, Prometheus};
use super::store;
use crate::timings::Timings;
use anyhow::{Context, ensure};
use reqwest::StatusCode;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use testkit::stream::{Settings, Stream, StreamReport};
use testkit::wait::{self, Poll};
use testkit::{Auth, Client};

/// The steady stream while a replica is killed.
const CLIENTS: usize = 20;
const STREAM_FOR: Duration = Duration::from_secs(8);
const KILL_AFTER: Duration = Duration::from_secs(3);
/// How long every replica of a kind may take to have answered at least once.
const ALL_REPLICAS_WITHIN: Duration = Duration::from_secs(30);
/// The pause between two calls of [`replicas_until`].
const BETWEEN_CALLS: Duration = Duration::from_millis(100);

/// Every phase between `up` and `down`.
pub fn drive(
    timings: &mut Timings,
    project: &Project,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<()> {
    timings.phase("promtool: Prometheus's config and rules", || {
        prometheus::check_config(project)
    })?;

    timings.phase(
        "up: redis, issuer, 3 + 3 replicas, nginx, prometheus",
        || {
            project.run(&["up", "-d", "--no-build"])?;
            runtime.block_on(wait_ready(client, Duration::from_secs(90)))
        },
    )?;
    let prometheus = Prometheus::new(project.prometheus_port)?;
    eprintln!(
        "compose test: nginx on {}, Prometheus on {}",
        client.base(),
        prometheus.base()
    );

    timings.phase("contract through nginx", || {
        runtime.block_on(contract(client))
    })?;

    timings.phase("3 distinct replicas of each kind", || {
        runtime.block_on(async {
            let token = client.login("bob", "builder").await?.access;
            let sid = session_sid(client, "alice", "wonderland").await?;
            let api = project.containers("api", false)?;
            let session = project.containers("session-api", false)?;
            ensure!(
                api.len() == 3 && session.len() == 3,
                "not 3 + 3 replicas: {api:?} {session:?}"
            );
            let seen_api = replicas_until(client, "/api/me", Auth::Bearer(&token), &api).await?;
            let seen_session =
                replicas_until(client, "/sapi/me", Auth::Sid(&sid), &session).await?;
            eprintln!("compose test: /api/ served by {seen_api:?}, /sapi/ by {seen_session:?}");
            Ok(())
        })
    })?;

    timings.phase(
        "prometheus: every container a target, each one up; its graph page",
        || {
            let targets = runtime.block_on(prometheus::every_target_up(project, &prometheus))?;
            eprintln!("compose test: Prometheus scrapes {targets} targets, all up");
            runtime.block_on(prometheus.graph_page())
        },
    )?;

    let killed = timings.phase(
        "kill a token replica under a steady stream of GET /api/me",
        || kill_under_stream(project, runtime, client),
    )?;

    timings.phase("scale to 4 token replicas; the new one serves", || {
        scale_up(project, runtime, client, &killed)
    })?;

    timings.phase(
        "prometheus: the new replica a target by itself; every rule evaluates",
        || {
            runtime.block_on(async {
                let targets = prometheus::every_target_up(project, &prometheus).await?;
                eprintln!("compose test: Prometheus scrapes {targets} targets, all up");
                for line in prometheus::rules_evaluate(&prometheus, client).await? {
                    eprintln!("compose test: {line}");
                }
                anyhow::Ok(())
            })
        },
    )?;

    timings.phase(
        "the store: its network and ACL users (issuer, session; default off)",
        || store::isolation(project),
    )?;

    timings.phase(
        "kill -9 and restart redis: a session and a refresh token survive",
        || runtime.block_on(store::survives_restart(project, client)),
    )?;

    let (sid, refresh) = timings.phase("stop redis: /api/me 200, /sapi/me 503", || {
        runtime.block_on(redis_stopped(project, client))
    })?;

    timings.phase(
        "redis back without its files: the old session and refresh token refused",
        || {
            runtime.block_on(store::forgets_without_its_files(
                project, client, &sid, &refresh,
            ))
        },
    )?;
    Ok(())
}

/// nginx and at least one replica of each kind answer, and the issuer serves its keys.
pub async fn wait_ready(client: &Client, timeout: Duration) -> anyhow::Result<()> {
    wait::until("the project is ready", timeout, || async {
        let probe = async {
            let jwks = client.status("/.well-known/jwks.json", Auth::None).await?;
            let api = client.status("/api/me", Auth::None).await?;
            let sapi = client.status("/sapi/me", Auth::None).await?;
            reqwest::Result::Ok([jwks, api, sapi].map(|status| status.as_u16()))
        };
        Ok::<_, anyhow::Error>(match probe.await {
            Ok([200, 401, 401]) => Poll::Ready(()),
            Ok(statuses) => Poll::Pending(format!("jwks, /api/me, /sapi/me answered {statuses:?}")),
            Err(e) => Poll::Pending(e.to_string()),
        })
    })
    .await
}

/// A new session's `sid`, from a cookie the page's scripts cannot read.
pub async fn session_sid(
    client: &Client,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let cookie = client.session_login(username, password).await?;
    ensure!(
        cookie.http_only(),
        "the sid cookie is not HttpOnly: {}",
        cookie.set_cookie
    );
    Ok(cookie.sid)
}

/// The public contract (docs/API.md), through nginx.
pub async fn contract(client: &Client) -> anyhow::Result<()> {
    // JWKS: public keys only.
    let jwks = client.jwks().await?;
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

    // Token login, the token replicas. (The pair's expiries are numbers, or `login` fails.)
    let pair = client.login("bob", "builder").await?;
    ensure!(
        pair.token_type == "Bearer",
        "token_type {}",
        pair.token_type
    );
    let me = client.me("/api/me", Auth::Bearer(&pair.access)).await?.body;
    ensure!(me["auth"] == "jwt" && me["sub"] == "bob", "/api/me: {me}");
    let (status, jobs) = client
        .get_json("/api/jobs/3/applicants", Auth::Bearer(&pair.access))
        .await?;
    ensure!(
        status == StatusCode::OK && jobs["job_id"] == 3,
        "applicants: {status} {jobs}"
    );
    let status = client.status("/api/me", Auth::None).await?;
    ensure!(status == 401, "/api/me without a token answered {status}");
    let status = client.status("/api/me", Auth::Bearer("not.a.jwt")).await?;
    ensure!(status == 401, "/api/me with a bad token answered {status}");
    let alice = client.login("alice", "wonderland").await?;
    let status = client
        .status("/api/jobs/3/applicants", Auth::Bearer(&alice.access))
        .await?;
    ensure!(
        status == 403,
        "applicants without the recruiter role answered {status}"
    );

    // Refresh rotation; the spent token again is reuse and revokes the family.
    let rotated = client.refresh(&pair.refresh).await?;
    ensure!(rotated.refresh != pair.refresh, "refresh did not rotate");
    let reuse = refused(
        client.refresh(&pair.refresh).await,
        "reuse of a spent token",
    )?;
    ensure!(
        reuse.status == 401 && reuse.error == "invalid_grant",
        "reuse: {reuse}"
    );
    let family = refused(client.refresh(&rotated.refresh).await, "the successor")?;
    ensure!(
        family.status == 401,
        "the family survived reuse: the successor answered {family}"
    );

    // Sessions, the session replicas.
    let sid = session_sid(client, "alice", "wonderland").await?;
    let me = client.me("/sapi/me", Auth::Sid(&sid)).await?.body;
    ensure!(me["auth"] == "session" && me["sub"] == "alice", "{me}");
    client.session_logout(Auth::Sid(&sid)).await?;
    let status = client.status("/sapi/me", Auth::Sid(&sid)).await?;
    ensure!(status == 401, "/sapi/me after logout answered {status}");
    Ok(())
}

/// The contract's refusal in `result`; an error if the call succeeded or got no answer.
fn refused<T>(result: Result<T, testkit::Error>, what: &str) -> anyhow::Result<testkit::ApiError> {
    match result {
        Ok(_) => anyhow::bail!("{what} was accepted"),
        Err(testkit::Error::Api(refusal)) => Ok(refusal),
        Err(other) => Err(other).with_context(|| what.to_owned()),
    }
}

/// Calls `path` until every container in `expected` has answered, and only those (by the
/// replica id, `<hostname>:<port>`, whose hostname is the container id's first 12 digits).
pub async fn replicas_until(
    client: &Client,
    path: &str,
    auth: Auth<'_>,
    expected: &[String],
) -> anyhow::Result<BTreeSet<String>> {
    let want: BTreeSet<&str> = expected.iter().map(|id| short(id)).collect();
    let deadline = Instant::now() + ALL_REPLICAS_WITHIN;
    let mut seen = BTreeSet::new();
    while seen.len() < want.len() {
        let replica = client.me(path, auth).await?.replica;
        let host = host_of(&replica).to_owned();
        ensure!(
            want.contains(host.as_str()),
            "{replica} is not one of {want:?}"
        );
        seen.insert(host);
        if seen.len() < want.len() {
            if Instant::now() >= deadline {
                return Err(wait::TimedOut {
                    what: format!("{path} served by all of {want:?}"),
                    limit: ALL_REPLICAS_WITHIN,
                    last: format!("served by {seen:?} only"),
                }
                .into());
            }
            tokio::time::sleep(BETWEEN_CALLS).await;
        }
    }
    Ok(seen)
}

/// One token replica `docker kill`ed while [`CLIENTS`] clients call `/api/me` without a pause:
/// not one request fails, and nginx drops the dead address. The killed container's id.
fn kill_under_stream(
    project: &Project,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
) -> anyhow::Result<String> {
    let token = runtime.block_on(client.login("bob", "builder"))?.access;
    let api = project.containers("api", false)?;
    let victim = api.first().context("no api container")?.clone();
    let victim_server = format!("server {}:8080 ", ip_of(&victim)?);
    ensure!(
        project.nginx_config()?.contains(&victim_server),
        "nginx's config has no `{victim_server}` line before the kill"
    );
    let reloads_before = project.nginx_reloads()?;
    let settings = Settings {
        clients: CLIENTS,
        run_for: Some(STREAM_FOR),
        pause: Duration::ZERO,
    };
    let stream = {
        let token = token.clone();
        // The stream's clients are tasks on this runtime.
        let _in_runtime = runtime.enter();
        Stream::start(client, settings, move |client| {
            client.get("/api/me", Auth::Bearer(&token))
        })?
    };
    std::thread::sleep(KILL_AFTER);
    let kill_started = Instant::now();
    docker::kill(&victim)?;
    eprintln!(
        "compose test: killed {} {:.1} s into the stream (docker kill took {} ms)",
        short(&victim),
        KILL_AFTER.as_secs_f64(),
        kill_started.elapsed().as_millis()
    );
    let report = runtime.block_on(stream.finish());
    let reloads = project.nginx_reloads()?.saturating_sub(reloads_before);
    eprintln!(
        "compose test: {} requests from {CLIENTS} clients in {:.1} s, {} failed, slowest {} ms; \
         nginx reloaded {reloads} time(s) and closed {} kept-alive connection(s) under a \
         request, which the client sent again",
        report.requests,
        STREAM_FOR.as_secs_f64(),
        report.failures.len(),
        report.slowest.as_millis(),
        report.resent.len(),
    );
    // A reload closes each idle connection once: at most one resend per client and reload.
    ensure!(
        report.resent.len() <= CLIENTS * reloads,
        "{} requests needed a resend, more than one per connection and reload: {:?}",
        report.resent.len(),
        report.some_resent()
    );
    no_failures(&report, "while a replica was killed")?;
    // nginx has re-resolved the service and dropped the dead address by now (it polls every
    // second; the stream went on for seconds after the kill): the two others serve all.
    ensure!(
        !project.nginx_config()?.contains(&victim_server),
        "nginx's config still has `{victim_server}` after the kill"
    );
    let alive: Vec<String> = api.iter().filter(|id| **id != victim).cloned().collect();
    runtime.block_on(async {
        let seen = replicas_until(client, "/api/me", Auth::Bearer(&token), &alive).await?;
        for _ in 0..20 {
            let replica = client.me("/api/me", Auth::Bearer(&token)).await?.replica;
            ensure!(
                !victim.starts_with(host_of(&replica)),
                "the killed replica answered"
            );
        }
        eprintln!("compose test: after the kill, /api/ served by {seen:?}");
        Ok(())
    })?;
    Ok(victim)
}

/// A stream that was busy (over 100 requests) and in which not one request failed.
pub fn no_failures(report: &StreamReport, what: &str) -> anyhow::Result<()> {
    ensure!(
        report.failures.is_empty(),
        "{} of {} requests failed {what}, e.g. {:?}",
        report.failures.len(),
        report.requests,
        report.some_failures()
    );
    ensure!(
        report.requests > 100,
        "only {} requests in the stream",
        report.requests
    );
    Ok(())
}

/// `up --scale api=4`: a new container comes up, and all four serve; the demo page's view of
/// the cluster (nginx's `/cluster` routes) lists the same four.
fn scale_up(
    project: &Project,
    runtime: &tokio::runtime::Runtime,
    client: &Client,
    killed: &str,
) -> anyhow::Result<()> {
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
        short(killed),
        if after.iter().any(|id| id == killed) {
            "running again"
        } else {
            "gone"
        }
    );
    runtime.block_on(async {
        let token = client.login("bob", "builder").await?.access;
        let seen = replicas_until(client, "/api/me", Auth::Bearer(&token), &after).await?;
        eprintln!("compose test: /api/ served by {seen:?}");
        let listed = cluster_view(client, "token").await?;
        ensure!(
            listed == seen,
            "the page's /cluster lists {listed:?}, not the serving {seen:?}"
        );
        Ok(())
    })
}

/// The replicas of `kind` (`token`, `session`) that nginx's `/cluster` routes list, by the host
/// part of their ids: what the demo page draws.
async fn cluster_view(client: &Client, kind: &str) -> anyhow::Result<BTreeSet<String>> {
    let get = |path: String| async move {
        let response = client.get(&path, Auth::None).send().await?;
        let body: serde_json::Value = response.error_for_status()?.json().await?;
        anyhow::Ok(body)
    };
    let counts = get("/cluster".to_owned()).await?;
    let count = counts[kind].as_u64().context("no count in /cluster")?;
    let mut hosts = BTreeSet::new();
    for slot in 1..=count {
        let stats = get(format!("/cluster/{kind}/{slot}")).await?;
        let replica = stats["replica"].as_str().context("no replica id")?;
        hosts.insert(host_of(replica).to_owned());
    }
    Ok(hosts)
}

/// Redis stopped: `/api/me` still 200 (tokens need no store), `/sapi/me` 503. The session and
/// refresh token made just before, for the next phase.
async fn redis_stopped(project: &Project, client: &Client) -> anyhow::Result<(String, String)> {
    let pair = client.login("bob", "builder").await?;
    let sid = session_sid(client, "alice", "wonderland").await?;
    project.run(&["stop", "--timeout", "5", "redis"])?;
    let stopped = Instant::now();
    // The session replicas notice on their next Redis command: the first request.
    wait::until("/sapi/me answers 503", Duration::from_secs(20), || async {
        let status = client.status("/sapi/me", Auth::Sid(&sid)).await?;
        anyhow::Ok(match status {
            StatusCode::SERVICE_UNAVAILABLE => Poll::Ready(()),
            other => Poll::Pending(format!("{other}")),
        })
    })
    .await?;
    eprintln!(
        "compose test: /sapi/me answered 503 {} ms after redis stopped",
        stopped.elapsed().as_millis()
    );
    for _ in 0..20 {
        let api = client.status("/api/me", Auth::Bearer(&pair.access)).await?;
        ensure!(api == 200, "/api/me answered {api} with redis stopped");
        let sapi = client.status("/sapi/me", Auth::Sid(&sid)).await?;
        ensure!(sapi == 503, "/sapi/me answered {sapi} with redis stopped");
    }
    Ok((sid, pair.refresh))
}
