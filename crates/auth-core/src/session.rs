//! The server-side session, as the issuer writes it and session-mode replicas read it.
//!
//! The client holds only a random id in the `sid` cookie: 256 bits from a CSPRNG, base64url (43
//! characters). Everything the id means lives in Redis under `session:<id>`, which is why every
//! request in session mode costs a store look-up, and why the store is shared by all replicas.
//!
//! Two lifetimes bound a session: an **idle** timeout, renewed on every use (the key's Redis TTL,
//! refreshed by `GETEX` in the same round trip as the read), and an **absolute** cap, stored in the
//! record and checked on every read, after which even an active session ends.

use crate::claims::Caller;
use serde::{Deserialize, Serialize};

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

/// The Redis key for session `id`.
pub fn key(id: &str) -> String {
    format!("session:{id}")
}

/// Whether `id` has the shape of an id we issue. Anything else is refused before it reaches
/// Redis: no odd bytes in keys, no look-up spent on garbage.
pub fn is_well_formed(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The first `sid` value in a `Cookie` header (browsers send the most specific path first).
pub fn id_from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
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
    fn the_sid_is_found_among_other_cookies() {
        assert_eq!(id_from_cookie_header("a=1; sid=abc; b=2"), Some("abc"));
        assert_eq!(id_from_cookie_header("sid=abc"), Some("abc"));
        assert_eq!(id_from_cookie_header("xsid=abc; sidx=1"), None);
        assert_eq!(id_from_cookie_header(""), None);
    }
}
