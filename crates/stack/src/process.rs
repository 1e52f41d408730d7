//! One child process, its log file, and how it is stopped.
//!
//! A stack runs several programs at once. Each one is a [`Process`]: the operating system's child
//! process plus a name and a log file. Its stdout and stderr both go to `logs/<name>.log`, so
//! when something fails there is one place to look (and [`log_tail`] shows the end of it in an
//! error message).
//!
//! **Stopping.** A well-behaved server stops cleanly on SIGTERM: it stops accepting, finishes
//! what is in flight and exits. So stopping is: send SIGTERM, wait a grace period, and only then
//! send SIGKILL, which cannot be caught or ignored. The standard library can only send SIGKILL
//! (`Child::kill`), so SIGTERM goes through the `nix` crate (the workspace forbids `unsafe`).
//!
//! **Children of children.** nginx is a master process with worker processes. SIGTERM to the
//! master makes it stop its workers; but if the master has to be SIGKILLed, its workers would be
//! left running, holding the port. So SIGKILL goes to the direct children first (found in
//! `/proc`), then to the process itself.
//!
//! **Never left behind.** Dropping a [`Process`] that still runs stops it (SIGTERM, 2 s, SIGKILL)
//! and waits for it, so a test that panics halfway still cleans up: unwinding drops everything.
//! (Children stay in the caller's process group on purpose: a Ctrl-C in the terminal reaches
//! them too, so even a test binary interrupted before it can drop anything leaves nothing.)

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a waiting loop looks again whether a process has exited.
const POLL: Duration = Duration::from_millis(20);

/// Grace period of a [`Process`] dropped while it still runs.
pub const DROP_GRACE: Duration = Duration::from_secs(2);

/// A running (or exited) child process with a name and a log file.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log_path: PathBuf,
    /// `Some` once the process has exited and been reaped (waited for).
    exit: Option<ExitStatus>,
}

impl Process {
    /// Starts `command` with stdout and stderr appended to `log_path` (created if needed).
    ///
    /// The log first gets a line with the command and the environment variables it was given,
    /// so a log file also says how its process was started. Appending (rather than truncating)
    /// keeps the log of an earlier run when a process is started again, e.g. redis after
    /// [`crate::Stack::stop_redis`].
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Process> {
        let mut log = open_log(log_path)?;
        writeln!(log, "=== starting {name}: {}", describe_command(&command))
            .with_context(|| format!("cannot write {}", log_path.display()))?;
        let stderr = log
            .try_clone()
            .context("cannot duplicate a log file handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", describe_command(&command)))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log_path: log_path.to_owned(),
            exit: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(status) => self.exit = status,
                // Only possible if something else reaped our child: it is gone either way.
                Err(_) => self.exit = Some(ExitStatus::default()),
            }
        }
        self.exit
    }

    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none()
    }

    /// Sends `signal` to the process if it still runs. A process that exited in the meantime is
    /// not an error: the signal had nothing left to do.
    fn signal(&mut self, signal: Signal) {
        if self.is_running() {
            send(self.pid(), signal);
        }
    }

    /// SIGKILL to the process and its direct children, then waits for it (it cannot refuse).
    pub fn kill_now(&mut self) {
        if !self.is_running() {
            return;
        }
        for child in children_of(self.pid()) {
            send(child, Signal::SIGKILL);
        }
        send(self.pid(), Signal::SIGKILL);
        self.exit = Some(self.child.wait().unwrap_or_default());
    }

    /// SIGSTOP: the process stops running but stays alive, as if it hung. The kernel still
    /// completes TCP handshakes on its listening sockets, so clients connect and then wait for an
    /// answer that does not come: the fault a timeout exists for. Undone by [`Process::resume`].
    pub fn pause(&mut self) {
        self.signal(Signal::SIGSTOP);
    }

    /// SIGCONT: a paused process runs on (and answers what waited in the meantime).
    pub fn resume(&mut self) {
        self.signal(Signal::SIGCONT);
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL. True if it had to be SIGKILLed.
    pub async fn stop(&mut self, grace: Duration) -> bool {
        !stop_all(&mut [self], grace).await.is_empty()
    }

    /// The last `lines` lines of this process's log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        stop_all_blocking(&mut [self], DROP_GRACE);
    }
}

/// Stops several processes at once: SIGTERM to all (in the given order), then waits until all
/// have exited or `grace` is over, then SIGKILLs the rest. Returns the names of those that had to
/// be SIGKILLed. Signalling all first means the grace periods overlap instead of adding up.
pub async fn stop_all(processes: &mut [&mut Process], grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    terminate_all(processes);
    while any_running(processes) && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    kill_stragglers(processes)
}

/// [`stop_all`] for places that cannot `.await`, such as `Drop`.
pub fn stop_all_blocking(processes: &mut [&mut Process], grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    terminate_all(processes);
    while any_running(processes) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    kill_stragglers(processes)
}

fn terminate_all(processes: &mut [&mut Process]) {
    for process in processes.iter_mut() {
        process.signal(Signal::SIGTERM);
        // A paused process (SIGSTOP) would only act on the SIGTERM once continued.
        process.resume();
    }
}

fn any_running(processes: &mut [&mut Process]) -> bool {
    // No short-circuit: every process gets reaped as soon as it has exited.
    processes
        .iter_mut()
        .fold(false, |running, process| process.is_running() | running)
}

fn kill_stragglers(processes: &mut [&mut Process]) -> Vec<String> {
    let mut killed = Vec::new();
    for process in processes.iter_mut() {
        if process.is_running() {
            process.kill_now();
            killed.push(process.name.clone());
        }
    }
    killed
}

/// Sends a signal, ignoring "no such process" (it has already exited).
fn send(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Process ids whose parent is `pid`, from `/proc/<id>/stat` (Linux; empty elsewhere).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| parent_of(candidate) == Some(pid))
        .collect()
}

/// The parent pid from `/proc/<pid>/stat`: "pid (comm) state ppid ...". The command name may
/// contain spaces and parentheses, so the fields are counted after the last ')'.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

fn open_log(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// `KEY=value ... program arg ...`, for the log's first line and error messages.
pub fn describe_command(command: &Command) -> String {
    let env = command.get_envs().filter_map(|(key, value)| {
        Some(format!(
            "{}={}",
            key.to_string_lossy(),
            value?.to_string_lossy()
        ))
    });
    let program = std::iter::once(command.get_program().to_string_lossy().into_owned());
    let args = command.get_args().map(|a| a.to_string_lossy().into_owned());
    env.chain(program).chain(args).collect::<Vec<_>>().join(" ")
}

/// The last `lines` lines of a log file (at most its last 64 KiB), or a note why there are none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    fn alive(pid: u32) -> bool {
        // Signal 0 checks existence. A zombie (exited, not yet reaped by its parent) still
        // exists, so also check its state in /proc.
        let exists = kill(Pid::from_raw(pid as i32), None).is_ok();
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
            .unwrap_or(false);
        exists && !zombie
    }

    #[tokio::test]
    async fn sigterm_stops_a_well_behaved_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            Process::spawn("sleeper", sh("exec sleep 1000"), &dir.path().join("s.log")).unwrap();
        assert!(p.is_running());
        let had_to_kill = p.stop(Duration::from_secs(5)).await;
        assert!(!had_to_kill);
        assert!(!alive(p.pid()));
    }

    /// A paused process that handles SIGTERM (as every server does) acts on it only once it
    /// runs again: stopping resumes it, so it still exits cleanly instead of being SIGKILLed.
    #[tokio::test]
    async fn a_paused_process_is_resumed_to_stop_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let script = format!(
            "trap 'exit 0' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        );
        let mut p = Process::spawn("pausable", sh(&script), &dir.path().join("s.log")).unwrap();
        while !ready.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        p.pause();
        let had_to_kill = p.stop(Duration::from_secs(2)).await;
        assert!(
            !had_to_kill,
            "a paused process must get the chance to exit on SIGTERM"
        );
        assert!(!alive(p.pid()));
    }

    #[tokio::test]
    async fn a_process_ignoring_sigterm_and_its_children_get_sigkilled() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        // The shell ignores SIGTERM; so does its child, which inherits the ignored disposition.
        let script = format!(
            "trap '' TERM; sleep 1000 & echo $! > {}; wait",
            pid_file.display()
        );
        let mut p = Process::spawn("stubborn", sh(&script), &dir.path().join("s.log")).unwrap();
        let grandchild = wait_for_pid_file(&pid_file).await;
        let had_to_kill = p.stop(Duration::from_millis(300)).await;
        assert!(had_to_kill);
        assert!(!alive(p.pid()));
        // SIGKILL is delivered asynchronously: on a loaded machine the orphan may take a moment
        // to die, so wait (bounded) instead of looking once.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && std::time::Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        assert!(
            !alive(grandchild),
            "the child of the killed process must be gone too"
        );
    }

    #[test]
    fn dropping_a_process_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            Process::spawn("sleeper", sh("exec sleep 1000"), &dir.path().join("s.log")).unwrap();
        let pid = p.pid();
        drop(p);
        assert!(!alive(pid));
    }

    #[test]
    fn output_goes_to_the_log_and_the_tail_shows_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/echo.log");
        let mut p = Process::spawn("echo", sh("seq 1 100; echo oops >&2"), &log).unwrap();
        while p.is_running() {
            std::thread::sleep(POLL);
        }
        let tail = p.log_tail(3);
        assert_eq!(tail, "99\n100\noops");
        let whole = std::fs::read_to_string(&log).unwrap();
        assert!(whole.starts_with("=== starting echo: sh -c"), "{whole}");
    }

    async fn wait_for_pid_file(path: &Path) -> u32 {
        for _ in 0..250 {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(pid) = text.trim().parse()
            {
                return pid;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("{} never appeared", path.display());
    }
}
