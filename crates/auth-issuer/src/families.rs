//! Refresh-token families: rotation, reuse detection, revocation, and what survives a store loss.
//!
//! A login starts a *family*; every refresh hands out the family's next token and spends the one
//! presented (RFC 9700 section 4.14.2). The issuer keeps one small record per family in Redis, a
//! hash at `rt:{<family>}`:
//!
//! | field | meaning |
//! | --- | --- |
//! | `cur` | the `jti` of the one token of the family that may be spent now |
//! | `prev` | the token `cur` replaced (for the grace and retry windows below) |
//! | `start` | when the login happened (Unix s): the family ends at `start + REFRESH_MAX_TTL_SECS` |
//! | `iat` | when `cur` was issued (Unix s), so `cur` can be minted again byte for byte |
//! | `at`, `who` | when (ms) and for which client address the last rotation ran |
//! | `lease`, `done` | whether the last rotation's answer has been produced (see "lost answers") |
//! | `revoked` | `1` once the family is dead (logout, or reuse detected) |
//!
//! **The record is an allowlist, so a loss fails closed.** The contract calls this the denylist,
//! and it used to be one (a marker per spent token). A denylist forgets what it denied when the
//! store loses its data: every token ever spent or logged out would come back to life. Here a
//! refresh is accepted only when the record exists and names the presented token as `cur`. A
//! store that lost its data (a restart without its files, `FLUSHALL`) has no records, so every
//! refresh token issued before the loss is refused, spent and unspent alike: those users log in
//! again. That is the price, and it is the safe way round.
//!
//! **Reuse revokes the family.** A token of the family that is not `cur` has been spent before:
//! the owner or a thief holds a copy, and the issuer cannot tell which, so the family is revoked
//! and both must log in again.
//!
//! **Lost answers are not theft.** A refresh whose answer never reached the client (the issuer
//! was killed after the rotation, or the request timed out) would otherwise turn the client's
//! retry into "reuse" and log the user out with a false alarm. So the rotation takes a short
//! *lease* and the handler marks the record `done` once the new pair is ready to send. A retry
//! with `prev` by the same client address, within `REFRESH_RETRY_WINDOW_SECS`, while `done` is
//! unset, gets the same successor again once the lease has run out (minted again byte for byte:
//! RS256 and HS256 signatures are deterministic), instead of revoking. A duplicate that arrives
//! while the lease runs waits for it, so concurrent duplicates are still judged after the winner
//! answered: by then they are reuse. Strict detection stays for a replay after the window, from
//! another address, or of a rotation whose answer was produced. What is not covered: an answer that was
//! produced and then lost on the wire counts as delivered; its retry revokes the family.
//!
//! **Two tabs** (`REFRESH_REUSE_GRACE_MS`, off by default): within the grace window any duplicate
//! of `prev` gets the same successor, whether or not the answer was produced.
//!
//! Every record expires when the last token it concerns would have expired, so the store never
//! grows without bound. The `{family}` hash tag keeps the record in one Redis Cluster slot.

use auth_core::error::ApiError;
use auth_core::store::Store;
use auth_core::verify::MAX_LEEWAY_SECS;
use std::sync::LazyLock;
use std::time::Duration;

/// How long a rotation's answer may take before a retry of it may be answered again.
pub const ANSWER_LEASE: Duration = Duration::from_secs(3);
/// How often a duplicate that found the lease held looks again.
const PENDING_POLL: Duration = Duration::from_millis(25);

/// `KEYS[1]` the family record. `ARGV`: the `jti` and issue time (Unix s) of the first token, the
/// record's time to live.
static CREATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        redis.call('HSET', KEYS[1], 'cur', ARGV[1], 'start', ARGV[2], 'iat', ARGV[2], 'done', '1')
        redis.call('EXPIRE', KEYS[1], ARGV[3])
        return 0
        ",
    )
});

/// The refresh decision, atomically. `ARGV`: 1 presented jti, 2 successor jti, 3 now (ms),
/// 4 client address, 5 grace (ms), 6 retry window (ms), 7 lease (ms), 8 refresh TTL (s),
/// 9 family maximum (s), 10 extra record life (s).
///
/// The first line answers a repeat of the very call that rotated (the same presented token and
/// successor id, which is random per request): the store client may send a request again when
/// its connection died after Redis had run it, and that repeat must get the same answer, not be
/// taken for reuse. It writes the value it found again (as the grace branch does) because a
/// `WAIT` counts only what its own connection wrote: the repeat comes on a new connection, and
/// without a write of its own its `WAIT` would pass before any replica had the rotation.
///
/// Returns `{code, start, jti, iat}`: 0 rotated (the successor is `jti`), 1 reuse (revoked now),
/// 2 already revoked, 3 duplicate or retry (`jti` is the existing successor), 4 the answer of the
/// rotation is still being produced (ask again), 5 no record (unknown, expired or lost), 6 the
/// family has reached its maximum lifetime (its last token is presented within the leeway).
static ROTATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        local k = KEYS[1]
        local f = redis.call('HMGET', k, 'cur', 'prev', 'start', 'iat', 'at', 'who', 'lease', 'done', 'revoked')
        local cur, prev, start, iat, at, who, lease, done, revoked =
            f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
        if not cur then return {5} end
        if revoked == '1' then return {2} end
        local presented, now = ARGV[1], tonumber(ARGV[3])
        if presented == prev and ARGV[2] == cur then
            redis.call('HSET', k, 'cur', cur)
            return {0, start, cur, iat}
        end
        if presented == cur then
            local now_s = math.floor(now / 1000)
            local exp = math.min(now_s + tonumber(ARGV[8]), tonumber(start) + tonumber(ARGV[9]))
            if exp <= now_s then return {6} end
            redis.call('HSET', k, 'cur', ARGV[2], 'prev', cur, 'iat', now_s, 'at', now,
                'who', ARGV[4], 'lease', now + tonumber(ARGV[7]), 'done', '0')
            redis.call('EXPIRE', k, math.max(exp - now_s, 1) + tonumber(ARGV[10]))
            return {0, start, ARGV[2], now_s}
        end
        if presented == prev then
            local age = now - tonumber(at)
            local grace = tonumber(ARGV[5])
            if grace > 0 and age <= grace then
                redis.call('HSET', k, 'cur', cur)
                return {3, start, cur, iat}
            end
            if done == '0' and who == ARGV[4] and age <= tonumber(ARGV[6]) then
                if now < tonumber(lease) then return {4} end
                redis.call('HSET', k, 'lease', now + tonumber(ARGV[7]))
                return {3, start, cur, iat}
            end
        end
        redis.call('HSET', k, 'revoked', '1')
        return {1}
        ",
    )
});

/// `KEYS[1]` the family record; `ARGV[1]` the successor whose answer is ready.
static DONE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('HGET', KEYS[1], 'cur') == ARGV[1] then
            redis.call('HSET', KEYS[1], 'done', '1')
        end
        return 0
        ",
    )
});

/// `KEYS[1]` the family record. Revokes it if it exists (an absent record refuses anyway).
static REVOKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        if redis.call('EXISTS', KEYS[1]) == 1 then
            redis.call('HSET', KEYS[1], 'revoked', '1')
        end
        return 0
        ",
    )
});

/// The token of a family that may be issued now: minted by [`crate::tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    pub jti: String,
    /// When it was (or is) issued, Unix s.
    pub iat: u64,
    /// When the family started, Unix s.
    pub start: u64,
}

/// What the store says about a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// First use: issue this new successor.
    Rotated(Successor),
    /// A duplicate within the grace window, or a retry of a lost answer: issue the existing
    /// successor again (the same refresh token).
    Again(Successor),
    /// Spent before: the family has just been revoked.
    Reused,
    /// The family was revoked before (logout or earlier reuse).
    Revoked,
    /// The store has no record of this family: expired, or lost with the store's data.
    Unknown,
    /// The family has reached `REFRESH_MAX_TTL_SECS`: no successor; log in again.
    Ended,
}

/// The lifetimes and windows the decisions depend on.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub refresh_ttl: u64,
    pub family_max_ttl: u64,
    pub grace_ms: u64,
    pub retry_window_secs: u64,
}

impl Rules {
    /// When a token of the family issued at `iat` expires: its own lifetime, never past the
    /// family's end.
    pub fn expiry(&self, iat: u64, start: u64) -> u64 {
        (iat + self.refresh_ttl).min(start + self.family_max_ttl)
    }

    /// How long a record whose newest token expires at `exp` must stay: until no token of the
    /// family can be accepted (plus the verification leeway and a margin for a refresh racing the
    /// expiry), and no longer.
    fn record_ttl(exp: u64, now: u64) -> u64 {
        exp.saturating_sub(now).max(1) + MAX_LEEWAY_SECS + 60
    }
}

pub struct Families<'a> {
    store: &'a Store,
    rules: Rules,
}

impl<'a> Families<'a> {
    pub fn new(store: &'a Store, rules: Rules) -> Self {
        Families { store, rules }
    }

    /// Record a new family whose first token is `jti`, issued at `now`.
    pub async fn create(&self, family: &str, jti: &str, now: u64) -> Result<(), ApiError> {
        let ttl = Rules::record_ttl(self.rules.expiry(now, now), now);
        self.store
            .eval_acked::<i64>(CREATE.key(record_key(family)).arg(jti).arg(now).arg(ttl))
            .await
            .map(drop)
    }

    /// Decide what a refresh with token `jti` of `family`, from client `who`, gets; `successor`
    /// is the id the next token takes if this is a first use. A duplicate that arrives while the
    /// winning rotation's answer is being produced waits (at most the lease) for the verdict.
    pub async fn rotate(
        &self,
        family: &str,
        jti: &str,
        successor: &str,
        who: &str,
    ) -> Result<Decision, ApiError> {
        let deadline = tokio::time::Instant::now() + ANSWER_LEASE + Duration::from_secs(1);
        loop {
            let reply: Vec<redis::Value> = self
                .store
                .eval_acked(
                    ROTATE
                        .key(record_key(family))
                        .arg(jti)
                        .arg(successor)
                        .arg(now_millis())
                        .arg(who)
                        .arg(self.rules.grace_ms)
                        .arg(self.rules.retry_window_secs * 1000)
                        .arg(ANSWER_LEASE.as_millis() as u64)
                        .arg(self.rules.refresh_ttl)
                        .arg(self.rules.family_max_ttl)
                        .arg(MAX_LEEWAY_SECS + 60),
                )
                .await?;
            match decode(&reply)? {
                Some(decision) => return Ok(decision),
                None if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(PENDING_POLL).await
                }
                None => return Err(ApiError::StoreUnavailable),
            }
        }
    }

    /// The answer carrying `successor` is ready to send: a retry of it is reuse from now on.
    pub async fn answered(&self, family: &str, successor: &str) -> Result<(), ApiError> {
        self.store
            .eval::<i64>(DONE.key(record_key(family)).arg(successor))
            .await
            .map(drop)
    }

    /// Revoke the family (logout). Idempotent.
    pub async fn revoke(&self, family: &str) -> Result<(), ApiError> {
        self.store
            .eval_acked::<i64>(&REVOKE.key(record_key(family)))
            .await
            .map(drop)
    }
}

/// The script's reply as a decision; `None` for "the answer is still being produced".
fn decode(reply: &[redis::Value]) -> Result<Option<Decision>, ApiError> {
    let int = |i: usize| -> Option<i64> {
        match reply.get(i)? {
            redis::Value::Int(n) => Some(*n),
            redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    };
    let text = |i: usize| -> Option<String> {
        match reply.get(i)? {
            redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        }
    };
    let successor = || -> Result<Successor, ApiError> {
        let parts = (text(2), int(3), int(1));
        match parts {
            (Some(jti), Some(iat), Some(start)) if iat >= 0 && start >= 0 => Ok(Successor {
                jti,
                iat: iat as u64,
                start: start as u64,
            }),
            _ => Err(ApiError::internal("family record unreadable")),
        }
    };
    Ok(Some(match int(0) {
        Some(0) => Decision::Rotated(successor()?),
        Some(1) => Decision::Reused,
        Some(2) => Decision::Revoked,
        Some(3) => Decision::Again(successor()?),
        Some(4) => return Ok(None),
        Some(5) => Decision::Unknown,
        Some(6) => Decision::Ended,
        _ => return Err(ApiError::internal("family script gave an unknown reply")),
    }))
}

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn record_key(family: &str) -> String {
    format!("rt:{{{family}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        refresh_ttl: 100,
        family_max_ttl: 250,
        grace_ms: 0,
        retry_window_secs: 30,
    };

    #[test]
    fn the_record_key_carries_the_family_hash_tag() {
        assert_eq!(record_key("F"), "rt:{F}");
    }

    #[test]
    fn rotation_never_carries_a_token_past_the_family_maximum() {
        assert_eq!(RULES.expiry(1000, 1000), 1100);
        assert_eq!(RULES.expiry(1200, 1000), 1250, "capped at start + max");
        assert_eq!(RULES.expiry(1249, 1000), 1250);
    }

    #[test]
    fn replies_decode_to_decisions() {
        use redis::Value::{BulkString, Int};
        let rotated = [
            Int(0),
            BulkString(b"1000".to_vec()),
            BulkString(b"J2".to_vec()),
            Int(1010),
        ];
        assert_eq!(
            decode(&rotated).unwrap(),
            Some(Decision::Rotated(Successor {
                jti: "J2".into(),
                iat: 1010,
                start: 1000
            }))
        );
        assert_eq!(decode(&[Int(4)]).unwrap(), None);
        assert_eq!(decode(&[Int(5)]).unwrap(), Some(Decision::Unknown));
        assert!(decode(&[Int(9)]).is_err());
        assert!(
            decode(&[Int(0)]).is_err(),
            "a rotation must name its successor"
        );
    }
}
