//! Which client is this? The address the login limits count against.
//!
//! Behind nginx every TCP peer is nginx itself, so the real client address comes from the
//! `X-Real-IP` header nginx sets (replacing whatever the client sent). That header is believed
//! only when the TCP peer is a proxy we trust: by default loopback and private addresses, where
//! nginx runs in the local stack and in compose. A client reaching the issuer directly from a
//! public address cannot pick its own identity by sending the header.

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The client's address as far as rate limiting is concerned.
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let forwarded = parts
            .headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        Ok(ClientAddr(resolve(peer, forwarded)))
    }
}

/// The address as the login limits and the refresh retry window count it: an IPv4 address, or
/// the /64 of an IPv6 one (one IPv6 host usually holds a whole /64). An IPv4-mapped IPv6
/// address counts as the IPv4 address it carries.
pub fn bucket(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

fn resolve(peer: Option<IpAddr>, forwarded: Option<IpAddr>) -> IpAddr {
    let unspecified = IpAddr::from([0, 0, 0, 0]);
    match (peer, forwarded) {
        (Some(peer), Some(client)) if is_trusted_proxy(peer) => client,
        (Some(peer), _) => peer,
        (None, _) => unspecified,
    }
}

fn is_trusted_proxy(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        assert_eq!(
            resolve(Some(ip("127.0.0.1")), Some(ip("203.0.113.9"))),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(Some(ip("172.18.0.5")), Some(ip("203.0.113.9"))),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(Some(ip("198.51.100.7")), Some(ip("203.0.113.9"))),
            ip("198.51.100.7")
        );
        assert_eq!(resolve(Some(ip("127.0.0.1")), None), ip("127.0.0.1"));
    }
}
