//! # stack: the one launcher
//!
//! authscale is five kinds of process working together: **redis-server** (refresh-token families
//! and sessions), the **issuer** (`auth-issuer`: logins, tokens, sessions, the JWKS), **token
//! replicas** and **session replicas** (`api` in its two modes) and **nginx** in front of them
//! all. `cargo xtask up`, the integration tests and the load test all need that whole system
//! running on one machine, started the same way. This crate is that one way, so "it works in the
//! tests" and "it works when I run it" mean the same thing.
//!
//! Read it top-down:
//!
//! - [`stack`]: the whole system: [`Stack::start`] brings everything up in dependency order and
//!   [`Stack::shutdown`] (or dropping the [`Stack`]) takes it down again.
//! - [`process`]: one child process with its log file, stopped with SIGTERM, then SIGKILL, and
//!   never left behind, even when a test panics.
//! - [`readiness`]: "started" is not "ready": polling until a process answers, with a deadline and
//!   an error that shows the end of its log.
//! - [`redis`], [`nginx`], [`services`]: how each kind of process is started and configured.
//! - [`delay_proxy`]: an optional TCP proxy between the services and redis that adds a fixed
//!   delay each way, so the store is a network hop away as in production.
//! - [`cgroup`]: optional CPU quotas per process (cgroup v1), so that adding a replica adds a
//!   fixed amount of CPU, as it would on another machine.
//! - [`binaries`]: finding (or building) the two service binaries; [`programs`]: finding nginx and
//!   redis-server on this machine; [`ports`]: picking free TCP ports.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use stack::{Binaries, Stack, StackConfig};
//! // In an integration test of the `api` package: Path::new(env!("CARGO_BIN_EXE_api")).
//! let binaries = Binaries::beside(std::path::Path::new("target/debug/api"))?;
//! let work_dir = std::env::temp_dir().join("my-test");
//! let stack = Stack::start(StackConfig::new(binaries, work_dir)).await?;
//! println!("{}", stack.describe());
//! // ... send requests to stack.base_url() ...
//! stack.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod binaries;
pub mod cgroup;
pub mod delay_proxy;
pub mod nginx;
pub mod ports;
pub mod process;
pub mod programs;
pub mod readiness;
pub mod redis;
pub mod services;
pub mod stack;

pub use binaries::{Binaries, Profile, workspace_root};
pub use services::Mode;
pub use stack::{Stack, StackConfig};
