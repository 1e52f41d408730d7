//! `<binary> healthcheck`: a service checking its own readiness.
//!
//! Slim container images have no curl, so each binary can probe itself: it sends
//! `GET /readyz` to its own `LISTEN_ADDR` over plain TCP and exits 0 on a 200, 1 otherwise.
//! Docker's `HEALTHCHECK` (and compose's `healthcheck`) run exactly that.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether `GET /readyz` on `listen` answers 200 within two seconds. A wildcard listen address
/// (`0.0.0.0`, `[::]`) is probed on loopback.
pub fn ready(listen: SocketAddr) -> bool {
    let mut target = listen;
    if target.ip().is_unspecified() {
        target.set_ip(match listen {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    probe(target).unwrap_or(false)
}

fn probe(target: SocketAddr) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(head.starts_with(b"HTTP/1.1 200"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_port_is_not_ready() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!ready(port));
    }

    #[test]
    fn a_200_is_ready_and_a_503_is_not() {
        for (answer, want) in [
            ("HTTP/1.1 200 OK", true),
            ("HTTP/1.1 503 Service Unavailable", false),
        ] {
            let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).unwrap();
                s.write_all(format!("{answer}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .unwrap();
            });
            assert_eq!(ready(addr), want, "{answer}");
            server.join().unwrap();
        }
    }
}
