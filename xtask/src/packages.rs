//! Making sure nginx and redis-server are installed before anything needs them.
//!
//! Both commands start real nginx and redis-server processes. When one is missing, as root
//! (a container, CI) we install it with `apt-get`; as anyone else we print the one `apt-get`
//! line to run, rather than asking for a password halfway through a build.

use anyhow::{Context, bail};
use std::os::unix::fs::MetadataExt;
use std::process::Command;

/// Installs nginx-light and/or redis-server if they are missing (as root) or says how to.
pub fn ensure_installed() -> anyhow::Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() || stack::programs::find("apt-get", "").is_err() {
        bail!("missing {list}: install with `sudo apt-get install {list}`");
    }
    eprintln!("installing {list} with apt-get…");
    apt_get(&["update", "-qq"])?;
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(&missing);
    apt_get(&install)?;
    // The launcher's own lookup, with its own error, decides whether this worked.
    stack::programs::nginx()?;
    stack::programs::redis_server()?;
    Ok(())
}

/// Debian package names of the programs not found.
fn missing_packages() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if stack::programs::nginx().is_err() {
        missing.push("nginx-light");
    }
    if stack::programs::redis_server().is_err() {
        missing.push("redis-server");
    }
    missing
}

/// `/proc/self` belongs to the effective user of the process looking at it.
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
