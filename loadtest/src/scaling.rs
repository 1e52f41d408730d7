//! Scenario b: 1, 2, ... N replicas per variant, each replica under the same CPU quota, and Redis
//! under a fixed quota of its own.
//!
//! With a fixed CPU slice per replica, adding a replica adds CPU, as adding a machine would. Token
//! replicas share nothing, so their throughput should grow with their number. Session replicas
//! all send every request to the one Redis; once Redis has used its own slice, more replicas only
//! queue longer in front of it, and the curve flattens. Redis's quota stands for a store that is
//! shared by far more replicas than fit on this machine.
//!
//! The sessions run once per Redis quota (`--redis-cpu`, then each of `--more-redis-cpus`): where
//! the curve flattens depends on the ratio of replica CPU to store CPU, and the capacity model
//! (model.rs) predicts it from scenario a's costs. Several ratios are what check the model rather
//! than fit it.
//!
//! For each replica count, the stacks run side by side: one without the token cache (token and
//! session replicas, Redis limited), one with it (token replicas), and one more of session
//! replicas per further Redis quota. The variants are measured in interleaved rounds like
//! scenario a, so drift in the machine's speed hits them alike.

use crate::bench::{Bench, Credentials, Spec, Target};
use crate::results::{ScalePoint, Scaling, Variant, sessions_key};

/// One variant of the scenario: what to load, and on which of the round's stacks.
struct Plan {
    key: String,
    label: String,
    route: &'static str,
    credentials: Credentials,
    /// Index into the round's stacks.
    stack: usize,
    /// Redis's quota, for the sessions (printed with the run).
    redis_cpu: Option<f64>,
}

pub async fn run(bench: &mut Bench) -> anyhow::Result<Scaling> {
    let options = bench.options.clone();
    let mut points = Vec::new();
    for n in 1..=options.max_replicas {
        eprintln!(
            "[b] {n} replica(s) per variant, {} CPU each; Redis {} CPU (sessions also at {:?})",
            options.replica_cpu, options.redis_cpu, options.more_redis_cpus
        );
        let (mut stacks, plans) = start_round(bench, n).await?;
        let mut variants: Vec<Variant> = plans
            .iter()
            .map(|p| Variant::new(&p.key, &p.label, p.route, n))
            .collect();
        let rounds = if options.quick { 1 } else { options.runs };
        for round in 1..=rounds {
            for (plan, variant) in plans.iter().zip(variants.iter_mut()) {
                let target = &mut stacks[plan.stack];
                let load = bench
                    .load(target, plan.route, plan.credentials, options.duration)
                    .await?;
                let (result, cpu, _) = bench.measure(target, &load, None).await?;
                let redis = match (
                    plan.redis_cpu,
                    cpu.cpus.get("redis"),
                    cpu.throttled.get("redis"),
                ) {
                    (Some(quota), Some(used), Some(throttled)) => format!(
                        "  Redis {:.0}% of its quota, throttled in {:.0}% of periods",
                        used / quota * 100.0,
                        throttled * 100.0
                    ),
                    _ => String::new(),
                };
                let line = variant.record(&load, result, cpu);
                eprintln!(
                    "[b {n} replica(s) {round}/{rounds}] {:<26} {line}{redis}",
                    plan.label
                );
            }
        }
        for stack in stacks {
            stack.stop().await?;
        }
        points.push(ScalePoint {
            replicas: n,
            variants,
        });
    }
    Ok(Scaling {
        replica_cpu: options.replica_cpu,
        redis_cpu: options.redis_cpu,
        more_redis_cpus: options.more_redis_cpus.clone(),
        points,
    })
}

/// The stacks of one replica count, and the variants measured on them.
async fn start_round(bench: &mut Bench, n: usize) -> anyhow::Result<(Vec<Target>, Vec<Plan>)> {
    let options = bench.options.clone();
    let replica_cpu = Some(options.replica_cpu);
    let mut stacks = vec![
        bench
            .start(
                &format!("scale{n}"),
                Spec {
                    jwt: n,
                    session: n,
                    replica_cpu,
                    redis_cpu: Some(options.redis_cpu),
                    token_cache: false,
                    ..Spec::default()
                },
            )
            .await?,
        bench
            .start(
                &format!("scale{n}-cache"),
                Spec {
                    jwt: n,
                    session: 0,
                    replica_cpu,
                    redis_cpu: None,
                    token_cache: true,
                    ..Spec::default()
                },
            )
            .await?,
    ];
    let mut plans = vec![
        Plan {
            key: "tokens".into(),
            label: "tokens, no cache".into(),
            route: "/api/me",
            credentials: Credentials::Bearer,
            stack: 0,
            redis_cpu: None,
        },
        Plan {
            key: "tokens-cache".into(),
            label: "tokens, cache on".into(),
            route: "/api/me",
            credentials: Credentials::Bearer,
            stack: 1,
            redis_cpu: None,
        },
        Plan {
            key: "sessions".into(),
            label: "sessions".into(),
            route: "/sapi/me",
            credentials: Credentials::Cookie,
            stack: 0,
            redis_cpu: Some(options.redis_cpu),
        },
    ];
    for (i, &quota) in options.more_redis_cpus.iter().enumerate() {
        stacks.push(
            bench
                .start(
                    &format!("scale{n}-redis{i}"),
                    Spec {
                        jwt: 0,
                        session: n,
                        replica_cpu,
                        redis_cpu: Some(quota),
                        token_cache: false,
                        ..Spec::default()
                    },
                )
                .await?,
        );
        plans.push(Plan {
            key: sessions_key(quota),
            label: format!("sessions, Redis {quota} CPU"),
            route: "/sapi/me",
            credentials: Credentials::Cookie,
            stack: stacks.len() - 1,
            redis_cpu: Some(quota),
        });
    }
    Ok((stacks, plans))
}
