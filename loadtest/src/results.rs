//! Everything a run measured, as data: written to `results.json`, read by the report, the plots
//! and the CI check.

use crate::bench::CpuPerRequest;
use crate::oha::{Load, RunResult};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Results {
    pub meta: Meta,
    /// a: tokens, sessions and the baseline on the same replicas.
    pub same: Option<Same>,
    /// a, again with no per-replica limit: every process shares the whole machine.
    #[serde(default)]
    pub same_unlimited: Option<Same>,
    /// b: scaling with replicas.
    pub scaling: Option<Scaling>,
    /// c: store look-ups per request.
    pub lookups: Option<Lookups>,
    /// d: store outage.
    pub outage: Option<Outage>,
    /// e: the issuer.
    pub issuer: Option<Issuer>,
    /// f: the store across a network (added round trips to Redis).
    #[serde(default)]
    pub network: Option<Network>,
    /// g: k6's scripts, beside oha on the same routes.
    #[serde(default)]
    pub k6: Option<K6>,
    /// h: sessions on one Redis against a Redis Cluster (variants `shards::ONE`, `CLUSTER`).
    #[serde(default)]
    pub shards: Option<Scaling>,
    /// Scenarios not run, and why.
    pub skipped: Vec<String>,
    /// perf profiles (top symbols), when recorded.
    pub profiles: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Meta {
    pub timestamp: String,
    pub command: String,
    pub quick: bool,
    pub git: String,
    pub machine: BTreeMap<String, String>,
    pub load_before: String,
    pub load_after: String,
    pub busy_note: Option<String>,
    pub oha: String,
    pub duration_secs: f64,
    pub runs: usize,
    pub concurrency: usize,
    pub replica_cpu: f64,
    pub redis_cpu: f64,
    pub cpu_limits_applied: bool,
    pub target: String,
    pub elapsed_secs: f64,
}

/// One variant: a route with its credentials on a set of replicas, run several times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Variant {
    pub key: String,
    pub label: String,
    pub route: String,
    pub replicas: usize,
    /// The key of the no-auth variant on the same replicas, if any.
    pub baseline: Option<String>,
    pub runs: Vec<RunResult>,
    pub cpu: Vec<CpuPerRequest>,
    /// One oha command line, credentials elided.
    pub command: String,
}

impl Variant {
    pub fn new(key: &str, label: &str, route: &str, replicas: usize) -> Variant {
        Variant {
            key: key.into(),
            label: label.into(),
            route: route.into(),
            replicas,
            baseline: None,
            runs: Vec::new(),
            cpu: Vec::new(),
            command: String::new(),
        }
    }

    /// Adds one measured run of `load`, and returns a line saying how it went, for the log.
    pub fn record(&mut self, load: &Load, result: RunResult, cpu: CpuPerRequest) -> String {
        let line = format!(
            "{:>8.0} rps  p50 {:>6.2} ms  p99 {:>7.2} ms  {} failed",
            result.rps,
            result.p50_ms,
            result.p99_ms,
            result.failures()
        );
        self.command = load.display();
        self.runs.push(result);
        self.cpu.push(cpu);
        line
    }

    pub fn rps(&self) -> f64 {
        median(self.runs.iter().map(|r| r.rps))
    }
    pub fn p50(&self) -> f64 {
        median(self.runs.iter().map(|r| r.p50_ms))
    }
    pub fn p90(&self) -> f64 {
        median(self.runs.iter().map(|r| r.p90_ms))
    }
    pub fn p99(&self) -> f64 {
        median(self.runs.iter().map(|r| r.p99_ms))
    }
    pub fn failures(&self) -> u64 {
        self.runs.iter().map(RunResult::failures).sum()
    }
    /// Median CPU µs per request of one process kind over the runs.
    pub fn cpu_us(&self, kind: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .cpu
            .iter()
            .filter_map(|c| c.us.get(kind).copied())
            .collect();
        (!values.is_empty()).then(|| median(values.into_iter()))
    }
    pub fn cpus(&self, kind: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .cpu
            .iter()
            .filter_map(|c| c.cpus.get(kind).copied())
            .collect();
        (!values.is_empty()).then(|| median(values.into_iter()))
    }
    pub fn throttled(&self, kind: &str) -> Option<f64> {
        let values: Vec<f64> = self
            .cpu
            .iter()
            .filter_map(|c| c.throttled.get(kind).copied())
            .collect();
        (!values.is_empty()).then(|| median(values.into_iter()))
    }
    /// Which replicas served it, by the cgroup name its CPU is accounted under: the route's
    /// prefix picks the replicas (nginx sends `/sapi/...` to the session replicas).
    pub fn replica_kind(&self) -> &'static str {
        if on_session_replicas(&self.route) {
            "session replicas"
        } else {
            "jwt replicas"
        }
    }
    /// Statuses and errors added up over the runs, e.g. "200: 81234, 503: 2".
    pub fn outcome(&self) -> String {
        let mut all: BTreeMap<String, u64> = BTreeMap::new();
        for run in &self.runs {
            for (code, n) in &run.statuses {
                *all.entry(code.clone()).or_default() += n;
            }
            for (error, n) in &run.errors {
                *all.entry(error.clone()).or_default() += n;
            }
        }
        if all.is_empty() {
            return "no answers".to_owned();
        }
        all.iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The variant key of scenario b's sessions with Redis under `quota` CPU (besides the first
/// quota, whose key is plain `sessions`).
pub fn sessions_key(quota: f64) -> String {
    format!("sessions@{quota}")
}

/// Whether nginx routes `route` to the session replicas (the others go to the token replicas).
pub fn on_session_replicas(route: &str) -> bool {
    route.starts_with("/sapi")
}

/// Whether nginx routes `route` to the token replicas, which never talk to the store.
pub fn on_token_replicas(route: &str) -> bool {
    route.starts_with("/api")
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Same {
    pub replicas: usize,
    /// Each replica's CPU limit; `None`: unlimited.
    pub replica_cpu: Option<f64>,
    pub variants: Vec<Variant>,
}

impl Same {
    pub fn get(&self, key: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.key == key)
    }
    /// rps of `key` over rps of its baseline (same replicas, same run).
    pub fn ratio_to_baseline(&self, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        let base = self.get(v.baseline.as_deref()?)?;
        (base.rps() > 0.0).then(|| v.rps() / base.rps())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Scaling {
    pub replica_cpu: f64,
    pub redis_cpu: f64,
    /// Further Redis quotas the sessions ran at, each under [`sessions_key`] (none in runs
    /// older than the capacity model).
    #[serde(default)]
    pub more_redis_cpus: Vec<f64>,
    /// One entry per replica count, in order.
    pub points: Vec<ScalePoint>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ScalePoint {
    pub replicas: usize,
    pub variants: Vec<Variant>,
}

impl Scaling {
    /// rps of variant `key` at each replica count.
    pub fn series(&self, key: &str) -> Vec<(usize, f64)> {
        self.points
            .iter()
            .filter_map(|p| {
                let v = p.variants.iter().find(|v| v.key == key)?;
                Some((p.replicas, v.rps()))
            })
            .collect()
    }

    /// rps at the most replicas over rps at one replica.
    pub fn speedup(&self, key: &str) -> Option<f64> {
        self.speedup_to(key, self.most_replicas())
    }

    /// rps at `n` replicas (or the most measured, if fewer) over rps at one replica.
    pub fn speedup_to(&self, key: &str, n: usize) -> Option<f64> {
        let series = self.series(key);
        let first = series.first()?;
        let last = series.iter().rev().find(|(replicas, _)| *replicas <= n)?;
        (first.0 == 1 && first.1 > 0.0 && last.0 > 1).then(|| last.1 / first.1)
    }

    /// Every Redis quota the sessions ran at, with its variant key: `redis_cpu` first.
    pub fn session_quotas(&self) -> Vec<(f64, String)> {
        std::iter::once((self.redis_cpu, "sessions".to_owned()))
            .chain(self.more_redis_cpus.iter().map(|&q| (q, sessions_key(q))))
            .collect()
    }

    /// The replica count of the last (largest) point; 0 for none.
    pub fn most_replicas(&self) -> usize {
        self.points.last().map_or(0, |p| p.replicas)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Lookups {
    pub rows: Vec<LookupRow>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LookupRow {
    pub label: String,
    pub route: String,
    /// 2xx answers oha got.
    pub ok: u64,
    pub failures: u64,
    /// Requests on that route the replicas counted (`authscale_http_requests_total`).
    pub served: u64,
    /// `authscale_redis_commands_total` on those replicas, during the run.
    pub store_commands: u64,
    /// What Redis itself executed during the run (`INFO stats`), whoever sent it.
    pub redis_executed: Option<u64>,
}

impl LookupRow {
    /// What the design promises: one store look-up per session request, none per token request.
    pub fn expected_per_request(&self) -> f64 {
        if on_session_replicas(&self.route) {
            1.0
        } else {
            0.0
        }
    }
    pub fn per_request(&self) -> f64 {
        if self.served == 0 {
            0.0
        } else {
            self.store_commands as f64 / self.served as f64
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Outage {
    /// When Redis was stopped and started again, seconds from the start of the load.
    pub stopped_at: f64,
    pub started_at: f64,
    pub end: f64,
    pub bucket_secs: f64,
    pub variants: Vec<OutageVariant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutageVariant {
    pub label: String,
    pub route: String,
    /// Per bucket: (successes, failures).
    pub timeline: Vec<(u64, u64)>,
    pub before: (u64, u64),
    pub during: (u64, u64),
    pub after: (u64, u64),
    /// Statuses (or "error") during the outage.
    pub during_statuses: BTreeMap<String, u64>,
    /// Seconds from Redis's restart to the first success (`None`: never in the run; `Some(0)`
    /// with no failure during the outage means it never needed to recover).
    pub recovered_after: Option<f64>,
    /// Seconds from Redis's restart to the first answer that was not 503 (the store reachable).
    pub store_back_after: Option<f64>,
    /// Logins the client had to redo after the outage (sessions live in Redis, which restarts
    /// empty).
    pub relogins: u64,
    /// Failures outside the outage and its recovery: these count as errors of the scenario.
    pub unexpected: u64,
}

impl OutageVariant {
    pub fn error_rate_during(&self) -> f64 {
        let total = self.during.0 + self.during.1;
        if total == 0 {
            0.0
        } else {
            self.during.1 as f64 / total as f64
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Issuer {
    pub argon2: String,
    pub logins: Throughput,
    pub refreshes: Throughput,
    /// µs of issuer CPU per refresh (cgroup accounting), if available.
    pub issuer_cpu_us_per_refresh: Option<f64>,
    pub issuer_cpus_during_refreshes: Option<f64>,
    pub signing: Vec<MicroBench>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Throughput {
    pub concurrency: usize,
    pub secs: f64,
    pub ok: u64,
    pub failures: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Throughput {
    pub fn per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

impl Issuer {
    /// µs of one RS256 verification in the harness's own loop, if it was timed.
    pub fn verify_us(&self) -> Option<f64> {
        self.signing
            .iter()
            .find(|m| m.label.starts_with("verify"))
            .map(|m| m.us_per_op)
    }

    /// µs of one signature by `openssl speed` on the same machine, if openssl was there.
    pub fn openssl_sign_us(&self) -> Option<f64> {
        self.signing
            .iter()
            .find(|m| m.is_for_scale() && m.label.ends_with("sign"))
            .map(|m| m.us_per_op)
    }
}

/// One timed loop. results.json keeps only the label, so what kind of loop it was is read from
/// the label's fixed parts, here and nowhere else (see `issuer.rs`, which writes them).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MicroBench {
    pub label: String,
    pub iterations: u64,
    pub us_per_op: f64,
}

impl MicroBench {
    /// `openssl speed`, run beside ours to show how fast RSA is on this machine right now.
    pub fn is_for_scale(&self) -> bool {
        self.label.starts_with("for scale")
    }

    /// Our own loop failed (an operation returned an error) or never ran.
    pub fn failed(&self) -> bool {
        self.label.contains("FAILED") || self.iterations == 0
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Network {
    /// oha's connections in every run of this scenario.
    pub concurrency: usize,
    pub replicas: usize,
    /// One entry per added round trip, smallest first.
    pub points: Vec<NetworkPoint>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkPoint {
    /// The round trip the proxy adds to every exchange with Redis: 2 × its one-way delay.
    pub added_rtt_ms: f64,
    /// Round trips of `PING` through the proxy, measured before each round's runs (ms).
    pub ping_ms: Vec<f64>,
    /// Tokens and sessions, in that order.
    pub variants: Vec<Variant>,
}

impl NetworkPoint {
    pub fn get(&self, key: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.key == key)
    }
}

impl Network {
    /// How much the median p50 of `key` rose from the first point (no added delay) to `point`.
    pub fn p50_rise(&self, key: &str, point: &NetworkPoint) -> Option<f64> {
        let first = self.points.first()?.get(key)?;
        Some(point.get(key)?.p50() - first.p50())
    }
}

/// g: what k6 measured, beside oha's figures on the same stack.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct K6 {
    /// `k6 version`.
    pub version: String,
    /// The access-token lifetime of the stack the scripts ran against (s).
    pub access_ttl_secs: u64,
    pub scripts: Vec<K6Script>,
    /// oha on the routes the scripts load, on the same stack right after them.
    pub oha: Vec<Variant>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct K6Script {
    /// `realistic.js`, `tokens.js`, ...
    pub script: String,
    /// The command line, as a person would type it.
    pub command: String,
    pub vus: usize,
    pub duration_secs: f64,
    /// k6's exit code (99: a threshold was crossed).
    pub exit_code: Option<i32>,
    pub requests: u64,
    pub rps: f64,
    /// Requests that failed by k6's definition (`http_req_failed`: no answer, or 4xx/5xx).
    pub failed: u64,
    /// The realistic client's counters (0 when k6 left them out, i.e. they never moved).
    pub refreshes: u64,
    pub relogins: u64,
    /// Answers the script's flow does not explain (`unexpected`), or, for the scripts without
    /// that counter, failed `/me` requests.
    pub unexpected: u64,
    /// (request name, p50 ms, p99 ms), per route the script tags.
    pub routes: Vec<(String, f64, f64)>,
    /// Thresholds k6 reported as crossed.
    pub crossed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn ratios_and_speedups() {
        let run = |rps: f64| RunResult {
            rps,
            ..RunResult::default()
        };
        let mut base = Variant::new("ping", "no auth", "/api/ping", 2);
        base.runs = vec![run(100.0), run(110.0), run(90.0)];
        let mut tokens = Variant::new("tokens", "tokens", "/api/me", 2);
        tokens.baseline = Some("ping".into());
        tokens.runs = vec![run(80.0), run(70.0), run(75.0)];
        let same = Same {
            replicas: 2,
            replica_cpu: Some(0.1),
            variants: vec![base, tokens],
        };
        assert!((same.ratio_to_baseline("tokens").unwrap() - 0.75).abs() < 1e-9);
        assert!(same.ratio_to_baseline("ping").is_none());

        let point = |n: usize, rps: f64| {
            let mut v = Variant::new("tokens", "tokens", "/api/me", n);
            v.runs = vec![run(rps)];
            ScalePoint {
                replicas: n,
                variants: vec![v],
            }
        };
        let scaling = Scaling {
            replica_cpu: 0.1,
            redis_cpu: 0.05,
            more_redis_cpus: vec![],
            points: vec![point(1, 1000.0), point(2, 1900.0), point(4, 3600.0)],
        };
        assert!((scaling.speedup("tokens").unwrap() - 3.6).abs() < 1e-9);
        // To 3 replicas: the last point at or below 3 is 2.
        assert!((scaling.speedup_to("tokens", 3).unwrap() - 1.9).abs() < 1e-9);
        assert!(scaling.speedup("sessions").is_none());
    }

    #[test]
    fn routes_and_loops_are_told_apart() {
        let sessions = Variant::new("sessions", "sessions", "/sapi/me", 2);
        let ping = Variant::new("ping-jwt", "no auth", "/api/ping", 2);
        assert_eq!(sessions.replica_kind(), "session replicas");
        assert_eq!(ping.replica_kind(), "jwt replicas");
        assert!(on_token_replicas("/api/me") && !on_token_replicas("/sapi/me"));

        let bench = |label: &str, iterations: u64, us_per_op: f64| MicroBench {
            label: label.into(),
            iterations,
            us_per_op,
        };
        let issuer = Issuer {
            argon2: String::new(),
            logins: Throughput::default(),
            refreshes: Throughput::default(),
            issuer_cpu_us_per_refresh: None,
            issuer_cpus_during_refreshes: None,
            signing: vec![
                bench("sign", 10, 800.0),
                bench("verify", 10, 30.0),
                bench("for scale: `openssl speed rsa2048`, sign", 0, 700.0),
                bench("for scale: `openssl speed rsa2048`, verify", 0, 20.0),
            ],
        };
        assert_eq!(issuer.verify_us(), Some(30.0));
        assert_eq!(issuer.openssl_sign_us(), Some(700.0));
        assert!(!issuer.signing[0].failed() && !issuer.signing[0].is_for_scale());
        assert!(issuer.signing[2].is_for_scale());
        assert!(bench("sign (FAILED)", 10, 1.0).failed() && bench("sign", 0, 0.0).failed());
    }
}
