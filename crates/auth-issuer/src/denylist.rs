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
/// is revoked by this call), 2 = the family was already revoked, 3 = spent within the grace
/// window (a duplicate of a refresh in flight; nothing revoked). The spent marker holds the time
/// of the spend in milliseconds, which is what the grace window is measured from.
static SPEND: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
        if redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[1]) then return 0 end
        local grace_ms = tonumber(ARGV[4])
        if grace_ms > 0 then
            local spent_at = tonumber(redis.call('GET', KEYS[1]) or '0')
            if tonumber(ARGV[3]) - spent_at <= grace_ms then return 3 end
        end
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
    /// Spent moments ago, within the grace window: a duplicate of a refresh in flight (two
    /// browser tabs). The caller hands out the same successor instead of revoking.
    Duplicate,
}

pub struct Denylist<'a> {
    store: &'a Store,
    refresh_ttl: u64,
    /// 0: the contract's strict rule (every reuse revokes).
    grace_ms: u64,
}

impl<'a> Denylist<'a> {
    pub fn new(store: &'a Store, refresh_ttl: u64, grace_ms: u64) -> Self {
        Denylist {
            store,
            refresh_ttl,
            grace_ms,
        }
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
                    .arg(self.family_ttl())
                    .arg(now_millis())
                    .arg(self.grace_ms),
            )
            .await?;
        match outcome {
            0 => Ok(Spend::Fresh),
            1 => Ok(Spend::Reused),
            2 => Ok(Spend::Revoked),
            3 => Ok(Spend::Duplicate),
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

    /// Remember the successor of `token` for the grace window, so duplicates get the same pair.
    /// (The pair sits in Redis for those few seconds only.)
    pub async fn remember_successor(
        &self,
        token: &RefreshClaims,
        pair_json: &str,
    ) -> Result<(), ApiError> {
        let cmd = redis::cmd("SET")
            .arg(successor_key(&token.fam, &token.jti))
            .arg(pair_json)
            .arg("PX")
            .arg(self.grace_ms.max(1) + 1000)
            .to_owned();
        self.store.query::<()>(&cmd).await
    }

    /// The successor of `token`, waiting briefly for the winning refresh to store it.
    pub async fn successor(&self, token: &RefreshClaims) -> Result<Option<String>, ApiError> {
        let cmd = redis::cmd("GET")
            .arg(successor_key(&token.fam, &token.jti))
            .to_owned();
        for _ in 0..20 {
            if let Some(pair) = self.store.query::<Option<String>>(&cmd).await? {
                return Ok(Some(pair));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(None)
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

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn successor_key(family: &str, jti: &str) -> String {
    format!("rt:{{{family}}}:next:{jti}")
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
