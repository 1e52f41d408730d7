//! The compose test's Prometheus phases: the profile `observe` (docker-compose.yml) runs beside
//! the cluster, and Prometheus's own HTTP API must show that it sees all of it.
//!
//! - [`every_target_up`]: the active targets are exactly the running containers (the issuer,
//!   each token and session replica, the nginx exporter, Prometheus itself), each scraped with
//!   health `up`, and the exporter reads nginx's stub_status (`nginx_up` is 1). Prometheus finds
//!   the replicas through Docker's DNS; called again after `--scale api=4`, this shows the new
//!   replica appear (and a killed one go) without anyone telling Prometheus.
//! - [`rules_evaluate`]: after some traffic on both variants, every recording rule in
//!   deploy/prometheus/rules.yml evaluates with health `ok` and a non-empty result, and the one
//!   this project is about says what it should: token replicas send Redis no command per
//!   request, session replicas do.
//!
//! Everything is asked of `http://127.0.0.1:<port>/api/v1/...` on the port compose publishes,
//! as a user's browser would; waits are bounded (Prometheus re-resolves and scrapes every 5 s).

use super::PROJECT;
use super::docker::{Project, ip_on};
use anyhow::{Context, bail, ensure};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testkit::wait::{self, Poll};
use testkit::{Auth, Client};

/// How long Prometheus may take to follow a change: DNS refresh and scrape every 5 s, plus a
/// slow start on a loaded machine.
const FOLLOW_WITHIN: Duration = Duration::from_secs(90);
/// Requests of each variant before the rules are read: enough for a rate over a minute.
const REQUESTS: usize = 100;

/// Scrape jobs (deploy/prometheus/prometheus.yml) and the compose service and port behind each.
const JOBS: [(&str, &str, u16); 4] = [
    ("auth-issuer", "auth-issuer", 8080),
    ("api", "api", 8080),
    ("session-api", "session-api", 8080),
    ("nginx", "nginx-exporter", 9113),
];

/// Prometheus's HTTP API on the host.
pub struct Prometheus {
    http: reqwest::Client,
    base: String,
}

impl Prometheus {
    pub fn new(port: u16) -> anyhow::Result<Prometheus> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Prometheus {
            http,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The graph page, where the README's queries are pasted, answers with Prometheus's UI
    /// (Debian's build serves the classic one; `/graph` redirects to `/graph/`).
    pub async fn graph_page(&self) -> anyhow::Result<()> {
        let response = self.http.get(format!("{}/graph", self.base)).send().await?;
        let status = response.status();
        let page = response.text().await?;
        ensure!(
            status.is_success() && page.contains("<title>Prometheus"),
            "GET /graph answered {status}: {}",
            page.chars().take(200).collect::<String>()
        );
        Ok(())
    }

    /// The `data` of a successful API answer; an error names the path and what came back.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), query)?;
        let response = self.http.get(url).send().await?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("{path}: not JSON ({status})"))?;
        ensure!(
            status.is_success() && body["status"] == "success",
            "{path} answered {status}: {body}"
        );
        Ok(body["data"].clone())
    }

    /// An instant query's result vector: each series' labels and value.
    async fn query(&self, expr: &str) -> anyhow::Result<Vec<(Value, f64)>> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await?;
        let result = data["result"]
            .as_array()
            .with_context(|| format!("{expr}: no result vector: {data}"))?;
        result
            .iter()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .with_context(|| format!("{expr}: a sample without a value: {series}"))?;
                Ok((series["metric"].clone(), value))
            })
            .collect()
    }
}

/// Job -> instances (`address:port`) Prometheus should scrape: one per running container.
fn expected_targets(project: &Project) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let network = format!("{PROJECT}_default");
    let mut want = BTreeMap::new();
    for (job, service, port) in JOBS {
        let mut instances = BTreeSet::new();
        for container in project.containers(service, false)? {
            instances.insert(format!("{}:{port}", ip_on(&container, &network)?));
        }
        ensure!(!instances.is_empty(), "no {service} container runs");
        want.insert(job.to_owned(), instances);
    }
    want.insert(
        "prometheus".to_owned(),
        BTreeSet::from(["localhost:9090".to_owned()]),
    );
    Ok(want)
}

/// Job -> instances of the active targets whose last scrape was `up`, and the others.
async fn active_targets(
    prometheus: &Prometheus,
) -> anyhow::Result<(BTreeMap<String, BTreeSet<String>>, Vec<String>)> {
    let data = prometheus
        .api("/api/v1/targets", &[("state", "active")])
        .await?;
    let targets = data["activeTargets"]
        .as_array()
        .with_context(|| format!("no activeTargets: {data}"))?;
    let mut up: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut not_up = Vec::new();
    for target in targets {
        let job = target["labels"]["job"].as_str().unwrap_or("?").to_owned();
        let instance = target["labels"]["instance"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        match target["health"].as_str() {
            Some("up") => {
                up.entry(job).or_default().insert(instance);
            }
            health => not_up.push(format!(
                "{job} {instance} {} {}",
                health.unwrap_or("?"),
                target["lastError"].as_str().unwrap_or("")
            )),
        }
    }
    Ok((up, not_up))
}

/// Waits until Prometheus scrapes exactly the running containers, every one `up`, and the
/// exporter reads nginx. Returns how many targets that is.
pub async fn every_target_up(project: &Project, prometheus: &Prometheus) -> anyhow::Result<usize> {
    let want = expected_targets(project)?;
    wait::until(
        "Prometheus scrapes every container, each one up",
        FOLLOW_WITHIN,
        || async {
            let (up, not_up) = active_targets(prometheus).await?;
            Ok::<_, anyhow::Error>(if up == want && not_up.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("up: {up:?}; not up: {not_up:?}; want {want:?}"))
            })
        },
    )
    .await?;
    // The exporter answers even when it cannot read nginx; nginx_up says whether it could.
    let nginx_up = prometheus.query("nginx_up").await?;
    ensure!(
        nginx_up.len() == 1 && nginx_up[0].1 == 1.0,
        "the exporter does not read nginx's stub_status: nginx_up = {nginx_up:?}"
    );
    Ok(want.values().map(BTreeSet::len).sum())
}

/// The names of the recording rules Prometheus loaded, once each has evaluated with health `ok`.
async fn healthy_rules(prometheus: &Prometheus) -> anyhow::Result<Poll<Vec<String>>> {
    let data = prometheus.api("/api/v1/rules", &[]).await?;
    let mut names = Vec::new();
    let mut not_ok = Vec::new();
    for group in data["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            let name = rule["name"].as_str().unwrap_or("?").to_owned();
            match rule["health"].as_str() {
                Some("ok") if rule["type"] == "recording" => names.push(name),
                Some("ok") => bail!("{name} is not a recording rule: {rule}"),
                health => not_ok.push(format!(
                    "{name}: {} {}",
                    health.unwrap_or("?"),
                    rule["lastError"].as_str().unwrap_or("")
                )),
            }
        }
    }
    Ok(if names.is_empty() || !not_ok.is_empty() {
        Poll::Pending(format!("ok: {names:?}; not ok: {not_ok:?}"))
    } else {
        Poll::Ready(names)
    })
}

/// Requests per second per variant.
const REQUESTS_PER_VARIANT: &str = "variant:authscale_http_requests:rate1m";
/// Redis commands per request per variant.
const COMMANDS_PER_REQUEST: &str = "variant:authscale_redis_commands_per_request:ratio_rate1m";

/// Sends traffic to both variants, then waits until every recording rule is healthy and has a
/// result, Prometheus has seen requests on both variants, and the Redis commands per request
/// are 0 for tokens and above 0 for sessions.
/// Returns each rule's series, for the log.
pub async fn rules_evaluate(
    prometheus: &Prometheus,
    client: &Client,
) -> anyhow::Result<Vec<String>> {
    let token = client.login("bob", "builder").await?.access;
    let sid = super::scenario::session_sid(client, "alice", "wonderland").await?;
    for _ in 0..REQUESTS {
        client.me("/api/me", Auth::Bearer(&token)).await?;
        client.me("/sapi/me", Auth::Sid(&sid)).await?;
    }
    wait::until(
        "every recording rule evaluates, with a result",
        FOLLOW_WITHIN,
        || async {
            let names = match healthy_rules(prometheus).await? {
                Poll::Ready(names) => names,
                Poll::Pending(seen) => return Ok(Poll::Pending(seen)),
            };
            let mut lines = Vec::new();
            for name in names {
                let series = prometheus.query(&name).await?;
                if series.is_empty() {
                    return Ok(Poll::Pending(format!("{name} has no result yet")));
                }
                lines.extend(series.iter().map(|(labels, value)| {
                    format!("{name}{{{}}} = {value:.4}", label_pairs(labels))
                }));
            }
            // Until a scrape has seen this traffic, a variant can show no requests, and then a
            // ratio of 0 / 0 or x / 0. (A series is born at its first request with that count
            // already in it, and rate() cannot see a jump it has no sample before; the Redis
            // command counter, born at 0, can show its rate a scrape earlier, so the session
            // ratio can be +Inf for an evaluation or two: not yet, rather than wrong.)
            let rps = per_variant(prometheus, REQUESTS_PER_VARIANT).await?;
            let per_request = per_variant(prometheus, COMMANDS_PER_REQUEST).await?;
            Ok::<_, anyhow::Error>(match (rps, per_request) {
                (Some((jwt_rps, session_rps)), Some((jwt, session)))
                    if jwt_rps > 0.0 && session_rps > 0.0 && session.is_finite() =>
                {
                    ensure!(
                        jwt == 0.0,
                        "token replicas sent Redis {jwt} commands per request"
                    );
                    ensure!(
                        session > 0.0,
                        "session replicas sent Redis {session} commands per request"
                    );
                    Poll::Ready(lines)
                }
                other => Poll::Pending(format!(
                    "(requests per second, commands per request) as (jwt, session): {other:?}"
                )),
            })
        },
    )
    .await
}

/// A series' labels as Prometheus writes them, `job="api", ...`, without its name.
fn label_pairs(labels: &Value) -> String {
    labels
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| *key != "__name__")
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The (jwt, session) values of a rule recorded per variant, once both exist.
async fn per_variant(prometheus: &Prometheus, rule: &str) -> anyhow::Result<Option<(f64, f64)>> {
    let series = prometheus.query(rule).await?;
    let of = |variant: &str| {
        series
            .iter()
            .find(|(labels, _)| labels["variant"] == variant)
            .map(|(_, value)| *value)
    };
    Ok(of("jwt").zip(of("session")))
}

/// `promtool` inside the Prometheus image, through compose (so the container is the project's
/// and has deploy/prometheus mounted as Prometheus sees it): the configuration and the rules it
/// names parse, and the rules compute what deploy/prometheus/rules.test.yml says they do from
/// made-up series. Before `up`, so a broken rule stops the test before the cluster starts.
pub fn check_config(project: &Project) -> anyhow::Result<()> {
    let promtool = [
        "run",
        "--rm",
        "--no-deps",
        "--entrypoint",
        "promtool",
        "prometheus",
    ];
    let config = "/etc/authscale/prometheus/prometheus.yml";
    let tests = "/etc/authscale/prometheus/rules.test.yml";
    for check in [["check", "config", config], ["test", "rules", tests]] {
        let mut args = promtool.to_vec();
        args.extend(check);
        project.run(&args)?;
    }
    Ok(())
}
