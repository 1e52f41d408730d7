//! What a token says.
//!
//! Two kinds of JWT leave the issuer, and they must never be mistaken for each other:
//!
//! - The **access token** follows the RFC 9068 profile: header `typ` is `at+jwt`, and it carries
//!   `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`, plus the two claims the API
//!   needs (`name`, `roles`). It lives minutes and goes with every API call.
//! - The **refresh token** has `typ` `rt+jwt` and `aud` equal to the issuer itself, so no replica
//!   accepts it; it carries `fam`, the family every rotated successor shares. It lives days and
//!   travels only to `/auth/refresh`.
//!
//! Anything in here is readable by whoever holds the token (it is only base64url), so nothing
//! secret ever goes in a claim.

use serde::{Deserialize, Serialize};

/// Header `typ` of an access token (RFC 9068 section 2.1).
pub const ACCESS_TYP: &str = "at+jwt";
/// The long form of the same media type, which RFC 9068 also allows.
pub const ACCESS_TYP_LONG: &str = "application/at+jwt";
/// Header `typ` of a refresh token. Distinct from the access token's, so one can never pass for
/// the other (RFC 8725 section 3.11, explicit typing).
pub const REFRESH_TYP: &str = "rt+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub jti: String,
    pub client_id: String,
    pub name: String,
    pub roles: Vec<String>,
}

/// The names of every [`AccessClaims`] field, as they appear in the token: what the issuer's
/// discovery document lists as `claims_supported`. A unit test keeps it equal to the struct.
pub const ACCESS_CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "name",
    "roles",
];

/// The claims of a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub sub: String,
    /// Always the issuer's own URL: the refresh token is for the issuer alone.
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    /// The family: every refresh token descended from one login shares it, so reuse of any one
    /// of them can revoke them all.
    pub fam: String,
}

/// Who is calling, as the API handlers see it: the same in jwt mode and in session mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub sub: String,
    pub name: String,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl From<AccessClaims> for Caller {
    fn from(c: AccessClaims) -> Self {
        Caller {
            sub: c.sub,
            name: c.name,
            roles: c.roles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_exp_is_not_a_valid_access_claim_set() {
        // The CVE-2026-25537 class: a library that skips a claim it cannot read as a number.
        // Typed claims refuse the whole token instead.
        let json = r#"{"iss":"i","sub":"s","aud":"a","exp":"9999999999","iat":1,"nbf":1,
            "jti":"j","client_id":"c","name":"n","roles":[]}"#;
        assert!(serde_json::from_str::<AccessClaims>(json).is_err());
    }

    #[test]
    fn access_claims_names_every_field_of_the_struct() {
        let claims = AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "j".into(),
            client_id: "c".into(),
            name: "n".into(),
            roles: vec![],
        };
        let json = serde_json::to_value(&claims).unwrap();
        let mut fields: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut named = ACCESS_CLAIMS.to_vec();
        fields.sort_unstable();
        named.sort_unstable();
        assert_eq!(fields, named);
    }

    #[test]
    fn caller_roles() {
        let c = Caller {
            sub: "bob".into(),
            name: "Bob".into(),
            roles: vec!["user".into(), "recruiter".into()],
        };
        assert!(c.has_role("recruiter"));
        assert!(!c.has_role("admin"));
    }
}
