//! A fixed set of threads that check passwords: Argon2id's memory, bounded whatever happens.
//!
//! Each Argon2id verification fills 19 MiB of memory. If every login could start one, a burst of
//! logins would be a burst of memory, and an attacker's flood of wrong passwords would take the
//! issuer down. So the work goes to `LOGIN_HASH_WORKERS` threads, each owning one Argon2 buffer it
//! allocates once and reuses for every hash. However many logins arrive, however many time out or
//! are abandoned by their clients, at most that many hashes run and at most that many buffers
//! exist: memory is a constant, not a function of load.
//!
//! Logins wait in a bounded queue (`LOGIN_QUEUE`) for a worker, at most `LOGIN_QUEUE_WAIT_MS`;
//! past either bound they get `503 overloaded` with `Retry-After` at once. A worker skips a job
//! whose login has already given up, so abandoned logins cost no hashing.
//!
//! Why not `spawn_blocking` and a semaphore: the semaphore's permit belongs to the request, and a
//! request that times out releases it while its hash still runs on the blocking pool; and glibc
//! gives each of the blocking pool's many threads its own heap arena, so freed 19 MiB buffers
//! linger per thread. Owned threads with owned buffers have neither problem.

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use auth_core::error::ApiError;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy)]
pub struct HashingLimits {
    pub workers: usize,
    pub queue: usize,
    pub wait: Duration,
}

/// A password to check against a PHC string, and where to send the verdict.
struct Job {
    password: String,
    phc: String,
    verdict: oneshot::Sender<bool>,
}

pub struct HashPool {
    jobs: SyncSender<Job>,
    wait: Duration,
}

impl HashPool {
    /// Start the workers. They live as long as the process (or until the pool is dropped).
    pub fn start(limits: HashingLimits) -> anyhow::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(limits.queue.max(1));
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..limits.workers.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(HashPool {
            jobs,
            wait: limits.wait,
        })
    }

    /// Whether `password` matches `phc`. `Err(Overloaded)` when no worker takes the job in time.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, ApiError> {
        let (verdict, answer) = oneshot::channel();
        let job = Job {
            password,
            phc,
            verdict,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ApiError::Overloaded),
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::internal("password workers are gone"));
            }
        }
        // Dropping `answer` on timeout tells the worker to skip the job if it has not begun.
        match tokio::time::timeout(self.wait, answer).await {
            Ok(Ok(matches)) => Ok(matches),
            Ok(Err(_)) => Err(ApiError::internal("a password worker dropped a job")),
            Err(_) => Err(ApiError::Overloaded),
        }
    }
}

/// One worker: take jobs until the pool is dropped, with one Argon2 buffer for all of them.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match queue.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else { return };
        if job.verdict.is_closed() {
            continue; // the login gave up while queued
        }
        let matches = verify_with(&mut memory, job.password.as_bytes(), &job.phc);
        let _ = job.verdict.send(matches);
    }
}

/// Argon2 verification into `memory`, which is grown to the hash's size once and then reused.
/// The comparison of the outputs is constant-time (`phc::Output`'s equality).
fn verify_with(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params);
    argon2
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, &mut memory[..blocks])
        .is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(workers: usize, queue: usize, wait_ms: u64) -> HashPool {
        HashPool::start(HashingLimits {
            workers,
            queue,
            wait: Duration::from_millis(wait_ms),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn verifies_like_the_argon2_crate() {
        let phc = crate::users::hash_password("correct horse").unwrap();
        let pool = pool(1, 4, 10_000);
        assert!(
            pool.verify("correct horse".into(), phc.clone())
                .await
                .unwrap()
        );
        assert!(!pool.verify("wrong".into(), phc.clone()).await.unwrap());
        assert!(
            !pool
                .verify("x".into(), "not a phc string".into())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_not_queued_without_bound() {
        let phc = crate::users::hash_password("pw").unwrap();
        let pool = Arc::new(pool(1, 1, 10_000));
        let mut answers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (pool, phc) = (Arc::clone(&pool), phc.clone());
            answers.spawn(async move { pool.verify("guess".into(), phc).await });
        }
        let answers = answers.join_all().await;
        let refused = answers
            .iter()
            .filter(|a| **a == Err(ApiError::Overloaded))
            .count();
        // One worker and one queue slot: at most two of twenty get a verdict at once.
        assert!(refused >= 17, "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Ok(false) | Err(ApiError::Overloaded)))
        );
    }
}
