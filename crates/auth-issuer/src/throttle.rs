//! Login throttling: a brake on password guessing, shared by every issuer through Redis.
//!
//! Argon2id makes each guess expensive; this makes guessing slow. Failed logins are counted per
//! username and per client address in fixed windows (`LOGIN_WINDOW_SECS`, default 60 s): after
//! `LOGIN_MAX_FAILURES_PER_USER` (5) failures for one username, or
//! `LOGIN_MAX_FAILURES_PER_ADDR` (20) from one address, both login routes answer
//! `429 too_many_attempts` with `Retry-After` until the window closes. Only failures count, so a
//! user who types the password right is never slowed down by their own successes.
//!
//! The counters live in Redis so that N issuers enforce one limit, not N. A refused attempt is
//! answered before any password hashing, and the same way whether the user exists or not, so
//! the limit reveals nothing about which usernames exist. When Redis is unreachable the check
//! fails closed (503): an unthrottled login endpoint is exactly what an attacker would wait for.
//!
//! The per-user limit lets an attacker lock a known user out for a minute at a time; that is the
//! accepted price of the contract's rule (OWASP's "account lockout" trade-off), and why the lock
//! is short and lifts by itself.

use auth_core::error::ApiError;
use auth_core::store::Store;
use deadpool_redis::redis;
use std::net::IpAddr;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_user: u64,
    pub per_addr: u64,
    pub window_secs: u64,
}

/// Returns 0 when the attempt may proceed, otherwise the milliseconds until it may.
static CHECK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        for i, key in ipairs(KEYS) do
            local failures = tonumber(redis.call('GET', key) or '0')
            if failures >= tonumber(ARGV[i]) then
                return math.max(redis.call('PTTL', key), 1)
            end
        end
        return 0
        ",
    )
});

/// Count one failure against both keys; the first failure of a window starts its clock.
static RECORD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        for _, key in ipairs(KEYS) do
            if redis.call('INCR', key) == 1 then
                redis.call('EXPIRE', key, ARGV[1])
            end
        end
        return 0
        ",
    )
});

pub struct Throttle<'a> {
    store: &'a Store,
    limits: Limits,
}

impl<'a> Throttle<'a> {
    pub fn new(store: &'a Store, limits: Limits) -> Self {
        Throttle { store, limits }
    }

    /// Refuse with 429 when either counter is at its limit.
    pub async fn check(&self, username: &str, addr: IpAddr) -> Result<(), ApiError> {
        let wait_ms: u64 = self
            .store
            .eval(
                CHECK
                    .key(user_key(username))
                    .key(addr_key(addr))
                    .arg(self.limits.per_user)
                    .arg(self.limits.per_addr),
            )
            .await?;
        match wait_ms {
            0 => Ok(()),
            ms => Err(ApiError::TooManyAttempts {
                retry_after_secs: ms.div_ceil(1000),
            }),
        }
    }

    pub async fn record_failure(&self, username: &str, addr: IpAddr) -> Result<(), ApiError> {
        self.store
            .eval::<u64>(
                RECORD
                    .key(user_key(username))
                    .key(addr_key(addr))
                    .arg(self.limits.window_secs),
            )
            .await
            .map(|_| ())
    }
}

fn user_key(username: &str) -> String {
    format!("login:fail:user:{username}")
}

fn addr_key(addr: IpAddr) -> String {
    format!("login:fail:addr:{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_users_from_addresses() {
        assert_eq!(user_key("alice"), "login:fail:user:alice");
        assert_eq!(
            addr_key("10.0.0.1".parse().unwrap()),
            "login:fail:addr:10.0.0.1"
        );
        assert_ne!(user_key("10.0.0.1"), addr_key("10.0.0.1".parse().unwrap()));
    }
}
