//! What every handler of a replica can reach: the [`Replica`], shared as a [`ReplicaState`].

use crate::replica_keys::ReplicaKeys;
use crate::settings::{Mode, Settings};
use auth_core::store::Store;
use auth_core::telemetry::{Counter, Metrics};
use std::sync::Arc;

/// The handlers' state: one [`Replica`], shared by every request.
pub type ReplicaState = Arc<Replica>;

/// One replica: its settings, how it authenticates callers, and its metrics.
pub struct Replica {
    pub settings: Settings,
    pub auth: Authenticator,
    pub metrics: Arc<Metrics>,
    /// Redis commands sent while serving requests (always 0 in jwt mode), for `/stats`.
    pub store_commands: Counter,
    /// Requests that came with credentials of the right shape, counted before they are checked:
    /// what a store look-up per request is measured against (`/stats`).
    pub credentials_checked: Counter,
}

/// The one thing that differs between the two modes. In jwt mode there is no Redis client at
/// all: the replica *cannot* ask the store, which is the point.
pub enum Authenticator {
    Jwt(Arc<ReplicaKeys>),
    Session { store: Store, idle_ttl: u64 },
}

impl Replica {
    pub fn mode(&self) -> Mode {
        self.settings.mode
    }
}
