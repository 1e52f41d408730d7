//! Scenario d: Redis is stopped in the middle of a run and started again.
//!
//! Two groups of clients run at once for the whole scenario, one calling `/api/me` with an access
//! token, one calling `/sapi/me` with a session cookie, each request timed and its status kept.
//! After a few seconds the launcher stops Redis (SIGTERM: its port refuses connections from then
//! on); a few seconds later it starts it again, empty, because the stack's Redis keeps nothing on
//! disk. The session clients behave like a browser would: on 401 (their session is gone) they log
//! in again, once for all of them, and carry on with the new cookie.
//!
//! Measured per variant: the error rate before, during and after the outage, the time from
//! Redis's restart to the first answer that is not 503 (the replicas reach the store again) and to
//! the first success (for sessions that includes the new login).
//!
//! This load is paced (each client waits a few milliseconds between requests): the point is the
//! shape of the outage, not the throughput, and unpaced clients would spin on fast 503s.

use crate::bench::{Bench, Target};
use crate::client::{self, USERS};
use crate::results::{Outage, OutageVariant};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};

/// Clients per variant.
const CLIENTS: usize = 8;
/// Pause of each client between two requests.
const PACE: Duration = Duration::from_millis(5);
/// How long a replica waits for Redis before answering 503 (auth-core's store deadline).
const STORE_DEADLINE: f64 = 1.0;
/// Width of a timeline bucket.
const BUCKET: Duration = Duration::from_millis(250);

/// One request: which variant, when it started (seconds from the start), its status (0: no
/// answer at all).
type Event = (usize, f64, u16);

struct Shared {
    base: String,
    http: reqwest::Client,
    start: Instant,
    deadline: Instant,
    access: String,
    cookie: RwLock<String>,
    relogin: Mutex<()>,
    relogins: AtomicU64,
    events: std::sync::Mutex<Vec<Event>>,
}

pub async fn run(bench: &Bench, target: &mut Target) -> anyhow::Result<Outage> {
    let (before, outage, after) = (
        bench.options.phase(4, 1.5),
        bench.options.phase(5, 2.0),
        bench.options.phase(8, 3.0),
    );
    let access = bench.fresh_access(target).await?;
    let cookie = target.cookie.clone().context("no session cookie")?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        base: target.base.clone(),
        http: client::http()?,
        start,
        deadline: start + before + outage + after,
        access,
        cookie: RwLock::new(cookie),
        relogin: Mutex::new(()),
        relogins: AtomicU64::new(0),
        events: std::sync::Mutex::new(Vec::new()),
    });
    let mut tasks = Vec::new();
    for variant in [0usize, 1] {
        for _ in 0..CLIENTS {
            tasks.push(tokio::spawn(client_loop(Arc::clone(&shared), variant)));
        }
    }
    eprintln!(
        "[d] load on /api/me and /sapi/me; Redis stops at {:.1} s for {:.1} s",
        before.as_secs_f64(),
        outage.as_secs_f64()
    );
    tokio::time::sleep_until((start + before).into()).await;
    let stack = target.stack_mut()?;
    // The outage starts with the SIGTERM, not when Redis has finished exiting.
    let stopped_at = start.elapsed().as_secs_f64();
    stack.stop_redis().await?;
    eprintln!(
        "[d] Redis stopped at {stopped_at:.2} s (gone at {:.2} s)",
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep_until((start + before + outage).into()).await;
    let stack = target.stack_mut()?;
    stack.start_redis().await?;
    let started_at = start.elapsed().as_secs_f64();
    eprintln!("[d] Redis started again at {started_at:.2} s (empty)");
    for task in tasks {
        task.await?;
    }
    let end = start.elapsed().as_secs_f64();
    let events = std::mem::take(&mut *shared.events.lock().unwrap_or_else(|p| p.into_inner()));
    // Put the cookie the clients ended with back, for later scenarios.
    target.cookie = Some(shared.cookie.read().await.clone());
    let relogins = shared.relogins.load(Ordering::Relaxed);
    let variants = [("tokens", "/api/me", 0), ("sessions", "/sapi/me", relogins)]
        .iter()
        .enumerate()
        .map(|(i, (label, route, relogins))| {
            let mine: Vec<(f64, u16)> = events
                .iter()
                .filter(|e| e.0 == i)
                .map(|e| (e.1, e.2))
                .collect();
            let mut v = summarize(&mine, stopped_at, started_at, end);
            v.label = (*label).to_owned();
            v.route = (*route).to_owned();
            v.relogins = *relogins;
            v
        })
        .collect::<Vec<_>>();
    for v in &variants {
        eprintln!(
            "[d] {:<9} before {} ok / {} failed; during {} ok / {} failed ({:.0}% errors); after {} ok / {} failed; first success {:.2} s after the restart",
            v.label,
            v.before.0,
            v.before.1,
            v.during.0,
            v.during.1,
            v.error_rate_during() * 100.0,
            v.after.0,
            v.after.1,
            v.recovered_after.unwrap_or(f64::NAN)
        );
    }
    Ok(Outage {
        stopped_at,
        started_at,
        end,
        bucket_secs: BUCKET.as_secs_f64(),
        variants,
    })
}

async fn client_loop(shared: Arc<Shared>, variant: usize) {
    while Instant::now() < shared.deadline {
        let t = shared.start.elapsed().as_secs_f64();
        let status = if variant == 0 {
            let request = shared
                .http
                .get(format!("{}/api/me", shared.base))
                .bearer_auth(&shared.access);
            request.send().await.map_or(0, |r| r.status().as_u16())
        } else {
            let cookie = shared.cookie.read().await.clone();
            let request = shared
                .http
                .get(format!("{}/sapi/me", shared.base))
                .header("cookie", &cookie);
            let status = request.send().await.map_or(0, |r| r.status().as_u16());
            if status == 401 {
                relogin(&shared, &cookie).await;
            }
            status
        };
        shared
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((variant, t, status));
        tokio::time::sleep(PACE).await;
    }
}

/// Log in again, unless another client already did since `stale` was read.
async fn relogin(shared: &Shared, stale: &str) {
    let _one_at_a_time = shared.relogin.lock().await;
    if *shared.cookie.read().await != stale {
        return;
    }
    if let Ok(fresh) = client::session_login(&shared.http, &shared.base, USERS[1]).await {
        shared.relogins.fetch_add(1, Ordering::Relaxed);
        *shared.cookie.write().await = fresh;
    }
}

/// The numbers of one variant from its (start time, status) events.
pub fn summarize(
    events: &[(f64, u16)],
    stopped_at: f64,
    started_at: f64,
    end: f64,
) -> OutageVariant {
    let ok = |status: u16| (200..300).contains(&status);
    let buckets = (end / BUCKET.as_secs_f64()).ceil().max(1.0) as usize;
    let mut timeline = vec![(0u64, 0u64); buckets];
    let (mut before, mut during, mut after) = ((0, 0), (0, 0), (0, 0));
    let mut during_statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut sorted = events.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    for &(t, status) in &sorted {
        let bucket = ((t / BUCKET.as_secs_f64()) as usize).min(buckets - 1);
        let phase = if t < stopped_at {
            &mut before
        } else if t < started_at {
            let key = if status == 0 {
                "no answer".to_owned()
            } else {
                status.to_string()
            };
            *during_statuses.entry(key).or_default() += 1;
            &mut during
        } else {
            &mut after
        };
        if ok(status) {
            timeline[bucket].0 += 1;
            phase.0 += 1;
        } else {
            timeline[bucket].1 += 1;
            phase.1 += 1;
        }
    }
    let after_restart = sorted.iter().filter(|(t, _)| *t >= started_at);
    let first_success = after_restart.clone().find(|(_, s)| ok(*s)).map(|e| e.0);
    let never_failed = during.1 == 0 && after.1 == 0 && before.1 == 0;
    let recovered_after = if never_failed {
        Some(0.0)
    } else {
        first_success.map(|t| t - started_at)
    };
    let store_back_after = after_restart
        .clone()
        .find(|(_, s)| *s != 503 && *s != 0)
        .map(|(t, _)| t - started_at);
    // Failures that the outage does not explain: before it (a request started up to one store
    // deadline before the stop may still be waiting for Redis when it goes), or after the first
    // success that followed it.
    let unexpected = sorted
        .iter()
        .filter(|(t, s)| {
            !ok(*s) && (*t < stopped_at - STORE_DEADLINE || first_success.is_some_and(|f| *t > f))
        })
        .count() as u64;
    OutageVariant {
        label: String::new(),
        route: String::new(),
        timeline,
        before,
        during,
        after,
        during_statuses,
        recovered_after,
        store_back_after,
        relogins: 0,
        unexpected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_recovery_and_unexpected_failures() {
        // Stopped at 1.0, started at 2.0, end 3.0.
        let events = [
            (0.1, 200),
            (0.5, 200),
            (1.1, 503),
            (1.5, 503),
            (2.05, 503),
            (2.2, 401),
            (2.4, 200),
            (2.9, 200),
        ];
        let v = summarize(&events, 1.0, 2.0, 3.0);
        assert_eq!(v.before, (2, 0));
        assert_eq!(v.during, (0, 2));
        assert_eq!(v.after, (2, 2));
        assert_eq!(v.error_rate_during(), 1.0);
        assert!((v.recovered_after.unwrap() - 0.4).abs() < 1e-9);
        assert!((v.store_back_after.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(v.unexpected, 0);
        assert_eq!(v.during_statuses["503"], 2);
        assert_eq!(v.timeline.len(), 12);

        let tokens = [(0.1, 200), (1.5, 200), (2.5, 200)];
        let t = summarize(&tokens, 1.0, 2.0, 3.0);
        assert_eq!(t.recovered_after, Some(0.0));
        assert_eq!(t.unexpected, 0);

        let flaky = [(0.1, 502), (2.5, 200), (2.7, 500)];
        assert_eq!(summarize(&flaky, 1.5, 2.0, 3.0).unexpected, 2);
        // In flight when Redis went: the outage's doing, not unexpected.
        let in_flight = [(0.1, 200), (0.95, 503), (1.5, 503), (2.5, 200)];
        assert_eq!(summarize(&in_flight, 1.0, 2.0, 3.0).unexpected, 0);
    }
}
