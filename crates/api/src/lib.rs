//! # api: one replica of the API, in `jwt` or `session` mode (`API_MODE`)
//!
//! A library with a thin binary (`main.rs`) in front, like the issuer, so that the issuer can
//! put this crate's routes into the one OpenAPI document it serves (see [`openapi`]). The
//! same handlers serve both modes; only the way a request is authenticated differs. The map:
//!
//! - [`startup`]: state from settings, the router (and its part of the OpenAPI document, built
//!   from the same list of handlers), serving until shutdown.
//! - [`routes`]: one file per route (`/me`, `/jobs/{id}/applicants`, `/ping`), and what "ready"
//!   means for `/readyz`.
//! - [`openapi`]: this crate's part of the OpenAPI document, per mode.
//! - [`caller`]: who is calling: a verified bearer token or a session looked up in Redis.
//! - [`replica_keys`], [`discovery`], [`token_cache`]: the verification keys (the JWKS, found
//!   from the issuer URL alone if need be) and the verified-token cache.
//! - [`settings`], [`state`]: settings and what every handler can reach (the `Replica`).

pub mod caller;
pub mod discovery;
pub mod openapi;
pub mod replica_keys;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;
pub mod token_cache;
