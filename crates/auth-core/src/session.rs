//! The server-side session, as the issuer writes it and session-mode replicas read it.
//!
//! The client holds only a random id in the `sid` cookie: 256 bits from a CSPRNG, base64url (43
//! characters). Everything the id means lives in Redis under `session:<id>`, which is why every
//! request in session mode costs a store look-up, and why the store is shared by all replicas.
//!
//! Two lifetimes bound a session: an **idle** timeout, renewed on every use (the key's Redis TTL),
//! and an **absolute** cap, stored in the record, after which even an active session ends. One
//! small Lua script ([`READ`]) reads the record and renews it in the same round trip, and never
//! renews past the cap: the TTL it sets is the smaller of the idle timeout and the time left, and
//! a record found past its cap is deleted on sight instead of being served.
//!
//! **The store holds no credential.** The key is `session:<SHA-256 of the id>`, not the id: a copy
//! of the store (a backup, a replica, a `KEYS *` by someone with read access) tells who is logged
//! in, but gives nobody a cookie that works. The id itself exists only in the user's cookie. A
//! plain hash is enough (no salt, no slow hash): the id is 256 random bits, not a password, so
//! there is nothing to guess.

use crate::claims::Caller;
use crate::error::ApiError;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// The cookie's name.
pub const COOKIE: &str = "sid";
/// Bytes of randomness in a session id.
pub const ID_BYTES: usize = 32;
/// Length of a session id in base64url without padding.
pub const ID_LEN: usize = 43;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub sub: String,
    pub name: String,
    pub roles: Vec<String>,
    /// Unix time after which the session is over, however active.
    pub expires_at: u64,
}

impl SessionRecord {
    pub fn into_caller(self) -> Caller {
        Caller {
            sub: self.sub,
            name: self.name,
            roles: self.roles,
        }
    }
}

/// The Redis key for session `id`: the SHA-256 of the id, never the id (see the module comment).
pub fn key(id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
    let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    format!("session:{hashed}")
}

/// Read session `KEYS[1]` and renew its idle timeout, in one round trip, never past its cap.
/// `ARGV[1]` is now (Unix seconds), `ARGV[2]` the idle timeout. Returns the record, or nil when
/// there is none or it has reached its absolute cap (then it is deleted on the spot).
///
/// Only the `expires_at` number is looked at, with a pattern rather than a JSON decode: the
/// script runs on every session request, inside Redis, where the store's CPU is the shared
/// resource the load test measures. A record whose cap cannot be read is treated as expired.
pub static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"
        local record = redis.call('GET', KEYS[1])
        if not record then return false end
        local cap = tonumber(string.match(record, '"expires_at":(%d+)'))
        local now = tonumber(ARGV[1])
        if not cap or cap <= now then
            redis.call('DEL', KEYS[1])
            return false
        end
        redis.call('EXPIRE', KEYS[1], math.min(tonumber(ARGV[2]), cap - now))
        return record
        "#,
    )
});

/// Whether `id` has the shape of an id we issue. Anything else is refused before it reaches
/// Redis: no odd bytes in keys, no look-up spent on garbage.
pub fn is_well_formed(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The first `sid` value in a `Cookie` header (browsers send the most specific path first).
fn id_from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

/// The session id a request carries: the first `sid` in its `Cookie` headers, refused unless it
/// is [well formed](is_well_formed). Session replicas and the issuer's logout both read the
/// cookie through this one function, so they agree on which cookie counts and which id is junk.
pub fn id_from_headers(headers: &HeaderMap) -> Result<&str, ApiError> {
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(id_from_cookie_header)
        .ok_or_else(|| ApiError::InvalidSession("no sid cookie".into()))?;
    if !is_well_formed(id) {
        return Err(ApiError::InvalidSession("malformed session id".into()));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_for_shape() {
        let id = crate::random_id(ID_BYTES).unwrap();
        assert_eq!(id.len(), ID_LEN);
        assert!(is_well_formed(&id));
        assert!(!is_well_formed("short"));
        assert!(!is_well_formed(&format!("{}*", &id[..42])));
        assert!(!is_well_formed(&format!("{id}x")));
    }

    #[test]
    fn the_store_key_is_a_hash_of_the_id_never_the_id() {
        let id = crate::random_id(ID_BYTES).unwrap();
        let key = key(&id);
        assert!(key.starts_with("session:"));
        assert!(!key.contains(&id));
        assert_eq!(
            key,
            super::key(&id),
            "the same id always finds the same record"
        );
        assert_ne!(key, super::key(&crate::random_id(ID_BYTES).unwrap()));
    }

    #[test]
    fn malformed_or_missing_session_ids_are_refused_before_any_look_up() {
        let headers = |cookie: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, cookie.parse().unwrap());
            headers
        };
        let err = id_from_headers(&headers("sid=../../etc")).unwrap_err();
        assert!(matches!(err, ApiError::InvalidSession(_)));
        assert!(id_from_headers(&headers("other=1")).is_err());
        let id = crate::random_id(ID_BYTES).unwrap();
        assert_eq!(
            id_from_headers(&headers(&format!("a=1; sid={id}"))).unwrap(),
            id
        );
    }

    #[test]
    fn the_sid_is_found_among_other_cookies() {
        assert_eq!(id_from_cookie_header("a=1; sid=abc; b=2"), Some("abc"));
        assert_eq!(id_from_cookie_header("sid=abc"), Some("abc"));
        assert_eq!(id_from_cookie_header("xsid=abc; sidx=1"), None);
        assert_eq!(id_from_cookie_header(""), None);
    }
}
