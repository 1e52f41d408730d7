//! Finding the issuer's keys from the issuer URL alone (OpenID Connect Discovery 1.0, RFC 8414).
//!
//! A token replica needs the issuer's public keys (its JWKS). It can be told where they are
//! (`JWKS_URL`, `JWKS_FILE`), or, with neither set, it asks the issuer: it fetches
//! `<ISSUER_URL>/.well-known/openid-configuration` and reads `jwks_uri` from it. The issuer
//! serves that document (auth-issuer's `routes/discovery.rs`).
//!
//! The document is believed only if its `issuer` is *exactly* the configured `ISSUER_URL`, the
//! same string every token's `iss` must be (RFC 8414 section 3.3, OpenID Connect Discovery 4.3).
//! Not "the same after normalising": a trailing slash or `localhost` for `127.0.0.1` is a
//! mismatch. Otherwise a document fetched from the wrong place (a mistyped URL, another tenant's
//! issuer, a stale DNS name) could hand the replica keys of an issuer it was never meant to trust.
//! A mismatch is refused, never worked around: the replica holds no keys, stays not ready and
//! answers 503, and gives up (exits) once `DISCOVERY_TIMEOUT_SECS` has passed.
//!
//! ## When the public URL is not reachable from inside: `DISCOVERY_URL`
//!
//! `ISSUER_URL` is the issuer's public address, the one clients use (in compose
//! `http://127.0.0.1:8080`, nginx as the host sees it). Inside the container network that address
//! means the replica itself, so the replica must reach the issuer somewhere else
//! (`http://auth-issuer:8080`). `DISCOVERY_URL` says where: the document is then fetched from
//! `<DISCOVERY_URL>/.well-known/openid-configuration`, and its `issuer` must *still* equal
//! `ISSUER_URL`: where the document comes from does not change who it must describe.
//!
//! The `jwks_uri` in the document is public too (it is built from `ISSUER_URL`). So, only when
//! `DISCOVERY_URL` is set, a `jwks_uri` under `ISSUER_URL` is fetched at the same place under
//! `DISCOVERY_URL` instead (`http://127.0.0.1:8080/.well-known/jwks.json` becomes
//! `http://auth-issuer:8080/.well-known/jwks.json`). That trusts nothing new: the keys come from
//! the very place the operator named for the document. A `jwks_uri` elsewhere (another host) is
//! used as it is, and must then be reachable. Without `DISCOVERY_URL`, `jwks_uri` is always used as
//! it is, as any OpenID client would.
//!
//! Discovery happens once, at start-up; the JWKS found is then refreshed as usual
//! (`replica_keys.rs`). A changed `jwks_uri` is noticed on the next restart.

use crate::settings::Discovery;
use anyhow::Context;
use serde::Deserialize;

/// Where the document is, under the issuer URL (OpenID Connect Discovery 4.1: appended to it).
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The two fields of the discovery document a replica uses; the rest are ignored.
#[derive(Debug, Deserialize)]
pub struct Document {
    pub issuer: String,
    pub jwks_uri: String,
}

impl Discovery {
    /// Where the document is fetched: under `DISCOVERY_URL` when set, else under `ISSUER_URL`.
    pub fn document_url(&self) -> String {
        let base = self.reach_at.as_deref().unwrap_or(&self.issuer);
        format!("{}{WELL_KNOWN}", base.trim_end_matches('/'))
    }

    /// The JWKS URL to fetch, from a document fetched at [`Self::document_url`], or an error
    /// when the document must not be trusted.
    pub fn jwks_url(&self, document: &Document) -> anyhow::Result<String> {
        anyhow::ensure!(
            document.issuer == self.issuer,
            "the discovery document at {} names issuer {:?}, not ISSUER_URL {:?}: its keys are \
             not trusted (RFC 8414 3.3 requires them to be identical)",
            self.document_url(),
            document.issuer,
            self.issuer
        );
        let url = reqwest::Url::parse(&document.jwks_uri)
            .with_context(|| format!("jwks_uri {:?} is not a URL", document.jwks_uri))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https"),
            "jwks_uri {:?} is neither http nor https",
            document.jwks_uri
        );
        let Some(reach_at) = &self.reach_at else {
            return Ok(document.jwks_uri.clone());
        };
        // Only a path under ISSUER_URL moves: "http://a.example" must not match
        // "http://a.example.evil/" (another host) nor "http://a.example@evil/" (a user name).
        let issuer = self.issuer.trim_end_matches('/');
        match document.jwks_uri.strip_prefix(issuer) {
            Some(rest) if rest.starts_with('/') => {
                Ok(format!("{}{rest}", reach_at.trim_end_matches('/')))
            }
            _ => Ok(document.jwks_uri.clone()),
        }
    }

    /// Fetch the document and return the JWKS URL it leads to (see [`Self::jwks_url`]).
    pub async fn find_jwks(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let url = self.document_url();
        let document: Document = http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("fetching {url}"))?
            .error_for_status()?
            .json()
            .await
            .with_context(|| format!("{url} is not a discovery document"))?;
        self.jwks_url(&document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PUBLIC: &str = "http://127.0.0.1:8080";

    fn discovery(issuer: &str, reach_at: Option<&str>) -> Discovery {
        Discovery {
            issuer: issuer.into(),
            reach_at: reach_at.map(Into::into),
            timeout: Duration::from_secs(60),
        }
    }

    fn document(issuer: &str, jwks_uri: &str) -> Document {
        Document {
            issuer: issuer.into(),
            jwks_uri: jwks_uri.into(),
        }
    }

    #[test]
    fn the_document_is_under_the_discovery_url_if_set_else_the_issuer_url() {
        assert_eq!(
            discovery(PUBLIC, None).document_url(),
            "http://127.0.0.1:8080/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery(PUBLIC, Some("http://auth-issuer:8080/")).document_url(),
            "http://auth-issuer:8080/.well-known/openid-configuration"
        );
    }

    #[test]
    fn an_issuer_that_is_not_exactly_issuer_url_is_refused() {
        let jwks = "http://127.0.0.1:8080/.well-known/jwks.json";
        for other in [
            "http://127.0.0.1:8080/",
            "http://localhost:8080",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8081",
            "",
        ] {
            let error = discovery(PUBLIC, None)
                .jwks_url(&document(other, jwks))
                .unwrap_err();
            assert!(
                error.to_string().contains("not trusted"),
                "{other:?}: {error}"
            );
            // Where the document was fetched from does not excuse a mismatch.
            let reached = discovery(PUBLIC, Some("http://auth-issuer:8080"));
            assert!(
                reached.jwks_url(&document(other, jwks)).is_err(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn without_a_discovery_url_jwks_uri_is_used_as_it_is() {
        let jwks = "https://keys.example/jwks.json";
        let found = discovery(PUBLIC, None).jwks_url(&document(PUBLIC, jwks));
        assert_eq!(found.unwrap(), jwks);
    }

    #[test]
    fn with_a_discovery_url_only_a_jwks_uri_under_the_issuer_moves_there() {
        let reached = discovery(PUBLIC, Some("http://auth-issuer:8080"));
        let moved = reached.jwks_url(&document(
            PUBLIC,
            "http://127.0.0.1:8080/.well-known/jwks.json",
        ));
        assert_eq!(
            moved.unwrap(),
            "http://auth-issuer:8080/.well-known/jwks.json"
        );
        // URLs that merely start with the issuer's characters are other servers: not moved.
        for elsewhere in [
            "http://127.0.0.1:8080@keys.example/.well-known/jwks.json",
            "https://keys.example/jwks.json",
        ] {
            let found = reached.jwks_url(&document(PUBLIC, elsewhere));
            assert_eq!(found.unwrap(), elsewhere);
        }
        let named = discovery("http://auth.example", Some("http://auth-issuer:8080"));
        let elsewhere = "http://auth.example.evil/jwks.json";
        let found = named.jwks_url(&document("http://auth.example", elsewhere));
        assert_eq!(found.unwrap(), elsewhere);
    }

    #[test]
    fn a_jwks_uri_that_is_not_an_http_url_is_refused() {
        for bad in [
            "/.well-known/jwks.json",
            "file:///etc/jwks.json",
            "not a url",
        ] {
            let found = discovery(PUBLIC, None).jwks_url(&document(PUBLIC, bad));
            assert!(found.is_err(), "{bad:?}");
        }
    }
}
