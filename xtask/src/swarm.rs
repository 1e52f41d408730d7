//! `cargo xtask swarm-test`: deploy/swarm/stack.yml on a swarm of three Docker hosts, all made
//! on this machine, and the faults a swarm exists to survive.
//!
//! 1. **build**: the images offline (deploy/offline-images.sh), and the hosts' own image
//!    (deploy/swarm/test-host.Dockerfile: Debian's docker.io in a container; see [`hosts`]).
//! 2. **hosts**: three hosts on a private network; a swarm of one manager and two workers.
//! 3. **images**: `docker save` here, `docker load` on each host: no registry anywhere.
//! 4. **deploy**: the third host is labelled as the store's node; `deploy/swarm/secrets.sh` and
//!    `docker stack deploy`, run on the manager as a user would. Apart from Redis, services stay
//!    off the store's node (`AUTHSCALE_APP_CONSTRAINT`), as on a dedicated database machine, so
//!    that cutting that node off below takes only the store away.
//! 5. **contract** through nginx, on the port nginx's task publishes on the manager.
//! 6. **spread**: token replicas run on both application hosts, and all of them answer.
//! 7. **issuers**: a refresh token minted by one issuer (`X-Issuer`) is rotated by the other.
//! 8. **key rotation** as a secret rotation (docs/PAST-ONE-MACHINE.md): a new key mounted as
//!    the next one, then as the signing one with the old as the previous; tokens of both keys
//!    stay valid throughout, and new ones carry the new key.
//! 9. **a host killed** under a steady stream of `GET /api/me` from 20 clients, as a power
//!    loss: cut off, then killed, so that its requests in flight meet silence rather than a
//!    reset. Every failed request counted (none may fail); its tasks rescheduled on the other
//!    host, timed; the host then starts again and rejoins.
//! 10. **rolling update** of the token replicas (`docker service update --force`) under the same
//!     stream: none may fail.
//! 11. **the store's host cut off** (`docker network disconnect`): `/api/me` stays 200,
//!     `/sapi/me` answers 503; its Redis is killed meanwhile, so it comes back as a new task
//!     that reads its append-only file; reconnected, both recover with nothing lost: the
//!     session, a live refresh token, and a logged-out one that stays refused.
//! 12. **scale** the token replicas to 6: all six serve.
//! 13. **teardown**: `docker stack rm`, then the hosts and their network, also on failure and
//!     on Ctrl-C; nothing of the test may be left.

mod hosts;
mod scenario;

use crate::timings::Timings;
use anyhow::{Context, bail, ensure};
use stack::workspace_root;
use std::process::{Command, Stdio};
use testkit::Guard;

/// Set to anything to skip the swarm test in `cargo xtask test`.
const SKIP_VAR: &str = "AUTHSCALE_SKIP_SWARM_TEST";

/// For `cargo xtask test`: the swarm test when a Docker engine answers, otherwise why not.
pub fn run_if_available() -> anyhow::Result<()> {
    if std::env::var_os(SKIP_VAR).is_some() {
        eprintln!("swarm test SKIPPED: {SKIP_VAR} is set");
        return Ok(());
    }
    match engine() {
        Ok(()) => run(),
        Err(reason) => {
            eprintln!("swarm test SKIPPED: {reason}");
            Ok(())
        }
    }
}

/// `cargo xtask swarm-test`: like [`run_if_available`], but no Docker is an error.
pub fn swarm_test() -> anyhow::Result<()> {
    match engine() {
        Ok(()) => run(),
        Err(reason) => bail!("cannot run the swarm test: {reason}"),
    }
}

fn engine() -> Result<(), String> {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output();
    match info {
        Err(e) => Err(format!("docker is not installed ({e})")),
        Ok(output) if !output.status.success() => Err("no Docker engine answers".to_owned()),
        Ok(_) => Ok(()),
    }
}

fn run() -> anyhow::Result<()> {
    let mut timings = Timings::new("swarm test");
    timings.phase(
        "build the images offline, and the hosts' image",
        build_images,
    )?;
    // From here on, everything comes down on every path.
    hosts::remove_all()?;
    let teardown = Guard::new(|| {
        eprintln!("swarm test: tearing down");
        if let Err(e) = hosts::remove_all() {
            eprintln!("swarm test: {e:#}");
        }
    });
    on_ctrl_c();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = scenario::drive(&mut timings, &runtime);
    drop(runtime);
    let volumes = hosts::host_volumes().unwrap_or_default();
    let down = timings.phase("remove the hosts; nothing left", || {
        hosts::remove_all()?;
        let mut left = hosts::leftovers()?;
        left.extend(hosts::existing_volumes(&volumes));
        ensure!(left.is_empty(), "left behind: {}", left.join(", "));
        Ok(())
    });
    drop(teardown);
    result?;
    down?;
    timings.print();
    Ok(())
}

fn build_images() -> anyhow::Result<()> {
    crate::compose::offline_images()?;
    let root = workspace_root();
    // The classic builder: it uses the local debian:bookworm-slim and asks no registry.
    let output = Command::new("docker")
        .args(["build", "-q", "-t", hosts::HOST_IMAGE, "-f"])
        .arg(root.join("deploy/swarm/test-host.Dockerfile"))
        .arg(root.join("deploy/swarm"))
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .context("cannot run docker build")?;
    ensure!(
        output.status.success(),
        "building {} failed: {}",
        hosts::HOST_IMAGE,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Ctrl-C would end the process before any drop runs: remove the hosts from a handler instead.
fn on_ctrl_c() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("swarm test: interrupted; tearing down");
            if let Err(e) = hosts::remove_all() {
                eprintln!("swarm test: {e:#}");
            }
            std::process::exit(130);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn read(path: &str) -> String {
        std::fs::read_to_string(workspace_root().join(path)).unwrap()
    }

    fn images(file: &str) -> BTreeSet<String> {
        read(file)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("image: "))
            .map(str::to_owned)
            .collect()
    }

    /// The stack runs the images compose runs (offline: Redis from Debian), all built by
    /// deploy/offline-images.sh, and the swarm test loads exactly those into its hosts.
    #[test]
    fn the_stack_runs_the_offline_images_the_test_loads() {
        let stack = images("deploy/swarm/stack.yml");
        let script = read("deploy/offline-images.sh");
        for image in &stack {
            assert!(
                script.contains(&format!("={image}\n")),
                "{image} is not built offline"
            );
        }
        let loaded: BTreeSet<String> = scenario::IMAGES.iter().map(|i| i.to_string()).collect();
        assert_eq!(stack, loaded);
    }

    /// Every long-running service has a health check (a rolling update waits for it) and its
    /// own endpoint mode (no virtual IP: see the stack's comment).
    #[test]
    fn every_service_has_a_health_check_and_dnsrr() {
        let stack = read("deploy/swarm/stack.yml");
        let services = stack.split("\nservices:\n").nth(1).unwrap();
        let services = services.split("\nnetworks:\n").next().unwrap();
        let names: Vec<&str> = services
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        // The replicas take theirs from the shared anchor.
        assert_eq!(
            services.matches("healthcheck:").count() + services.matches("<<: *replica").count(),
            names.len(),
            "a service without a health check"
        );
        assert_eq!(
            services.matches("endpoint_mode: dnsrr").count(),
            names.len()
        );
    }
}
