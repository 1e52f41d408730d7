//! Waiting until a process is ready to serve.
//!
//! A process that has been started is not yet useful: the issuer may still be loading its key,
//! a replica fetching the JWKS, redis opening its port. Sending it traffic too early produces
//! "connection refused" or 503s that have nothing to do with what a test checks. So after
//! starting a process the stack *polls* it: it asks "are you ready?" every few milliseconds until
//! the answer is yes (HTTP services: `GET /readyz` answers 200; redis: `PING` answers `+PONG`).
//!
//! Polling must also know when to give up, and say why:
//!
//! - the process **exited**: there is no point waiting; report its exit status,
//! - the **deadline** passed: report what was awaited.
//!
//! Either way the error ends with the last lines of the process's log, which is nearly always
//! where the actual reason is ("KEY_PATH: permission denied", "Address already in use" ...).

use crate::process::Process;
use anyhow::bail;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often a process is asked again.
const POLL: Duration = Duration::from_millis(50);

/// How many lines of the log an error shows.
pub const LOG_TAIL_LINES: usize = 30;

/// Polls `probe` until it returns true. Fails when `process` exits first or `timeout` passes;
/// `awaiting` says what the probe checks, for the error message.
pub async fn wait_until_ready<F, Fut>(
    process: &mut Process,
    awaiting: &str,
    timeout: Duration,
    mut probe: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = process.try_exit() {
            bail!(
                "{} exited ({status}) before it was ready{}",
                who(process),
                tail(process)
            );
        }
        if probe().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} was not ready after {timeout:?} (waiting for {awaiting}){}",
                who(process),
                tail(process)
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The error for a process found dead while it should be running (see `Stack::check_alive`).
pub fn exited_unexpectedly(process: &mut Process) -> Option<anyhow::Error> {
    let status = process.try_exit()?;
    Some(anyhow::anyhow!(
        "{} exited unexpectedly ({status}){}",
        who(process),
        tail(process)
    ))
}

fn who(process: &Process) -> String {
    format!("{} (pid {})", process.name(), process.pid())
}

fn tail(process: &Process) -> String {
    format!(
        "\n--- last lines of {} ---\n{}\n---",
        process.log_path().display(),
        process.log_tail(LOG_TAIL_LINES)
    )
}

/// An HTTP client for probes: short timeouts, and never a proxy from `HTTP_PROXY` and friends
/// (the probes only ever talk to 127.0.0.1).
pub fn probe_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .build()?)
}

/// True if `GET url` answers 200.
pub async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    matches!(client.get(url).send().await, Ok(response) if response.status() == 200)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    #[tokio::test]
    async fn a_process_that_dies_is_reported_with_its_status_and_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("boom.log");
        let mut p =
            Process::spawn("boom", sh("echo 'cannot read KEY_PATH'; exit 3"), &log).unwrap();
        let err = wait_until_ready(&mut p, "nothing", Duration::from_secs(10), || async {
            false
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("boom (pid"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("cannot read KEY_PATH"), "{err}");
    }

    #[tokio::test]
    async fn a_process_that_never_gets_ready_times_out_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("slow.log");
        let mut p = Process::spawn("slow", sh("echo still loading; exec sleep 100"), &log).unwrap();
        let err = wait_until_ready(
            &mut p,
            "GET /readyz",
            Duration::from_millis(200),
            || async { false },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("waiting for GET /readyz"), "{err}");
        assert!(err.contains("still loading"), "{err}");
    }

    #[tokio::test]
    async fn ready_as_soon_as_the_probe_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Process::spawn("ok", sh("exec sleep 100"), &dir.path().join("ok.log")).unwrap();
        let mut asked = 0;
        wait_until_ready(&mut p, "3 asks", Duration::from_secs(10), || {
            asked += 1;
            let ready = asked >= 3;
            async move { ready }
        })
        .await
        .unwrap();
        assert_eq!(asked, 3);
    }
}
