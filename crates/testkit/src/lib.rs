//! Test support shared by every test that drives authscale as separate processes: the cluster
//! tests (crates/api/tests/cluster), the issuer's own tests and `cargo xtask compose-test`.
//!
//! - [`client`]: the HTTP contract (docs/API.md) as typed calls over a base URL.
//! - [`stream`]: many clients calling one route without a pause while something breaks.
//! - [`wait`]: poll until something holds, with a deadline and a message when it never does.
//! - [`guard`]: cleanup that runs when a value is dropped, so also when a test panics.
//!
//! Nothing here knows how the services were started (launcher, docker compose, by hand): it only
//! needs the address to talk to.

pub mod client;
pub mod guard;
pub mod stream;
pub mod wait;

pub use client::{ApiError, Auth, Client, Error, Pair};
pub use guard::Guard;
