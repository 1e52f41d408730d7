//! redis-server: the store for refresh-token families, login counters and sessions.
//!
//! A stack starts its own redis-server on its own port, so tests never share (or wipe) anyone
//! else's data, and stopping it is a real outage the tests can provoke
//! ([`crate::Stack::stop_redis`]). It is configured entirely on the command line:
//!
//! - `--bind 127.0.0.1 --protected-mode yes`: reachable from this machine only.
//! - `--save ""`: never an RDB snapshot. Without persistence also `--appendonly no`: nothing is
//!   written to disk and every start is empty (redis runs in its log's directory, which belongs
//!   to the stack, so no stray `dump.rdb` is loaded). The data is short-lived by design (refresh
//!   entries and sessions expire), so losing it on restart is what a test of "redis went away"
//!   wants.
//! - With persistence ([`Persistence::AppendOnly`], `cargo xtask up --persist`):
//!   `--appendonly yes --appendfsync everysec --dir <dir>`. Every write is appended to a log
//!   (the AOF) in `<dir>`, which redis replays when it starts, so sessions and refresh-token
//!   families survive a restart. `everysec` means redis fsyncs the file once a second, and while
//!   an fsync is still running (a slow disk) it may hold new writes back for up to 2 s, already
//!   answered: a crash of redis-server or of the machine can lose up to about the last two
//!   seconds of writes; a clean stop (SIGTERM) loses nothing (redis fsyncs before it exits).
//!   `always` would fsync on every write, at the price of one disk flush per login.
//! - `--daemonize no`: stay in the foreground, so the launcher is its parent and can stop it.
//!
//! Ready means: a TCP connection on which `PING` is answered with `+PONG` (while it replays its
//! AOF, redis answers `-LOADING` instead, so "ready" also means "the data is back").
//!
//! **A Redis Cluster** ([`cluster_command`], [`create_cluster`]): several redis-servers, each
//! started with `--cluster-enabled yes` in a directory of its own (where it keeps `nodes.conf`,
//! what it knows of the cluster, and its data), then joined with `redis-cli --cluster create`,
//! which gives each master an equal share of the 16384 hash slots. No replicas: each master is a
//! shard, which is what the scaling experiment needs. The cluster is ready when every node says
//! `cluster_state:ok` (all slots covered, the nodes agree), which takes a few seconds of gossip
//! after the create.

use crate::process::Process;
use crate::readiness::wait_until_ready;
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where redis keeps its data between starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// Nowhere: every start is empty.
    None,
    /// An append-only file in this directory (created if missing), fsynced once a second.
    AppendOnly(PathBuf),
}

/// The command line for a redis-server on 127.0.0.1:`port`.
pub fn command(redis_server: &Path, port: u16, persistence: &Persistence) -> Command {
    let mut command = Command::new(redis_server);
    command
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""]);
    match persistence {
        Persistence::None => {
            command.args(["--appendonly", "no"]);
        }
        Persistence::AppendOnly(dir) => {
            command
                .args(["--appendonly", "yes", "--appendfsync", "everysec"])
                .arg("--dir")
                .arg(dir);
        }
    }
    command
        .args(["--daemonize", "no", "--protected-mode", "yes"])
        .args(["--loglevel", "warning"]);
    command
}

/// [`command`] for one node of a Redis Cluster, keeping `nodes.conf` (and, without persistence,
/// nothing else) in `dir`, its own directory. With persistence, `dir` must be its data directory.
pub fn cluster_command(
    redis_server: &Path,
    port: u16,
    persistence: &Persistence,
    dir: &Path,
) -> Command {
    let mut command = command(redis_server, port, persistence);
    if *persistence == Persistence::None {
        command.arg("--dir").arg(dir);
    }
    command
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        // How long a node may not answer before the others mark it failed. Short: a stack
        // that stops a node on purpose wants the others to notice.
        .args(["--cluster-node-timeout", "2000"])
        .current_dir(dir);
    command
}

/// Joins the (running, empty) nodes at `addrs` into one cluster of masters with `redis-cli
/// --cluster create`, and waits until every node reports `cluster_state:ok`.
pub async fn create_cluster(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<()> {
    let redis_cli = redis_cli()?;
    let mut create = tokio::process::Command::new(&redis_cli);
    create.args(["--cluster", "create"]);
    create.args(addrs.iter().map(SocketAddr::to_string));
    create.args(["--cluster-replicas", "0", "--cluster-yes"]);
    let output = tokio::time::timeout(timeout, create.output())
        .await
        .context("redis-cli --cluster create did not finish in time")??;
    anyhow::ensure!(
        output.status.success(),
        "redis-cli --cluster create failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    wait_until_cluster_ok(addrs, timeout).await
}

/// Waits until every node at `addrs` reports `cluster_state:ok`.
pub async fn wait_until_cluster_ok(addrs: &[SocketAddr], timeout: Duration) -> anyhow::Result<()> {
    let redis_cli = redis_cli()?;
    let deadline = tokio::time::Instant::now() + timeout;
    for addr in addrs {
        while !cluster_ok(&redis_cli, *addr).await {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "the Redis Cluster node on {addr} did not reach cluster_state:ok within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn redis_cli() -> anyhow::Result<std::path::PathBuf> {
    crate::programs::find(
        "redis-cli",
        r#"install it with "apt-get install redis-tools" (redis-server brings it)"#,
    )
}

/// Whether the node at `addr` answers `CLUSTER INFO` with `cluster_state:ok`.
async fn cluster_ok(redis_cli: &Path, addr: SocketAddr) -> bool {
    let mut info = tokio::process::Command::new(redis_cli);
    info.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["cluster", "info"]);
    match tokio::time::timeout(Duration::from_secs(2), info.output()).await {
        Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line.trim() == "cluster_state:ok"),
        _ => false,
    }
}

/// Creates the data directory of `persistence`, if it has one: redis refuses to start with a
/// `--dir` that does not exist.
pub fn prepare(persistence: &Persistence) -> anyhow::Result<()> {
    if let Persistence::AppendOnly(dir) = persistence {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    Ok(())
}

/// Deletes what redis has written to disk under `persistence` (nothing to do without one), so
/// the next start is empty. Only while redis is stopped: a running redis keeps its files open.
pub fn forget(persistence: &Persistence) -> anyhow::Result<()> {
    if let Persistence::AppendOnly(dir) = persistence
        && dir.exists()
    {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    Ok(())
}

/// Starts redis-server on `port` (with its data dir made, if it has one) with its output in
/// `log_path` and waits until it answers PING.
pub async fn start(
    redis_server: &Path,
    port: u16,
    persistence: &Persistence,
    log_path: &Path,
    timeout: Duration,
) -> anyhow::Result<Process> {
    prepare(persistence)?;
    let command = command(redis_server, port, persistence);
    start_command(command, port, log_path, timeout).await
}

/// [`start`] with a command line of the caller's (e.g. [`command`] wrapped into a cgroup by
/// [`crate::cgroup::CpuGroups::wrap`]) that makes redis listen on `port`.
pub async fn start_command(
    command: Command,
    port: u16,
    log_path: &Path,
    timeout: Duration,
) -> anyhow::Result<Process> {
    // redis reads (and, as a replica, writes) `dump.rdb` in its working directory when it has
    // no `--dir`: run it in its log's directory, which belongs to this stack, never in the
    // caller's (a source folder), where a stray dump from another run would be loaded at start.
    let mut command = command;
    if command.get_current_dir().is_none()
        && let Some(dir) = log_path.parent()
    {
        command.current_dir(dir);
    }
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

        let mut redis = start(&redis_server, port, &Persistence::None, &log, timeout)
            .await
            .unwrap();
        assert!(ping(addr).await);
        assert_eq!(send(addr, "SET k v").await, "+OK\r\n");

        assert!(
            !redis.stop(Duration::from_secs(5)).await,
            "redis must stop on SIGTERM"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "port must refuse now"
        );
        assert!(!ping(addr).await);

        let _again = start(&redis_server, port, &Persistence::None, &log, timeout)
            .await
            .unwrap();
        assert!(ping(addr).await);
        assert_eq!(
            send(addr, "GET k").await,
            "$-1\r\n",
            "without persistence: empty"
        );
    }

    /// With an append-only file, what was written before a clean stop is there after the next
    /// start; once the files are forgotten, the next start is empty again.
    #[tokio::test]
    async fn with_an_append_only_file_data_survives_a_restart_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let redis_server = programs::redis_server().unwrap();
        let port = ports::free_port().unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = dir.path().join("redis.log");
        let persistence = Persistence::AppendOnly(dir.path().join("data"));
        let timeout = Duration::from_secs(10);
        let start = async || {
            start(&redis_server, port, &persistence, &log, timeout)
                .await
                .unwrap()
        };

        let mut redis = start().await;
        assert_eq!(send(addr, "SET k v").await, "+OK\r\n");
        assert!(
            !redis.stop(Duration::from_secs(5)).await,
            "stops on SIGTERM"
        );

        let mut redis = start().await;
        assert_eq!(
            send(addr, "GET k").await,
            "$1\r\nv\r\n",
            "kept across a restart"
        );
        assert!(
            !redis.stop(Duration::from_secs(5)).await,
            "stops on SIGTERM"
        );

        forget(&persistence).unwrap();
        let _redis = start().await;
        assert_eq!(send(addr, "GET k").await, "$-1\r\n", "forgotten: empty");
    }

    /// Three nodes joined into a cluster: every node reports the slots covered, and a key
    /// written through one node is refused by a node that does not hold its slot (MOVED).
    #[tokio::test]
    async fn three_nodes_become_one_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let redis_server = programs::redis_server().unwrap();
        let timeout = Duration::from_secs(30);
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..3 {
            let port = ports::free_port().unwrap();
            let node_dir = dir.path().join(format!("redis-{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let command = cluster_command(&redis_server, port, &Persistence::None, &node_dir);
            let log = node_dir.join("redis.log");
            nodes.push(start_command(command, port, &log, timeout).await.unwrap());
            addrs.push(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
        create_cluster(&addrs, timeout).await.unwrap();
        let replies = send_to_each(&addrs, "SET {k} v").await;
        let ok = replies.iter().filter(|r| *r == "+OK\r\n").count();
        let moved = replies.iter().filter(|r| r.starts_with("-MOVED")).count();
        assert_eq!((ok, moved), (1, 2), "{replies:?}");
    }

    async fn send_to_each(addrs: &[SocketAddr], line: &str) -> Vec<String> {
        let mut replies = Vec::new();
        for addr in addrs {
            replies.push(send(*addr, line).await);
        }
        replies
    }

    #[test]
    fn the_command_line_asks_for_an_fsync_every_second_only_with_persistence() {
        let args = |persistence: &Persistence| -> Vec<String> {
            command(Path::new("redis-server"), 6379, persistence)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let plain = args(&Persistence::None).join(" ");
        assert!(plain.contains("--appendonly no"), "{plain}");
        assert!(!plain.contains("--dir"), "{plain}");
        let persistent = args(&Persistence::AppendOnly(PathBuf::from("/data/redis"))).join(" ");
        assert!(
            persistent.contains("--appendonly yes --appendfsync everysec --dir /data/redis"),
            "{persistent}"
        );
        let persistent = args(&Persistence::AppendOnly(PathBuf::from("/data/redis")));
        assert!(
            persistent.windows(2).any(|w| w == ["--save", ""]),
            "no RDB snapshots: {persistent:?}"
        );
    }

    /// One inline command (`SET k v`) and its raw RESP reply: a simple line (`+OK`), or a bulk
    /// string (`$1` and the value on the next line; `$-1` is nil).
    async fn send(addr: SocketAddr, line: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        let mut reply = Vec::new();
        let complete = |reply: &[u8]| {
            let lines = reply.windows(2).filter(|w| w == b"\r\n").count();
            let bulk = reply.first() == Some(&b'$') && !reply.starts_with(b"$-1");
            lines >= if bulk { 2 } else { 1 }
        };
        while !complete(&reply) {
            let mut chunk = [0u8; 256];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "redis closed the connection after {reply:?}");
            reply.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8(reply).unwrap()
    }
}
