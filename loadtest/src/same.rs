//! Scenario a (tokens, sessions and a no-auth baseline on the same replicas, same CPU limits) and
//! scenario c (store look-ups per request), which share their stacks.
//!
//! Two stacks run side by side, identical but for `TOKEN_CACHE`: "plain" (cache off, token and
//! session replicas) and "cache" (cache on, token replicas). Every variant is measured against the
//! no-auth route of the very same replicas (`/api/ping` or `/sapi/ping`), in the same round, and
//! the rounds are interleaved (a, b, c, a, b, c, ...), so drift in the machine's speed hits every
//! variant alike. The figure kept is the median of the rounds.

use crate::bench::{Bench, Credentials, Spec, Target};
use crate::client;
use crate::results::{LookupRow, Lookups, Same, Variant};
use stack::Mode;

/// The two stacks of scenario a, kept for c.
pub struct Stacks {
    pub plain: Target,
    pub cache: Target,
}

struct Plan {
    key: &'static str,
    label: &'static str,
    route: &'static str,
    credentials: Credentials,
    cached: bool,
    baseline: Option<&'static str>,
    /// Profiled in the last round (full runs with perf).
    profile: Option<Mode>,
}

const PLANS: [Plan; 6] = [
    Plan {
        key: "ping-jwt",
        label: "no auth, token replicas",
        route: "/api/ping",
        credentials: Credentials::None,
        cached: false,
        baseline: None,
        profile: Some(Mode::Jwt),
    },
    Plan {
        key: "tokens",
        label: "tokens, no cache",
        route: "/api/me",
        credentials: Credentials::Bearer,
        cached: false,
        baseline: Some("ping-jwt"),
        profile: Some(Mode::Jwt),
    },
    Plan {
        key: "ping-session",
        label: "no auth, session replicas",
        route: "/sapi/ping",
        credentials: Credentials::None,
        cached: false,
        baseline: None,
        profile: None,
    },
    Plan {
        key: "sessions",
        label: "sessions (one Redis script)",
        route: "/sapi/me",
        credentials: Credentials::Cookie,
        cached: false,
        baseline: Some("ping-session"),
        profile: Some(Mode::Session),
    },
    Plan {
        key: "ping-cache",
        label: "no auth, token replicas with cache",
        route: "/api/ping",
        credentials: Credentials::None,
        cached: true,
        baseline: None,
        profile: None,
    },
    Plan {
        key: "tokens-cache",
        label: "tokens, verified-token cache on",
        route: "/api/me",
        credentials: Credentials::Bearer,
        cached: true,
        baseline: Some("ping-cache"),
        profile: Some(Mode::Jwt),
    },
];

/// The two stacks of scenario a, each replica limited to `cpu` CPUs (`None`: no limit, every
/// process shares the whole machine).
pub async fn start_stacks(bench: &mut Bench, cpu: Option<f64>) -> anyhow::Result<Stacks> {
    let n = bench.options.replicas;
    let spec = |session: usize, token_cache: bool| Spec {
        jwt: n,
        session,
        replica_cpu: cpu,
        redis_cpu: None,
        token_cache,
        ..Spec::default()
    };
    eprintln!("starting two stacks: {n}+{n} replicas without the token cache, {n} with it");
    let suffix = if cpu.is_some() { "" } else { "-unlimited" };
    let plain = bench
        .start(&format!("plain{suffix}"), spec(n, false))
        .await?;
    let cache = bench
        .start(&format!("cache{suffix}"), spec(0, true))
        .await?;
    if let Some(stack) = &plain.stack {
        eprint!("{}", stack.describe());
    }
    Ok(Stacks { plain, cache })
}

/// Scenario a on `stacks` (or, with `--url`, on the one remote target: `cache` is then the same
/// stack and the cache variants are left out).
pub async fn run(
    bench: &Bench,
    plain: &mut Target,
    mut cache: Option<&mut Target>,
    profiles: &mut Vec<String>,
    tag: &str,
) -> anyhow::Result<Same> {
    let replicas = bench.options.replicas;
    let plans: Vec<&Plan> = PLANS
        .iter()
        .filter(|p| !p.cached || cache.is_some())
        .collect();
    let mut variants: Vec<Variant> = plans
        .iter()
        .map(|p| {
            let mut v = Variant::new(p.key, p.label, p.route, replicas);
            v.baseline = p.baseline.map(str::to_owned);
            v
        })
        .collect();
    let rounds = bench.options.runs;
    for round in 1..=rounds {
        for (plan, variant) in plans.iter().zip(variants.iter_mut()) {
            let target: &mut Target = match (plan.cached, cache.as_deref_mut()) {
                (true, Some(cache)) => cache,
                _ => plain,
            };
            let load = bench
                .load(target, plan.route, plan.credentials, bench.options.duration)
                .await?;
            let profile = (round == rounds && bench.profiler.is_some() && tag == "a")
                .then_some(plan.profile)
                .flatten()
                .map(|mode| (plan.key, mode));
            let (result, cpu, profile_text) = bench.measure(target, &load, profile).await?;
            let line = variant.record(&load, result, cpu);
            eprintln!("[{tag} {round}/{rounds}] {:<38} {line}", variant.label);
            profiles.extend(profile_text);
        }
    }
    Ok(Same {
        replicas,
        replica_cpu: plain.replica_cpu,
        variants,
    })
}

/// Scenario c: a fixed number of requests per variant, and the replicas' Redis command counters
/// (and Redis's own) before and after.
pub async fn lookups(bench: &Bench, stacks: &mut Stacks) -> anyhow::Result<Lookups> {
    let requests: u64 = if bench.options.quick { 200 } else { 2000 };
    let cases = [
        (
            "tokens, no cache",
            "/api/me",
            Credentials::Bearer,
            Mode::Jwt,
            false,
        ),
        (
            "tokens, cache on",
            "/api/me",
            Credentials::Bearer,
            Mode::Jwt,
            true,
        ),
        (
            "sessions",
            "/sapi/me",
            Credentials::Cookie,
            Mode::Session,
            false,
        ),
    ];
    let mut rows = Vec::new();
    for (label, route, credentials, mode, cached) in cases {
        let target = if cached {
            &mut stacks.cache
        } else {
            &mut stacks.plain
        };
        let replica_urls = target
            .stack
            .as_ref()
            .map(|s| s.replica_urls(mode))
            .unwrap_or_default();
        let redis_url = target.stack.as_ref().map(|s| s.redis_url());
        let mut load = bench
            .load(target, route, credentials, bench.options.duration)
            .await?;
        load.requests = Some(requests);
        load.concurrency = load.concurrency.min(16);
        let (counted_before, served_before) = counters(bench, &replica_urls, route).await?;
        let redis_before = match &redis_url {
            Some(url) => Some(client::redis_commands_processed(url).await?),
            None => None,
        };
        let (result, _, _) = bench.measure(target, &load, None).await?;
        let (counted_after, served_after) = counters(bench, &replica_urls, route).await?;
        let redis_after = match &redis_url {
            Some(url) => Some(client::redis_commands_processed(url).await?),
            None => None,
        };
        let row = LookupRow {
            label: label.to_owned(),
            route: route.to_owned(),
            ok: result.ok(),
            failures: result.failures(),
            served: served_after.saturating_sub(served_before),
            store_commands: counted_after.saturating_sub(counted_before),
            // The first INFO is counted by the second one: take it off.
            redis_executed: redis_before
                .zip(redis_after)
                .map(|(b, a)| a.saturating_sub(b).saturating_sub(1)),
        };
        eprintln!(
            "[c] {label:<20} {} requests served, {} Redis commands from the replicas ({:.2} per request), Redis executed {}",
            row.served,
            row.store_commands,
            row.per_request(),
            row.redis_executed.map_or("?".to_owned(), |n| n.to_string())
        );
        rows.push(row);
    }
    Ok(Lookups { rows })
}

/// (Redis commands, requests on `route`) summed over the replicas at `urls`.
async fn counters(bench: &Bench, urls: &[String], route: &str) -> anyhow::Result<(u64, u64)> {
    let (mut commands, mut served) = (0, 0);
    let label = format!("route=\"{route}\"");
    for url in urls {
        let page = client::metrics(&bench.http, url).await?;
        commands += auth_core::telemetry::read_counter(&page, "authscale_redis_commands_total", "");
        served +=
            auth_core::telemetry::read_counter(&page, "authscale_http_requests_total", &label);
    }
    Ok((commands, served))
}
