//! A steady stream of requests while something breaks: N simulated clients, each calling a
//! route again as soon as the last answer came (or after a fixed pause), until a deadline or
//! until told to stop. It counts what a user would feel: requests, failures, the slowest one.
//!
//! This is how the tests show that a fault is invisible to clients (a replica killed, a key
//! rotated, nginx reloaded): the claim is "not one request failed", so the stream has to be
//! busy when the fault lands, and every answer other than 200 counts as a failure.
//!
//! Each simulated client has its own [`Client`] and so its own connection pool, as separate
//! browsers would. That matters for the one thing the stream forgives: a request sent on a
//! kept-alive connection that the server closed before answering (nginx does that to idle
//! connections when it reloads). RFC 9112 (9.3.1) lets a client send an idempotent request
//! again then, and browsers and curl do; the stream does it once, on a new connection from the
//! client's own pool, and reports it as a *resend*, not a failure. With a shared pool the resend
//! could land on another connection the same reload closed. A test where nothing reloads asserts
//! that there were no resends at all.

use crate::client::Client;
use reqwest::{RequestBuilder, StatusCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How the stream runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How many simulated clients call at once.
    pub clients: usize,
    /// When the clients stop by themselves; `None`: only at [`Stream::stop`].
    pub run_for: Option<Duration>,
    /// A pause after each answer; zero: the next request goes out at once.
    pub pause: Duration,
}

/// The stream while it runs. [`Stream::finish`] waits for its end and reports.
pub struct Stream {
    tasks: tokio::task::JoinSet<Seen>,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    slowest_ms: Arc<AtomicU64>,
}

/// What the clients saw, all together.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// Requests answered or failed (a resent request counts once).
    pub requests: u64,
    /// Every request that did not end in a 200, with why.
    pub failures: Vec<String>,
    /// Requests sent again after the server closed their kept-alive connection, with the
    /// error that closed it (see the module's comment).
    pub resent: Vec<String>,
    pub slowest: Duration,
}

#[derive(Default)]
struct Seen {
    failures: Vec<String>,
    resent: Vec<String>,
}

impl Stream {
    /// Starts `settings.clients` clients, each with its own pool on `client`'s base URL, each
    /// sending `request(its client)` over and over. Must be called within a Tokio runtime.
    pub fn start<F>(client: &Client, settings: Settings, request: F) -> reqwest::Result<Stream>
    where
        F: Fn(&Client) -> RequestBuilder + Send + Sync + 'static,
    {
        let request = Arc::new(request);
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let slowest_ms = Arc::new(AtomicU64::new(0));
        let until = settings.run_for.map(|run_for| Instant::now() + run_for);
        let clients = (0..settings.clients)
            .map(|_| client.with_own_pool())
            .collect::<reqwest::Result<Vec<Client>>>()?;
        let mut tasks = tokio::task::JoinSet::new();
        for client in clients {
            let (request, stop) = (Arc::clone(&request), Arc::clone(&stop));
            let (requests, slowest_ms) = (Arc::clone(&requests), Arc::clone(&slowest_ms));
            let pause = settings.pause;
            tasks.spawn(async move {
                let mut seen = Seen::default();
                while !stop.load(Ordering::Relaxed) && until.is_none_or(|t| Instant::now() < t) {
                    let start = Instant::now();
                    let mut result = request(&client).send().await;
                    if let Err(e) = &result
                        && closed_before_answer(e)
                    {
                        seen.resent.push(chain(e));
                        result = request(&client).send().await;
                    }
                    match result {
                        Ok(response) if response.status() == StatusCode::OK => {}
                        Ok(response) => {
                            let status = response.status();
                            let body = response.text().await.unwrap_or_default();
                            seen.failures.push(format!("{status} {body}"));
                        }
                        Err(e) => seen.failures.push(format!("transport: {}", chain(&e))),
                    }
                    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    slowest_ms.fetch_max(ms, Ordering::Relaxed);
                    requests.fetch_add(1, Ordering::Relaxed);
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                seen
            });
        }
        Ok(Stream {
            tasks,
            stop,
            requests,
            slowest_ms,
        })
    }

    /// Tells every client to stop after its request in flight.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits until every client has stopped (at its deadline, or after [`Stream::stop`]).
    pub async fn finish(self) -> StreamReport {
        let mut report = StreamReport::default();
        for joined in self.tasks.join_all().await {
            report.failures.extend(joined.failures);
            report.resent.extend(joined.resent);
        }
        report.requests = self.requests.load(Ordering::Relaxed);
        report.slowest = Duration::from_millis(self.slowest_ms.load(Ordering::Relaxed));
        report
    }
}

impl StreamReport {
    /// Up to five failures, for a message that stays readable when thousands failed.
    pub fn some_failures(&self) -> &[String] {
        &self.failures[..self.failures.len().min(5)]
    }

    /// Up to five resends, likewise.
    pub fn some_resent(&self) -> &[String] {
        &self.resent[..self.resent.len().min(5)]
    }
}

/// The error and every cause under it: the reason a connection died is in the innermost one.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A connection closed under a request, before any answer: what a reload does to a kept-alive
/// connection. (A timeout or an HTTP error status is something else, and a failure.)
fn closed_before_answer(error: &reqwest::Error) -> bool {
    if error.is_timeout() {
        return false;
    }
    let text = chain(error).to_lowercase();
    [
        "connection closed before message completed",
        "connection reset",
        "broken pipe",
    ]
    .iter()
    .any(|symptom| text.contains(symptom))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A bare HTTP/1.1 server on a free loopback port: `answer(n)` for the n-th request over
    /// all connections; `None` closes the connection instead of answering.
    async fn server(answer: fn(u64) -> Option<&'static str>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    // One read holds a whole small GET: enough for this test's requests.
                    while socket.read(&mut buffer).await.is_ok_and(|n| n > 0) {
                        let Some(status) = answer(count.fetch_add(1, Ordering::Relaxed)) else {
                            return;
                        };
                        let response = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                        socket.write_all(response.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        base
    }

    fn settings() -> Settings {
        Settings {
            clients: 1,
            run_for: Some(Duration::from_millis(300)),
            pause: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn every_answer_but_200_is_a_failure() {
        let base = server(|n| Some(if n % 2 == 0 { "200 OK" } else { "503 Busy" })).await;
        let client = Client::new(&base).unwrap();
        let stream = Stream::start(&client, settings(), |c| c.get("/", crate::Auth::None));
        let report = stream.unwrap().finish().await;
        assert!(report.requests >= 4, "{report:?}");
        assert_eq!(
            report.failures.len() as u64,
            report.requests / 2,
            "{report:?}"
        );
        assert!(report.resent.is_empty(), "{report:?}");
    }

    #[tokio::test]
    async fn a_kept_alive_connection_closed_under_a_request_is_resent_once() {
        // The second request finds its kept-alive connection closed, as after an nginx reload.
        let base = server(|n| if n == 1 { None } else { Some("200 OK") }).await;
        let client = Client::new(&base).unwrap();
        let stream = Stream::start(&client, settings(), |c| c.get("/", crate::Auth::None));
        let report = stream.unwrap().finish().await;
        assert_eq!(report.resent.len(), 1, "{report:?}");
        assert!(report.failures.is_empty(), "{report:?}");
    }
}
