//! # auth-issuer: logs users in and hands out tokens (or sessions)
//!
//! A library with a thin binary (`main.rs`) in front, so that the fuzz targets and tests can
//! drive the real router and parsers. The map:
//!
//! - [`startup`]: state from settings, the router, serving until shutdown (on the scaffold in
//!   `auth_core::service`).
//! - [`routes`]: one file per route (login, refresh, logout, JWKS, sessions), and what "ready"
//!   means for `/readyz`.
//! - [`openapi`]: the OpenAPI 3.1 document of the whole public surface, at `/openapi.json`.
//! - [`users`]: the users file and Argon2id verification.
//! - [`throttle`]: login limits in Redis, per username and per client address.
//! - [`client_addr`]: which address a request counts against.
//! - [`tokens`]: minting a token pair.
//! - [`families`]: refresh-token families: rotation, reuse detection, revocation, store loss.
//! - [`hash_pool`]: the few threads that run Argon2id, so its memory is bounded.
//! - [`sessions`]: server-side sessions (create, delete, the cookie).
//! - [`keyring`]: the keys in force: the signing key, pending and retired ones.
//! - [`key_files`]: the keyring on disk, and key rotation (planned, or after a compromise).
//! - [`settings`], [`state`]: settings and what every handler can reach (the `Issuer`).

pub mod client_addr;
pub mod families;
pub mod hash_pool;
pub mod key_files;
pub mod keyring;
pub mod openapi;
pub mod routes;
pub mod sessions;
pub mod settings;
pub mod startup;
pub mod state;
pub mod throttle;
pub mod tokens;
pub mod users;
