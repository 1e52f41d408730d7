//! The Redis store, reached through a small connection pool.
//!
//! The issuer keeps the refresh-token denylist and the sessions here; session-mode replicas read
//! sessions from here on every request. Three rules shape this module:
//!
//! - **Fail closed, fast.** Every operation has a deadline. When Redis is down or slow, callers
//!   get [`ApiError::StoreUnavailable`] (a 503) within about a second, never a hang and never a
//!   token issued unchecked.
//! - **Recover by itself.** A connection that failed is dropped from the pool instead of being
//!   handed out again; the next request opens a new one, so when Redis comes back the service
//!   works again with no restart.
//! - **One round trip per operation, counted.** deadpool-redis's own manager sends `UNWATCH` and
//!   `PING` every time a connection leaves the pool, which would double the round trips of a
//!   session look-up. This pool uses deadpool with a manager whose recycling is free; a broken
//!   connection shows itself on use instead. Every command sent is counted in the
//!   `authscale_redis_commands_total` metric (health probes excepted), which is how the tests show "1 per request for
//!   sessions, 0 for tokens".

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
        Ok(Store { pool, commands })
    }

    /// Send one command and read its reply.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, ApiError> {
        self.send(cmd, Some(&self.commands)).await
    }

    /// Send `cmd`, counting it in `counter` once a connection is had (so the count is of
    /// commands that really went out, not of attempts while Redis was down).
    async fn send<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        counter: Option<&Counter>,
    ) -> Result<T, ApiError> {
        let mut conn = self.connection().await?;
        counter.inspect(|c| c.inc());
        let reply = tokio::time::timeout(DEADLINE, cmd.query_async::<T>(&mut *conn)).await;
        Self::settle(conn, reply)
    }

    /// Run a Lua script (one `EVALSHA`; the script is loaded on first use).
    pub async fn eval<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, ApiError> {
        let mut conn = self.connection().await?;
        self.commands.inc();
        let reply = tokio::time::timeout(DEADLINE, invocation.invoke_async::<T>(&mut *conn)).await;
        Self::settle(conn, reply)
    }

    /// Whether Redis answers right now (for /readyz). Not counted: the counter measures what
    /// serving requests costs, and health probes would blur it.
    pub async fn ping(&self) -> bool {
        self.send::<String>(&redis::cmd("PING"), None).await.is_ok()
    }

    async fn connection(&self) -> Result<Object<Manager>, ApiError> {
        self.pool.get().await.map_err(|e| {
            tracing::warn!(error = %e, "redis: no connection");
            ApiError::StoreUnavailable
        })
    }

    /// Keep a connection that worked; drop one that failed, so it is never handed out again.
    fn settle<T>(
        conn: Object<Manager>,
        reply: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ApiError> {
        match reply {
            Ok(Ok(value)) => Ok(value),
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
