//! `cargo xtask schemathesis`: the running stack checked against its own OpenAPI document.
//!
//! Schemathesis (a tool we did not write) reads `/openapi.json`, generates requests for every
//! operation in it, valid and invalid, sends them through nginx, and checks every answer against
//! the document: no 5xx, every status, content type, header and body as documented, invalid
//! input refused, valid input accepted, authentication enforced where the document says it is.
//! Any finding fails the test.
//!
//! 1. Check that `st` (pip's `schemathesis`, pinned in .ci/run) is installed.
//! 2. Build the services the way `cargo test --workspace` does ([`Binaries::build_as_tested`]).
//! 3. Start a whole stack on free ports, with the login limits raised (see [`stack_env`]).
//! 4. Log bob in twice, once for a bearer access token and once for a session id, and hand both
//!    to Schemathesis through its config file (xtask/schemathesis/schemathesis.toml), which
//!    reads them from the environment: they are never on a command line or in a log.
//! 5. `st run <base>/openapi.json --checks all`, bounded: [`MAX_EXAMPLES`] cases per operation
//!    and phase, a fixed seed, one worker; with the warnings failing the run too (a warning says
//!    the run did not reach the routes' logic, e.g. every request refused as unauthenticated).
//!    Twice, in fact ([`check`]): session logout, which ends its session, has a run and a
//!    session of its own.
//! 6. Stop the stack, whether the run passed or not.

use crate::compose::scenario::session_sid;
use anyhow::{Context, bail};
use stack::{Binaries, Stack, StackConfig, workspace_root};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Cases per operation (per phase): enough to reach every documented status of this small API,
/// few enough for a run of a few minutes on a loaded 2-core machine.
const MAX_EXAMPLES: &str = "25";
/// Fixed, so that a finding can be reproduced with the same command.
const SEED: &str = "1";
/// The whole run may take this long.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);
const PIP: &str = "pip install schemathesis==4.32.5";

/// The test, as `cargo xtask schemathesis` runs it: fails when `st` is missing.
pub fn schemathesis_test() -> anyhow::Result<()> {
    if !installed() {
        bail!("schemathesis is not installed: `{PIP}`");
    }
    run()
}

/// For `cargo xtask test`: runs the check if `st` is installed, and otherwise says why it is
/// skipped. In CI (`CI` set), where .ci/run installs it, a missing one is an error instead.
pub fn run_if_available() -> anyhow::Result<()> {
    if installed() {
        return run();
    }
    let reason = format!("schemathesis is not installed (`{PIP}`)");
    if std::env::var_os("CI").is_some() {
        bail!("the schemathesis check cannot run in CI: {reason}");
    }
    eprintln!("schemathesis check SKIPPED: {reason}");
    Ok(())
}

fn installed() -> bool {
    std::process::Command::new("st")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The stack's settings for this run, and why. Schemathesis sends hundreds of logins from one
/// address, nearly all with made-up passwords: with the default limits (20 failures per address
/// per minute at the issuer, 10 requests per second at nginx) most of them would get 429, a
/// documented answer that says nothing more about the route, and the later operations would run
/// against a throttled issuer. The limits themselves are tested where they break
/// (crates/api/tests/cluster/login_limits.rs). Access tokens live an hour, so that one token lasts
/// the whole run.
fn stack_env() -> Vec<(String, String)> {
    [
        ("LOGIN_MAX_FAILURES_PER_USER", "100000"),
        ("LOGIN_MAX_FAILURES_PER_ADDR", "100000"),
        ("ACCESS_TTL_SECS", "3600"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("schemathesis: the services as `cargo test --workspace` builds them…");
    let binaries = Binaries::build_as_tested()?;
    let out_dir = workspace_root().join("target").join("schemathesis");
    let mut config = StackConfig::new(binaries, out_dir.join("stack"));
    config.env = stack_env();
    config.login_rate = Some("1000r/s".to_owned());
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_against_stack(config, out_dir))?;
    eprintln!(
        "schemathesis: no findings, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_against_stack(config: StackConfig, out_dir: PathBuf) -> anyhow::Result<()> {
    let stack = Stack::start(config).await?;
    eprintln!("schemathesis: stack up at {}", stack.base_url());
    let outcome = check(&stack.base_url(), &out_dir).await;
    let stopped = stack.shutdown().await;
    outcome.and(stopped)
}

/// Two runs: session logout ends the session it is given, so it runs on its own with a session
/// of its own, and every other operation keeps a live session for the whole run.
async fn check(base: &str, out_dir: &std::path::Path) -> anyhow::Result<()> {
    let credentials = credentials(base).await?;
    let token = &credentials.access_token;
    let (session, to_end) = (&credentials.session_id, &credentials.session_to_end);
    run_schemathesis(base, "--exclude-path", token, session, out_dir).await?;
    run_schemathesis(base, "--include-path", token, to_end, out_dir).await
}

/// A bearer access token and two session ids, all bob's (he has the recruiter role, so the jobs
/// routes answer 200 too): one session for the `/sapi/` routes, one for session logout to end.
struct Credentials {
    access_token: String,
    session_id: String,
    session_to_end: String,
}

async fn credentials(base: &str) -> anyhow::Result<Credentials> {
    let client = testkit::Client::new(base)?;
    let access_token = client
        .login("bob", "builder")
        .await
        .context("bob's token login")?
        .access;
    Ok(Credentials {
        access_token,
        session_id: session_sid(&client, "bob", "builder").await?,
        session_to_end: session_sid(&client, "bob", "builder").await?,
    })
}

/// One `st run`, with `filter` (`--include-path` or `--exclude-path`) naming session logout.
async fn run_schemathesis(
    base: &str,
    filter: &str,
    access_token: &str,
    session_id: &str,
    out_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let config_file = workspace_root()
        .join("xtask")
        .join("schemathesis")
        .join("schemathesis.toml");
    let report_dir = out_dir.join("report");
    let mut child = tokio::process::Command::new("st")
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &format!("{base}/openapi.json")])
        .args([filter, "/auth/session/logout"])
        .args(["--checks", "all"])
        .args([
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--workers",
            "1",
        ])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "30"])
        .arg("--report")
        .arg("junit")
        .arg("--report-dir")
        .arg(&report_dir)
        .env("AUTHSCALE_ACCESS_TOKEN", access_token)
        .env("AUTHSCALE_SESSION_ID", session_id)
        .kill_on_drop(true)
        .spawn()
        .context("cannot run st (schemathesis)")?;
    let status = match tokio::time::timeout(RUN_TIMEOUT, child.wait()).await {
        Ok(status) => status.context("cannot wait for schemathesis")?,
        Err(_) => bail!("schemathesis did not finish within {RUN_TIMEOUT:?}"),
    };
    if !status.success() {
        bail!(
            "schemathesis found something ({status}); its findings are above, its report and the \
             stack's logs are in {}",
            out_dir.display()
        );
    }
    Ok(())
}
