//! `cargo xtask fuzz`: the coverage-guided fuzz targets in `fuzz/`, built and run by cargo-fuzz.
//!
//! cargo-fuzz builds each target with coverage instrumentation and links it with libFuzzer,
//! which feeds the target inputs, keeps the ones that reach new code in `fuzz/corpus/<target>/`
//! and saves any input that crashes it (a panic, a timeout) in `fuzz/artifacts/<target>/`. The
//! targets and what they assert are described in `fuzz/src/lib.rs`.
//!
//! Two ways to run them:
//!
//! - bounded, as `cargo xtask test` does: a fixed number of runs per target (capped in time, so
//!   a slow machine cannot hold CI hostage), quiet, one line per target saying how many runs it
//!   did;
//! - `--seconds S` or `--runs N`, for as long as you like, with libFuzzer's own progress lines.
//!
//! Either way a crash fails the command, with the path of the input that caused it.
//!
//! Built with `--sanitizer none`: the code under test forbids `unsafe`, so AddressSanitizer
//! would slow every run down for little (it instruments Rust code, not AWS-LC's C), and without
//! a sanitizer cargo-fuzz passes no `-Z` flag, so the stable toolchain builds the targets as it
//! is. (cargo-fuzz's default, AddressSanitizer, passes `-Zsanitizer=address`: on stable that
//! takes `RUSTC_BOOTSTRAP=1 cargo fuzz run <target>`, and a second full build.) Coverage
//! instrumentation does not depend on a sanitizer. `--debug-assertions` turns arithmetic
//! overflow into a panic, which is a finding like any other.

use crate::args::Flags;
use anyhow::{Context, bail};
use stack::workspace_root;
use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// One fuzz target and how it is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub name: &'static str,
    /// libFuzzer's `-max_len`: the longest input it tries.
    max_len: usize,
    /// libFuzzer's `-dict`, in `fuzz/dicts/`: words the mutations insert whole.
    dict: &'static str,
    /// `-runs=` of the bounded run.
    bounded_runs: u64,
}

/// Every target, in the order they run. Token inputs go just past the verifier's 8 KiB limit;
/// bodies to 16 KiB, past every field limit (the 64 KiB body limit is the integration tests').
pub const TARGETS: [Target; 3] = [
    Target {
        name: "access_token",
        max_len: 9 * 1024,
        dict: "token.dict",
        bounded_runs: 10_000,
    },
    Target {
        name: "refresh_token",
        max_len: 9 * 1024,
        dict: "token.dict",
        bounded_runs: 10_000,
    },
    Target {
        name: "issuer_bodies",
        max_len: 16 * 1024,
        dict: "bodies.dict",
        bounded_runs: 30_000,
    },
];

/// Stop a bounded run after this long even if it has not done its runs.
const BOUNDED_CAP_SECS: u64 = 120;
/// An input taking longer than this is a hang, and a crash.
const INPUT_TIMEOUT_SECS: u64 = 10;

/// How long to fuzz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Each target's fixed run count, capped in time, quietly (what `cargo xtask test` runs).
    Bounded,
    Runs(u64),
    Seconds(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzOptions {
    pub bound: Bound,
    pub targets: Vec<Target>,
}

/// `[--runs N | --seconds S] [TARGET...]`; `None` for `--help`.
pub fn parse(args: &[String]) -> anyhow::Result<Option<FuzzOptions>> {
    let mut bound = Bound::Bounded;
    let mut targets = Vec::new();
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next_flag() {
        let next = match flag.name {
            "-h" | "--help" => return Ok(None),
            "--runs" => Bound::Runs(positive(flag.name, &flags.value(&flag)?)?),
            "--seconds" => Bound::Seconds(positive(flag.name, &flags.value(&flag)?)?),
            _ if flag.raw.starts_with('-') => bail!("unknown option {:?} for `fuzz`", flag.raw),
            name => {
                let target = TARGETS
                    .into_iter()
                    .find(|t| t.name == name)
                    .with_context(|| format!("unknown fuzz target {name:?}: {}", names()))?;
                if !targets.contains(&target) {
                    targets.push(target);
                }
                continue;
            }
        };
        if bound != Bound::Bounded {
            bail!("give one of --runs and --seconds, once");
        }
        bound = next;
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    Ok(Some(FuzzOptions { bound, targets }))
}

fn positive(flag: &str, value: &str) -> anyhow::Result<u64> {
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => bail!("{flag} must be a whole number of at least 1, not {value:?}"),
    }
}

fn names() -> String {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    format!("the targets are {}", names.join(", "))
}

/// `cargo xtask fuzz`: build the targets, run each, fail if any crashed.
pub fn fuzz(options: &FuzzOptions) -> anyhow::Result<()> {
    if cargo_fuzz().is_none() {
        bail!("{}", missing_message());
    }
    build()?;
    let mut crashed = Vec::new();
    for target in &options.targets {
        match run(target, options.bound)? {
            Outcome::Passed(summary) => println!("fuzz {}: {summary}", target.name),
            Outcome::Crashed(report) => {
                eprintln!("fuzz {}: CRASHED\n{report}", target.name);
                crashed.push(target.name);
            }
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzzing found a crash in {} (the inputs are above, under fuzz/artifacts/)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// For `cargo xtask test`: the bounded run of every target, or, when cargo-fuzz is not
/// installed and this is not CI, a line saying it was skipped and why.
pub fn run_if_available() -> anyhow::Result<()> {
    let ci = std::env::var_os("CI").is_some();
    match decide(cargo_fuzz().is_some(), ci) {
        Decision::Run => fuzz(&FuzzOptions {
            bound: Bound::Bounded,
            targets: TARGETS.to_vec(),
        }),
        Decision::Skip(why) => {
            eprintln!("fuzzing SKIPPED: {why}");
            Ok(())
        }
        Decision::Fail(why) => bail!("{why}"),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Run,
    Skip(String),
    Fail(String),
}

/// Skipping is for a developer's machine only: in CI (`CI` set), where `.ci/run` installs
/// cargo-fuzz, a missing one is an error rather than a silently weaker test run.
fn decide(installed: bool, ci: bool) -> Decision {
    match (installed, ci) {
        (true, _) => Decision::Run,
        (false, false) => Decision::Skip(missing_message().to_owned()),
        (false, true) => Decision::Fail(format!(
            "the fuzz targets cannot run in CI: {}",
            missing_message()
        )),
    }
}

fn missing_message() -> &'static str {
    "cargo-fuzz is not installed: install it with `cargo install cargo-fuzz --locked` \
     (a few minutes, once)"
}

/// cargo-fuzz on PATH or in cargo's bin directory.
fn cargo_fuzz() -> Option<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"));
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(cargo_bin)
        .map(|dir| dir.join("cargo-fuzz"))
        .find(|candidate| candidate.is_file())
}

/// `cargo fuzz <subcommand>` with the build options every call shares.
fn cargo_fuzz_command(subcommand: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(workspace_root()).args([
        "fuzz",
        subcommand,
        "--sanitizer",
        "none",
        "--debug-assertions",
    ]);
    command
}

/// Build every target once, with cargo's progress shown: the first build takes minutes.
fn build() -> anyhow::Result<()> {
    println!("building the fuzz targets (cargo fuzz build --sanitizer none)…");
    let started = Instant::now();
    let status = cargo_fuzz_command("build")
        .status()
        .context("cannot run cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    println!(
        "fuzz targets built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

enum Outcome {
    Passed(String),
    Crashed(String),
}

/// Run one target with `bound`. libFuzzer's output is echoed for explicit runs; for the bounded
/// run only its last lines are kept, to show when something goes wrong.
fn run(target: &Target, bound: Bound) -> anyhow::Result<Outcome> {
    let root = workspace_root();
    let corpus = root.join("fuzz/corpus").join(target.name);
    let seeds = root.join("fuzz/seeds").join(target.name);
    let artifacts = root.join("fuzz/artifacts").join(target.name);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let dict = root.join("fuzz/dicts").join(target.dict);
    let mut libfuzzer_args = vec![
        format!("-max_len={}", target.max_len),
        format!("-dict={}", dict.display()),
        format!("-timeout={INPUT_TIMEOUT_SECS}"),
        "-print_final_stats=1".to_owned(),
    ];
    match bound {
        Bound::Bounded => {
            libfuzzer_args.push(format!("-runs={}", target.bounded_runs));
            libfuzzer_args.push(format!("-max_total_time={BOUNDED_CAP_SECS}"));
        }
        Bound::Runs(runs) => libfuzzer_args.push(format!("-runs={runs}")),
        Bound::Seconds(secs) => libfuzzer_args.push(format!("-max_total_time={secs}")),
    }
    let echo = bound != Bound::Bounded;
    println!("fuzzing {} ({})…", target.name, libfuzzer_args.join(" "));

    let started = SystemTime::now();
    let clock = Instant::now();
    let mut child = cargo_fuzz_command("run")
        .arg(target.name)
        // New inputs go to the first directory; the seeds are only read.
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .args(&libfuzzer_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run cargo fuzz run")?;
    let log = Log::default();
    let readers = [
        child.stdout.take().map(|out| log.follow(out, echo)),
        child.stderr.take().map(|err| log.follow(err, echo)),
    ];
    let status = child.wait().context("waiting for cargo fuzz run")?;
    for reader in readers.into_iter().flatten() {
        let _ = reader.join();
    }
    let stats = log.stats();
    let elapsed = clock.elapsed().as_secs_f64();

    if status.success() {
        // libFuzzer's runs/s divides by whole seconds; the time is ours, start-up included.
        let mut summary = match (stats.runs, stats.per_sec) {
            (Some(runs), Some(per_sec)) => {
                format!("{runs} runs in {elapsed:.1} s ({per_sec} runs/s), no crash")
            }
            (Some(runs), None) => format!("{runs} runs in {elapsed:.1} s, no crash"),
            _ => format!("finished in {elapsed:.1} s, no crash (libFuzzer printed no run count)"),
        };
        if let (Bound::Bounded, Some(runs)) = (bound, stats.runs)
            && runs < target.bounded_runs
        {
            summary.push_str(&format!(
                " (stopped by the {BOUNDED_CAP_SECS} s cap before its {} runs)",
                target.bounded_runs
            ));
        }
        return Ok(Outcome::Passed(summary));
    }

    let mut inputs = new_files(&artifacts, started);
    inputs.extend(stats.written.iter().map(|p| root.join(p)));
    inputs.sort();
    inputs.dedup();
    let mut report = String::new();
    if !echo {
        // What went wrong, in libFuzzer's and the panic's own words; the whole tail only when
        // neither said anything.
        let why = if stats.why.is_empty() {
            log.tail()
        } else {
            stats.why.clone()
        };
        for line in why {
            report.push_str(&format!("  {line}\n"));
        }
    }
    if inputs.is_empty() {
        report.push_str(&format!(
            "cargo fuzz run exited with {status} and wrote no crash input"
        ));
    }
    for input in inputs {
        report.push_str(&format!(
            "crash input: {}\nreproduce with: cargo fuzz run --sanitizer none --debug-assertions {} {}\n",
            input.display(),
            target.name,
            input.display()
        ));
    }
    Ok(Outcome::Crashed(report))
}

/// Files in `dir` written since `since`: the inputs libFuzzer saved while it ran.
fn new_files(dir: &Path, since: SystemTime) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= since)
        })
        .map(|e| e.path())
        .collect()
}

/// The output of one run, read as it arrives from both pipes.
#[derive(Clone, Default)]
struct Log {
    inner: Arc<Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    tail: VecDeque<String>,
    stats: Stats,
}

/// What libFuzzer's closing lines say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stats {
    runs: Option<u64>,
    per_sec: Option<u64>,
    /// `Test unit written to PATH`: a crash (or timeout) input.
    written: Vec<PathBuf>,
    /// The panic's location and message, and libFuzzer's `ERROR:` line (a timeout, a signal).
    why: Vec<String>,
    /// Lines still to keep of a panic message.
    panic_lines_left: usize,
}

const TAIL_LINES: usize = 40;
/// A panic's `panicked at` line and the lines of its message after it.
const PANIC_LINES: usize = 3;

impl Log {
    fn follow(&self, pipe: impl Read + Send + 'static, echo: bool) -> std::thread::JoinHandle<()> {
        let log = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                log.record(line);
            }
        })
    }

    fn record(&self, line: String) {
        let Ok(mut state) = self.inner.lock() else {
            return;
        };
        state.stats.read(&line);
        if state.tail.len() == TAIL_LINES {
            state.tail.pop_front();
        }
        state.tail.push_back(line);
    }

    fn stats(&self) -> Stats {
        self.inner
            .lock()
            .map(|state| state.stats.clone())
            .unwrap_or_default()
    }

    fn tail(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|state| state.tail.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Stats {
    fn read(&mut self, line: &str) {
        if self.panic_lines_left > 0 {
            if line.starts_with("stack backtrace:") || line.starts_with("==") {
                self.panic_lines_left = 0;
            } else {
                self.panic_lines_left -= 1;
                self.why.push(line.to_owned());
                return;
            }
        }
        if line.contains("panicked at") {
            self.why.push(line.to_owned());
            self.panic_lines_left = PANIC_LINES - 1;
            return;
        }
        if line.contains("ERROR: libFuzzer") {
            self.why.push(line.to_owned());
        }
        let number = |prefix: &str| {
            line.strip_prefix(prefix)
                .and_then(|rest| rest.trim().parse::<u64>().ok())
        };
        if let Some(runs) = number("stat::number_of_executed_units:") {
            self.runs = Some(runs);
        } else if let Some(per_sec) = number("stat::average_exec_per_sec:") {
            self.per_sec = Some(per_sec);
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.written.push(PathBuf::from(path.trim()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_line(line: &str) -> anyhow::Result<Option<FuzzOptions>> {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        parse(&args)
    }

    fn target(name: &str) -> Target {
        TARGETS.into_iter().find(|t| t.name == name).unwrap()
    }

    #[test]
    fn no_arguments_is_the_bounded_run_of_every_target() {
        let options = parse_line("").unwrap().unwrap();
        assert_eq!(options.bound, Bound::Bounded);
        assert_eq!(options.targets, TARGETS.to_vec());
    }

    #[test]
    fn bounds_and_targets() {
        let options = parse_line("--seconds 3600 access_token").unwrap().unwrap();
        assert_eq!(options.bound, Bound::Seconds(3600));
        assert_eq!(options.targets, vec![target("access_token")]);
        let options = parse_line("issuer_bodies --runs=500 refresh_token issuer_bodies")
            .unwrap()
            .unwrap();
        assert_eq!(options.bound, Bound::Runs(500));
        assert_eq!(
            options.targets,
            vec![target("issuer_bodies"), target("refresh_token")]
        );
        assert_eq!(parse_line("--help").unwrap(), None);
    }

    #[test]
    fn bad_input_is_named() {
        let error = |line: &str| parse_line(line).unwrap_err().to_string();
        assert!(error("--runs 0").contains("at least 1"));
        assert!(error("--seconds soon").contains("not \"soon\""));
        assert!(error("--runs 5 --seconds 5").contains("one of --runs and --seconds"));
        assert!(error("--seconds").contains("--seconds needs a value"));
        assert!(error("--jobs 4").contains("unknown option \"--jobs\""));
        assert!(error("jwt").contains("unknown fuzz target \"jwt\""));
        assert!(error("jwt").contains("access_token, refresh_token, issuer_bodies"));
    }

    #[test]
    fn a_missing_cargo_fuzz_is_skipped_only_outside_ci() {
        assert_eq!(decide(true, true), Decision::Run);
        assert_eq!(decide(true, false), Decision::Run);
        assert!(
            matches!(decide(false, false), Decision::Skip(why) if why.contains("cargo install cargo-fuzz --locked"))
        );
        assert!(matches!(decide(false, true), Decision::Fail(why) if why.contains("in CI")));
    }

    #[test]
    fn libfuzzer_closing_lines_are_read() {
        let mut stats = Stats::default();
        for line in [
            "thread '<unnamed>' (8303) panicked at src/model.rs:75:5:",
            "accepted a token our key did not sign",
            "stack backtrace:",
            "   0: __rustc::rust_begin_unwind",
            "==8270== ERROR: libFuzzer: deadly signal",
            "#100000\tDONE   cov: 1234 ft: 5678 corp: 90/12Kb lim: 4096 exec/s: 33333 rss: 60Mb",
            "Done 100000 runs in 3 second(s)",
            "stat::number_of_executed_units: 100000",
            "stat::average_exec_per_sec:     33333",
            "artifact_prefix='/w/fuzz/artifacts/access_token/'; Test unit written to /w/fuzz/artifacts/access_token/crash-da39a3ee",
        ] {
            stats.read(line);
        }
        assert_eq!(stats.runs, Some(100_000));
        assert_eq!(stats.per_sec, Some(33_333));
        assert_eq!(
            stats.written,
            vec![PathBuf::from(
                "/w/fuzz/artifacts/access_token/crash-da39a3ee"
            )]
        );
        assert_eq!(
            stats.why,
            [
                "thread '<unnamed>' (8303) panicked at src/model.rs:75:5:",
                "accepted a token our key did not sign",
                "==8270== ERROR: libFuzzer: deadly signal",
            ]
        );
    }

    #[test]
    fn only_files_written_since_the_start_are_crash_inputs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("crash-old"), b"x").unwrap();
        let since = SystemTime::now() + std::time::Duration::from_secs(3600);
        assert!(new_files(dir.path(), since).is_empty());
        let since = SystemTime::UNIX_EPOCH;
        assert_eq!(
            new_files(dir.path(), since),
            vec![dir.path().join("crash-old")]
        );
        assert!(new_files(&dir.path().join("missing"), since).is_empty());
    }
}
