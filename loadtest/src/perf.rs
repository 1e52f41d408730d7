//! CPU profiles of a replica under load, with Linux `perf` (`apt-get install linux-perf`).
//!
//! `perf record -e cpu-clock -F 999 -g -p PID -- sleep N` samples where the process spends its
//! CPU time while the load runs; `perf report --no-children --sort symbol` turns that into a list
//! of functions by share of samples. The software `cpu-clock` event is used because virtual
//! machines often have no hardware counters (`perf stat -e instructions` says "not supported").
//! The top of the list goes into the report, so a missed target comes with what the CPU did.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How many lines of `perf report` the report keeps.
const TOP: usize = 25;

#[derive(Debug, Clone)]
pub struct Profiler {
    perf: PathBuf,
    scratch: PathBuf,
}

pub struct Recording {
    child: Child,
    data: PathBuf,
    perf: PathBuf,
}

impl Profiler {
    /// `perf`, if it is installed and may record here (a quick `perf record -- true`).
    pub fn detect(scratch: &Path) -> Option<Profiler> {
        let perf = stack::programs::find("perf", "").ok()?;
        let data = scratch.join("probe.perf.data");
        let works = Command::new(&perf)
            .args(["record", "-q", "-e", "cpu-clock", "-o"])
            .arg(&data)
            .args(["--", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let _ = std::fs::remove_file(&data);
        works.then(|| Profiler {
            perf,
            scratch: scratch.to_owned(),
        })
    }

    /// Starts sampling process `pid` for about `duration` (a little less, so it ends within the
    /// load run).
    pub fn start(&self, pid: u32, duration: Duration) -> anyhow::Result<Recording> {
        let data = self.scratch.join(format!("{pid}.perf.data"));
        let secs = duration.as_secs_f64() * 0.8;
        let child = Command::new(&self.perf)
            .args(["record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .args(["--", "sleep", &format!("{secs:.2}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start perf record")?;
        Ok(Recording {
            child,
            data,
            perf: self.perf.clone(),
        })
    }
}

impl Recording {
    /// Waits for the recording, writes the symbol report to `path` and returns its top lines,
    /// headed by `title`.
    pub fn finish(mut self, path: &Path, title: &str) -> anyhow::Result<String> {
        let status = self.child.wait().context("cannot wait for perf record")?;
        if !status.success() {
            bail!("perf record failed ({status})");
        }
        let output = Command::new(&self.perf)
            .args(["report", "--stdio", "--no-children", "--sort", "symbol"])
            .args(["--percent-limit", "0.5", "-g", "none", "-i"])
            .arg(&self.data)
            .output()
            .context("cannot run perf report")?;
        let _ = std::fs::remove_file(&self.data);
        if !output.status.success() {
            bail!(
                "perf report failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let samples = text
            .lines()
            .find(|l| l.starts_with("# Samples"))
            .unwrap_or("")
            .trim_start_matches("# ")
            .to_owned();
        // Lines look like "  14.16%  [.] symbol   -   -" padded to a wide column: keep the
        // share, the kind ([.] user, [k] kernel) and the symbol.
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .take(TOP)
            .map(|l| {
                let mut words: Vec<&str> = l.split_whitespace().collect();
                while words.last().is_some_and(|w| *w == "-") {
                    words.pop();
                }
                words.join(" ")
            })
            .collect();
        let top = format!("{title}: {samples}\n{}", lines.join("\n"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(top)
    }
}
