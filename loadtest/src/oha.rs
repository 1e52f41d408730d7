//! Driving [oha](https://crates.io/crates/oha), the HTTP load generator, and reading its JSON.
//!
//! One run is `oha -z <secs>s -c <connections> --no-tui --output-format json [-H header] URL`:
//! a fixed number of keep-alive connections, each sending the next request as soon as the
//! previous answer arrived, for a fixed time. From its JSON we keep requests per second
//! (`.summary.requestsPerSec`), latency percentiles (`.latencyPercentiles`, in seconds), the
//! status codes and the errors.
//!
//! When the time is up oha abandons the requests still in flight and lists them as errors
//! ("aborted due to deadline"); those are an artefact of stopping, not failures of the server,
//! so they are counted apart.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The command that installs oha, for the error message when it is missing.
pub const INSTALL: &str = "cargo install oha --locked";

/// oha's executable: on `PATH`, or where `cargo install` puts it.
pub fn find() -> anyhow::Result<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin").join("oha"));
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("oha"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(cargo_bin)
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!(
                "oha, the HTTP load generator, is not installed: install it with `{INSTALL}` \
                 (about 4 minutes on 2 cores), then run this again"
            )
        })
}

/// `oha --version`, for the report.
pub fn version(oha: &Path) -> String {
    crate::machine::version_of(oha, "--version", "oha (version unknown)")
}

/// What one oha run is asked to do.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: String,
    pub headers: Vec<String>,
    pub duration: Duration,
    pub concurrency: usize,
    /// `Some(n)`: send exactly n requests (`-n`) instead of running for `duration`.
    pub requests: Option<u64>,
}

impl Load {
    pub fn args(&self) -> Vec<String> {
        let mut args = match self.requests {
            Some(n) => vec!["-n".to_owned(), n.to_string()],
            None => vec!["-z".to_owned(), format!("{}ms", self.duration.as_millis())],
        };
        args.extend([
            "-c".to_owned(),
            self.concurrency.to_string(),
            "--no-tui".to_owned(),
            "--output-format".to_owned(),
            "json".to_owned(),
        ]);
        for header in &self.headers {
            args.push("-H".to_owned());
            args.push(header.clone());
        }
        args.push(self.url.clone());
        args
    }

    /// The command line as a person would type it, with credentials shortened.
    pub fn display(&self) -> String {
        let amount = match self.requests {
            Some(n) => format!("-n {n}"),
            None => format!("-z {}s", self.duration.as_secs_f64()),
        };
        let mut shown = format!(
            "oha {amount} -c {} --no-tui --output-format json",
            self.concurrency
        );
        for header in &self.headers {
            let short = match header.split_once(':') {
                Some((name, _)) if name.eq_ignore_ascii_case("authorization") => {
                    "authorization: Bearer $ACCESS".to_owned()
                }
                Some((name, _)) if name.eq_ignore_ascii_case("cookie") => {
                    "cookie: sid=$SID".to_owned()
                }
                _ => header.clone(),
            };
            shown.push_str(&format!(" -H '{short}'"));
        }
        format!("{shown} {}", self.url)
    }
}

/// The numbers of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub rps: f64,
    /// Latency percentiles in milliseconds (of the answered requests).
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Answers per HTTP status.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that got no answer, by oha's error message (deadline aborts excluded).
    pub errors: BTreeMap<String, u64>,
    /// Requests abandoned in flight when the time was up.
    pub cut_at_deadline: u64,
}

impl RunResult {
    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    pub fn ok(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .map(|(_, n)| n)
            .sum()
    }

    /// Non-2xx answers plus requests with no answer at all.
    pub fn failures(&self) -> u64 {
        self.answered() - self.ok() + self.errors.values().sum::<u64>()
    }
}

/// Runs oha once and reads its JSON.
pub fn run(oha: &PathBuf, load: &Load) -> anyhow::Result<RunResult> {
    let output = Command::new(oha)
        .args(load.args())
        .output()
        .with_context(|| format!("cannot run {}", oha.display()))?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            load.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("reading the JSON of `{}`", load.display()))
}

#[derive(Deserialize)]
struct OhaJson {
    summary: Summary,
    #[serde(rename = "latencyPercentiles", default)]
    latency: BTreeMap<String, Option<f64>>,
    #[serde(rename = "statusCodeDistribution", default)]
    statuses: BTreeMap<String, u64>,
    #[serde(rename = "errorDistribution", default)]
    errors: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "requestsPerSec")]
    requests_per_sec: Option<f64>,
}

/// oha's JSON output → [`RunResult`].
pub fn parse(json: &str) -> anyhow::Result<RunResult> {
    let raw: OhaJson = serde_json::from_str(json).context("not oha's JSON output")?;
    let ms = |key: &str| raw.latency.get(key).copied().flatten().unwrap_or(0.0) * 1000.0;
    let (cut, errors): (Vec<_>, Vec<_>) = raw
        .errors
        .into_iter()
        .partition(|(message, _)| message.contains("deadline"));
    Ok(RunResult {
        rps: raw.summary.requests_per_sec.unwrap_or(0.0),
        p50_ms: ms("p50"),
        p90_ms: ms("p90"),
        p99_ms: ms("p99"),
        statuses: raw.statuses,
        errors: errors.into_iter().collect(),
        cut_at_deadline: cut.into_iter().map(|(_, n)| n).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.05, "fastest": 0.001,
                  "average": 0.01, "requestsPerSec": 4321.5, "totalData": 100,
                  "sizePerRequest": 10, "sizePerSec": 50},
      "responseTimeHistogram": {"0.001": 3},
      "latencyPercentiles": {"p10": 0.001, "p25": 0.002, "p50": 0.0125, "p75": 0.015,
                             "p90": 0.02, "p95": 0.03, "p99": 0.045, "p99.9": 0.05, "p99.99": null},
      "rps": {"mean": 4000.0},
      "details": {},
      "statusCodeDistribution": {"200": 8600, "503": 3},
      "errorDistribution": {"aborted due to deadline": 32, "connection refused": 2}
    }"#;

    #[test]
    fn reads_rps_latency_statuses_and_separates_deadline_aborts() {
        let run = parse(SAMPLE).unwrap();
        assert_eq!(run.rps, 4321.5);
        assert!((run.p50_ms - 12.5).abs() < 1e-9);
        assert!((run.p99_ms - 45.0).abs() < 1e-9);
        assert_eq!(run.statuses["200"], 8600);
        assert_eq!(run.ok(), 8600);
        assert_eq!(run.cut_at_deadline, 32);
        assert_eq!(run.errors["connection refused"], 2);
        assert_eq!(run.failures(), 5);
    }

    #[test]
    fn a_run_without_answers_has_zero_rps_not_an_error() {
        let json = r#"{"summary": {"requestsPerSec": null}, "latencyPercentiles": {"p50": null},
                       "statusCodeDistribution": {}, "errorDistribution": {}}"#;
        let run = parse(json).unwrap();
        assert_eq!(run.rps, 0.0);
        assert_eq!(run.p50_ms, 0.0);
        assert!(parse("not json").is_err());
    }

    #[test]
    fn the_displayed_command_hides_credentials() {
        let load = Load {
            url: "http://127.0.0.1:8080/api/me".into(),
            headers: vec!["authorization: Bearer eyJsecret".into()],
            duration: Duration::from_secs(10),
            concurrency: 64,
            requests: None,
        };
        let shown = load.display();
        assert!(
            shown.contains("Bearer $ACCESS") && !shown.contains("eyJsecret"),
            "{shown}"
        );
        assert!(load.args().contains(&"10000ms".to_owned()));
    }
}
