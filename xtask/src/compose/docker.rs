//! Running docker and compose for the compose test: finding the compose command, the project's
//! containers, their addresses and logs, and a command's output as a `Result`.
//!
//! Everything here shells out to the `docker` CLI rather than talking to the engine's API: the
//! CLI is what a user runs, it needs no crate, and its errors are the ones a user would see.

use super::PROJECT;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How to call compose here: `docker compose` (v2) if the plugin exists, else `docker-compose`.
#[derive(Debug, Clone)]
pub struct Compose {
    program: &'static str,
    args: &'static [&'static str],
}

impl Compose {
    /// The compose command, once `docker info` shows that an engine answers; otherwise why not.
    pub fn find() -> Result<Compose, String> {
        let info = Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdin(Stdio::null())
            .output();
        match info {
            Err(e) => return Err(format!("docker is not installed ({e})")),
            Ok(output) if !output.status.success() => {
                let stderr = String::from_utf8_lossy(&output.stderr);
                let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                return Err(format!("no Docker engine answers (`docker info`: {first})"));
            }
            Ok(_) => {}
        }
        let answers = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .arg("version")
                .stdin(Stdio::null())
                .output()
                .is_ok_and(|output| output.status.success())
        };
        if answers("docker", &["compose"]) {
            Ok(Compose {
                program: "docker",
                args: &["compose"],
            })
        } else if answers("docker-compose", &[]) {
            Ok(Compose {
                program: "docker-compose",
                args: &[],
            })
        } else {
            Err(
                "a Docker engine answers, but neither `docker compose` nor `docker-compose` \
                 is installed (apt-get install docker-compose)"
                    .to_owned(),
            )
        }
    }

    pub fn name(&self) -> String {
        [self.program]
            .iter()
            .chain(self.args)
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The compose project on this machine: which compose, the workspace it runs in, nginx's and
/// Prometheus's ports. Tearing it down on every path is [`super::cleanup`]'s job.
#[derive(Debug, Clone)]
pub struct Project {
    pub compose: Compose,
    pub root: PathBuf,
    pub port: u16,
    pub prometheus_port: u16,
}

impl Project {
    /// `<compose> -p authscale-e2e -f docker-compose.yml -f deploy/docker-compose.offline.yml
    /// --profile observe`: the cluster and Prometheus beside it.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.compose.program);
        command
            .current_dir(&self.root)
            .args(self.compose.args)
            .args(["-p", PROJECT, "-f", "docker-compose.yml"])
            .args(["-f", "deploy/docker-compose.offline.yml"])
            .args(["--profile", "observe"])
            .env("AUTHSCALE_HTTP_PORT", self.port.to_string())
            .env("AUTHSCALE_HTTP_ADDR", "127.0.0.1")
            .env(
                "AUTHSCALE_PROMETHEUS_PORT",
                self.prometheus_port.to_string(),
            )
            .env("AUTHSCALE_PROMETHEUS_ADDR", "127.0.0.1")
            .stdin(Stdio::null());
        command
    }

    /// Runs a compose subcommand; fails with its output when it fails.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut command = self.command();
        command.args(args);
        output_of(
            command,
            &format!("{} {}", self.compose.name(), args.join(" ")),
        )
    }

    /// Full ids of the project's containers of `service`: the running ones, or all with `all`.
    pub fn containers(&self, service: &str, all: bool) -> anyhow::Result<Vec<String>> {
        let mut command = Command::new("docker");
        command.args(["ps", "-q", "--no-trunc"]);
        if all {
            command.arg("-a");
        }
        command.args([
            "--filter",
            &project_label(),
            "--filter",
            &format!("label=com.docker.compose.service={service}"),
        ]);
        let text = output_of(command, "docker ps")?;
        Ok(text.split_whitespace().map(str::to_owned).collect())
    }

    /// The first running container of `service`.
    pub fn one(&self, service: &str) -> anyhow::Result<String> {
        self.containers(service, false)?
            .into_iter()
            .next()
            .with_context(|| format!("no {service} container runs"))
    }

    /// The config nginx runs with now, as the entrypoint rendered it.
    pub fn nginx_config(&self) -> anyhow::Result<String> {
        let id = self.one("nginx")?;
        let mut command = Command::new("docker");
        command.args(["exec", &id, "cat", "/var/lib/authscale-nginx/nginx.conf"]);
        output_of(command, "docker exec nginx cat nginx.conf")
    }

    /// How many times the nginx entrypoint has reloaded nginx so far (it logs each one).
    pub fn nginx_reloads(&self) -> anyhow::Result<usize> {
        let id = self.one("nginx")?;
        let output = Command::new("docker")
            .args(["logs", &id])
            .stdin(Stdio::null())
            .output()
            .context("cannot run docker logs")?;
        let text =
            String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
        Ok(text
            .lines()
            .filter(|line| line.contains("; reloading"))
            .count())
    }

    /// What a failure needs to be understood: the containers and the last lines of each log.
    pub fn print_diagnostics(&self) {
        eprintln!("compose test: state at the failure:");
        let mut ps = self.command();
        ps.arg("ps");
        let _ = ps.status();
        let mut logs = self.command();
        logs.args(["logs", "--no-color", "--tail", "15"]);
        let _ = logs.status();
    }

    /// `down -v --remove-orphans`: containers, network and volume gone.
    pub fn down(&self) -> anyhow::Result<()> {
        self.run(&["down", "-v", "--remove-orphans", "--timeout", "5"])
            .map(drop)
    }

    /// Containers, networks and volumes still labelled with the project.
    pub fn containers_left(&self) -> anyhow::Result<Vec<String>> {
        let label = project_label();
        let mut left = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-a", "-q", "--filter", &label]),
            ("network", vec!["network", "ls", "-q", "--filter", &label]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &label]),
        ] {
            let mut command = Command::new("docker");
            command.args(&args);
            for id in output_of(command, "docker ls")?.split_whitespace() {
                left.push(format!("{what} {id}"));
            }
        }
        Ok(left)
    }
}

/// The `--filter` value that selects what compose made for the project: containers, networks,
/// volumes.
pub fn project_label() -> String {
    format!("label=com.docker.compose.project={PROJECT}")
}

/// stdout of a command that must succeed; its stderr in the error otherwise.
pub fn output_of(mut command: Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A container's address on the project network.
pub fn ip_of(container: &str) -> anyhow::Result<String> {
    let mut command = Command::new("docker");
    command.args([
        "inspect",
        "--format",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        container,
    ]);
    let text = output_of(command, "docker inspect")?;
    let ip = text
        .split_whitespace()
        .next()
        .context("a container without an address")?;
    Ok(ip.to_owned())
}

/// A container's address on one network (a replica on two networks has one on each; Docker's
/// DNS answers a container on `network` with the address there).
pub fn ip_on(container: &str, network: &str) -> anyhow::Result<String> {
    let mut command = Command::new("docker");
    command.args([
        "inspect",
        "--format",
        &format!("{{{{with index .NetworkSettings.Networks \"{network}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}"),
        container,
    ]);
    let ip = output_of(command, "docker inspect")?.trim().to_owned();
    if ip.is_empty() {
        bail!("{container} has no address on {network}");
    }
    Ok(ip)
}

/// The first 12 hex digits of a container id: its hostname, and so its replica id's host.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The host part of a replica id (`<hostname>:<port>`).
pub fn host_of(replica: &str) -> &str {
    replica.rsplit_once(':').map_or(replica, |(host, _)| host)
}

/// The sizes of the images the test ran, for the summary.
pub fn print_image_sizes() {
    let mut command = Command::new("docker");
    command.args([
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Size}}",
    ]);
    if let Ok(text) = output_of(command, "docker image ls") {
        eprintln!("compose test: images:");
        for line in text
            .lines()
            .filter(|l| l.starts_with("authscale/") || l.starts_with("debian:bookworm-slim"))
        {
            eprintln!("  {line}");
        }
    }
}

/// `docker kill` one container (SIGKILL: no chance to finish anything).
pub fn kill(container: &str) -> anyhow::Result<()> {
    let mut kill = Command::new("docker");
    kill.args(["kill", container]);
    output_of(kill, "docker kill").map(drop)
}
