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
//! 1. **redis**: the issuer and the session replicas need it to be ready. With several shards
//!    ([`StackConfig::redis_shards`]), every node is started, then they are joined into one
//!    Redis Cluster, ready when every node reports `cluster_state:ok`.
//! 2. **issuer**: the replicas fetch its public keys (JWKS) when they start.
//! 3. **replicas**, token (jwt) ones first, then session ones. All of them are started at once
//!    and then awaited one by one, so their start-up times overlap.
//! 4. **nginx** last: when it answers, everything behind it is ready, so a client (a test, a
//!    load generator, a person with curl) never sees a half-started system.
//!
//! All ports are chosen up front ([`crate::ports`]), because the services must be told each
//! other's addresses: every token's `iss` is nginx's URL, although nginx starts last.
//!
//! With [`StackConfig::store_delay`], a [`DelayProxy`] (a thread of this process, not a child)
//! sits between the services and redis and adds that delay each way: the store is then a network
//! hop away, as in production. It starts right after redis and stops with the stack.
//!
//! Everything lives in the work dir: `logs/<name>.log` for every process, `nginx/` (its config,
//! pid file and temp dirs), `issuer-key.pem`, and `redis/` (its append-only file) when redis
//! persists its data ([`StackConfig::redis_aof`]). A [`Stack`] stops every process it started when
//! it is shut down, and also when it is dropped: a test that panics leaves nothing running.
//!
//! This file is the running stack: its addresses, the faults a test can inject (stopping redis,
//! killing or pausing a process) and shutting down. What to start ([`StackConfig`]) and starting
//! it ([`Stack::start`]) are in `stack/launch.rs`.

use crate::cgroup::{CpuGroups, CpuStat};
use crate::delay_proxy::DelayProxy;
use crate::process::{self, DROP_GRACE, Process};
use crate::readiness::{self, http_ok, probe_client, wait_until_ready};
use crate::redis::{self, Persistence};
use crate::services::Mode;
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long [`Stack::shutdown`] and [`Stack::stop_redis`] give processes to exit after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

mod launch;

pub use launch::StackConfig;

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
    /// One redis-server per shard.
    redis: Vec<Member>,
    issuer: Member,
    jwt: Vec<Member>,
    session: Vec<Member>,
    nginx: Member,
    /// One cgroup per process when CPU limits or accounting were asked for and the machine
    /// allows it. Dropped (removed) after the processes in it, see `Drop for Stack`.
    cgroups: Option<CpuGroups>,
    /// Between the services and redis when [`StackConfig::store_delay`] asks for it.
    store_proxy: Option<DelayProxy>,
}

impl Stack {
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

    /// `redis://127.0.0.1:PORT`: the one redis-server, or the first node of the cluster.
    pub fn redis_url(&self) -> String {
        self.redis[0].url()
    }

    /// Every redis node's URL, one per shard.
    pub fn redis_urls(&self) -> Vec<String> {
        self.redis.iter().map(Member::url).collect()
    }

    /// Whether the store is a Redis Cluster ([`StackConfig::redis_shards`] above 1).
    pub fn redis_is_cluster(&self) -> bool {
        self.redis.len() > 1
    }

    /// The variable that tells the services where the store is, and its value: `REDIS_URL`
    /// ([`Stack::store_url`]: through the delay proxy when there is one), or
    /// for a cluster `REDIS_CLUSTER_NODES` with every node (the client needs only one to find
    /// the others, but any one may be down when a service starts).
    pub fn redis_env(&self) -> (&'static str, String) {
        match self.redis_is_cluster() {
            false => ("REDIS_URL", self.store_url()),
            true => ("REDIS_CLUSTER_NODES", self.redis_urls().join(",")),
        }
    }

    /// Where the issuer and the replicas reach redis: the delay proxy's address when the stack
    /// has one ([`StackConfig::store_delay`]), otherwise [`Stack::redis_url`].
    pub fn store_url(&self) -> String {
        match &self.store_proxy {
            Some(proxy) => format!("redis://{}", proxy.addr()),
            None => self.redis_url(),
        }
    }

    /// The delay the proxy adds in each direction between the services and redis; `None` when
    /// they reach redis directly.
    pub fn store_delay(&self) -> Option<Duration> {
        self.store_proxy.as_ref().map(DelayProxy::one_way)
    }

    /// Changes the delay the proxy adds in each direction, from the next bytes on (open
    /// connections included). An error when the stack was started without a proxy.
    pub fn set_store_delay(&self, one_way: Duration) -> anyhow::Result<()> {
        let proxy = self.store_proxy.as_ref().context(
            "this stack reaches redis directly: start it with a store delay to change one",
        )?;
        proxy.set_one_way(one_way);
        Ok(())
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
        if let Some(proxy) = &self.store_proxy {
            let (addr, one_way) = (proxy.addr(), proxy.one_way());
            let _ = writeln!(
                out,
                "  store delay: the services reach redis through {addr} (in this process), \
                 {one_way:?} added each way, a round trip {:?} longer",
                one_way * 2
            );
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

    /// Stops redis (every node, SIGTERM, waited for): from now on its ports refuse
    /// connections. With an append-only file, redis flushes it to disk before it exits.
    pub async fn stop_redis(&mut self) -> anyhow::Result<()> {
        for node in &mut self.redis {
            if let Some(mut process) = node.process.take()
                && process.stop(SHUTDOWN_GRACE).await
            {
                bail!(
                    "{} did not stop within {SHUTDOWN_GRACE:?} of SIGTERM and was SIGKILLed \
                     (its last second of writes may be lost)",
                    node.name
                );
            }
        }
        Ok(())
    }

    /// Starts redis (again) on the same port(s) and waits for PING. Without persistence it is
    /// empty; with it ([`StackConfig::redis_aof`]) it first replays its append-only file. A
    /// cluster's nodes are joined on their first start and find each other again from their
    /// `nodes.conf` on a later one; either way this waits for `cluster_state:ok`.
    pub async fn start_redis(&mut self) -> anyhow::Result<()> {
        let mut first_start = false;
        let cluster = self.redis_is_cluster();
        for node in &mut self.redis {
            if let Some(process) = node.process.as_mut()
                && process.is_running()
            {
                continue;
            }
            let port = node.addr.port();
            let command = if cluster {
                let dir = self.work_dir.join(&node.name);
                first_start |= !dir.join("nodes.conf").exists();
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                redis::cluster_command(&self.redis_server, port, &Persistence::None, &dir)
            } else {
                redis::prepare(&self.redis_persistence)?;
                redis::command(&self.redis_server, port, &self.redis_persistence)
            };
            let command = in_group(&self.cgroups, &node.name, command);
            let (log, timeout) = (&node.log_path, self.ready_timeout);
            node.process = Some(redis::start_command(command, port, log, timeout).await?);
        }
        if self.redis_is_cluster() {
            let addrs: Vec<SocketAddr> = self.redis.iter().map(|node| node.addr).collect();
            match first_start {
                true => redis::create_cluster(&addrs, self.ready_timeout).await?,
                false => redis::wait_until_cluster_ok(&addrs, self.ready_timeout).await?,
            }
        }
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
            .chain(self.redis.iter_mut())
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
            .chain(&self.redis)
    }

    /// The running processes in reverse start order: the order to stop them in.
    fn processes_newest_first(&mut self) -> Vec<&mut Process> {
        std::iter::once(&mut self.nginx)
            .chain(self.session.iter_mut().rev())
            .chain(self.jwt.iter_mut().rev())
            .chain(std::iter::once(&mut self.issuer))
            .chain(self.redis.iter_mut().rev())
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
