//! CPU quotas per process, with the cgroup v1 `cpu` controller.
//!
//! A load test that compares "1 replica" with "4 replicas" on a 2-core machine means nothing if
//! every replica may use both cores: four of them would just share the same two cores as one did.
//! So each replica gets a fixed slice of CPU, as a container or a VM would, and adding replicas
//! adds CPU. Redis can get a fixed slice too, so that the one store every session replica shares
//! is the bottleneck it becomes at scale.
//!
//! The kernel's tool for that is the CFS bandwidth controller: a process in a cgroup with
//! `cpu.cfs_quota_us = Q` and `cpu.cfs_period_us = P` may run at most Q µs of CPU time in every
//! P µs of wall time, i.e. Q/P CPUs. The period is 10 ms here rather than the default 100 ms: a
//! replica that used its quota waits at most until the end of the period, and 100 ms pauses make
//! latency spiky and throughput scale worse. (The kernel's smallest quota is 1 ms, so shares
//! below 0.1 CPU get a longer period instead: 0.05 CPU is 1 ms in 20 ms.)
//!
//! Layout: `/sys/fs/cgroup/cpu/authscale/<stack tag>/<member name>`, one directory per process,
//! and the same under `/sys/fs/cgroup/cpuacct`, whose `cpuacct.usage` says how much CPU each
//! process used (the load test divides it by the requests served). The tag (this process's pid and
//! a counter) keeps two stacks of one program apart.
//!
//! **Starting inside the group.** Writing a child's pid into `cgroup.procs` after it started would
//! let it run unlimited for a moment, and its threads started meanwhile would stay outside. So the
//! child is started through a one-line shell that moves *itself* into the group and then `exec`s
//! the real program, which therefore starts, with all its threads, already inside:
//!
//! ```text
//! sh -c 'echo $$ > "$1" && shift && echo $$ > "$1" && shift && exec "$@"' sh \
//!     /sys/fs/cgroup/cpu/authscale/T/jwt-1/cgroup.procs \
//!     /sys/fs/cgroup/cpuacct/authscale/T/jwt-1/cgroup.procs  /path/to/api
//! ```
//!
//! `exec` keeps the pid, so signals to the child still reach the program itself.
//!
//! **Cleaning up.** The directories are removed (`rmdir`) when the [`CpuGroups`] is dropped, after
//! the stack has stopped its processes: a group can only be removed once it is empty.
//!
//! Writing there needs root and a writable cgroup v1 `cpu` hierarchy. Without one,
//! [`CpuGroups::create`] fails with a message that says so, and the stack starts without limits
//! (saying so too) rather than not at all.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the cgroup v1 `cpu` controller is mounted on Debian and most distributions.
pub const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
/// Where the cgroup v1 `cpuacct` controller (CPU time used) is mounted.
pub const CPUACCT_ROOT: &str = "/sys/fs/cgroup/cpuacct";
/// The directory under each root that holds all of authscale's groups.
pub const PARENT: &str = "authscale";

/// The period of every quota: 10 ms (see the module docs).
pub const PERIOD_US: u64 = 10_000;
/// The kernel refuses quotas below 1 ms.
const MIN_QUOTA_US: u64 = 1_000;
/// And periods above 1 s.
const MAX_PERIOD_US: u64 = 1_000_000;

/// A CFS bandwidth limit: at most `quota_us` of CPU time in every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    /// The quota for `cpus` CPUs (0.25 = a quarter of one core; 2.0 = two cores).
    pub fn for_cpus(cpus: f64) -> anyhow::Result<CpuQuota> {
        if !(0.001..=1024.0).contains(&cpus) {
            bail!("a CPU limit must be between 0.001 and 1024 CPUs, not {cpus}");
        }
        let quota_us = (cpus * PERIOD_US as f64).round() as u64;
        if quota_us >= MIN_QUOTA_US {
            return Ok(CpuQuota {
                quota_us,
                period_us: PERIOD_US,
            });
        }
        // Below 0.1 CPU: keep the smallest quota and stretch the period instead.
        let period_us = (MIN_QUOTA_US as f64 / cpus).round() as u64;
        Ok(CpuQuota {
            quota_us: MIN_QUOTA_US,
            period_us: period_us.min(MAX_PERIOD_US),
        })
    }

    /// The share this quota grants, in CPUs.
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

/// What the cgroup files say about one process: its limit, the CPU time it used, and how often
/// the limit held it back.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuStat {
    pub name: String,
    /// `None`: no quota (accounted only).
    pub limit: Option<CpuQuota>,
    /// CPU time used since the group was made (`cpuacct.usage`), if accounting is available.
    pub usage: Option<Duration>,
    /// Periods in which the group ran at all, and those in which it hit its quota.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Total time the group's threads waited because the quota was used up.
    pub throttled: Duration,
}

/// The cgroups of one stack: one per member, under a tag unique to that stack.
#[derive(Debug)]
pub struct CpuGroups {
    /// `<CPU_ROOT>/authscale/<tag>`.
    cpu_dir: PathBuf,
    /// `<CPUACCT_ROOT>/authscale/<tag>`, when the cpuacct hierarchy is writable too.
    acct_dir: Option<PathBuf>,
    /// The members with a group, and their quota.
    members: Vec<(String, Option<CpuQuota>)>,
}

impl CpuGroups {
    /// Creates this stack's parent group. Fails, saying why, when the cgroup v1 cpu hierarchy is
    /// missing or not writable (not root, cgroup v2 only, a container without cgroup access).
    pub fn create() -> anyhow::Result<CpuGroups> {
        Self::create_in(Path::new(CPU_ROOT), Path::new(CPUACCT_ROOT))
    }

    /// [`CpuGroups::create`] under other roots (tests).
    pub fn create_in(cpu_root: &Path, acct_root: &Path) -> anyhow::Result<CpuGroups> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if !cpu_root.join("cpu.cfs_quota_us").is_file() {
            bail!(
                "{} is not a cgroup v1 cpu hierarchy (no cpu.cfs_quota_us there)",
                cpu_root.display()
            );
        }
        let cpu_dir = cpu_root.join(PARENT).join(&tag);
        std::fs::create_dir_all(&cpu_dir).with_context(|| {
            format!(
                "cannot create the cgroup {} (CPU limits need root and a writable cgroup v1 \
                 cpu hierarchy)",
                cpu_dir.display()
            )
        })?;
        // Accounting is a bonus: without it, the limits still hold.
        let acct_dir = acct_root
            .join("cpuacct.usage")
            .is_file()
            .then(|| acct_root.join(PARENT).join(&tag))
            .filter(|dir| std::fs::create_dir_all(dir).is_ok());
        Ok(CpuGroups {
            cpu_dir,
            acct_dir,
            members: Vec::new(),
        })
    }

    /// Makes the group of member `name`, limited to `quota` (or only accounted, with `None`).
    /// Adding the same name again replaces its quota.
    pub fn add(&mut self, name: &str, quota: Option<CpuQuota>) -> anyhow::Result<()> {
        let dir = self.cpu_dir.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the cgroup {}", dir.display()))?;
        if let Some(acct) = &self.acct_dir {
            let _ = std::fs::create_dir_all(acct.join(name));
        }
        // The period, then the quota; a quota of -1 means "no limit" (accounting only).
        let (period, quota_value) = match quota {
            Some(q) => (q.period_us.to_string(), q.quota_us.to_string()),
            None => (PERIOD_US.to_string(), "-1".to_owned()),
        };
        write(&dir.join("cpu.cfs_period_us"), &period)?;
        write(&dir.join("cpu.cfs_quota_us"), &quota_value)?;
        self.members.retain(|(n, _)| n != name);
        self.members.push((name.to_owned(), quota));
        Ok(())
    }

    /// The quota of member `name`, if it has a group with one.
    pub fn quota(&self, name: &str) -> Option<CpuQuota> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, q)| *q)
    }

    /// `command`, rewritten to start inside member `name`'s group (see the module docs). A name
    /// without a group gets `command` back unchanged.
    pub fn wrap(&self, name: &str, command: Command) -> Command {
        if !self.members.iter().any(|(n, _)| n == name) {
            return command;
        }
        let mut procs = vec![self.cpu_dir.join(name).join("cgroup.procs")];
        if let Some(acct) = &self.acct_dir {
            procs.push(acct.join(name).join("cgroup.procs"));
        }
        wrap_command(command, &procs)
    }

    /// CPU used and throttling of every member, in the order they were added.
    pub fn stats(&self) -> Vec<CpuStat> {
        self.members
            .iter()
            .map(|(name, limit)| {
                let stat = std::fs::read_to_string(self.cpu_dir.join(name).join("cpu.stat"))
                    .unwrap_or_default();
                let field = |key: &str| {
                    stat.lines()
                        .filter_map(|l| l.split_once(' '))
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                let usage = self.acct_dir.as_ref().and_then(|acct| {
                    let text = std::fs::read_to_string(acct.join(name).join("cpuacct.usage"));
                    text.ok()?
                        .trim()
                        .parse::<u64>()
                        .ok()
                        .map(Duration::from_nanos)
                });
                CpuStat {
                    name: name.clone(),
                    limit: *limit,
                    usage,
                    nr_periods: field("nr_periods"),
                    nr_throttled: field("nr_throttled"),
                    throttled: Duration::from_nanos(field("throttled_time")),
                }
            })
            .collect()
    }

    /// Removes every group of this stack. Call it once their processes have exited; a group
    /// whose last process is still being torn down is retried for up to 2 s. Returns the groups
    /// that could not be removed.
    pub fn remove(&mut self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for base in std::iter::once(&self.cpu_dir).chain(self.acct_dir.as_ref()) {
            dirs.extend(self.members.iter().map(|(name, _)| base.join(name)));
            dirs.push(base.clone());
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut left: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            loop {
                match std::fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Err(_) => {
                        left.push(dir);
                        break;
                    }
                }
            }
        }
        // The shared parent goes too once no other stack uses it (fails harmlessly otherwise).
        for base in std::iter::once(&self.cpu_dir).chain(self.acct_dir.as_ref()) {
            if let Some(parent) = base.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        self.members.clear();
        left
    }
}

impl Drop for CpuGroups {
    fn drop(&mut self) {
        for dir in self.remove() {
            eprintln!(
                "warning: could not remove the cgroup {} (a process is still in it?)",
                dir.display()
            );
        }
    }
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write {value} to {}", path.display()))
}

/// `sh -c '<move into each file in procs>; exec "$@"' sh PROGRAM ARGS...`, with `command`'s
/// environment and working directory.
pub fn wrap_command(command: Command, procs: &[PathBuf]) -> Command {
    let moves: String = procs
        .iter()
        .map(|_| r#"echo $$ > "$1" && shift && "#)
        .collect();
    let mut wrapped = Command::new("sh");
    wrapped
        .arg("-c")
        .arg(format!(r#"{moves}exec "$@""#))
        .arg("sh")
        .args(procs)
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_use_a_10_ms_period_and_stretch_it_below_a_tenth_of_a_cpu() {
        let q = CpuQuota::for_cpus(0.25).unwrap();
        assert_eq!((q.quota_us, q.period_us), (2_500, 10_000));
        let q = CpuQuota::for_cpus(0.1).unwrap();
        assert_eq!((q.quota_us, q.period_us), (1_000, 10_000));
        let q = CpuQuota::for_cpus(0.05).unwrap();
        assert_eq!((q.quota_us, q.period_us), (1_000, 20_000));
        assert!((q.cpus() - 0.05).abs() < 1e-9);
        let q = CpuQuota::for_cpus(2.0).unwrap();
        assert_eq!((q.quota_us, q.period_us), (20_000, 10_000));
        assert!(CpuQuota::for_cpus(0.0).is_err());
        assert!(CpuQuota::for_cpus(f64::NAN).is_err());
    }

    #[test]
    fn the_wrapper_moves_itself_then_execs_the_program_with_its_env_and_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.procs"), dir.path().join("b.procs"));
        let out = dir.path().join("out");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"echo "$$ $GREETING $(pwd)" > "$0""#)
            .arg(&out)
            .env("GREETING", "hello")
            .current_dir(dir.path());
        let status = wrap_command(command, &[a.clone(), b.clone()])
            .status()
            .unwrap();
        assert!(status.success());
        let written = std::fs::read_to_string(&out).unwrap();
        let pid_in_a = std::fs::read_to_string(&a).unwrap();
        assert_eq!(pid_in_a, std::fs::read_to_string(&b).unwrap());
        // The program ran as the very process that moved itself (exec keeps the pid).
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            written.trim(),
            format!("{} hello {}", pid_in_a.trim(), canonical.display())
        );
    }

    /// On a machine with a writable cgroup v1 cpu hierarchy (root on Debian, as in CI): the
    /// program starts inside its group, and the group is gone after `remove`. Elsewhere the test
    /// has nothing to check and says so.
    #[test]
    fn a_real_group_holds_the_program_from_its_start_and_is_removed() {
        let mut groups = match CpuGroups::create() {
            Ok(groups) => groups,
            Err(e) => {
                eprintln!("skipped: no writable cgroup v1 cpu hierarchy here ({e:#})");
                return;
            }
        };
        groups
            .add("sleeper", Some(CpuQuota::for_cpus(0.1).unwrap()))
            .unwrap();
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut child = groups.wrap("sleeper", command).spawn().unwrap();
        let cgroup_of = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/cgroup"));
        let expected = format!(
            "/{PARENT}/{}/sleeper",
            groups.cpu_dir.file_name().unwrap().to_str().unwrap()
        );
        let mut found = String::new();
        for _ in 0..100 {
            found = cgroup_of(child.id()).unwrap();
            let is_sleep = std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
                .is_ok_and(|comm| comm.trim() == "sleep");
            if is_sleep {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let cpu_line = found
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == "cpu"))
            })
            .unwrap();
        assert!(cpu_line.ends_with(&expected), "{found}");
        let stats = groups.stats();
        assert_eq!(stats[0].limit.unwrap().quota_us, 1000);
        child.kill().unwrap();
        child.wait().unwrap();
        let dir = groups.cpu_dir.clone();
        assert!(groups.remove().is_empty());
        assert!(!dir.exists());
    }

    #[test]
    fn groups_in_a_fake_hierarchy_are_made_limited_wrapped_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (cpu, acct) = (dir.path().join("cpu"), dir.path().join("cpuacct"));
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(&acct).unwrap();
        std::fs::write(cpu.join("cpu.cfs_quota_us"), "-1").unwrap();
        std::fs::write(acct.join("cpuacct.usage"), "0").unwrap();

        let mut groups = CpuGroups::create_in(&cpu, &acct).unwrap();
        groups
            .add("jwt-1", Some(CpuQuota::for_cpus(0.1).unwrap()))
            .unwrap();
        groups.add("nginx", None).unwrap();
        let jwt_dir = groups.cpu_dir.join("jwt-1");
        assert_eq!(
            std::fs::read_to_string(jwt_dir.join("cpu.cfs_quota_us")).unwrap(),
            "1000"
        );
        assert_eq!(
            std::fs::read_to_string(jwt_dir.join("cpu.cfs_period_us")).unwrap(),
            "10000"
        );
        assert_eq!(
            std::fs::read_to_string(groups.cpu_dir.join("nginx/cpu.cfs_quota_us")).unwrap(),
            "-1"
        );
        assert_eq!(groups.quota("jwt-1").unwrap().quota_us, 1000);
        assert_eq!(groups.quota("nginx"), None);

        let wrapped = groups.wrap("jwt-1", Command::new("true"));
        assert_eq!(wrapped.get_program(), "sh");
        let unknown = groups.wrap("redis", Command::new("true"));
        assert_eq!(unknown.get_program(), "true");

        let stats = groups.stats();
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].name, "jwt-1");

        // A real cgroup directory empties itself; in this fake one, the files must go first.
        for name in ["jwt-1", "nginx"] {
            for file in ["cpu.cfs_quota_us", "cpu.cfs_period_us"] {
                std::fs::remove_file(groups.cpu_dir.join(name).join(file)).unwrap();
            }
        }
        assert!(groups.remove().is_empty());
        assert!(!cpu.join(PARENT).exists());
        assert!(!acct.join(PARENT).exists());
    }
}
