//! Scenario h: sessions on one Redis against a Redis Cluster of 3 shards, each shard under the
//! CPU quota Redis has in scenario b, with 1, 2, ... N session replicas.
//!
//! Scenario b shows the session curve flatten once the one Redis has used its quota: every
//! request of every replica needs it. Sharding is the store's way out: a Redis Cluster splits
//! the keys over its masters by hash slot, so three masters with a quota each hold three times
//! the CPU, and the curve should flatten (its knee) at about three times the requests. That
//! holds only if the requests spread over the shards: one session is one key on one shard, so
//! the load here uses several sessions, the same number on each shard
//! ([`SESSIONS_PER_SHARD`]), one oha process per session, all at once. The one-Redis stack gets
//! as many sessions, so both are loaded the same way.
//!
//! The knee ([`knee`]) is the replica count after which one more replica adds less than a
//! tenth; the report compares the rps there.

use crate::bench::{self, Bench, CpuPerRequest, Spec, Target, cpu_per_request};
use crate::client::{self, USERS};
use crate::oha::{self, Load, RunResult};
use crate::results::{ScalePoint, Scaling, Variant};
use anyhow::{Context, bail};
use std::collections::BTreeMap;

/// The masters of the cluster.
pub const CLUSTER_SHARDS: usize = 3;

/// Sessions (and oha processes) per shard of the cluster.
pub const SESSIONS_PER_SHARD: usize = 2;

/// One more replica must add at least this share of rps to be before the knee.
const KNEE_GAIN: f64 = 0.10;

/// The variant keys: one Redis, and the cluster.
pub const ONE: &str = "sessions-1-shard";
pub const CLUSTER: &str = "sessions-3-shards";

pub async fn run(bench: &mut Bench) -> anyhow::Result<Scaling> {
    let options = bench.options.clone();
    let max = if options.quick {
        2
    } else {
        options.shard_max_replicas
    };
    let mut points = Vec::new();
    for n in 1..=max {
        eprintln!(
            "[h] {n} session replica(s), {} CPU each; 1 Redis against {CLUSTER_SHARDS} shards, {} CPU each",
            options.replica_cpu, options.redis_cpu
        );
        let mut stacks = Vec::new();
        for (key, shards) in [(ONE, 1), (CLUSTER, CLUSTER_SHARDS)] {
            let spec = Spec {
                jwt: 0,
                session: n,
                replica_cpu: Some(options.replica_cpu),
                redis_cpu: Some(options.redis_cpu),
                token_cache: false,
                redis_shards: shards,
                ..Spec::default()
            };
            let target = bench.start(&format!("shards{shards}-{n}"), spec).await?;
            let cookies = balanced_sessions(bench, &target).await?;
            stacks.push((key, shards, target, cookies));
        }
        let mut variants: Vec<Variant> = stacks
            .iter()
            .map(|(key, shards, _, _)| {
                let label = format!("sessions, {shards} shard(s)");
                Variant::new(key, &label, "/sapi/me", n)
            })
            .collect();
        let rounds = if options.quick { 1 } else { options.runs };
        for round in 1..=rounds {
            for ((_, shards, target, cookies), variant) in stacks.iter().zip(variants.iter_mut()) {
                let loads = loads(bench, target, cookies);
                let (result, cpu) = measure_together(bench, target, &loads).await?;
                let redis = cpu.cpus.get("redis").copied().unwrap_or(0.0);
                eprintln!(
                    "[h {n} replica(s) {round}/{rounds}] {shards} shard(s) {:>8.0} rps  p99 {:>7.2} ms  {} failed  Redis {:.0}% of its quota",
                    result.rps,
                    result.p99_ms,
                    result.failures(),
                    redis / (options.redis_cpu * *shards as f64) * 100.0
                );
                variant.command =
                    format!("{} parallel runs of: {}", loads.len(), loads[0].display());
                variant.runs.push(result);
                variant.cpu.push(cpu);
            }
        }
        for (_, _, target, _) in stacks {
            target.stop().await?;
        }
        points.push(ScalePoint {
            replicas: n,
            variants,
        });
    }
    Ok(Scaling {
        replica_cpu: options.replica_cpu,
        redis_cpu: options.redis_cpu,
        more_redis_cpus: Vec::new(),
        points,
    })
}

/// `(replicas, rps)` at the knee of `series` (replicas in order): the first point after which
/// one more replica adds less than [`KNEE_GAIN`], or the last point when every step adds more
/// (the knee is then beyond the measured range).
pub fn knee(series: &[(usize, f64)]) -> Option<(usize, f64)> {
    series
        .windows(2)
        .find(|w| w[1].1 < w[0].1 * (1.0 + KNEE_GAIN))
        .map(|w| w[0])
        .or_else(|| series.last().copied())
}

/// `SESSIONS_PER_SHARD` sessions on each shard of `target`'s Redis (a session's shard is the node
/// that holds its key), or that many times the shards in all on one Redis: session cookies
/// (`sid=...`), logged in as one user.
async fn balanced_sessions(bench: &Bench, target: &Target) -> anyhow::Result<Vec<String>> {
    let stack = target
        .stack
        .as_ref()
        .context("scenario h starts its own stacks")?;
    let nodes = stack.redis_urls();
    let wanted = SESSIONS_PER_SHARD * CLUSTER_SHARDS;
    if nodes.len() == 1 {
        let mut cookies = Vec::new();
        for _ in 0..wanted {
            cookies.push(client::session_login(&bench.http, &target.base, USERS[1]).await?);
        }
        return Ok(cookies);
    }
    let mut per_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..wanted * 20 {
        let cookie = client::session_login(&bench.http, &target.base, USERS[1]).await?;
        let id = cookie.trim_start_matches("sid=");
        let key = auth_core::session::key(id);
        for node in &nodes {
            if client::redis_exists(node, &key).await? {
                let held = per_node.entry(node.clone()).or_default();
                if held.len() < SESSIONS_PER_SHARD {
                    held.push(cookie.clone());
                }
            }
        }
        if per_node.len() == nodes.len() && per_node.values().all(|c| c.len() == SESSIONS_PER_SHARD)
        {
            return Ok(per_node.into_values().flatten().collect());
        }
    }
    bail!(
        "could not place {SESSIONS_PER_SHARD} sessions on each of {} shards",
        nodes.len()
    )
}

/// One oha load per cookie, the connections shared out between them.
fn loads(bench: &Bench, target: &Target, cookies: &[String]) -> Vec<Load> {
    let per_cookie = bench.options.concurrency.div_ceil(cookies.len()).max(1);
    cookies
        .iter()
        .map(|cookie| Load {
            url: format!("{}/sapi/me", target.base),
            headers: vec![format!("cookie: {cookie}")],
            duration: bench.options.duration,
            concurrency: per_cookie,
            requests: None,
        })
        .collect()
}

/// Every load at once (one oha each), with the CPU each kind of process spent meanwhile.
async fn measure_together(
    bench: &Bench,
    target: &Target,
    loads: &[Load],
) -> anyhow::Result<(RunResult, CpuPerRequest)> {
    let stack = target
        .stack
        .as_ref()
        .context("scenario h starts its own stacks")?;
    let before = stack.cpu_stats();
    let (started, oha_before) = (std::time::Instant::now(), bench::children_cpu());
    let runs: Vec<_> = loads
        .iter()
        .map(|load| {
            let (oha, load) = (bench.oha.clone(), load.clone());
            tokio::task::spawn_blocking(move || oha::run(&oha, &load))
        })
        .collect();
    let mut results = Vec::new();
    for run in runs {
        results.push(run.await??);
    }
    let (elapsed, oha_used) = (
        started.elapsed(),
        bench::children_cpu().saturating_sub(oha_before),
    );
    let merged = merge(&results);
    let mut cpu = cpu_per_request(&before, &stack.cpu_stats(), merged.ok(), elapsed);
    // Every oha of this round is a child that finished in between: their CPU together.
    cpu.add_load_generator(oha_used, merged.ok(), elapsed);
    Ok((merged, cpu))
}

/// Parallel runs as one: rps and counts added up; each latency percentile the worst of the runs
/// (the runs' own distributions are not kept, so this errs slow).
fn merge(runs: &[RunResult]) -> RunResult {
    let mut merged = RunResult::default();
    for run in runs {
        merged.rps += run.rps;
        merged.p50_ms = merged.p50_ms.max(run.p50_ms);
        merged.p90_ms = merged.p90_ms.max(run.p90_ms);
        merged.p99_ms = merged.p99_ms.max(run.p99_ms);
        for (code, n) in &run.statuses {
            *merged.statuses.entry(code.clone()).or_default() += n;
        }
        for (error, n) in &run.errors {
            *merged.errors.entry(error.clone()).or_default() += n;
        }
        merged.cut_at_deadline += run.cut_at_deadline;
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_where_one_more_replica_stops_adding_a_tenth() {
        let series = [(1, 900.0), (2, 1800.0), (3, 1950.0), (4, 1960.0)];
        assert_eq!(knee(&series), Some((2, 1800.0)));
        let still_growing = [(1, 900.0), (2, 1800.0), (3, 2700.0)];
        assert_eq!(knee(&still_growing), Some((3, 2700.0)));
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn parallel_runs_add_up_and_keep_the_worst_latency() {
        let run = |rps: f64, p99: f64, ok: u64| RunResult {
            rps,
            p99_ms: p99,
            statuses: [("200".to_owned(), ok)].into(),
            ..RunResult::default()
        };
        let merged = merge(&[run(100.0, 5.0, 1000), run(150.0, 9.0, 1500)]);
        assert_eq!(merged.rps, 250.0);
        assert_eq!(merged.p99_ms, 9.0);
        assert_eq!(merged.ok(), 2500);
    }
}
