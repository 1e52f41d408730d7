//! The Redis store: one shared, multiplexed connection (or a Redis Cluster client) per process.
//!
//! The issuer keeps refresh-token families, login counters and sessions here; session replicas read
//! sessions from here on every request. Four rules shape this module:
//!
//! - **No cap but Redis.** Every request of a process shares one multiplexed connection (the redis
//!   crate's [`ConnectionManager`]), or, for a Redis Cluster, the crate's cluster client, which
//!   holds one multiplexed connection per node. Commands from concurrent requests are written
//!   back to back onto it and their replies matched up in order, so a replica has as many
//!   commands in flight as it has requests. (A pool that lends each request a connection of its
//!   own caps the commands in flight at the pool's size: the next request waits for a
//!   connection, not for Redis.)
//! - **Fail closed, fast.** Every operation has a deadline. When Redis is down or slow, callers
//!   get [`ApiError::StoreUnavailable`] (a 503) within about a second, never a hang and never a
//!   token issued unchecked.
//! - **Recover by itself.** When the connection dies (Redis restarted, the network dropped it),
//!   the connection manager starts a new one in the background, and the next commands go out on
//!   it; while Redis is down, each attempt fails at once, so the service works again with no
//!   restart as soon as Redis is back. A request that was on the dead connection is sent once
//!   more on the new one, where that is safe (see [`Store::exchange`]), so a restart costs no
//!   503.
//! - **One round trip per operation, counted.** Nothing is sent but the operation itself (no
//!   `PING` before use: a broken connection shows itself on use instead). Every command sent is
//!   counted in the `authscale_redis_commands_total` metric (health probes excepted), which is
//!   how the tests show "1 per request for sessions, 0 for tokens".
//!
//! **Single node or cluster** ([`Target`]): `REDIS_URL` names one Redis; `REDIS_CLUSTER_NODES`
//! (a comma-separated list of URLs) names some nodes of a Redis Cluster, from which the client
//! learns the rest and which node holds which hash slot. A command goes to the node holding its
//! key's slot, so every script that touches several keys names keys of one slot (a shared
//! `{hash tag}`, see the scripts' modules); Redis refuses a script whose keys live on different
//! nodes.
//!
//! Redis replicates asynchronously: a primary that fails over to a replica may take its last
//! writes with it. For the writes a later request relies on (a refresh-token rotation, a
//! revocation, a new session) [`Store::eval_acked`] and [`Store::query_acked`] can follow the
//! write with `WAIT`, pipelined behind it on the same connection, and fail closed when fewer
//! replicas than `REDIS_WAIT_REPLICAS` confirm it in time: the client then gets a 503 instead
//! of a token whose rotation a failover could undo. Off (0) by default, because a lone Redis has
//! nobody to wait for. These writes go on a connection of their own: while a `WAIT` blocks,
//! Redis reads nothing more from its connection, and on the shared one that would stall every
//! other request behind a lagging replica. (Acknowledged writes still queue behind each other
//! on theirs, for at most `REDIS_WAIT_TIMEOUT_MS` each.)

use crate::error::ApiError;
use crate::telemetry::Counter;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisFuture, ScriptInvocation, Value,
};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One connection, made on first use and made anew after a timeout ([`Store::forget`]), with
/// the number it was made under: a request that timed out on an old connection must not forget
/// the new one another request has just made.
type Lane = RwLock<Option<(u64, Connection)>>;

/// How long one attempt at a Redis operation (connecting included) may take.
const DEADLINE: Duration = Duration::from_secs(1);

pub struct Store {
    client: Client,
    /// The connection every request shares.
    connection: Lane,
    /// A second connection, for acknowledged writes alone: Redis reads nothing more from a
    /// connection while a `WAIT` on it blocks, so on the shared one a lagging replica would
    /// hold up every other request's commands for the whole `WAIT` timeout.
    acked: Lane,
    /// How many connections were made: the next one's number.
    made: AtomicU64,
    commands: Counter,
    acks: Acks,
}

/// Where the store is: one Redis, or the nodes of a Redis Cluster to start from. Each URL
/// carries the credentials ([`crate::store_credentials`]), so `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// `REDIS_URL`.
    Node(String),
    /// `REDIS_CLUSTER_NODES`: one or more nodes of the cluster (the client finds the others).
    Cluster(Vec<String>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(_) => f.write_str("Node(url not shown: it carries the password)"),
            Target::Cluster(nodes) => write!(f, "Cluster({} nodes, urls not shown)", nodes.len()),
        }
    }
}

/// The name of the counter of commands sent to Redis.
pub const COMMANDS_METRIC: &str = "authscale_redis_commands_total";

/// Register the counter [`Store::new`] bumps, under one name and one help text for every
/// service. A jwt replica registers it too, though it never connects: its `/metrics` then shows
/// the 0 instead of leaving the reader to guess.
pub fn commands_counter(metrics: &crate::telemetry::Metrics) -> Counter {
    metrics.counter(
        COMMANDS_METRIC,
        "Commands (round trips) sent to Redis while serving requests (health probes excepted).",
        &[],
    )
}

/// How many replicas must confirm an acknowledged write, and how long to wait for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Acks {
    /// 0: do not wait (a lone Redis, or asynchronous replication accepted).
    pub replicas: u32,
    pub timeout_ms: u64,
}

/// What a connection is made from. (Boxed: both are large, and a `Store` sits in enums of the
/// services' state.)
enum Client {
    Node(Box<redis::Client>),
    Cluster(Box<ClusterClient>),
}

/// The shared connection: cloning it is cheap, and every clone sends on the same socket(s).
#[derive(Clone)]
enum Connection {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The redis crate's commands, scripts and pipelines run on anything that is `ConnectionLike`:
/// the two kinds of connection pass them on.
impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Node(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Node(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Whether [`Store::exchange`] may send a request again when its connection died under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Once: the request is safe to repeat.
    Once,
    /// Never: a repeat could count twice what happened once.
    Never,
}

/// What [`Store::exchange`] sends: a plain command, a script invocation, or a write with `WAIT`
/// behind it.
#[derive(Clone, Copy)]
enum Request<'a, 'b> {
    Cmd(&'a Cmd),
    Script(&'a ScriptInvocation<'b>),
    /// A pipeline whose first command may run `script` (loaded first when Redis does not know it).
    Pipeline(&'a Pipeline, Option<&'a ScriptInvocation<'b>>),
}

impl Request<'_, '_> {
    async fn send<T: FromRedisValue>(self, conn: &mut Connection) -> redis::RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Script(invocation) => invocation.invoke_async(conn).await,
            Request::Pipeline(pipe, script) => {
                let reply = pipe.query_async(conn).await;
                match (reply, script) {
                    // The script did not run (NOSCRIPT: this Redis has not seen it yet), so
                    // loading it and sending the pipeline again repeats nothing.
                    (Err(e), Some(invocation)) if is_noscript(&e) => {
                        invocation.load_async(conn).await?;
                        pipe.query_async(conn).await
                    }
                    (reply, _) => reply,
                }
            }
        }
    }

    /// Commands it sends, for the counter.
    fn commands(self) -> u64 {
        match self {
            Request::Cmd(_) | Request::Script(_) => 1,
            Request::Pipeline(pipe, _) => pipe.len() as u64,
        }
    }
}

/// Every connection to Redis sends at once (`TCP_NODELAY`). The redis crate leaves Nagle's
/// algorithm on, and a connection shared by many requests is exactly where it hurts: a command
/// written while the previous one is still unacknowledged waits for that acknowledgement, and
/// the store's side delays it until it has an answer to carry it on. Over loopback that answer
/// comes at once; with Redis a network hop away each such command waits up to one round trip
/// more (the load test's scenario f, with the launcher's delay proxy, showed it).
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

impl Store {
    /// A store for `target`. Nothing is connected yet: the store may well be down at start-up,
    /// and the service must start anyway (and say so in /readyz).
    pub fn new(target: &Target, commands: Counter) -> anyhow::Result<Self> {
        let client = match target {
            Target::Node(url) => {
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {e}"))?
                    .set_tcp_settings(tcp_settings());
                Client::Node(Box::new(redis::Client::open(info)?))
            }
            Target::Cluster(nodes) => Client::Cluster(Box::new(
                // Its timeouts are the connection's (`connection`), which override the builder's.
                ClusterClient::builder(nodes.iter().map(String::as_str))
                    // No resending inside the client: an I/O error does not say whether the
                    // command ran, and only this module knows which requests are safe to
                    // repeat (Resend). The client still follows the cluster's changes (a MOVED
                    // reply makes it refresh its slot map).
                    .retries(0)
                    .tcp_settings(tcp_settings())
                    .build()
                    .map_err(|e| {
                        anyhow::anyhow!("REDIS_CLUSTER_NODES is not a list of Redis URLs: {e}")
                    })?,
            )),
        };
        Ok(Store {
            client,
            connection: Lane::default(),
            acked: Lane::default(),
            made: AtomicU64::new(0),
            commands,
            acks: Acks::default(),
        })
    }

    /// Make [`Store::eval_acked`] and [`Store::query_acked`] wait for `acks.replicas` replicas.
    pub fn with_acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Send one command and read its reply.
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ApiError> {
        let request = Request::Cmd(cmd);
        self.exchange(request, Some(&self.commands), Resend::Once)
            .await
    }

    /// Run a Lua script (one `EVALSHA`; the script is loaded on first use).
    pub async fn eval<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        let request = Request::Script(invocation);
        self.exchange(request, Some(&self.commands), Resend::Once)
            .await
    }

    /// [`Store::eval`] for a script whose repeat is not harmless (it counts something down):
    /// never sent a second time, even when its connection dies under it, because Redis may
    /// have run it before the connection died. That failure is then a 503.
    pub async fn eval_once<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        let request = Request::Script(invocation);
        self.exchange(request, Some(&self.commands), Resend::Never)
            .await
    }

    /// [`Store::eval`] for a write a later request relies on: followed by `WAIT` when replicas
    /// are configured (see the module comment). Fewer confirmations than asked is a 503.
    pub async fn eval_acked<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        if self.acks.replicas == 0 {
            return self.eval(invocation).await;
        }
        let mut pipe = redis::pipe();
        pipe.invoke_script(invocation);
        self.with_wait(pipe, Some(invocation)).await
    }

    /// [`Store::query`] for a write a later request relies on (see [`Store::eval_acked`]).
    pub async fn query_acked<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ApiError> {
        if self.acks.replicas == 0 {
            return self.query(cmd).await;
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone());
        self.with_wait(pipe, None).await
    }

    /// `pipe` (a pipeline of one write) with `WAIT replicas timeout` behind it, in one
    /// pipeline: both go out together on one connection, and WAIT counts the replicas that have
    /// this connection's writes, so it cannot be asked on another connection than the write's
    /// (say, one that replaced it after a reconnect, which has written nothing).
    async fn with_wait<T: FromRedisValue>(
        &self,
        mut pipe: Pipeline,
        script: Option<&ScriptInvocation<'_>>,
    ) -> Result<T, ApiError> {
        let Acks {
            replicas,
            timeout_ms,
        } = self.acks;
        pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        let request = Request::Pipeline(&pipe, script);
        let (value, confirmed): (T, u32) = self
            .exchange_on(&self.acked, request, Some(&self.commands), Resend::Once)
            .await?;
        if confirmed < replicas {
            tracing::warn!(
                confirmed,
                wanted = replicas,
                "redis: too few replicas confirmed a write; refusing (fail closed)"
            );
            return Err(ApiError::StoreUnavailable);
        }
        Ok(value)
    }

    /// Send `request` and read its reply within the deadline, counting its commands in
    /// `counter`, each once however often it is sent. (Also when Redis is down: the shared
    /// connection cannot tell a command that went out from one that never left.)
    ///
    /// The shared connection can die under a request: Redis restarted, or the network dropped
    /// it. The request then fails with an I/O error, and the connection manager (or the cluster
    /// client, for the node concerned) starts connecting again. Such a request is sent once more,
    /// on the new connection, rather than answered 503 ([`Resend::Once`]). An I/O error does
    /// not say whether Redis ran the command before the connection died, so a resent request
    /// must be safe to repeat: reads, TTL renewals, writes that set the same values again, a
    /// reservation (counted twice, the limit errs strict), and the refresh rotation, whose
    /// repeat carries the same successor id and is answered from its own rotation
    /// (families.rs). What is not safe to repeat is sent with [`Resend::Never`].
    ///
    /// A cluster's refusals that say the command did not run at all (`MOVED`, `ASK`,
    /// `TRYAGAIN`, `CLUSTERDOWN`: the slot is elsewhere or moving) are sent once more for any
    /// request, by then to the node the client has learnt holds the slot. Timeouts are never
    /// resent: the deadline is spent.
    async fn exchange<T: FromRedisValue>(
        &self,
        request: Request<'_, '_>,
        counter: Option<&Counter>,
        resend: Resend,
    ) -> Result<T, ApiError> {
        self.exchange_on(&self.connection, request, counter, resend)
            .await
    }

    /// [`Store::exchange`] on `lane`: the shared connection, or the one for acknowledged writes.
    async fn exchange_on<T: FromRedisValue>(
        &self,
        lane: &Lane,
        request: Request<'_, '_>,
        counter: Option<&Counter>,
        resend: Resend,
    ) -> Result<T, ApiError> {
        if let Some(counter) = counter {
            counter.inc_by(request.commands());
        }
        let mut resent = false;
        loop {
            let (made, mut conn) = self.connection(lane)?;
            let reply = tokio::time::timeout(DEADLINE, request.send::<T>(&mut conn)).await;
            let error = match reply {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => e,
                Err(_) => {
                    tracing::warn!("redis: command timed out; the next request connects anew");
                    Self::forget(lane, made);
                    return Err(ApiError::StoreUnavailable);
                }
            };
            if error.is_timeout() {
                Self::forget(lane, made);
            }
            let dead =
                (error.is_io_error() || error.is_connection_dropped()) && !error.is_timeout();
            let may_resend = (dead && resend == Resend::Once) || error.is_cluster_error();
            if may_resend && !resent {
                tracing::info!(error = %error, "redis: the connection failed under a request; sending it once more");
                resent = true;
                continue;
            }
            tracing::warn!(error = %error, "redis: command failed");
            return Err(ApiError::StoreUnavailable);
        }
    }

    /// Whether Redis answers right now (for /readyz). Not counted: the counter measures what
    /// serving requests costs, and health probes would blur it.
    pub async fn ping(&self) -> bool {
        let ping = redis::cmd("PING");
        self.exchange::<String>(Request::Cmd(&ping), None, Resend::Once)
            .await
            .is_ok()
    }

    /// The connection of `lane` (a clone of it), made on first use. Making it connects nothing:
    /// both kinds connect in the background and on demand, within the deadline.
    fn connection(&self, lane: &Lane) -> Result<(u64, Connection), ApiError> {
        if let Some(connection) = lane.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(connection.clone());
        }
        let made = match &self.client {
            Client::Node(client) => {
                ConnectionManager::new_lazy_with_config(client.as_ref().clone(), manager_config())
                    .map(Connection::Node)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "redis: cannot make the connection manager");
                        ApiError::StoreUnavailable
                    })?
            }
            Client::Cluster(client) => Connection::Cluster(
                client.get_pending_async_connection_with_config(
                    redis::cluster::ClusterConfig::new()
                        .set_connection_timeout(DEADLINE)
                        .set_response_timeout(DEADLINE),
                ),
            ),
        };
        // Two first requests at once may both make one; the second is dropped unconnected.
        let number = self.made.fetch_add(1, Ordering::Relaxed);
        let mut slot = lane.write().unwrap_or_else(|e| e.into_inner());
        Ok(slot.get_or_insert((number, made)).clone())
    }

    /// Drop `lane`'s connection after a timeout, so that the next request makes a new one. The
    /// connection manager reconnects by itself when its socket fails, but a timeout leaves the
    /// socket as it is: and a store whose host was cut off from the network sends no reset, so
    /// without this every later command would wait on that dead socket until the kernel gives
    /// up on it, long after the store is back.
    fn forget(lane: &Lane, made: u64) {
        let mut slot = lane.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|(number, _)| *number == made) {
            *slot = None;
        }
    }
}

/// How the connection manager connects and reconnects. One attempt per connection, no
/// back-off of its own: while Redis is down, each request's attempt fails at once (a 503 now,
/// not after a second of waiting), and the first request after Redis is back connects. A
/// back-off would keep the service down for its longest delay after Redis is back.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(DEADLINE))
        .set_response_timeout(Some(DEADLINE))
        .set_number_of_retries(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The redis crate's default is Nagle on; the store turns it off (see `tcp_settings`).
    #[test]
    fn store_connections_send_at_once() {
        assert!(tcp_settings().nodelay());
    }
}
