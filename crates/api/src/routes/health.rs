//! What "ready" means for a replica: keys loaded in jwt mode, Redis reachable in session mode.
//! The routes themselves (`/healthz`, `/readyz`) are the scaffold's: `auth_core::service`.

use crate::state::{Authenticator, Replica};
use auth_core::error::ApiError;
use auth_core::service::Readiness;
use serde_json::{Map, Value};

impl Readiness for Replica {
    async fn readiness(&self) -> Result<Map<String, Value>, ApiError> {
        match &self.auth {
            Authenticator::Jwt(keys) if !keys.is_loaded() => Err(ApiError::Unavailable(
                "no verification keys loaded yet".into(),
            )),
            Authenticator::Session { store, .. } if !store.ping().await => {
                Err(ApiError::StoreUnavailable)
            }
            _ => Ok(Map::from_iter([("mode".into(), self.mode().name().into())])),
        }
    }
}
