//! `cargo xtask bench`: the load test (`loadtest/`), built and run in release mode.
//!
//! A thin wrapper: it makes sure nginx, redis-server and oha are there before spending minutes
//! on a release build, then runs `cargo run --release -p loadtest -- <args>`. The load test
//! itself builds the services in release mode, starts its stacks, and writes
//! `loadtest/results/<timestamp>/report.md`.

use crate::packages;
use anyhow::{Context, bail};
use stack::workspace_root;
use std::path::PathBuf;
use std::process::Command;

/// Runs the load test with `args` (`--quick`, `--url BASE`, ...; `--help` lists them).
pub fn bench(args: &[String]) -> anyhow::Result<()> {
    let remote = args.iter().any(|a| a == "--url" || a.starts_with("--url="));
    let help = args.iter().any(|a| a == "-h" || a == "--help");
    if !remote && !help {
        packages::ensure_installed()?;
    }
    if !help && oha().is_none() {
        bail!(
            "oha, the HTTP load generator, is not installed: install it with \
             `cargo install oha --locked` (about 4 minutes on 2 cores), then run this again"
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["run", "--quiet", "--release", "--package", "loadtest", "--"])
        .args(args)
        .status()
        .context("cannot run cargo run -p loadtest")?;
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    Ok(())
}

/// Install oha from crates.io when it is missing, so `cargo xtask test` needs no set-up of its
/// own (`cargo xtask bench` alone only says how, rather than spend minutes unasked).
pub fn ensure_oha() -> anyhow::Result<()> {
    if oha().is_some() {
        return Ok(());
    }
    println!(
        "installing oha, the load generator: cargo install oha --locked (a few minutes, once)…"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "oha", "--locked"])
        .status()
        .context("cannot run cargo install oha")?;
    if !status.success() {
        bail!("cargo install oha --locked failed ({status})");
    }
    Ok(())
}

/// oha on PATH or in cargo's bin directory (the load test looks in the same places).
fn oha() -> Option<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("oha"));
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("oha"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .find(|candidate| candidate.is_file())
}
