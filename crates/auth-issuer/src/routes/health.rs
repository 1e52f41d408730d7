//! What "ready" means for the issuer: Redis reachable (its key is loaded before it listens).
//! The routes themselves (`/healthz`, `/readyz`) are the scaffold's: `auth_core::service`.

use crate::state::Issuer;
use auth_core::error::ApiError;
use auth_core::service::Readiness;
use serde_json::{Map, Value};

impl Readiness for Issuer {
    async fn readiness(&self) -> Result<Map<String, Value>, ApiError> {
        // The key is loaded before the server starts listening; Redis may come and go.
        if !self.store.ping().await {
            return Err(ApiError::StoreUnavailable);
        }
        let kid = self.keyring().signing.kid().to_owned();
        Ok(Map::from_iter([("kid".into(), kid.into())]))
    }
}
