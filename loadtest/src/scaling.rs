//! Scenario b: 1, 2, ... N replicas per variant, each replica under the same CPU quota, and Redis
//! under a fixed quota of its own.
//!
//! With a fixed CPU slice per replica, adding a replica adds CPU, as adding a machine would. Token
//! replicas share nothing, so their throughput should grow with their number. Session replicas
//! all send every request to the one Redis; once Redis has used its own slice, more replicas only
//! queue longer in front of it, and the curve flattens. Redis's quota stands for a store that is
//! shared by far more replicas than fit on this machine.
//!
//! For each replica count, two stacks run side by side: one without the token cache (token and
//! session replicas, Redis limited) and one with it (token replicas). The variants are measured
//! in interleaved rounds like scenario a.

use crate::bench::{Bench, Credentials, Spec};
use crate::results::{ScalePoint, Scaling, Variant};

pub async fn run(bench: &mut Bench) -> anyhow::Result<Scaling> {
    let options = bench.options.clone();
    let cpu = Some(options.replica_cpu);
    let mut points = Vec::new();
    for n in 1..=options.max_replicas {
        eprintln!(
            "[b] {n} replica(s) per variant, {} CPU each; Redis {} CPU",
            options.replica_cpu, options.redis_cpu
        );
        let mut plain = bench
            .start(
                &format!("scale{n}"),
                Spec {
                    jwt: n,
                    session: n,
                    replica_cpu: cpu,
                    redis_cpu: Some(options.redis_cpu),
                    token_cache: false,
                    redis_shards: 1,
                },
            )
            .await?;
        let mut cache = bench
            .start(
                &format!("scale{n}-cache"),
                Spec {
                    jwt: n,
                    session: 0,
                    replica_cpu: cpu,
                    redis_cpu: None,
                    token_cache: true,
                    redis_shards: 1,
                },
            )
            .await?;
        let plans = [
            (
                "tokens",
                "tokens, no cache",
                "/api/me",
                Credentials::Bearer,
                false,
            ),
            (
                "tokens-cache",
                "tokens, cache on",
                "/api/me",
                Credentials::Bearer,
                true,
            ),
            (
                "sessions",
                "sessions",
                "/sapi/me",
                Credentials::Cookie,
                false,
            ),
        ];
        let mut variants: Vec<Variant> = plans
            .iter()
            .map(|(key, label, route, _, _)| Variant::new(key, label, route, n))
            .collect();
        let rounds = if options.quick { 1 } else { options.runs };
        for round in 1..=rounds {
            for ((_, label, route, credentials, cached), variant) in
                plans.iter().zip(variants.iter_mut())
            {
                let target = if *cached { &mut cache } else { &mut plain };
                let load = bench
                    .load(target, route, *credentials, options.duration)
                    .await?;
                let (result, cpu, _) = bench.measure(target, &load, None).await?;
                let redis = match (cpu.cpus.get("redis"), cpu.throttled.get("redis")) {
                    (Some(used), Some(throttled)) if *route == "/sapi/me" => format!(
                        "  Redis {:.0}% of its quota, throttled in {:.0}% of periods",
                        used / options.redis_cpu * 100.0,
                        throttled * 100.0
                    ),
                    _ => String::new(),
                };
                eprintln!(
                    "[b {n} replica(s) {round}/{rounds}] {label:<18} {:>8.0} rps  p99 {:>7.2} ms  {} failed{redis}",
                    result.rps,
                    result.p99_ms,
                    result.failures()
                );
                variant.command = load.display();
                variant.runs.push(result);
                variant.cpu.push(cpu);
            }
        }
        plain.stop().await?;
        cache.stop().await?;
        points.push(ScalePoint {
            replicas: n,
            variants,
        });
    }
    Ok(Scaling {
        replica_cpu: options.replica_cpu,
        redis_cpu: options.redis_cpu,
        points,
    })
}
