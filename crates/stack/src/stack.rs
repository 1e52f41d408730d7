//! The whole system: redis, the issuer, the replicas and nginx, started in dependency order.
//!
//! ```text
//!                        ┌─> issuer ─────────────┐
//!   client ──> nginx ────┼─> jwt-1 ... jwt-N     ├──> redis
//!                        └─> session-1 ... -M ───┘
//! ```
//!
//! [`Stack::start`] brings the processes up one layer at a time and waits until each layer is
//! ready before starting the next, because each layer needs the one below it:
//!
//! 1. **redis**: the issuer and the session replicas need it to be ready.
//! 2. **issuer**: the replicas fetch its public keys (JWKS) when they start.
//! 3. **replicas**, token (jwt) ones first, then session ones. All of them are started at once
//!    and then awaited one by one, so their start-up times overlap.
//! 4. **nginx** last: when it answers, everything behind it is ready, so a client (a test, a
//!    load generator, a person with curl) never sees a half-started system.
//!
//! All ports are chosen up front ([`crate::ports`]), because the services must be told each
//! other's addresses: every token's `iss` is nginx's URL, although nginx starts last.
//!
//! Everything lives in the work dir: `logs/<name>.log` for every process, `nginx/` (its config,
//! pid file and temp dirs), `issuer-key.pem`, and `redis/` (its append-only file) when redis
//! persists its data ([`StackConfig::redis_aof`]). A [`Stack`] stops every process it started when
//! it is shut down, and also when it is dropped: a test that panics leaves nothing running.

use crate::binaries::{Binaries, workspace_root};
use crate::cgroup::{CpuGroups, CpuQuota, CpuStat};
use crate::nginx::{self, NginxConfig};
use crate::process::{self, DROP_GRACE, Process};
use crate::readiness::{self, http_ok, probe_client, wait_until_ready};
use crate::redis::Persistence;
use crate::services::{self, Mode, Shared};
use crate::{ports, programs, redis};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long [`Stack::shutdown`] and [`Stack::stop_redis`] give processes to exit after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
    /// `None`: a free port.
    pub redis_port: Option<u16>,
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
            nginx_workers: 1,
            ready_timeout: Duration::from_secs(60),
            web_root: workspace_root().join("deploy").join("web"),
            replica_cpu: None,
            redis_cpu: None,
            cpu_accounting: false,
            redis_aof: false,
            login_rate: None,
            login_burst: None,
        }
    }
}

/// One process of the stack: its name, where it listens, and its process while it runs.
#[derive(Debug)]
struct Member {
    name: String,
    addr: SocketAddr,
    /// "http" or "redis", for its URL.
    scheme: &'static str,
    log_path: PathBuf,
    process: Option<Process>,
}

impl Member {
    fn new(name: &str, addr: SocketAddr, scheme: &'static str, work_dir: &Path) -> Self {
        Member {
            name: name.to_owned(),
            addr,
            scheme,
            log_path: work_dir.join("logs").join(format!("{name}.log")),
            process: None,
        }
    }

    fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Starts `command` as this member's process.
    fn spawn(&mut self, command: Command) -> anyhow::Result<()> {
        self.process = Some(Process::spawn(&self.name, command, &self.log_path)?);
        Ok(())
    }

    /// Waits until `GET <url><path>` answers 200.
    async fn wait_http_ready(&mut self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.url());
        let client = probe_client()?;
        let process = self.process.as_mut().context("not started")?;
        let awaiting = format!("GET {url} 200");
        wait_until_ready(process, &awaiting, timeout, || http_ok(&client, &url)).await
    }
}

/// A running stack. Dropping it stops every process (see the module docs).
#[derive(Debug)]
pub struct Stack {
    work_dir: PathBuf,
    redis_server: PathBuf,
    /// Where redis keeps its data between starts (nowhere unless [`StackConfig::redis_aof`]).
    redis_persistence: Persistence,
    ready_timeout: Duration,
    redis: Member,
    issuer: Member,
    jwt: Vec<Member>,
    session: Vec<Member>,
    nginx: Member,
    /// One cgroup per process when CPU limits or accounting were asked for and the machine
    /// allows it. Dropped (removed) after the processes in it, see `Drop for Stack`.
    cgroups: Option<CpuGroups>,
}

impl Stack {
    /// Starts redis, the issuer, the replicas and nginx, each awaited until ready. On failure,
    /// whatever was started is stopped again, and the error ends with the failing process's log.
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        let mut stack = Stack::plan(&config)?;
        stack.start_redis().await?;
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
        let redis_port = match config.redis_port {
            Some(port) => port,
            None => ports::free_port()?,
        };
        let work_dir = prepare_work_dir(&config.work_dir)?;
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
            redis: Member::new("redis", localhost(redis_port), "redis", &work_dir),
            issuer: Member::new("issuer", ports::free_addr()?, "http", &work_dir),
            jwt: replicas(Mode::Jwt, config.jwt_replicas)?,
            session: replicas(Mode::Session, config.session_replicas)?,
            nginx: Member::new("nginx", nginx_addr, "http", &work_dir),
            work_dir,
            cgroups: None,
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
                "redis" => redis_quota,
                "issuer" | "nginx" => None,
                _ => replica_quota,
            };
            groups.add(&member.name, quota)?;
        }
        Ok(Some(groups))
    }

    async fn start_issuer(&mut self, config: &StackConfig) -> anyhow::Result<()> {
        let (issuer_url, redis_url) = (self.base_url(), self.redis_url());
        let shared = shared(&issuer_url, &redis_url, config);
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
        let (issuer_url, redis_url) = (self.base_url(), self.redis_url());
        let shared = shared(&issuer_url, &redis_url, config);
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

    /// nginx, where clients go: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.nginx.url()
    }

    /// The issuer directly, bypassing nginx (e.g. for `/metrics`).
    pub fn issuer_url(&self) -> String {
        self.issuer.url()
    }

    /// Every replica of `mode` directly, in id order (`jwt-1` first). Includes killed replicas,
    /// so index `i` always means the same replica.
    pub fn replica_urls(&self, mode: Mode) -> Vec<String> {
        self.replicas(mode).iter().map(Member::url).collect()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    /// Whether redis keeps its data in an append-only file ([`StackConfig::redis_aof`]).
    pub fn redis_persistent(&self) -> bool {
        matches!(self.redis_persistence, Persistence::AppendOnly(_))
    }

    /// The work dir (absolute).
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// What runs where: one line per process with its pid, address and log file.
    pub fn describe(&self) -> String {
        let mut out = format!("authscale stack in {}\n", self.work_dir.display());
        let _ = writeln!(out, "  {:<11} {:>8}  {:<24}  LOG", "NAME", "PID", "ADDRESS");
        for member in self.members() {
            let pid = member
                .process
                .as_ref()
                .map_or("stopped".to_owned(), |p| p.pid().to_string());
            let (name, url, log) = (&member.name, member.url(), member.log_path.display());
            let _ = writeln!(out, "  {name:<11} {pid:>8}  {url:<24}  {log}");
        }
        if let Persistence::AppendOnly(dir) = &self.redis_persistence {
            let dir = dir.display();
            let _ = writeln!(
                out,
                "  redis data: {dir} (append-only file, fsync every second)"
            );
        }
        if let Some(groups) = &self.cgroups {
            let limits: Vec<String> = self
                .members()
                .filter_map(|m| Some((m, groups.quota(&m.name)?)))
                .map(|(m, q)| format!("{} {:.2}", m.name, q.cpus()))
                .collect();
            let limits = if limits.is_empty() {
                "none (accounting only)".to_owned()
            } else {
                format!("{} CPU", limits.join(", "))
            };
            let _ = writeln!(out, "  CPU limits (cgroup v1 CFS quota): {limits}");
        }
        out
    }

    /// The pid of the process called `name` (`redis`, `issuer`, `jwt-1`, `session-2`, `nginx`:
    /// the names [`Stack::describe`] shows), while it runs. For profilers (`perf record -p`).
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.members()
            .find(|m| m.name == name)
            .and_then(|m| m.process.as_ref())
            .map(Process::pid)
    }

    /// Whether the processes run in cgroups (with the limits of the config, if any). False when
    /// no limit or accounting was asked for, or the machine could not apply them.
    pub fn cpu_limits_applied(&self) -> bool {
        self.cgroups.is_some()
    }

    /// CPU time used and throttling of every process so far, read from the cgroups; empty when
    /// the stack runs without them. Read it before and after a load run: the difference is the
    /// CPU each process spent on that run.
    pub fn cpu_stats(&self) -> Vec<CpuStat> {
        self.cgroups
            .as_ref()
            .map(CpuGroups::stats)
            .unwrap_or_default()
    }

    /// Stops redis (SIGTERM, waited for): from now on its port refuses connections. With an
    /// append-only file, redis flushes it to disk before it exits.
    pub async fn stop_redis(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.redis.process.take()
            && process.stop(SHUTDOWN_GRACE).await
        {
            bail!(
                "redis did not stop within {SHUTDOWN_GRACE:?} of SIGTERM and was SIGKILLed \
                 (its last second of writes may be lost)"
            );
        }
        Ok(())
    }

    /// Starts redis again on the same port and waits for PING. Without persistence it is empty;
    /// with it ([`StackConfig::redis_aof`]) it first replays its append-only file.
    pub async fn start_redis(&mut self) -> anyhow::Result<()> {
        if let Some(process) = self.redis.process.as_mut()
            && process.is_running()
        {
            return Ok(());
        }
        redis::prepare(&self.redis_persistence)?;
        let (binary, port) = (&self.redis_server, self.redis.addr.port());
        let command = redis::command(binary, port, &self.redis_persistence);
        let command = in_group(&self.cgroups, "redis", command);
        let (log, timeout) = (&self.redis.log_path, self.ready_timeout);
        let process = redis::start_command(command, port, log, timeout).await?;
        self.redis.process = Some(process);
        Ok(())
    }

    /// Stops redis cleanly (SIGTERM, waited for), deletes its data files unless `keep_files`,
    /// and starts it again on the same port, waiting for PING. With `keep_files` and an
    /// append-only file ([`StackConfig::redis_aof`]), everything written before comes back;
    /// without either, redis starts empty, like after losing its disk.
    pub async fn restart_redis(&mut self, keep_files: bool) -> anyhow::Result<()> {
        self.stop_redis().await?;
        if !keep_files {
            redis::forget(&self.redis_persistence)?;
        }
        self.start_redis().await
    }

    /// SIGKILLs replica `index` (0-based: index 0 is `jwt-1` / `session-1`) and reaps it: a crash,
    /// with no chance to finish requests. Killing a replica that is already gone does nothing.
    pub async fn kill_replica(&mut self, mode: Mode, index: usize) -> anyhow::Result<()> {
        let count = self.replicas(mode).len();
        let Some(replica) = self.replicas_mut(mode).get_mut(index) else {
            bail!(
                "there is no {} replica with index {index} ({count} exist)",
                mode.as_str()
            );
        };
        if let Some(mut process) = replica.process.take() {
            process.kill_now();
        }
        Ok(())
    }

    /// Pauses the process called `name` (the names [`Stack::describe`] shows) with SIGSTOP: it
    /// hangs, connections to it are accepted by the kernel and never answered, until
    /// [`Stack::resume`]. Stopping the stack resumes it first, so it can exit cleanly.
    pub fn pause(&mut self, name: &str) -> anyhow::Result<()> {
        self.running_mut(name)?.pause();
        Ok(())
    }

    /// Resumes a process paused by [`Stack::pause`] (SIGCONT).
    pub fn resume(&mut self, name: &str) -> anyhow::Result<()> {
        self.running_mut(name)?.resume();
        Ok(())
    }

    fn running_mut(&mut self, name: &str) -> anyhow::Result<&mut Process> {
        let member = std::iter::once(&mut self.nginx)
            .chain(std::iter::once(&mut self.issuer))
            .chain(self.jwt.iter_mut())
            .chain(self.session.iter_mut())
            .chain(std::iter::once(&mut self.redis))
            .find(|m| m.name == name)
            .with_context(|| format!("the stack has no process called {name:?}"))?;
        member
            .process
            .as_mut()
            .with_context(|| format!("{name} is not running"))
    }

    /// SIGKILLs the issuer and reaps it.
    pub async fn kill_issuer(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.issuer.process.take() {
            process.kill_now();
        }
        Ok(())
    }

    /// An error if a process that should be running has exited (with the end of its log).
    /// Processes stopped on purpose (killed replicas, stopped redis) do not count.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for process in self.processes_newest_first() {
            if let Some(error) = readiness::exited_unexpectedly(process) {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Stops everything: SIGTERM to all processes, newest first (nginx first, redis last), then up
    /// to 5 s for them to exit, then SIGKILL for any still running. Nothing is left running
    /// either way; the error names processes that had to be SIGKILLed (a shutdown bug).
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let killed = process::stop_all(&mut self.processes_newest_first(), SHUTDOWN_GRACE).await;
        if !killed.is_empty() {
            bail!(
                "did not stop within {SHUTDOWN_GRACE:?} of SIGTERM and had to be SIGKILLed: {}",
                killed.join(", ")
            );
        }
        Ok(())
    }

    fn replicas(&self, mode: Mode) -> &[Member] {
        match mode {
            Mode::Jwt => &self.jwt,
            Mode::Session => &self.session,
        }
    }

    fn replicas_mut(&mut self, mode: Mode) -> &mut [Member] {
        match mode {
            Mode::Jwt => &mut self.jwt,
            Mode::Session => &mut self.session,
        }
    }

    /// Every member, in the order a person reads the stack: the front door first.
    fn members(&self) -> impl Iterator<Item = &Member> {
        std::iter::once(&self.nginx)
            .chain(std::iter::once(&self.issuer))
            .chain(&self.jwt)
            .chain(&self.session)
            .chain(std::iter::once(&self.redis))
    }

    /// The running processes in reverse start order: the order to stop them in.
    fn processes_newest_first(&mut self) -> Vec<&mut Process> {
        std::iter::once(&mut self.nginx)
            .chain(self.session.iter_mut().rev())
            .chain(self.jwt.iter_mut().rev())
            .chain(std::iter::once(&mut self.issuer))
            .chain(std::iter::once(&mut self.redis))
            .filter_map(|member| member.process.as_mut())
            .collect()
    }
}

impl Drop for Stack {
    /// Stops whatever still runs, synchronously (`Drop` cannot `.await`), then removes the
    /// cgroups, which are empty now. After [`Stack::shutdown`] only the cgroups are left to do.
    fn drop(&mut self) {
        process::stop_all_blocking(&mut self.processes_newest_first(), DROP_GRACE);
        drop(self.cgroups.take());
    }
}

/// `command`, started inside the cgroup of member `name` when the stack has cgroups.
fn in_group(cgroups: &Option<CpuGroups>, name: &str, command: Command) -> Command {
    match cgroups {
        Some(groups) => groups.wrap(name, command),
        None => command,
    }
}

fn shared<'a>(issuer_url: &'a str, redis_url: &'a str, config: &'a StackConfig) -> Shared<'a> {
    Shared {
        issuer_url,
        redis_url,
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
