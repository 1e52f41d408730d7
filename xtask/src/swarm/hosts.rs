//! Docker hosts as containers: the machines of the multi-host test, made on this one.
//!
//! Each host is a container of `deploy/swarm/test-host.Dockerfile` running its own `dockerd`
//! (Debian's docker.io, storage on fuse-overlayfs), on a private bridge network of its own, so
//! that the hosts have their own addresses and can be powered off (cut off, then `docker kill`)
//! or cut off (`docker network disconnect`) one at a time, as real machines would be. The inner engines
//! form a real swarm over that network: overlay networks and `tasks.NAME` DNS
//! all cross it.
//!
//! Why not `--privileged`: this machine's container runtime refuses it (one capability is
//! outside its bounding set). What an inner dockerd needs instead: every other capability, no
//! seccomp or AppArmor profile, the real /proc and /sys (systempaths), /dev/fuse for its
//! storage driver and the host's cgroup tree to put its containers in.
//!
//! Everything made here carries the label [`LABEL`], which is how teardown finds it all, also
//! what an earlier, interrupted run left.

use crate::compose::docker::output_of;
use anyhow::{Context, bail, ensure};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// On every container and network the test makes.
pub const LABEL: &str = "authscale.swarm-test=1";
/// The hosts' image, built from deploy/swarm/test-host.Dockerfile.
pub const HOST_IMAGE: &str = "authscale/test-docker-host:latest";
const NETWORK: &str = "authscale-swarm-test";
const HOST_PREFIX: &str = "authscale-swarm-host";

/// The hosts, by index: `0` is the manager.
pub struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    /// `count` hosts on a new private network, each with its engine answering.
    pub fn start(count: usize) -> anyhow::Result<Hosts> {
        create_network()?;
        let names: Vec<String> = (1..=count).map(|i| format!("{HOST_PREFIX}{i}")).collect();
        for name in &names {
            docker(&[
                "run",
                "-d",
                "--name",
                name,
                "--hostname",
                name,
                "--label",
                LABEL,
                "--network",
                NETWORK,
                "--cap-add",
                "ALL",
                "--cap-drop",
                "SYS_RESOURCE",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt",
                "apparmor=unconfined",
                "--security-opt",
                "systempaths=unconfined",
                "--device",
                "/dev/fuse",
                "-v",
                "/sys/fs/cgroup:/sys/fs/cgroup:rw",
                HOST_IMAGE,
            ])?;
        }
        let hosts = Hosts { names };
        for i in 0..count {
            hosts.wait_for_engine(i, Duration::from_secs(60))?;
        }
        Ok(hosts)
    }

    pub fn name(&self, host: usize) -> &str {
        &self.names[host]
    }

    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// The host's address on the private network.
    pub fn ip(&self, host: usize) -> anyhow::Result<String> {
        let format = format!("{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}");
        let ip = docker(&["inspect", "--format", &format, self.name(host)])?;
        ensure!(!ip.trim().is_empty(), "{} has no address", self.name(host));
        Ok(ip.trim().to_owned())
    }

    /// `docker ARGS` run by the host's own engine; its stdout.
    pub fn docker(&self, host: usize, args: &[&str]) -> anyhow::Result<String> {
        let mut command = Command::new("docker");
        command.args(["exec", self.name(host), "docker"]).args(args);
        output_of(
            command,
            &format!("docker {} (on {})", args.join(" "), self.name(host)),
        )
    }

    /// A shell command run on the host (for pipes and environment variables).
    pub fn sh(&self, host: usize, script: &str) -> anyhow::Result<String> {
        let mut command = Command::new("docker");
        command.args(["exec", self.name(host), "sh", "-c", script]);
        output_of(command, &format!("{script} (on {})", self.name(host)))
    }

    fn wait_for_engine(&self, host: usize, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            match self.docker(host, &["info", "--format", "{{.ServerVersion}}"]) {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() > limit => {
                    return Err(e.context(format!(
                        "the engine of {} did not answer within {limit:?}; {}",
                        self.name(host),
                        self.state_and_log(host)
                    )));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// A swarm: host 0 its only manager, the others workers. One manager is enough for what is
    /// tested (workers lost and cut off); losing it would stop the control plane, not the
    /// services, which is a test of Swarm's Raft, not of authscale.
    pub fn form_swarm(&self) -> anyhow::Result<()> {
        let manager_ip = self.ip(0)?;
        self.docker(0, &["swarm", "init", "--advertise-addr", &manager_ip])?;
        let token = self.docker(0, &["swarm", "join-token", "-q", "worker"])?;
        for host in 1..self.count() {
            self.docker(
                host,
                &[
                    "swarm",
                    "join",
                    "--token",
                    token.trim(),
                    &format!("{manager_ip}:2377"),
                ],
            )?;
        }
        Ok(())
    }

    /// The swarm's id for the node of host `host` (its host name is the container's name).
    pub fn node_id(&self, host: usize) -> anyhow::Result<String> {
        let id = self.docker(host, &["info", "--format", "{{.Swarm.NodeID}}"])?;
        Ok(id.trim().to_owned())
    }

    /// `docker save` here, `docker load` on every host, all hosts at once.
    pub fn load_images(&self, images: &[&str]) -> anyhow::Result<()> {
        let saved = Command::new("docker")
            .arg("save")
            .args(images)
            .stdin(Stdio::null())
            .output()
            .context("cannot run docker save")?;
        if !saved.status.success() {
            bail!(
                "docker save failed: {}",
                String::from_utf8_lossy(&saved.stderr)
            );
        }
        std::thread::scope(|scope| {
            let loads: Vec<_> = self
                .names
                .iter()
                .map(|name| scope.spawn(|| load_into(name, &saved.stdout)))
                .collect();
            loads
                .into_iter()
                .try_for_each(|load| load.join().unwrap_or_else(|_| bail!("a load panicked")))
        })
    }

    /// The host dies at once, with everything running on it, as a machine that loses its power
    /// does: its network goes first, then its processes. In that order nothing on it can tell
    /// its peers (no FIN or RST from the sockets of a dying process), so the requests in flight
    /// there meet silence, as they would. `docker kill` alone lets those resets out now and then,
    /// and a test of it would pass or fail by that race. Returns the host's address, which
    /// [`Hosts::restart`] gives it back.
    pub fn power_off(&self, host: usize) -> anyhow::Result<String> {
        let ip = self.ip(host)?;
        self.cut_off(host)?;
        docker(&["kill", self.name(host)])?;
        Ok(ip)
    }

    /// A host powered off starts again, at its address `ip`: its engine comes back and rejoins
    /// the swarm by itself.
    ///
    /// Now and then the engine of a host started again exits at once (the container is then
    /// "not running"). A real host's init system starts a failed engine again, so this does too,
    /// once, saying why the first start failed: what is tested is the swarm taking the host back,
    /// not Docker-in-Docker surviving a `docker kill`.
    pub fn restart(&self, host: usize, ip: &str) -> anyhow::Result<()> {
        self.reconnect(host, ip)?;
        docker(&["start", self.name(host)])?;
        let first = self.wait_for_engine(host, Duration::from_secs(90));
        match first {
            Err(e) if !self.running(host) => {
                println!(
                    "swarm test: the engine of {} exited on its restart; starting it once more. {e:#}",
                    self.name(host)
                );
                docker(&["start", self.name(host)])?;
                self.wait_for_engine(host, Duration::from_secs(90))
            }
            other => other,
        }
    }

    fn running(&self, host: usize) -> bool {
        docker(&["inspect", "--format", "{{.State.Running}}", self.name(host)])
            .is_ok_and(|out| out.trim() == "true")
    }

    /// The host container's state and the end of its log (dockerd writes to stderr, hence the
    /// shell), for a failure message.
    fn state_and_log(&self, host: usize) -> String {
        let name = self.name(host);
        let state = docker(&[
            "inspect",
            "--format",
            "running={{.State.Running}} exit code={{.State.ExitCode}} error={{.State.Error}}",
            name,
        ])
        .unwrap_or_default();
        let mut logs = Command::new("sh");
        logs.args(["-c", &format!("docker logs --tail 30 {name} 2>&1")]);
        let logs = output_of(logs, "docker logs").unwrap_or_default();
        format!("its container: {}; its log:\n{logs}", state.trim())
    }

    /// The host loses its network (it keeps running).
    pub fn cut_off(&self, host: usize) -> anyhow::Result<()> {
        docker(&["network", "disconnect", NETWORK, self.name(host)]).map(drop)
    }

    /// ...and gets it back, at the address it had (Docker keeps it while it is free).
    pub fn reconnect(&self, host: usize, ip: &str) -> anyhow::Result<()> {
        docker(&["network", "connect", "--ip", ip, NETWORK, self.name(host)]).map(drop)
    }
}

/// The private network, on a subnet of its own choosing (a host cut off gets its address back
/// only on a network whose subnet was given): the first of a few that is free here.
fn create_network() -> anyhow::Result<()> {
    let mut last = None;
    for third in 213..=223 {
        let subnet = format!("10.213.{third}.0/24");
        match docker(&[
            "network", "create", "--label", LABEL, "--subnet", &subnet, NETWORK,
        ]) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || anyhow::anyhow!("no subnet"),
        |e| e.context("no free subnet for the hosts"),
    ))
}

fn load_into(host: &str, images: &[u8]) -> anyhow::Result<()> {
    let mut child = Command::new("docker")
        .args(["exec", "-i", host, "docker", "load", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run docker exec")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(images)
        .with_context(|| format!("sending the images to {host}"))?;
    let output = child.wait_with_output()?;
    ensure!(
        output.status.success(),
        "docker load on {host} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// `docker ARGS` on this machine's engine.
fn docker(args: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("docker");
    command.args(args);
    output_of(command, &format!("docker {}", args.join(" ")))
}

/// Removes every host (with its engine's anonymous volume: its images, containers and the
/// stack's volumes) and the network; also what an interrupted run left.
pub fn remove_all() -> anyhow::Result<()> {
    let filter = format!("label={LABEL}");
    let containers = docker(&["ps", "-aq", "--filter", &filter])?;
    let ids: Vec<&str> = containers.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(&ids);
        docker(&args)?;
    }
    for network in docker(&["network", "ls", "-q", "--filter", &filter])?.split_whitespace() {
        docker(&["network", "rm", network])?;
    }
    Ok(())
}

/// What is left of the test on this machine's engine: containers, networks, volumes.
pub fn leftovers() -> anyhow::Result<Vec<String>> {
    let filter = format!("label={LABEL}");
    let mut left = Vec::new();
    for (what, list) in [
        ("container", "ps"),
        ("network", "network"),
        ("volume", "volume"),
    ] {
        let args: Vec<&str> = match list {
            "ps" => vec!["ps", "-aq", "--filter", &filter],
            other => vec![other, "ls", "-q", "--filter", &filter],
        };
        for id in docker(&args)?.split_whitespace() {
            left.push(format!("{what} {id}"));
        }
    }
    Ok(left)
}

/// The anonymous volumes holding the hosts' engines' data (`VOLUME /var/lib/docker`): they carry
/// no label, so teardown checks these names are gone.
pub fn host_volumes() -> anyhow::Result<Vec<String>> {
    let filter = format!("label={LABEL}");
    let mut volumes = Vec::new();
    for id in docker(&["ps", "-aq", "--filter", &filter])?.split_whitespace() {
        let names = docker(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
            id,
        ])?;
        volumes.extend(names.split_whitespace().map(str::to_owned));
    }
    Ok(volumes)
}

/// Those of `volumes` that still exist.
pub fn existing_volumes(volumes: &[String]) -> Vec<String> {
    volumes
        .iter()
        .filter(|v| docker(&["volume", "inspect", v.as_str()]).is_ok())
        .cloned()
        .collect()
}
