//! The phases of a long end-to-end test (compose, swarm) and how long each took: printed as each
//! one starts and ends, and all together at the end, so a slow run shows where its time went.

use anyhow::Context;
use std::time::{Duration, Instant};

pub struct Timings {
    /// Starts every line: `compose test`, `swarm test`.
    label: &'static str,
    started: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Timings {
    pub fn new(label: &'static str) -> Timings {
        Timings {
            label,
            started: Instant::now(),
            phases: Vec::new(),
        }
    }

    /// Runs one phase; its error names the phase.
    pub fn phase<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let label = self.label;
        eprintln!("{label}: {name}…");
        let start = Instant::now();
        let result = f().with_context(|| format!("{label}, phase {name:?}"))?;
        let took = start.elapsed();
        eprintln!("{label}: {name}: done in {:.1} s", took.as_secs_f64());
        self.phases.push((name, took));
        Ok(result)
    }

    pub fn print(&self) {
        eprintln!(
            "{}: PASSED in {:.1} s",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
        for (name, took) in &self.phases {
            eprintln!("  {:>6.1} s  {name}", took.as_secs_f64());
        }
    }
}
