//! The Redis store, reached through a small connection pool.
//!
//! The issuer keeps refresh-token families, login counters and sessions here; session replicas read
//! sessions from here on every request. Three rules shape this module:
//!
//! - **Fail closed, fast.** Every operation has a deadline. When Redis is down or slow, callers
//!   get [`ApiError::StoreUnavailable`] (a 503) within about a second, never a hang and never a
//!   token issued unchecked.
//! - **Recover by itself.** A connection that failed is dropped from the pool instead of being
//!   handed out again; the next request opens a new one, so when Redis comes back the service
//!   works again with no restart. A request whose pooled connection turns out to be dead (Redis
//!   restarted meanwhile) is sent once more on a new connection, and the pool forgets its other
//!   idle connections (dead too, most likely), so a restart costs no 503.
//! - **One round trip per operation, counted.** deadpool-redis's own manager sends `UNWATCH` and
//!   `PING` every time a connection leaves the pool, which would double the round trips of a
//!   session look-up. This pool uses deadpool with a manager whose recycling is free; a broken
//!   connection shows itself on use instead. Every command sent is counted in the
//!   `authscale_redis_commands_total` metric (health probes excepted), which is how the tests show "1 per request for
//!   sessions, 0 for tokens".
//!
//! Redis replicates asynchronously: a primary that fails over to a replica may take its last
//! writes with it. For the writes a later request relies on (a refresh-token rotation, a
//! revocation, a new session) [`Store::eval_acked`] and [`Store::query_acked`] can follow the
//! write with `WAIT`, on the same connection, and fail closed when fewer replicas than
//! `REDIS_WAIT_REPLICAS` confirm it in time: the client then gets a 503 instead of a token
//! whose rotation a failover could undo. Off (0) by default, because a lone Redis has nobody
//! to wait for.

use crate::error::ApiError;
use crate::telemetry::Counter;
use deadpool::managed::{self, Metrics, Object, RecycleResult};
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, FromRedisValue, aio::MultiplexedConnection,
};
use std::time::Duration;

/// How long any one Redis operation (taking a connection included) may take.
const DEADLINE: Duration = Duration::from_secs(1);

pub struct Store {
    pool: managed::Pool<Manager>,
    commands: Counter,
    acks: Acks,
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

struct Manager {
    client: redis::Client,
    config: AsyncConnectionConfig,
}

impl managed::Manager for Manager {
    type Type = MultiplexedConnection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        self.client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
    }

    async fn recycle(
        &self,
        _: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<redis::RedisError> {
        // Deliberately no PING: see the module comment.
        Ok(())
    }
}

/// Whether [`Store::exchange`] may send a request again on a new connection when the pooled one
/// turns out to be dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Once: the request is safe to repeat.
    Once,
    /// Never: a repeat could count twice what happened once.
    Never,
}

/// What [`Store::exchange`] sends: a plain command or a script invocation.
#[derive(Clone, Copy)]
enum Request<'a, 'b> {
    Cmd(&'a redis::Cmd),
    Script(&'a redis::ScriptInvocation<'b>),
}

impl Request<'_, '_> {
    async fn send<T: FromRedisValue>(
        self,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<T> {
        match self {
            Request::Cmd(cmd) => cmd.query_async(conn).await,
            Request::Script(invocation) => invocation.invoke_async(conn).await,
        }
    }
}

impl Store {
    /// A pool of at most `pool_size` connections to `url`. Nothing is connected yet: the store
    /// may well be down at start-up, and the service must start anyway (and say so in /readyz).
    pub fn new(url: &str, pool_size: usize, commands: Counter) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("REDIS_URL is not a valid Redis URL: {e}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(DEADLINE))
            .set_response_timeout(Some(DEADLINE));
        let pool = managed::Pool::builder(Manager { client, config })
            .max_size(pool_size.max(1))
            .wait_timeout(Some(DEADLINE))
            .create_timeout(Some(DEADLINE))
            .runtime(deadpool::Runtime::Tokio1)
            .build()?;
        Ok(Store {
            pool,
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
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ApiError> {
        let (_, value) = self
            .exchange(Request::Cmd(cmd), Some(&self.commands), Resend::Once)
            .await?;
        Ok(value)
    }

    /// Run a Lua script (one `EVALSHA`; the script is loaded on first use).
    pub async fn eval<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        let request = Request::Script(invocation);
        let (_, value) = self
            .exchange(request, Some(&self.commands), Resend::Once)
            .await?;
        Ok(value)
    }

    /// [`Store::eval`] for a script whose repeat is not harmless (it counts something down):
    /// never sent a second time, even when its connection turns out to be dead, because Redis
    /// may have run it before the connection died. That failure is then a 503.
    pub async fn eval_once<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        let request = Request::Script(invocation);
        let (_, value) = self
            .exchange(request, Some(&self.commands), Resend::Never)
            .await?;
        Ok(value)
    }

    /// [`Store::eval`] for a write a later request relies on: followed by `WAIT` when replicas
    /// are configured (see the module comment). Fewer confirmations than asked is a 503.
    pub async fn eval_acked<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        let request = Request::Script(invocation);
        let (conn, value) = self
            .exchange(request, Some(&self.commands), Resend::Once)
            .await?;
        self.wait_for_replicas(conn).await?;
        Ok(value)
    }

    /// [`Store::query`] for a write a later request relies on (see [`Store::eval_acked`]).
    pub async fn query_acked<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ApiError> {
        let (conn, value) = self
            .exchange(Request::Cmd(cmd), Some(&self.commands), Resend::Once)
            .await?;
        self.wait_for_replicas(conn).await?;
        Ok(value)
    }

    /// Send `request` and read its reply, counting it in `counter` once a connection is had (so
    /// the count is of commands that really went out, not of attempts while Redis was down).
    /// Returns the connection too, for a `WAIT` on it.
    ///
    /// A pooled connection can be dead without the pool knowing: Redis restarted since it was
    /// last used (the pool does not PING on checkout, see above). Such a connection fails at once
    /// with an I/O error, and the request is sent once more on a new connection rather than
    /// answered 503 ([`Resend::Once`]). An I/O error does not say whether Redis ran the command
    /// before the connection died, so a resent request must be safe to repeat: reads, TTL
    /// renewals, writes that set the same values again, a reservation (counted twice, the limit
    /// errs strict), and the refresh rotation, whose repeat carries the same successor id and is
    /// answered from its own rotation (families.rs). What is not safe to repeat is sent with
    /// [`Resend::Never`]. Timeouts are not retried.
    async fn exchange<T: FromRedisValue>(
        &self,
        request: Request<'_, '_>,
        counter: Option<&Counter>,
        resend: Resend,
    ) -> Result<(Object<Manager>, T), ApiError> {
        let mut resent = false;
        loop {
            let mut conn = self.connection().await?;
            if !resent {
                counter.inspect(|c| c.inc());
            }
            let reply = tokio::time::timeout(DEADLINE, request.send::<T>(&mut conn)).await;
            if let Ok(Err(e)) = &reply
                && (e.is_io_error() || e.is_connection_dropped())
            {
                // The connection died under the request: Redis restarted, or the network dropped
                // it. Every idle connection opened before is most likely dead as well, and the
                // pool would hand them out one by one (this request's resend included): forget
                // them, so that the next requests open new ones.
                self.pool.retain(|_, _| false);
                if resend == Resend::Once && !resent {
                    tracing::info!(error = %e, "redis: a pooled connection was dead; sending again on a new one");
                    drop(Object::take(conn));
                    resent = true;
                    continue;
                }
            }
            return Self::settle(conn, reply);
        }
    }

    /// `WAIT replicas timeout` on the connection that just wrote (WAIT counts the replicas that
    /// have this client's writes). Nothing to do when no replicas are asked for.
    async fn wait_for_replicas(&self, mut conn: Object<Manager>) -> Result<(), ApiError> {
        let Acks {
            replicas,
            timeout_ms,
        } = self.acks;
        if replicas == 0 {
            return Ok(());
        }
        self.commands.inc();
        let wait = redis::cmd("WAIT").arg(replicas).arg(timeout_ms).to_owned();
        let reply = tokio::time::timeout(DEADLINE, wait.query_async::<u32>(&mut *conn)).await;
        let (_, confirmed) = Self::settle(conn, reply)?;
        if confirmed < replicas {
            tracing::warn!(
                confirmed,
                wanted = replicas,
                "redis: too few replicas confirmed a write; refusing (fail closed)"
            );
            return Err(ApiError::StoreUnavailable);
        }
        Ok(())
    }

    /// Whether Redis answers right now (for /readyz). Not counted: the counter measures what
    /// serving requests costs, and health probes would blur it.
    pub async fn ping(&self) -> bool {
        let ping = redis::cmd("PING");
        self.exchange::<String>(Request::Cmd(&ping), None, Resend::Once)
            .await
            .is_ok()
    }

    async fn connection(&self) -> Result<Object<Manager>, ApiError> {
        self.pool.get().await.map_err(|e| {
            tracing::warn!(error = %e, "redis: no connection");
            ApiError::StoreUnavailable
        })
    }

    /// Keep a connection that worked (and hand it back for one more command); drop one that
    /// failed, so it is never handed out again.
    fn settle<T>(
        conn: Object<Manager>,
        reply: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<(Object<Manager>, T), ApiError> {
        match reply {
            Ok(Ok(value)) => Ok((conn, value)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "redis: command failed");
                drop(Object::take(conn));
                Err(ApiError::StoreUnavailable)
            }
            Err(_) => {
                tracing::warn!("redis: command timed out");
                drop(Object::take(conn));
                Err(ApiError::StoreUnavailable)
            }
        }
    }
}
