//! What every scenario shares: the options, oha, the stacks it starts, and one measured oha run
//! with the CPU each process spent on it.

use crate::client::{self, Pair, USERS};
use crate::oha::{self, Load, RunResult};
use crate::options::Options;
use crate::perf::Profiler;
use anyhow::Context;
use serde::Serialize;
use stack::cgroup::CpuStat;
use stack::{Binaries, Mode, Stack, StackConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// nginx's per-address limit on the password routes for the stacks started here: far above any
/// login rate one machine can hash.
const UNTHROTTLED_LOGIN_RATE: &str = "100000r/s";

/// The load test's context.
pub struct Bench {
    pub options: Options,
    pub oha: PathBuf,
    /// `None` when running against `--url`.
    pub binaries: Option<Binaries>,
    /// Work dirs of the stacks (logs), removed at the end unless kept.
    pub work_dir: PathBuf,
    pub http: reqwest::Client,
    pub profiler: Option<Profiler>,
    /// Where the results go (for profiles written along the way).
    pub out_dir: PathBuf,
    stacks_started: usize,
}

/// A stack to start for a scenario.
#[derive(Debug, Clone)]
pub struct Spec {
    pub jwt: usize,
    pub session: usize,
    pub replica_cpu: Option<f64>,
    pub redis_cpu: Option<f64>,
    pub token_cache: bool,
    /// Redis shards: 1, one redis-server; 3 or more, a Redis Cluster (scenario h).
    pub redis_shards: usize,
    /// The services reach Redis through the launcher's delay proxy, with this delay each way
    /// (`StackConfig::store_delay`).
    pub store_delay: Option<Duration>,
    /// More environment for every service, after the bench's own (e.g. a short token lifetime).
    pub env: Vec<(String, String)>,
}

/// No replicas, no limits, one redis-server reached directly: each scenario names what it
/// changes and takes the rest from here.
impl Default for Spec {
    fn default() -> Self {
        Spec {
            jwt: 0,
            session: 0,
            replica_cpu: None,
            redis_cpu: None,
            token_cache: false,
            redis_shards: 1,
            store_delay: None,
            env: Vec::new(),
        }
    }
}

/// A running target: a stack we started, or a base URL of one already running.
pub struct Target {
    pub base: String,
    pub stack: Option<Stack>,
    /// The CPU limit of each replica, when we started the stack with one.
    pub replica_cpu: Option<f64>,
    /// Logged in once: a token pair (refreshed before each tokens run) and a session cookie.
    pub pair: Option<Pair>,
    pub cookie: Option<String>,
}

/// One variant of a scenario: a route with a kind of credentials on a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    None,
    Bearer,
    Cookie,
}

/// CPU time per request of each process kind during one run, from the cgroups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CpuPerRequest {
    /// µs of CPU per answered request, by process kind (`jwt replicas`, `redis`, `nginx`, ...).
    pub us: BTreeMap<String, f64>,
    /// Of the periods in which a kind ran, the share in which its quota stopped it (0 to 1).
    pub throttled: BTreeMap<String, f64>,
    /// CPUs used on average during the run, by kind.
    pub cpus: BTreeMap<String, f64>,
}

/// The kind under which oha's own CPU is counted: the capacity model needs it, because on one
/// machine the load generator competes with what it measures.
pub const LOAD_GENERATOR: &str = "load generator";

impl CpuPerRequest {
    /// Count `used` (the load generator's CPU over a run that got `answered` answers in
    /// `elapsed`) like a process kind of the stack.
    pub fn add_load_generator(&mut self, used: Duration, answered: u64, elapsed: Duration) {
        if answered > 0 {
            let us = used.as_secs_f64() * 1e6 / answered as f64;
            self.us.insert(LOAD_GENERATOR.to_owned(), us);
        }
        if !elapsed.is_zero() {
            let cpus = used.as_secs_f64() / elapsed.as_secs_f64();
            self.cpus.insert(LOAD_GENERATOR.to_owned(), cpus);
        }
    }
}

/// User and system CPU of this process's finished children, so far. Read just before and after
/// one oha run, the difference is that run's: the stacks' processes are children too, but none
/// finishes during a run.
pub fn children_cpu() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_CHILDREN) {
        Ok(usage) => {
            let time = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec().max(0) as u64, (t.tv_usec().max(0) as u32) * 1000)
            };
            time(usage.user_time()) + time(usage.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// The process kind a stack member belongs to, for adding up CPU.
pub fn kind_of(name: &str) -> String {
    match name.split_once('-') {
        Some(("jwt", _)) => "jwt replicas".to_owned(),
        Some(("session", _)) => "session replicas".to_owned(),
        // The shards of a Redis Cluster (`redis-1`, ...), counted together.
        Some(("redis", _)) => "redis".to_owned(),
        _ => name.to_owned(),
    }
}

impl Bench {
    pub fn new(
        options: Options,
        oha: PathBuf,
        binaries: Option<Binaries>,
        work_dir: PathBuf,
        out_dir: PathBuf,
        profiler: Option<Profiler>,
    ) -> anyhow::Result<Bench> {
        Ok(Bench {
            options,
            oha,
            binaries,
            work_dir,
            http: client::http()?,
            profiler,
            out_dir,
            stacks_started: 0,
        })
    }

    /// Starts a stack (release binaries; each replica with one tokio worker) and logs in once.
    pub async fn start(&mut self, name: &str, spec: Spec) -> anyhow::Result<Target> {
        let binaries = self
            .binaries
            .clone()
            .context("no binaries: a stack cannot be started in --url mode")?;
        self.stacks_started += 1;
        let dir = self
            .work_dir
            .join(format!("{:02}-{name}", self.stacks_started));
        let mut config = StackConfig::new(binaries, dir);
        config.jwt_replicas = spec.jwt;
        config.session_replicas = spec.session;
        config.replica_cpu = spec.replica_cpu;
        config.redis_cpu = spec.redis_cpu;
        config.redis_shards = spec.redis_shards;
        config.cpu_accounting = true;
        config.store_delay = spec.store_delay;
        // nginx limits the password routes per client address; every client here is 127.0.0.1,
        // and scenario e measures how many logins the issuer does, not nginx's limit.
        config.login_rate = Some(UNTHROTTLED_LOGIN_RATE.to_owned());
        config.env = vec![
            ("WORKER_THREADS".into(), "1".into()),
            (
                "TOKEN_CACHE".into(),
                if spec.token_cache { "on" } else { "off" }.into(),
            ),
        ];
        config.env.extend(spec.env.iter().cloned());
        let stack = Stack::start(config)
            .await
            .with_context(|| format!("starting the {name} stack"))?;
        let limited = stack.cpu_limits_applied();
        let mut target = Target {
            base: stack.base_url(),
            stack: Some(stack),
            replica_cpu: spec.replica_cpu.filter(|_| limited),
            pair: None,
            cookie: None,
        };
        self.log_in(&mut target, spec.jwt > 0, spec.session > 0)
            .await?;
        Ok(target)
    }

    /// A stack already running at `base`.
    pub async fn remote(&self, base: &str) -> anyhow::Result<Target> {
        let mut target = Target {
            base: base.to_owned(),
            stack: None,
            replica_cpu: None,
            pair: None,
            cookie: None,
        };
        self.log_in(&mut target, true, true).await?;
        Ok(target)
    }

    async fn log_in(
        &self,
        target: &mut Target,
        tokens: bool,
        sessions: bool,
    ) -> anyhow::Result<()> {
        if tokens {
            target.pair = Some(client::login(&self.http, &target.base, USERS[1]).await?);
        }
        if sessions {
            target.cookie = Some(client::session_login(&self.http, &target.base, USERS[1]).await?);
        }
        Ok(())
    }

    /// A fresh access token for `target` (one refresh): access tokens live 5 minutes, longer
    /// than a full run, so every tokens run gets a new one.
    pub async fn fresh_access(&self, target: &mut Target) -> anyhow::Result<String> {
        let pair = target.pair.as_ref().context("not logged in for tokens")?;
        let (status, next) = client::refresh(&self.http, &target.base, &pair.refresh).await?;
        let next = next.with_context(|| format!("refresh answered {status}"))?;
        target.pair = Some(next.clone());
        Ok(next.access)
    }

    /// The oha load for `route` on `target` with `credentials`.
    pub async fn load(
        &self,
        target: &mut Target,
        route: &str,
        credentials: Credentials,
        duration: Duration,
    ) -> anyhow::Result<Load> {
        let headers = match credentials {
            Credentials::None => vec![],
            Credentials::Bearer => {
                vec![format!(
                    "authorization: Bearer {}",
                    self.fresh_access(target).await?
                )]
            }
            Credentials::Cookie => vec![format!(
                "cookie: {}",
                target.cookie.as_deref().context("no session cookie")?
            )],
        };
        Ok(Load {
            url: format!("{}{route}", target.base),
            headers,
            duration,
            concurrency: self.options.concurrency,
            requests: None,
        })
    }

    /// One oha run, with the CPU each kind of process spent during it, and (with `profile`) a
    /// perf profile of the first replica of `mode` written to `<out>/profiles/<profile>.txt`.
    pub async fn measure(
        &self,
        target: &Target,
        load: &Load,
        profile: Option<(&str, Mode)>,
    ) -> anyhow::Result<(RunResult, CpuPerRequest, Option<String>)> {
        let before = target.stack.as_ref().map(Stack::cpu_stats);
        let recording = match (profile, &self.profiler, &target.stack) {
            (Some((name, mode)), Some(profiler), Some(stack)) => {
                let replica = mode.replica_id(0);
                let pid = stack.pid(&replica);
                pid.map(|pid| (name, replica, profiler.start(pid, load.duration)))
            }
            _ => None,
        };
        let oha = self.oha.clone();
        let owned = load.clone();
        let started = std::time::Instant::now();
        let (run, load_generator) = tokio::task::spawn_blocking(move || {
            let before = children_cpu();
            let run = oha::run(&oha, &owned);
            (run, children_cpu().saturating_sub(before))
        })
        .await?;
        let run = run?;
        let elapsed = started.elapsed();
        let profile_text = match recording {
            Some((name, replica, Ok(recording))) => {
                let path = self.out_dir.join("profiles").join(format!("{name}.txt"));
                match recording.finish(&path, &format!("{name} ({replica})")) {
                    Ok(text) => Some(text),
                    Err(e) => {
                        eprintln!("  (profile of {name} failed: {e:#})");
                        None
                    }
                }
            }
            Some((name, _, Err(e))) => {
                eprintln!("  (profile of {name} not started: {e:#})");
                None
            }
            None => None,
        };
        let after = target.stack.as_ref().map(Stack::cpu_stats);
        let mut cpu = match (before, after) {
            (Some(before), Some(after)) => cpu_per_request(&before, &after, run.ok(), elapsed),
            _ => CpuPerRequest::default(),
        };
        cpu.add_load_generator(load_generator, run.ok(), elapsed);
        Ok((run, cpu, profile_text))
    }
}

impl Target {
    pub fn stack_mut(&mut self) -> anyhow::Result<&mut Stack> {
        self.stack
            .as_mut()
            .context("this target is not a stack we started")
    }

    /// Stops the stack, if we started it.
    pub async fn stop(self) -> anyhow::Result<()> {
        if let Some(stack) = self.stack {
            stack.shutdown().await?;
        }
        Ok(())
    }
}

/// CPU per answered request and throttling, per process kind, between two readings.
pub fn cpu_per_request(
    before: &[CpuStat],
    after: &[CpuStat],
    answered: u64,
    elapsed: Duration,
) -> CpuPerRequest {
    let mut used: BTreeMap<String, Duration> = BTreeMap::new();
    let mut periods: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for stat in after {
        let Some(old) = before.iter().find(|b| b.name == stat.name) else {
            continue;
        };
        let kind = kind_of(&stat.name);
        if let (Some(now), Some(then)) = (stat.usage, old.usage) {
            *used.entry(kind.clone()).or_default() += now.saturating_sub(then);
        }
        if stat.limit.is_some() {
            let entry = periods.entry(kind).or_default();
            entry.0 += stat.nr_periods.saturating_sub(old.nr_periods);
            entry.1 += stat.nr_throttled.saturating_sub(old.nr_throttled);
        }
    }
    let mut out = CpuPerRequest::default();
    for (kind, time) in used {
        if answered > 0 {
            out.us
                .insert(kind.clone(), time.as_secs_f64() * 1e6 / answered as f64);
        }
        if !elapsed.is_zero() {
            out.cpus
                .insert(kind, time.as_secs_f64() / elapsed.as_secs_f64());
        }
    }
    for (kind, (ran, throttled)) in periods {
        if ran > 0 {
            out.throttled.insert(kind, throttled as f64 / ran as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(name: &str, usage_ms: u64, periods: u64, throttled: u64, limited: bool) -> CpuStat {
        CpuStat {
            name: name.into(),
            limit: limited.then_some(stack::cgroup::CpuQuota {
                quota_us: 1000,
                period_us: 10_000,
            }),
            usage: Some(Duration::from_millis(usage_ms)),
            nr_periods: periods,
            nr_throttled: throttled,
            throttled: Duration::ZERO,
        }
    }

    #[test]
    fn cpu_is_summed_per_kind_and_divided_by_requests() {
        let before = vec![
            stat("jwt-1", 100, 10, 0, true),
            stat("jwt-2", 100, 10, 0, true),
            stat("nginx", 50, 0, 0, false),
        ];
        let after = vec![
            stat("jwt-1", 300, 110, 50, true),
            stat("jwt-2", 300, 110, 30, true),
            stat("nginx", 150, 0, 0, false),
        ];
        let cpu = cpu_per_request(&before, &after, 1000, Duration::from_secs(1));
        // 400 ms over 1000 requests: 400 µs each; 0.4 CPUs during the second.
        assert!((cpu.us["jwt replicas"] - 400.0).abs() < 1e-6);
        assert!((cpu.cpus["jwt replicas"] - 0.4).abs() < 1e-9);
        assert!((cpu.us["nginx"] - 100.0).abs() < 1e-6);
        assert!((cpu.throttled["jwt replicas"] - 0.4).abs() < 1e-9);
        assert!(!cpu.throttled.contains_key("nginx"));
        assert_eq!(kind_of("session-3"), "session replicas");
        assert_eq!(kind_of("redis"), "redis");
        assert_eq!(kind_of("redis-3"), "redis");
    }
}
