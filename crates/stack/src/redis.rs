//! redis-server: the store for the refresh-token denylist and the sessions.
//!
//! A stack starts its own redis-server on its own port, so tests never share (or wipe) anyone
//! else's data, and stopping it is a real outage the tests can provoke
//! ([`crate::Stack::stop_redis`]). It is configured entirely on the command line:
//!
//! - `--bind 127.0.0.1 --protected-mode yes`: reachable from this machine only.
//! - `--save "" --appendonly no`: nothing written to disk; every start is empty. The data is
//!   short-lived by design (denylist entries and sessions expire), so losing it on restart is
//!   what a test of "redis went away" wants.
//! - `--daemonize no`: stay in the foreground, so the launcher is its parent and can stop it.
//!
//! Ready means: a TCP connection on which `PING` is answered with `+PONG`.

use crate::process::Process;
use crate::readiness::wait_until_ready;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The command line for a redis-server on 127.0.0.1:`port`.
pub fn command(redis_server: &Path, port: u16) -> Command {
    let mut command = Command::new(redis_server);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--protected-mode", "yes"])
        .args(["--loglevel", "warning"]);
    command
}

/// Starts redis-server on `port` with its output in `log_path` and waits until it answers PING.
pub async fn start(
    redis_server: &Path,
    port: u16,
    log_path: &Path,
    timeout: Duration,
) -> anyhow::Result<Process> {
    start_command(command(redis_server, port), port, log_path, timeout).await
}

/// [`start`] with a command line of the caller's (e.g. [`command`] wrapped into a cgroup by
/// [`crate::cgroup::CpuGroups::wrap`]) that makes redis listen on `port`.
pub async fn start_command(
    command: Command,
    port: u16,
    log_path: &Path,
    timeout: Duration,
) -> anyhow::Result<Process> {
    let mut process = Process::spawn("redis", command, log_path)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    wait_until_ready(&mut process, &format!("PING on {addr}"), timeout, || {
        ping(addr)
    })
    .await?;
    Ok(process)
}

/// True if redis at `addr` answers `PING` with `+PONG` within a second.
pub async fn ping(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        // The inline command form: redis accepts plain text lines as well as RESP arrays.
        stream.write_all(b"PING\r\n").await?;
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).await?;
        Ok::<bool, std::io::Error>(&reply == b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ports, programs};

    #[tokio::test]
    async fn starts_answers_ping_stops_and_starts_again_on_the_same_port() {
        let dir = tempfile::tempdir().unwrap();
        let redis_server = programs::redis_server().unwrap();
        let port = ports::free_port().unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = dir.path().join("redis.log");
        let timeout = Duration::from_secs(10);

        let mut redis = start(&redis_server, port, &log, timeout).await.unwrap();
        assert!(ping(addr).await);

        assert!(
            !redis.stop(Duration::from_secs(5)).await,
            "redis must stop on SIGTERM"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "port must refuse now"
        );
        assert!(!ping(addr).await);

        let _again = start(&redis_server, port, &log, timeout).await.unwrap();
        assert!(ping(addr).await);
    }
}
