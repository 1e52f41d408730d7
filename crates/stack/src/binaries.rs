//! Locating the two service binaries, `auth-issuer` and `api`.
//!
//! Two situations need them:
//!
//! - **Tests.** `cargo test` has already built every binary of the workspace package under test,
//!   and tells an integration test where one of them is (`env!("CARGO_BIN_EXE_api")`). Cargo puts
//!   all binaries of one profile in one directory, so the other one is its sibling:
//!   [`Binaries::beside`].
//! - **`cargo xtask up` and the load test.** Nothing is built yet, or it is stale:
//!   [`Binaries::build`] runs `cargo build` and asks cargo where it put the results (which also
//!   respects `CARGO_TARGET_DIR` and a `target-dir` set in a cargo config file).
//! - **The browser test, run after `cargo test --workspace`.** [`Binaries::build_as_tested`] asks
//!   `cargo test --workspace --no-run` for the binaries the integration tests use. `cargo build -p
//!   auth-issuer -p api` would not do: a workspace-wide test build unifies the features of every
//!   member and of the dev-dependencies, so the same binaries built alone differ in their
//!   dependencies' features, and cargo rebuilds those (aws-lc-sys included: minutes on 2 cores).

use anyhow::{Context, bail};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which cargo profile to build and run: debug (fast to build) or release (fast to run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// Paths of the two service executables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub issuer: PathBuf,
    pub api: PathBuf,
}

/// Executable names, as cargo names them after the `[package]`s.
const ISSUER: &str = "auth-issuer";
const API: &str = "api";

/// The workspace's root directory (where the root `Cargo.toml` is), as of compile time.
pub fn workspace_root() -> PathBuf {
    // This crate lives in <root>/crates/stack.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

impl Binaries {
    /// The binaries in the same directory as `known`, the path of either of them (tests pass
    /// `env!("CARGO_BIN_EXE_api")` or `env!("CARGO_BIN_EXE_auth-issuer")`).
    pub fn beside(known: &Path) -> anyhow::Result<Binaries> {
        let dir = known
            .parent()
            .with_context(|| format!("{} has no parent directory", known.display()))?;
        let binaries = Binaries {
            issuer: dir.join(ISSUER),
            api: dir.join(API),
        };
        binaries.check_exist()?;
        Ok(binaries)
    }

    /// Builds both binaries with `cargo build [--release] -p auth-issuer -p api` in the workspace
    /// root, then returns where cargo put them. Cargo's progress goes to this process's stderr.
    pub fn build(profile: Profile) -> anyhow::Result<Binaries> {
        let mut args = vec!["build", "-p", ISSUER, "-p", API, "--bins"];
        if profile == Profile::Release {
            args.push("--release");
        }
        Binaries::from_cargo(&args)
    }

    /// The debug binaries exactly as `cargo test --workspace` builds them for the integration
    /// tests (see the module docs): right after that test run, this builds nothing.
    pub fn build_as_tested() -> anyhow::Result<Binaries> {
        Binaries::from_cargo(&["test", "--workspace", "--no-run"])
    }

    /// Runs `cargo <args>` in the workspace root and returns the two executables it built.
    fn from_cargo(args: &[&str]) -> anyhow::Result<Binaries> {
        let mut command = cargo_command(args);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {:?}", command.get_program()))?;
        let stdout = child
            .stdout
            .take()
            .context("cargo's stdout was not captured")?;
        let built = executables_in_cargo_messages(std::io::BufReader::new(stdout))?;
        let status = child.wait().context("cannot wait for cargo")?;
        if !status.success() {
            bail!(
                "`cargo {}` failed ({status}); its errors are above",
                args.join(" ")
            );
        }
        let find = |name: &str| {
            built
                .iter()
                .find(|(target, _)| target == name)
                .map(|(_, path)| path.clone())
                .with_context(|| format!("cargo built no executable named {name}"))
        };
        let binaries = Binaries {
            issuer: find(ISSUER)?,
            api: find(API)?,
        };
        binaries.check_exist()?;
        Ok(binaries)
    }

    fn check_exist(&self) -> anyhow::Result<()> {
        for path in [&self.issuer, &self.api] {
            if !path.is_file() {
                bail!(
                    "{} does not exist: build the services first with `cargo build --bins` \
                     (add --release for target/release)",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// `cargo <args>` with machine-readable messages on stdout (for the executables' paths) while
/// compiler warnings and errors are still rendered for humans on stderr.
fn cargo_command(args: &[&str]) -> Command {
    // $CARGO is set when we run under cargo (`cargo xtask`), and names the same toolchain.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root())
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

/// (target name, executable path) of every `compiler-artifact` message that has an executable,
/// except test harnesses: `cargo test` also builds each binary's unit tests into an executable
/// named after the binary (`profile.test` is true for those).
fn executables_in_cargo_messages(reader: impl BufRead) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    for line in reader.lines() {
        let line = line.context("cannot read cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue; // not every line is guaranteed to be JSON; only artifacts matter
        };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] == true {
            continue;
        }
        if let (Some(name), Some(path)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            found.push((name.to_owned(), PathBuf::from(path)));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_has_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn beside_finds_siblings_and_names_the_build_command_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let err = Binaries::beside(&dir.path().join(API))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cargo build --bins"), "{err}");
        std::fs::write(dir.path().join(API), "").unwrap();
        std::fs::write(dir.path().join(ISSUER), "").unwrap();
        let found = Binaries::beside(&dir.path().join(ISSUER)).unwrap();
        assert_eq!(found.api, dir.path().join(API));
        assert_eq!(found.issuer, dir.path().join(ISSUER));
    }

    #[test]
    fn executables_are_read_from_cargo_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","target":{"name":"auth-core"},"executable":null}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"api"},"executable":"/t/release/api"}"#,
            r#"{"reason":"compiler-artifact","target":{"name":"api"},"profile":{"test":true},"executable":"/t/deps/api-1f"}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        let found = executables_in_cargo_messages(messages.as_bytes()).unwrap();
        assert_eq!(
            found,
            vec![("api".to_owned(), PathBuf::from("/t/release/api"))]
        );
    }
}
