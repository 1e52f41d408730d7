//! Starting a stack: what to start ([`StackConfig`]), and [`Stack::start`], which plans ports
//! and cgroups and then brings the processes up one layer at a time (the order and why are in
//! the parent module's comment).
//!
//! The running stack, and what a test can do with it, is the parent module, `stack.rs`.

use super::{Member, Stack, in_group};
use crate::binaries::{Binaries, workspace_root};
use crate::cgroup::{CpuGroups, CpuQuota};
use crate::delay_proxy::DelayProxy;
use crate::nginx::{self, NginxConfig};
use crate::redis::Persistence;
use crate::services::{self, Mode, Shared};
use crate::{ports, programs};
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to start, and where.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub binaries: Binaries,
    /// Token replicas (`/api/`). Default 2.
    pub jwt_replicas: usize,
    /// Session replicas (`/sapi/`). Default 2.
    pub session_replicas: usize,
    /// Where nginx listens. `None`: 127.0.0.1 on a free port (tests); `Some(127.0.0.1:8080)` for
    /// `cargo xtask up`.
    pub nginx_listen: Option<SocketAddr>,
    /// logs/, nginx/ and the issuer's key file go here. Created if missing.
    pub work_dir: PathBuf,
    /// Extra environment for the issuer and every replica (e.g. `ACCESS_TTL_SECS=2`), applied
    /// last, so it overrides what the stack sets.
    pub env: Vec<(String, String)>,
    /// `None`: a free port. With several shards, the first node's port (the others take free
    /// ones).
    pub redis_port: Option<u16>,
    /// Redis shards. 1 (the default): one redis-server, named by `REDIS_URL`. 3 or more: a Redis
    /// Cluster of that many masters (`redis-1`, `redis-2`, ...; [`crate::redis::create_cluster`]),
    /// named by `REDIS_CLUSTER_NODES`. Each shard gets `redis_cpu`, if set. (Redis Cluster needs
    /// at least 3 masters: 2 is refused.)
    pub redis_shards: usize,
    /// nginx worker processes. Default 1.
    pub nginx_workers: usize,
    /// How long each process may take to become ready. Default 60 s (debug builds on a busy
    /// 2-core machine are slow to start).
    pub ready_timeout: Duration,
    /// The demo page nginx serves at `/`. Default: `deploy/web` in this workspace.
    pub web_root: PathBuf,
    /// CPU limit of each replica, in CPUs (0.1 = a tenth of a core), enforced with a cgroup v1
    /// CFS quota ([`crate::cgroup`]). Default `None`: no limit.
    pub replica_cpu: Option<f64>,
    /// CPU limit of redis-server, the same way. Default `None`: no limit.
    pub redis_cpu: Option<f64>,
    /// Put every process in its own cgroup to measure its CPU time ([`Stack::cpu_stats`]), even
    /// without limits. Implied by a limit. Default false.
    pub cpu_accounting: bool,
    /// redis keeps its data in an append-only file in `<work_dir>/redis`, fsynced once a second
    /// ([`crate::redis`] says what that can lose), so sessions and the refresh-token families
    /// survive a restart of redis ([`Stack::restart_redis`]) or of the stack. Default false:
    /// every start of redis is empty.
    pub redis_aof: bool,
    /// nginx's limit on the two password routes per client address, as nginx writes a rate
    /// (`10r/s`, `600r/m`). Default `None`: [`NginxConfig::DEFAULT_LOGIN_RATE`]. A load test
    /// that measures logins through nginx from one address sets it far above what it sends.
    pub login_rate: Option<String>,
    /// The burst allowed above `login_rate` (requests). Default `None`:
    /// [`NginxConfig::DEFAULT_LOGIN_BURST`].
    pub login_burst: Option<u32>,
    /// Put redis one network hop away: the issuer and the replicas reach it through a
    /// [`DelayProxy`] that adds this delay in each direction, so every round trip to the store
    /// takes 2 × this much longer. Default `None`: they connect to redis directly.
    pub store_delay: Option<Duration>,
}

impl StackConfig {
    /// The defaults: 2 + 2 replicas, free ports everywhere, 1 nginx worker, no extra env, the
    /// page from this workspace's `deploy/web`.
    pub fn new(binaries: Binaries, work_dir: PathBuf) -> Self {
        StackConfig {
            binaries,
            jwt_replicas: 2,
            session_replicas: 2,
            nginx_listen: None,
            work_dir,
            env: Vec::new(),
            redis_port: None,
            redis_shards: 1,
            nginx_workers: 1,
            ready_timeout: Duration::from_secs(60),
            web_root: workspace_root().join("deploy").join("web"),
            replica_cpu: None,
            redis_cpu: None,
            cpu_accounting: false,
            redis_aof: false,
            login_rate: None,
            login_burst: None,
            store_delay: None,
        }
    }
}

impl Stack {
    /// Starts redis, the issuer, the replicas and nginx, each awaited until ready. On failure,
    /// whatever was started is stopped again, and the error ends with the failing process's log.
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        let mut stack = Stack::plan(&config)?;
        stack.start_redis().await?;
        stack.start_store_proxy(&config)?;
        stack.start_issuer(&config).await?;
        stack.start_replicas(&config).await?;
        stack.start_nginx(&config).await?;
        Ok(stack)
    }

    /// Everything decided before anything starts: programs found, work dir made, ports chosen.
    fn plan(config: &StackConfig) -> anyhow::Result<Stack> {
        let nginx_addr = match config.nginx_listen {
            Some(addr) => {
                ports::ensure_free(addr)?;
                addr
            }
            None => ports::free_addr()?,
        };
        anyhow::ensure!(
            config.redis_shards == 1 || config.redis_shards >= 3,
            "redis_shards is {}: one Redis, or a Redis Cluster of at least 3 masters",
            config.redis_shards
        );
        anyhow::ensure!(
            config.redis_shards == 1 || !config.redis_aof,
            "redis_aof is for one redis-server: a Redis Cluster here keeps no data across restarts"
        );
        // The delay proxy cannot sit in front of a cluster: a cluster client learns the nodes'
        // addresses from the cluster itself (CLUSTER SLOTS, MOVED), so it would connect to the
        // nodes directly past a proxy at the first redirection. Refused rather than measured wrong.
        anyhow::ensure!(
            config.redis_shards == 1 || config.store_delay.is_none(),
            "store_delay is for one redis-server: a Redis Cluster's clients learn the nodes' \
             addresses from the cluster and would bypass the delay proxy"
        );
        let work_dir = prepare_work_dir(&config.work_dir)?;
        let redis = (0..config.redis_shards)
            .map(|i| {
                let port = match (i, config.redis_port) {
                    (0, Some(port)) => port,
                    _ => ports::free_port()?,
                };
                let name = match config.redis_shards {
                    1 => "redis".to_owned(),
                    _ => format!("redis-{}", i + 1),
                };
                Ok(Member::new(&name, localhost(port), "redis", &work_dir))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let replicas = |mode: Mode, count: usize| -> anyhow::Result<Vec<Member>> {
            (0..count)
                .map(|i| {
                    Ok(Member::new(
                        &mode.replica_id(i),
                        ports::free_addr()?,
                        "http",
                        &work_dir,
                    ))
                })
                .collect()
        };
        let redis_persistence = if config.redis_aof {
            Persistence::AppendOnly(work_dir.join("redis"))
        } else {
            Persistence::None
        };
        let mut stack = Stack {
            redis_server: programs::redis_server()?,
            redis_persistence,
            ready_timeout: config.ready_timeout,
            redis,
            issuer: Member::new("issuer", ports::free_addr()?, "http", &work_dir),
            jwt: replicas(Mode::Jwt, config.jwt_replicas)?,
            session: replicas(Mode::Session, config.session_replicas)?,
            nginx: Member::new("nginx", nginx_addr, "http", &work_dir),
            work_dir,
            cgroups: None,
            store_proxy: None,
        };
        stack.cgroups = stack.plan_cpu_groups(config)?;
        Ok(stack)
    }

    /// A cgroup per process when the config asks for CPU limits or accounting: the replicas and
    /// redis with their quota, the issuer and nginx only accounted. When this machine cannot
    /// (no writable cgroup v1 cpu hierarchy), a warning says so and the stack runs unlimited;
    /// [`Stack::cpu_limits_applied`] then answers false.
    fn plan_cpu_groups(&self, config: &StackConfig) -> anyhow::Result<Option<CpuGroups>> {
        let quota = |cpus: Option<f64>| cpus.map(CpuQuota::for_cpus).transpose();
        let (replica_quota, redis_quota) = (quota(config.replica_cpu)?, quota(config.redis_cpu)?);
        let wanted = config.cpu_accounting || replica_quota.is_some() || redis_quota.is_some();
        if !wanted {
            return Ok(None);
        }
        let mut groups = match CpuGroups::create() {
            Ok(groups) => groups,
            Err(e) => {
                eprintln!(
                    "warning: CPU limits and accounting are NOT applied: {e:#}. Every process \
                     runs unlimited."
                );
                return Ok(None);
            }
        };
        for member in self.members() {
            let quota = match member.name.as_str() {
                "issuer" | "nginx" => None,
                name if name.starts_with("redis") => redis_quota,
                _ => replica_quota,
            };
            groups.add(&member.name, quota)?;
        }
        Ok(Some(groups))
    }

    /// The delay proxy in front of redis, when the config asks for one. It runs inside this
    /// process (a thread of its own), so it lives exactly as long as the [`Stack`].
    fn start_store_proxy(&mut self, config: &StackConfig) -> anyhow::Result<()> {
        if let Some(one_way) = config.store_delay {
            let proxy = DelayProxy::start(self.redis[0].addr, one_way)
                .context("starting the delay proxy in front of redis")?;
            self.store_proxy = Some(proxy);
        }
        Ok(())
    }

    async fn start_issuer(&mut self, config: &StackConfig) -> anyhow::Result<()> {
        let (issuer_url, redis_env) = (self.base_url(), self.redis_env());
        let shared = shared(&issuer_url, &redis_env, config);
        let key_path = self.work_dir.join("issuer-key.pem");
        let binary = &config.binaries.issuer;
        let command =
            services::issuer_command(binary, &self.work_dir, self.issuer.addr, &key_path, &shared);
        let command = in_group(&self.cgroups, &self.issuer.name, command);
        self.issuer.spawn(command)?;
        self.issuer
            .wait_http_ready("/readyz", self.ready_timeout)
            .await
    }

    async fn start_replicas(&mut self, config: &StackConfig) -> anyhow::Result<()> {
        let (issuer_url, redis_env) = (self.base_url(), self.redis_env());
        let shared = shared(&issuer_url, &redis_env, config);
        let jwks_url = format!("{}/.well-known/jwks.json", self.issuer_url());
        let work_dir = self.work_dir.clone();
        for mode in [Mode::Jwt, Mode::Session] {
            // Fields, not `replicas_mut`: the cgroups are borrowed alongside.
            let replicas = match mode {
                Mode::Jwt => &mut self.jwt,
                Mode::Session => &mut self.session,
            };
            for replica in replicas {
                let command = services::replica_command(
                    &config.binaries.api,
                    &work_dir,
                    replica.addr,
                    mode,
                    &replica.name,
                    &jwks_url,
                    &shared,
                );
                let command = in_group(&self.cgroups, &replica.name, command);
                replica.spawn(command)?;
            }
        }
        let timeout = self.ready_timeout;
        for replica in self.jwt.iter_mut().chain(self.session.iter_mut()) {
            replica.wait_http_ready("/readyz", timeout).await?;
        }
        Ok(())
    }

    async fn start_nginx(&mut self, config: &StackConfig) -> anyhow::Result<()> {
        let addrs = |members: &[Member]| members.iter().map(|m| m.addr).collect();
        let nginx_config = NginxConfig {
            listen: self.nginx.addr,
            worker_processes: config.nginx_workers.max(1),
            issuer: vec![self.issuer.addr],
            jwt_replicas: addrs(&self.jwt),
            session_replicas: addrs(&self.session),
            web_root: config.web_root.clone(),
            login_rate: config
                .login_rate
                .clone()
                .unwrap_or_else(|| NginxConfig::DEFAULT_LOGIN_RATE.to_owned()),
            login_burst: config
                .login_burst
                .unwrap_or(NginxConfig::DEFAULT_LOGIN_BURST),
            // Loopback only, on a port of its own: nothing reads it locally yet, but the
            // template (shared with docker compose) has the server.
            status_listen: ports::free_addr()?,
        };
        let prefix = self.work_dir.join("nginx");
        let binary = programs::nginx()?;
        let (log, timeout) = (&self.nginx.log_path, self.ready_timeout);
        let wrap = |command| in_group(&self.cgroups, "nginx", command);
        let process =
            nginx::start_with(&binary, &prefix, &nginx_config, log, timeout, wrap).await?;
        self.nginx.process = Some(process);
        Ok(())
    }
}

fn shared<'a>(
    issuer_url: &'a str,
    redis_env: &'a (&'static str, String),
    config: &'a StackConfig,
) -> Shared<'a> {
    Shared {
        issuer_url,
        redis_env: (redis_env.0, &redis_env.1),
        extra_env: &config.env,
    }
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Creates the work dir and its logs/ and returns its absolute path: the services run with the
/// work dir as their current directory, so a relative path would no longer point at it.
fn prepare_work_dir(work_dir: &Path) -> anyhow::Result<PathBuf> {
    let logs = work_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    std::fs::canonicalize(work_dir)
        .with_context(|| format!("cannot resolve {}", work_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused before anything starts, so no binary is needed and the work dir is never made
    /// (were the check gone, it would be made in the temp dir, not at the root).
    fn config_with(shards: usize, store_delay: Option<Duration>) -> StackConfig {
        let binaries = Binaries {
            issuer: PathBuf::from("/nonexistent/auth-issuer"),
            api: PathBuf::from("/nonexistent/api"),
        };
        let mut config =
            StackConfig::new(binaries, std::env::temp_dir().join("authscale-plan-test"));
        config.redis_shards = shards;
        config.store_delay = store_delay;
        config
    }

    #[test]
    fn a_cluster_behind_the_delay_proxy_is_refused() {
        let config = config_with(3, Some(Duration::from_millis(1)));
        let Err(err) = Stack::plan(&config) else {
            panic!("a cluster behind the delay proxy was planned");
        };
        assert!(
            format!("{err:#}").contains("store_delay is for one redis-server"),
            "{err:#}"
        );
        let Err(err) = Stack::plan(&config_with(2, None)) else {
            panic!("a cluster of 2 masters was planned");
        };
        assert!(format!("{err:#}").contains("at least 3 masters"), "{err:#}");
    }
}
