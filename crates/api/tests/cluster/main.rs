//! Integration tests of the whole cluster through nginx: real redis-server, real auth-issuer,
//! real replicas in both modes, real nginx, all started on free ports by the `stack` launcher
//! and stopped when each test ends (also when it fails).
//!
//! One test binary with a module per feature, so the workspace links it once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod attacks;
mod cluster_view;
mod discovering_replicas;
mod discovery;
mod faults;
mod hardening;
mod helpers;
mod keys;
mod login_limits;
mod overload;
mod pyjwt;
mod redis_cluster;
mod refresh_families;
mod sessions;
mod store_delay;
mod store_outage;
mod tokens;
