//! A small client of the public contract (API.md): log in, refresh, session login, and reading
//! a service's `/metrics` and Redis's own counters.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The demo users (API.md): many tokens for the same user are fine for a load test.
pub const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// An HTTP client for the load test's own requests: never a proxy, and a timeout so a stuck
/// request cannot stall a scenario.
pub fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .build()?)
}

#[derive(Debug, Clone)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

fn pair_of(body: &Value) -> anyhow::Result<Pair> {
    let field = |name: &str| {
        body[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the token pair has no {name}"))
    };
    Ok(Pair {
        access: field("access_token")?,
        refresh: field("refresh_token")?,
    })
}

/// `POST /auth/login`.
pub async fn login(http: &reqwest::Client, base: &str, user: (&str, &str)) -> anyhow::Result<Pair> {
    let response = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": user.0, "password": user.1}))
        .send()
        .await?;
    let status = response.status();
    if status != 200 {
        bail!(
            "login as {} answered {status}: {}",
            user.0,
            response.text().await?
        );
    }
    pair_of(&response.json().await?)
}

/// `POST /auth/refresh` with `refresh`: the status and, on 200, the new pair.
pub async fn refresh(
    http: &reqwest::Client,
    base: &str,
    refresh: &str,
) -> anyhow::Result<(u16, Option<Pair>)> {
    let response = http
        .post(format!("{base}/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await?;
    let status = response.status().as_u16();
    if status != 200 {
        return Ok((status, None));
    }
    Ok((status, Some(pair_of(&response.json().await?)?)))
}

/// `POST /auth/session/login`: the `sid=…` cookie (name and value, without attributes).
pub async fn session_login(
    http: &reqwest::Client,
    base: &str,
    user: (&str, &str),
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{base}/auth/session/login"))
        .json(&json!({"username": user.0, "password": user.1}))
        .send()
        .await?;
    let status = response.status();
    if status != 204 && status != 200 {
        bail!(
            "session login as {} answered {status}: {}",
            user.0,
            response.text().await?
        );
    }
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.trim_start().starts_with("sid="))
        .map(|c| c.trim().to_owned())
        .context("the session login set no sid cookie")
}

/// The text of `GET <url>/metrics`.
pub async fn metrics(http: &reqwest::Client, service_url: &str) -> anyhow::Result<String> {
    let response = http.get(format!("{service_url}/metrics")).send().await?;
    if response.status() != 200 {
        bail!("{service_url}/metrics answered {}", response.status());
    }
    Ok(response.text().await?)
}

/// Whether the redis node at `redis_url` holds `key` (`EXISTS`). A node of a cluster that does
/// not own the key's slot answers `MOVED`: false too.
pub async fn redis_exists(redis_url: &str, key: &str) -> anyhow::Result<bool> {
    let client = redis::Client::open(redis_url)?;
    let exists = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<bool>(&mut conn)
            .await
    };
    let reply = tokio::time::timeout(Duration::from_secs(2), exists)
        .await
        .context("redis did not answer EXISTS within 2 s")?;
    match reply {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved) => Ok(false),
        reply => Ok(reply?),
    }
}

/// Redis's `total_commands_processed` (from `INFO stats`): every command it executed since it
/// started, whoever sent it. The `INFO` asking for it counts too (one per call).
pub async fn redis_commands_processed(redis_url: &str) -> anyhow::Result<u64> {
    let addr: SocketAddr = redis_url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("{redis_url} is not redis://host:port"))?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(b"INFO stats\r\n").await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // A bulk string: "$<len>\r\n<text>\r\n". Read until the announced length has arrived.
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some((head, body)) = text.split_once("\r\n")
                && let Ok(len) = head.trim_start_matches('$').parse::<usize>()
                && body.len() >= len
            {
                break;
            }
        }
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&reply).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .context("redis did not answer INFO within 2 s")??;
    text.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO stats has no total_commands_processed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_needs_both_tokens() {
        let pair = pair_of(&json!({"access_token": "a", "refresh_token": "r"})).unwrap();
        assert_eq!((pair.access.as_str(), pair.refresh.as_str()), ("a", "r"));
        assert!(pair_of(&json!({"access_token": "a"})).is_err());
    }
}
