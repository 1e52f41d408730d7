//! `cargo xtask compose-test`: docker-compose.yml end to end, built without a registry.
//!
//! The path most users take first is `docker compose up`; this proves it works, on a machine
//! where a Docker engine runs but no image can be pulled:
//!
//! 1. **build**: `deploy/offline-images.sh` builds every image the compose file names (a
//!    debootstrapped Debian bookworm as the base, the services from binaries built on the host).
//! 2. **promtool**: Prometheus's config parses and its recording rules pass their unit tests
//!    (`deploy/prometheus/rules.test.yml`), inside the Prometheus image.
//! 3. **up**: the project `authscale-e2e` with `deploy/docker-compose.offline.yml` on top and the
//!    profile `observe`, with the default 3 token and 3 session replicas, nginx and Prometheus
//!    published on free ports.
//! 4. **contract**: the public HTTP contract (API.md) through nginx: JWKS, login, `/api/me`,
//!    roles, refresh rotation and reuse detection, session login, `/sapi/me`, logout.
//! 5. **replicas**: `X-Replica` shows 3 distinct token and 3 distinct session replicas, and they
//!    are exactly the running containers.
//! 6. **prometheus targets**: Prometheus scrapes exactly the running containers (issuer, each
//!    replica, the nginx exporter), each one up, and the exporter reads nginx (see
//!    [`prometheus`]).
//! 7. **kill**: one token replica is `docker kill`ed while 20 clients call `/api/me` without a
//!    pause over kept-alive connections; not one request may fail, and nginx must drop the dead
//!    address. (nginx reloads for that, which closes idle kept-alive connections: a request
//!    caught by that is sent again once, as HTTP allows, and counted; see [`testkit::stream`].)
//! 8. **scale**: `up --scale api=4`; the new container serves, 4 distinct replicas answer.
//! 9. **prometheus rules**: Prometheus found the new replica by itself (and dropped the killed
//!    one); after traffic on both variants every recording rule evaluates with a result, and
//!    token replicas send Redis 0 commands per request, session replicas more.
//! 10. **store**: only the issuer and the session replicas reach Redis, each as its own ACL user
//!     limited to its own keys and commands; `default` cannot log in (see [`store`]).
//! 11. **redis restarted**: a session and a refresh token made just before Redis is killed
//!     (SIGKILL) or restarted still work after it: its append-only file kept them.
//! 12. **redis down**: Redis stopped, `/api/me` still answers 200 and `/sapi/me` 503.
//! 13. **redis without its files**: its volume removed, Redis started again; the session and the
//!     refresh token from before step 12 are refused (401), new ones work.
//! 14. **down**: `down -v --remove-orphans`, also when a step fails (a guard's `Drop`) or on
//!     Ctrl-C; nothing of the project may be left.
//!
//! `cargo xtask test` runs this after the cargo tests when `docker info` answers, and prints
//! why it skipped it otherwise. Works with `docker compose` (v2) and `docker-compose` (v1).

//!
//! The modules: [`docker`] runs docker and compose, [`cleanup`] tears the project down on every
//! path, [`scenario`] holds the phases, [`store`] the phases about Redis and [`prometheus`] the
//! ones about Prometheus. What a client of the contract does (log in, refresh, the steady
//! stream, waiting) comes from testkit, shared with the cluster tests.

mod cleanup;
pub(crate) mod docker;
mod prometheus;
pub(crate) mod scenario;
mod store;

use crate::timings::Timings;
use anyhow::{Context, bail, ensure};
use docker::{Compose, Project};
use stack::workspace_root;
use std::process::{Command, Stdio};

/// The compose project: its own containers, network and volume, whatever else runs.
const PROJECT: &str = "authscale-e2e";
/// Set to anything to skip the compose test in `cargo xtask test`.
const SKIP_VAR: &str = "AUTHSCALE_SKIP_COMPOSE_TEST";
/// Host port for nginx; a free one when unset (8080 may be taken by `cargo xtask up`).
const PORT_VAR: &str = "AUTHSCALE_E2E_HTTP_PORT";
/// Host port for Prometheus (the profile `observe`); a free one when unset.
const PROMETHEUS_PORT_VAR: &str = "AUTHSCALE_E2E_PROMETHEUS_PORT";

/// For `cargo xtask test`: the compose test when a Docker engine answers, otherwise a line
/// saying why not.
pub fn run_if_available() -> anyhow::Result<()> {
    if std::env::var_os(SKIP_VAR).is_some() {
        eprintln!("compose test SKIPPED: {SKIP_VAR} is set");
        return Ok(());
    }
    match Compose::find() {
        Ok(compose) => run(compose),
        Err(reason) => {
            eprintln!("compose test SKIPPED: {reason}");
            Ok(())
        }
    }
}

/// `cargo xtask compose-test`: like [`run_if_available`], but no Docker is an error.
pub fn compose_test() -> anyhow::Result<()> {
    match Compose::find() {
        Ok(compose) => run(compose),
        Err(reason) => bail!("cannot run the compose test: {reason}"),
    }
}

fn run(compose: Compose) -> anyhow::Result<()> {
    let root = workspace_root();
    let mut timings = Timings::new("compose test");
    eprintln!("compose test: using `{}`", compose.name());
    timings.phase(
        "build the images offline (deploy/offline-images.sh)",
        offline_images,
    )?;

    let port = port_from(PORT_VAR)?;
    let prometheus_port = port_from(PROMETHEUS_PORT_VAR)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let project = Project {
        compose,
        root,
        port,
        prometheus_port,
    };
    let teardown = cleanup::Teardown::arm(&project, &runtime)?;
    // A new connection for every check: none may depend on how a client copes with a kept-alive
    // connection that nginx closes when it reloads (the steady stream handles that itself).
    let client = testkit::Client::fresh_connections(&format!("http://127.0.0.1:{port}"))?;
    let result = scenario::drive(&mut timings, &project, &runtime, &client);
    if result.is_err() {
        project.print_diagnostics();
    }
    // Torn down pass or fail (and by the guard's drop if this is not reached).
    let down = timings.phase("down -v --remove-orphans", || teardown.finish());
    result?;
    down?;
    timings.print();
    docker::print_image_sizes();
    Ok(())
}

/// The port in the environment variable `var`, or a free one when it is unset.
fn port_from(var: &str) -> anyhow::Result<u16> {
    match std::env::var(var) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{var} must be a port number, not {value:?}")),
        Err(_) => stack::ports::free_port(),
    }
}

/// `deploy/offline-images.sh`: every image the compose file and the swarm stack name, built
/// without a registry (quick when nothing changed).
pub(crate) fn offline_images() -> anyhow::Result<()> {
    let root = workspace_root();
    let status = Command::new("bash")
        .arg(root.join("deploy/offline-images.sh"))
        .current_dir(&root)
        .stdin(Stdio::null())
        .status()
        .context("cannot run deploy/offline-images.sh")?;
    ensure!(
        status.success(),
        "deploy/offline-images.sh failed ({status})"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::docker::{host_of, short};
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn read(path: &str) -> String {
        std::fs::read_to_string(workspace_root().join(path)).unwrap()
    }

    /// From the `runtime` stage to the end, with the binaries' source made the same.
    fn runtime_stages(dockerfile: &str) -> String {
        let start = dockerfile.find("FROM ${RUNTIME_IMAGE} AS runtime").unwrap();
        dockerfile[start..].replace("COPY --from=builder /src/target/release/", "COPY ")
    }

    /// The offline images must be the images a registry build makes, apart from where the
    /// binaries come from.
    #[test]
    fn offline_and_source_builds_share_the_runtime() {
        let source = read("deploy/docker/services.Dockerfile");
        let prebuilt = read("deploy/docker/services-prebuilt.Dockerfile");
        assert_eq!(runtime_stages(&source), runtime_stages(&prebuilt));
    }

    /// Every image the compose files name is one the offline script builds.
    #[test]
    fn the_offline_script_builds_every_image_compose_names() {
        let script = read("deploy/offline-images.sh");
        let compose = read("docker-compose.yml") + &read("deploy/docker-compose.offline.yml");
        let images: BTreeSet<&str> = compose
            .lines()
            .filter_map(|line| line.trim().strip_prefix("image: "))
            .filter(|image| image.starts_with("authscale/"))
            .collect();
        assert_eq!(images.len(), 6, "{images:?}");
        for image in images {
            assert!(
                script.contains(&format!("={image}\n")),
                "{image} is not built offline"
            );
        }
    }

    fn render(template: &Path) -> std::process::Output {
        render_with(template, &[])
    }

    fn render_with(template: &Path, env: &[(&str, &str)]) -> std::process::Output {
        Command::new("sh")
            .arg(workspace_root().join("deploy/docker/nginx-entrypoint.sh"))
            .arg("render")
            .env("TEMPLATE", template)
            .env("ISSUER_HOST", "localhost")
            .env("API_HOST", "localhost")
            .env("SESSION_API_HOST", "no-such-host.invalid")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// The compose entrypoint fills every placeholder of the real template, and nginx accepts
    /// the result (the same check as the launcher's, crates/stack/src/nginx.rs).
    #[test]
    fn the_compose_entrypoint_renders_the_template() {
        let template = workspace_root().join("deploy/nginx/nginx.conf.template");
        let output = render(&template);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let config = String::from_utf8(output.stdout).unwrap();
        assert!(!config.contains("{{"), "a placeholder is left");
        assert!(config.contains("listen 0.0.0.0:8080;"));
        // stub_status on a port of its own, which docker-compose.yml does not publish.
        assert!(config.contains("listen 0.0.0.0:8081;"));
        assert!(config.contains("server 127.0.0.1:8080 max_fails=1 fail_timeout=2s;"));
        // A name that does not resolve: a `down` server, as the launcher writes for none.
        assert!(config.contains("server 127.0.0.1:1 down;"));
        // The demo page's /cluster routes, exactly as the launcher writes them.
        let here = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
        let cluster = stack::nginx::cluster::cluster_routes(&[here], &[here], &[]);
        assert!(config.contains(&cluster), "{cluster}\nnot in\n{config}");

        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, &config).unwrap();
        let nginx = stack::programs::nginx().unwrap();
        stack::nginx::test_config(&nginx, dir.path(), &conf).unwrap();
    }

    /// A placeholder the entrypoint does not know stops it, loudly.
    #[test]
    fn the_compose_entrypoint_refuses_an_unknown_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("nginx.conf.template");
        std::fs::write(&template, "listen {{LISTEN}};\nroot {{NEW_THING}};\n").unwrap();
        let output = render(&template);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("{{NEW_THING}}"), "{stderr}");
    }

    /// nginx's counters never share the public port: there they would be public, and their
    /// server would take the public traffic.
    #[test]
    fn the_compose_entrypoint_refuses_the_public_port_for_its_counters() {
        let template = workspace_root().join("deploy/nginx/nginx.conf.template");
        for (listen, status) in [
            ("8080", "8080"),
            ("8080", "08080"),
            ("80x", "81"),
            ("8080", "80:81"),
        ] {
            let output = render_with(
                &template,
                &[("LISTEN_PORT", listen), ("STATUS_PORT", status)],
            );
            assert_eq!(output.status.code(), Some(2), "{listen} and {status}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("two different port numbers"), "{stderr}");
        }
    }

    #[test]
    fn replica_ids_name_their_container() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(host_of("0123456789ab:8080"), "0123456789ab");
        assert_eq!(host_of("jwt-1"), "jwt-1");
    }
}
