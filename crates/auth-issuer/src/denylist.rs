//! The refresh-token denylist: one-time use, reuse detection, family revocation.
//!
//! A stateless refresh token cannot be "deleted", so the issuer remembers two things in Redis:
//!
//! - `rt:{fam}:spent:<jti>`: this refresh token has been exchanged. Written with `SET … NX`, so of
//!   any number of concurrent refreshes with one token exactly one finds the key absent and wins.
//! - `rt:{fam}:revoked`: this whole family is dead (logout, or reuse detected).
//!
//! Presenting a spent token is *reuse*: either the owner or a thief holds a copy, and the issuer
//! cannot tell which, so it revokes the family (RFC 9700 section 4.14.2). Both the owner's and the
//! thief's next refreshes then fail, and the owner logs in again.
//!
//! The check and the spend run as one Lua script: one round trip, and no window between "is the
//! family revoked?" and "spend the token". Every key expires when the last token it concerns
//! would have expired, so the store never grows without bound. The `{fam}` hash tag keeps a
//! family's keys in one Redis Cluster slot, as a multi-key script requires.

use auth_core::claims::RefreshClaims;
use auth_core::error::ApiError;
use auth_core::now_secs;
use auth_core::store::Store;
use auth_core::verify::MAX_LEEWAY_SECS;
use deadpool_redis::redis;
use std::sync::LazyLock;

/// Returns 0 = spent now (the caller may issue a successor), 1 = already spent (reuse: the family
/// is revoked by this call), 2 = the family was already revoked.
static SPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
        if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
        redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
        return 1
        ",
    )
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// First use: issue the successor.
    Fresh,
    /// Already spent before: the family has just been revoked.
    Reused,
    /// The family had been revoked (logout or earlier reuse).
    Revoked,
}

pub struct Denylist<'a> {
    store: &'a Store,
    refresh_ttl: u64,
}

impl<'a> Denylist<'a> {
    pub fn new(store: &'a Store, refresh_ttl: u64) -> Self {
        Denylist { store, refresh_ttl }
    }

    /// Spend `token` atomically, revoking its family if it was spent before.
    pub async fn spend(&self, token: &RefreshClaims) -> Result<Spend, ApiError> {
        let outcome: i64 = self
            .store
            .eval(
                SPEND
                    .key(spent_key(&token.fam, &token.jti))
                    .key(revoked_key(&token.fam))
                    .arg(spent_ttl(token.exp))
                    .arg(self.family_ttl()),
            )
            .await?;
        match outcome {
            0 => Ok(Spend::Fresh),
            1 => Ok(Spend::Reused),
            2 => Ok(Spend::Revoked),
            other => Err(ApiError::internal(format!(
                "denylist script returned {other}"
            ))),
        }
    }

    /// Revoke the family (logout). Idempotent.
    pub async fn revoke_family(&self, family: &str) -> Result<(), ApiError> {
        let cmd = redis::cmd("SET")
            .arg(revoked_key(family))
            .arg(1)
            .arg("EX")
            .arg(self.family_ttl())
            .to_owned();
        self.store.query::<()>(&cmd).await
    }

    /// A family's newest token was issued no later than now and lives `refresh_ttl`: past that
    /// (plus the verification leeway and a margin for a refresh racing the revocation), no token
    /// of the family can be accepted anyway, so the marker may go.
    fn family_ttl(&self) -> u64 {
        self.refresh_ttl + MAX_LEEWAY_SECS + 60
    }
}

/// A spent marker must outlive the token it marks (plus leeway), and no longer.
fn spent_ttl(exp: u64) -> u64 {
    exp.saturating_sub(now_secs()).max(1) + MAX_LEEWAY_SECS
}

fn spent_key(family: &str, jti: &str) -> String {
    format!("rt:{{{family}}}:spent:{jti}")
}

fn revoked_key(family: &str) -> String {
    format!("rt:{{{family}}}:revoked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_family_hash_tag() {
        assert_eq!(spent_key("F", "J"), "rt:{F}:spent:J");
        assert_eq!(revoked_key("F"), "rt:{F}:revoked");
    }

    #[test]
    fn spent_markers_expire_with_their_token() {
        let now = now_secs();
        assert_eq!(spent_ttl(now + 100), 100 + MAX_LEEWAY_SECS);
        // An already expired token still gets a positive TTL (EX 0 is an error in Redis).
        assert_eq!(spent_ttl(now - 5), 1 + MAX_LEEWAY_SECS);
    }
}
