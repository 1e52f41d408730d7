//! `cargo xtask browser-test`: the demo page (deploy/web) in a real browser.
//!
//! 1. Check that Debian's `chromium`, `chromium-driver` and `python3-selenium` are installed.
//!    Nothing here downloads a browser or a driver: Selenium is handed both paths, so its own
//!    driver manager never runs.
//! 2. Build the services the way `cargo test --workspace` does, so that right after the cargo
//!    tests (in `cargo xtask test`) nothing is rebuilt ([`Binaries::build_as_tested`]).
//! 3. Start a whole stack on free ports, with access tokens that live [`ACCESS_TTL_SECS`] and no
//!    clock-skew leeway, so the test sees a token expire and get refreshed within seconds.
//! 4. Run `xtask/browser/page_test.py <base URL> <output dir>`, which drives headless Chromium
//!    through the page and saves screenshots to `target/browser-test/`.
//! 5. Stop the stack, whether the test passed or not.
//!
//! Why Python and Selenium rather than a Rust WebDriver client: Debian packages Selenium
//! (python3-selenium) next to chromium, so the whole browser tool chain comes from one apt line,
//! pinned by the Debian release, and costs no compile time on a 2-core CI machine and no new
//! crates in Cargo.lock. The test itself only clicks and reads the page; the Rust side (this
//! file) starts the stack through the same launcher as every other test.
//!
//! `cargo xtask test` runs this after the cargo tests when the packages are there
//! ([`run_if_available`]).

use crate::up::short_token_env;
use anyhow::{Context, bail};
use stack::{Binaries, Stack, StackConfig, workspace_root};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Access-token lifetime during the test: long enough for a few clicks, short enough that
/// waiting for two expiries costs seconds.
const ACCESS_TTL_SECS: u64 = 5;
/// The whole browser session may take this long (it needs about 40 s).
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's own Python: python3-selenium is installed for it, not for any other python3 on PATH.
const PYTHON: &str = "/usr/bin/python3";
pub const PACKAGES: &str = "chromium chromium-driver python3-selenium";

/// The test, as `cargo xtask browser-test` runs it: fails when the browser is missing.
pub fn browser_test() -> anyhow::Result<()> {
    let missing = missing_prerequisites();
    if !missing.is_empty() {
        bail!(
            "missing {}: install with `apt-get install {PACKAGES}`",
            missing.join(", ")
        );
    }
    run()
}

/// For `cargo xtask test`: runs the browser test if chromium, chromedriver and Selenium are
/// installed, and otherwise says why it is skipped. In CI (`CI` set), where .ci/run installs
/// them, a missing one is an error instead, so a skipped test cannot pass for a green one.
pub fn run_if_available() -> anyhow::Result<()> {
    let missing = missing_prerequisites();
    if missing.is_empty() {
        return run();
    }
    let reason = format!(
        "{} not installed (install with `apt-get install {PACKAGES}`)",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        bail!("the browser test cannot run in CI: {reason}");
    }
    eprintln!("browser test SKIPPED: {reason}");
    Ok(())
}

/// What is missing, by name; empty when everything is there.
fn missing_prerequisites() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push("chromium");
    }
    if !Path::new(CHROMEDRIVER).is_file() {
        missing.push("chromedriver (package chromium-driver)");
    }
    let selenium = std::process::Command::new(PYTHON)
        .args(["-c", "import selenium"])
        .output();
    if !selenium.is_ok_and(|output| output.status.success()) {
        missing.push("Selenium for /usr/bin/python3 (package python3-selenium)");
    }
    missing
}

fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    eprintln!("browser test: the services as `cargo test --workspace` builds them…");
    let binaries = Binaries::build_as_tested()?;
    let out_dir = workspace_root().join("target").join("browser-test");
    let mut config = StackConfig::new(binaries, out_dir.join("stack"));
    config.env = short_token_env(ACCESS_TTL_SECS);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_against_stack(config, &out_dir))?;
    eprintln!(
        "browser test: passed in {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        out_dir.display()
    );
    Ok(())
}

async fn run_against_stack(config: StackConfig, out_dir: &Path) -> anyhow::Result<()> {
    let stack = Stack::start(config).await?;
    eprintln!("browser test: stack up at {}", stack.base_url());
    let outcome = run_page_test(&stack.base_url(), out_dir).await;
    let stopped = stack.shutdown().await;
    outcome.and(stopped)
}

async fn run_page_test(base_url: &str, out_dir: &Path) -> anyhow::Result<()> {
    let script: PathBuf = workspace_root()
        .join("xtask")
        .join("browser")
        .join("page_test.py");
    let mut child = tokio::process::Command::new(PYTHON)
        .arg(&script)
        .arg(base_url)
        .arg(out_dir)
        .env("CHROMIUM", CHROMIUM)
        .env("CHROMEDRIVER", CHROMEDRIVER)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {PYTHON} {}", script.display()))?;
    let status = match tokio::time::timeout(TEST_TIMEOUT, child.wait()).await {
        Ok(status) => status.context("cannot wait for the browser test")?,
        Err(_) => bail!("the browser test did not finish within {TEST_TIMEOUT:?}"),
    };
    if !status.success() {
        bail!(
            "the browser test failed ({status}); its output is above, screenshots and the \
             stack's logs are in {}",
            out_dir.display()
        );
    }
    Ok(())
}
