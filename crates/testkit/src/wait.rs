//! Waiting for something that happens on its own time: a service to start answering, nginx to
//! drop a dead address, a key to be published, a store to come back.
//!
//! A test must not sleep a fixed time and hope: too short fails on a slow machine, too long
//! wastes every run. It polls instead, and gives up at a deadline with a message that says what
//! it waited for and what it saw last, so a timeout explains itself.
//!
//! A probe answers [`Poll::Ready`] with a value to stop, or [`Poll::Pending`] with what it saw,
//! to try again after [`INTERVAL`]. A probe that fails outright (its `Err`) ends the wait with
//! that error: a refused connection while waiting for a service to start is `Pending`, a wrong
//! answer once it runs is an `Err`.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long between two probes.
const INTERVAL: Duration = Duration::from_millis(100);

/// One probe's answer.
pub enum Poll<T> {
    Ready(T),
    /// Not yet; what was seen, for the message if time runs out.
    Pending(String),
}

/// The deadline passed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: not within {limit:?} (last seen: {last})")]
pub struct TimedOut {
    pub what: String,
    pub limit: Duration,
    pub last: String,
}

/// Polls `probe` every [`INTERVAL`] until it is ready, for at most `limit`. A probe's error
/// ends the wait at once (converted into `E`, which a [`TimedOut`] must convert into too).
pub async fn until<T, E, F, Fut>(what: &str, limit: Duration, mut probe: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
    E: From<TimedOut>,
{
    let deadline = Deadline::new(what, limit);
    loop {
        match probe().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(last) => deadline.check(last)?,
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// Polls `check` until it holds, for at most `limit`: how long that took.
pub async fn until_true<F, Fut>(
    what: &str,
    limit: Duration,
    mut check: F,
) -> Result<Duration, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    until(what, limit, || {
        let holds = check();
        async move {
            Ok::<_, TimedOut>(match holds.await {
                true => Poll::Ready(()),
                false => Poll::Pending("not yet".to_owned()),
            })
        }
    })
    .await?;
    Ok(start.elapsed())
}

/// [`until`] for code that is not async (it blocks the thread between probes).
pub fn blocking_until<T, E>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<Poll<T>, E>,
) -> Result<T, E>
where
    E: From<TimedOut>,
{
    let deadline = Deadline::new(what, limit);
    loop {
        match probe()? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(last) => deadline.check(last)?,
        }
        std::thread::sleep(INTERVAL);
    }
}

/// When a wait gives up, and what it says then.
struct Deadline<'a> {
    what: &'a str,
    limit: Duration,
    at: Instant,
}

impl<'a> Deadline<'a> {
    fn new(what: &'a str, limit: Duration) -> Deadline<'a> {
        Deadline {
            what,
            limit,
            at: Instant::now() + limit,
        }
    }

    /// Time is up: the error, with `last`, what the last probe saw.
    fn check(&self, last: String) -> Result<(), TimedOut> {
        if Instant::now() < self.at {
            return Ok(());
        }
        Err(TimedOut {
            what: self.what.to_owned(),
            limit: self.limit,
            last,
        })
    }
}
