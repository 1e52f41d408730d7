//! The `/cluster` locations: the running cluster, read-only, for the demo page's diagram.
//!
//! The page draws every issuer and replica that runs, not only those that happened to answer it.
//! nginx is the one part that knows them all (its upstream lists), so the same renderer that
//! writes the `server` lines also writes, into the template's `CLUSTER_ROUTES` placeholder:
//!
//! ```text
//! GET /cluster              {"issuers":1,"token":2,"session":2}   how many of each kind
//! GET /cluster/issuer/<n>   the n-th issuer's discovery document (its id is in X-Issuer)
//! GET /cluster/token/<n>    the n-th token replica's GET /api/stats
//! GET /cluster/session/<n>  the n-th session replica's GET /sapi/stats
//! ```
//!
//! Every one of them is read-only by construction: a constant, or a proxy to one fixed GET route
//! that takes no credentials (any other method gets that route's 405). None is retried (a
//! replica that is down is shown down: nginx's 502), and each costs one small request. What
//! they reveal, the number of processes and their ids, is already sent in `X-Replica` and
//! `X-Issuer` on every answer: acceptable for a stack whose purpose is to show its topology.
//! docker compose's nginx entrypoint (deploy/docker/nginx-entrypoint.sh, `cluster_routes`)
//! writes the same locations from the addresses Docker's DNS gives it, so the page follows
//! `--scale`.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// The `location` blocks for a cluster of these issuers and replicas, indented to sit inside
/// the `server { }` block.
pub fn cluster_routes(
    issuers: &[SocketAddr],
    jwt: &[SocketAddr],
    session: &[SocketAddr],
) -> String {
    let mut out = format!(
        "location = /cluster {{\n            add_header Cache-Control no-store;\n            \
         return 200 '{{\"issuers\":{},\"token\":{},\"session\":{}}}';\n        }}",
        issuers.len(),
        jwt.len(),
        session.len()
    );
    let kinds = [
        ("issuer", issuers, "/.well-known/openid-configuration"),
        ("token", jwt, "/api/stats"),
        ("session", session, "/sapi/stats"),
    ];
    for (kind, addrs, target) in kinds {
        for (index, addr) in addrs.iter().enumerate() {
            // Writing into a String cannot fail.
            let _ = write!(
                out,
                "\n        location = /cluster/{kind}/{n} {{\n            \
                 proxy_pass http://{addr}{target};\n            \
                 proxy_connect_timeout 1s;\n            \
                 proxy_next_upstream off;\n        }}",
                n = index + 1
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_location_per_process_and_the_counts() {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let text = cluster_routes(&[addr(1)], &[addr(2), addr(3)], &[]);
        assert!(
            text.contains(r#"return 200 '{"issuers":1,"token":2,"session":0}';"#),
            "{text}"
        );
        assert!(text.contains(
            "location = /cluster/issuer/1 {\n            proxy_pass http://127.0.0.1:1/.well-known/openid-configuration;"
        ));
        assert!(text.contains(
            "location = /cluster/token/2 {\n            proxy_pass http://127.0.0.1:3/api/stats;"
        ));
        assert!(!text.contains("/cluster/session/"), "{text}");
        assert_eq!(text.matches("proxy_next_upstream off;").count(), 3);
    }
}
