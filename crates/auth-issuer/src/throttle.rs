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
//! **The limit holds under concurrency.** "Check the counter, hash, then count the failure" lets
//! every guess that arrives before the first failure is recorded through: a burst of N guesses
//! gets N password checks. So an attempt *reserves* its place first: one script refuses when a
//! counter is at its limit and otherwise counts the attempt, atomically. Only then is the
//! password hashed. A success gives its reservation back (only failures count); a failure keeps
//! it. N concurrent guesses for one user therefore get at most the limit of password checks.
//!
//! **One hash slot.** `RESERVE` and `RELEASE` touch a user's counter and an address's counter at
//! once, and a Redis Cluster runs a script only when all its keys live in one hash slot (one
//! node). So every login counter carries the same hash tag, `{fail}`
//! (`login:{fail}:user:<name>`, `login:{fail}:addr:<address>`): Redis hashes only what is between
//! the first braces, so the counters all land in one slot, whatever the user name holds. That puts
//! every login counter on one node of a cluster; the logins those counters guard each cost an
//! Argon2id hash on the issuer first, so that node sees a small fraction of the store's load.
//!
//! Addresses are counted per IPv4 address and per IPv6 /64: one IPv6 host usually holds a whole
//! /64, and counting per /128 would give it 2^64 budgets.
//!
//! The per-user limit lets an attacker lock a known user out for a minute at a time; that is the
//! accepted price of the contract's rule (OWASP's "account lockout" trade-off), and why the lock
//! is short and lifts by itself.

use crate::client_addr;
use auth_core::error::ApiError;
use auth_core::store::Store;
use std::net::IpAddr;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_user: u64,
    pub per_addr: u64,
    pub window_secs: u64,
}

/// Reserve an attempt against both keys: refused (the milliseconds until the window closes) when
/// either is at its limit, otherwise counted on both (returns 0). The first attempt of a window
/// starts its clock. `ARGV`: the per-user limit, the per-address limit, the window (s).
static RESERVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        for i, key in ipairs(KEYS) do
            local attempts = tonumber(redis.call('GET', key) or '0')
            if attempts >= tonumber(ARGV[i]) then
                return math.max(redis.call('PTTL', key), 1)
            end
        end
        for _, key in ipairs(KEYS) do
            if redis.call('INCR', key) == 1 then
                redis.call('EXPIRE', key, ARGV[3])
            end
        end
        return 0
        ",
    )
});

/// Give a reservation back (the attempt succeeded, or was never checked). Never below zero, and
/// never on a key that has expired meanwhile (`DECR` would recreate it without a TTL).
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
        for _, key in ipairs(KEYS) do
            if tonumber(redis.call('GET', key) or '0') > 0 then
                redis.call('DECR', key)
            end
        end
        return 0
        ",
    )
});

pub struct Throttle<'a> {
    store: &'a Store,
    limits: LoginLimits,
}

impl<'a> Throttle<'a> {
    pub fn new(store: &'a Store, limits: LoginLimits) -> Self {
        Throttle { store, limits }
    }

    /// Reserve an attempt, or refuse with 429 when either counter is at its limit. A reserved
    /// attempt counts as a failure unless [`Throttle::release`] gives it back.
    pub async fn reserve(&self, username: &str, addr: IpAddr) -> Result<(), ApiError> {
        let wait_ms: u64 = self
            .store
            .eval(
                RESERVE
                    .key(user_key(username))
                    .key(addr_key(addr))
                    .arg(self.limits.per_user)
                    .arg(self.limits.per_addr)
                    .arg(self.limits.window_secs),
            )
            .await?;
        match wait_ms {
            0 => Ok(()),
            ms => Err(ApiError::TooManyAttempts {
                retry_after_secs: ms.div_ceil(1000),
            }),
        }
    }

    /// Give a reserved attempt back: it succeeded, or it was never checked (overload).
    pub async fn release(&self, username: &str, addr: IpAddr) -> Result<(), ApiError> {
        self.store
            // Once only: a release sent again after Redis had run it would give back an attempt
            // that was never taken, and a guesser could then check one more password.
            .eval_once::<u64>(RELEASE.key(user_key(username)).key(addr_key(addr)))
            .await
            .map(drop)
    }
}

/// The hash tag every login counter shares (see the module comment).
const TAG: &str = "{fail}";

fn user_key(username: &str) -> String {
    format!("login:{TAG}:user:{username}")
}

/// The address's counter: per IPv4 address, per IPv6 /64 ([`client_addr::bucket`]).
fn addr_key(addr: IpAddr) -> String {
    format!("login:{TAG}:addr:{}", client_addr::bucket(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_users_from_addresses() {
        assert_eq!(user_key("alice"), "login:{fail}:user:alice");
        assert_eq!(
            addr_key("10.0.0.1".parse().unwrap()),
            "login:{fail}:addr:10.0.0.1"
        );
        assert_ne!(user_key("10.0.0.1"), addr_key("10.0.0.1".parse().unwrap()));
    }

    /// A cluster refuses a script whose keys hash to different slots (`CROSSSLOT`). Slots as the
    /// cluster spec computes them (CRC16 of the hash tag, mod 16384), by the redis crate.
    #[test]
    fn the_keys_of_each_script_share_one_hash_slot() {
        use redis::cluster_routing::Slot;
        assert_eq!(
            Slot::for_key("123456789"),
            Slot::new(12739).unwrap(),
            "the spec's example"
        );
        let users = ["alice", "bob", "{evil}", "x}y{z", "", "ünï"];
        let addrs = ["10.0.0.1", "2001:db8::1", "192.0.2.200"];
        let slot = Slot::for_key(user_key("alice"));
        for (user, addr) in users.iter().flat_map(|u| addrs.iter().map(move |a| (u, a))) {
            // RESERVE and RELEASE take the same two keys.
            let keys = [user_key(user), addr_key(addr.parse().unwrap())];
            for key in keys {
                assert_eq!(Slot::for_key(&key), slot, "{key}");
            }
        }
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64_prefix() {
        let key = |s: &str| addr_key(s.parse().unwrap());
        assert_eq!(
            key("2001:db8:1:2:aaaa::1"),
            "login:{fail}:addr:2001:db8:1:2::/64"
        );
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            key("2001:db8:1:2::")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "login:{fail}:addr:192.0.2.7");
    }
}
