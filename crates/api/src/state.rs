//! What every handler of a replica can reach.

use crate::configuration::{Config, Mode};
use crate::keyset::Keys;
use auth_core::store::Store;
use auth_core::telemetry::{Counter, Metrics};
use std::sync::Arc;

pub type AppState = Arc<State>;

pub struct State {
    pub config: Config,
    pub limits: auth_core::limits::Limits,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
}

/// The one thing that differs between the two modes. In jwt mode there is no Redis client at
/// all: the replica *cannot* ask the store, which is the point.
pub enum Authenticator {
    Jwt(Arc<Keys>),
    Session { store: Store, idle_ttl: u64 },
}

impl State {
    pub fn mode(&self) -> Mode {
        self.config.mode
    }
}

/// Register the Redis command counter in both modes, so a jwt replica's `/metrics` shows the 0
/// instead of leaving the reader to guess.
pub fn redis_counter(metrics: &Metrics) -> Counter {
    metrics.counter(
        "authscale_redis_commands_total",
        "Commands (round trips) sent to Redis while serving requests.",
        &[],
    )
}
