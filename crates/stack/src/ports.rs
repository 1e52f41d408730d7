//! Picking TCP ports for the processes of a stack.
//!
//! Every process listens on its own port on 127.0.0.1. Fixed port numbers would make two stacks
//! (two tests running in parallel, or a test while `cargo xtask up` runs) collide, so a stack asks
//! the operating system instead: binding to port 0 makes the kernel choose a port that is free
//! right now. We read the number, close the socket, and hand the number to the child process,
//! which binds it a moment later.
//!
//! There is a small window in which something else could take that port; in practice the kernel
//! hands out ports in a rotating order, so the window is harmless. One case is not harmless: two
//! stacks in the same test binary asking at the same moment could be told the same number, since
//! the first socket is already closed. A process-wide list of ports already handed out rules that
//! out.

use anyhow::{Context, bail};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;

/// Ports this process has already handed out (never reused while it runs).
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A TCP port on 127.0.0.1 that is free now and was not handed out before by this process.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("cannot bind a TCP socket on 127.0.0.1")?
            .port();
        // A poisoned lock only means another thread panicked while holding it; the set is fine.
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    bail!("no free TCP port found on 127.0.0.1 after 100 tries")
}

/// A free address on 127.0.0.1 (see [`free_port`]).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?)))
}

/// Fails with a clear message when `addr` cannot be listened on (usually: already in use).
///
/// Used for a fixed address such as 127.0.0.1:8080, so that the user hears "port in use" before
/// waiting for a build, instead of reading it later in nginx's log.
pub fn ensure_free(addr: SocketAddr) -> anyhow::Result<()> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AddrInUse => bail!(
            "{addr} is already in use (another `cargo xtask up`? `ss -ltnp 'sport = :{}'` shows \
             which process has it)",
            addr.port()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let unique: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn a_port_in_use_is_reported_as_such() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let err = ensure_free(addr).unwrap_err().to_string();
        assert!(err.contains("already in use"), "{err}");
        drop(listener);
        ensure_free(addr).unwrap();
    }
}
