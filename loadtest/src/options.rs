//! Command-line options, parsed by hand (as xtask does: a parser crate costs more build time than
//! these flags are worth).

use anyhow::{Context, bail};
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
usage: loadtest [options]        (normally: cargo xtask bench [options])

Runs the load test and writes loadtest/results/<timestamp>/report.md with SVG plots.

Scenarios:
  a  tokens, sessions and a no-auth baseline on the same replicas, same CPU limits
  b  scaling: 1 to 6 replicas per variant, each under the same CPU quota; sessions with Redis
     under each of several quotas, for the capacity model (the report predicts b from a)
  c  store look-ups per request, read from the replicas' /metrics
  d  store outage: Redis stopped mid-run; error rate and time to recover
  e  the issuer: logins/s (Argon2id) and refreshes/s; RS256 signing cost
  f  the store across a network: tokens and sessions at 8 connections while every round
     trip to Redis takes 0, 0.5 or 2 ms longer (the launcher's delay proxy)
  g  k6: loadtest/k6's realistic client (refreshes, re-logins) and its steady scripts,
     beside oha on the same routes (skipped when k6 is not installed, except in CI)
  h  sharding: sessions on 1 Redis against a Redis Cluster of 3 shards, each shard under
     the --redis-cpu quota, 1 to --shard-max-replicas session replicas

options:
  --quick               every scenario, short (under 2 minutes of load): for CI
  --check               exit non-zero unless every scenario has non-zero rps and no errors
  --url BASE            use a stack already running at BASE (e.g. docker compose on
                        http://127.0.0.1:8080) instead of starting one: runs a and e only
  --out DIR             where to write the results (default loadtest/results/<timestamp>)
  --duration SECS       seconds per oha run (default 10, quick 1)
  --runs N              runs per variant in a and b, interleaved (default 3)
  --concurrency N       oha connections (default 64, quick 32)
  --replica-cpu CPUS    CPU quota of each replica (default 0.1)
  --redis-cpu CPUS      CPU quota of Redis in the scaling runs (default 0.05)
  --more-redis-cpus LIST  further Redis quotas for the sessions of scenario b, so the model is
                        checked at several ratios of replica to store CPU (default 0.1,0.2;
                        quick 0.2; none for none)
  --replicas N          replicas per variant in scenario a (default 2)
  --max-replicas N      scenario b goes from 1 to N replicas (default 6, quick 3)
  --shard-max-replicas N  scenario h goes from 1 to N session replicas (default 8; quick 2)
  --only LIST           run only these scenarios, e.g. --only a,c
  --no-profile          do not record perf profiles (full runs record them when perf works)
  --keep-logs           keep the stacks' work dirs (logs) after a successful run
  --render DIR          measure nothing: write DIR/report.md and the plots again from
                        DIR/results.json (after a change to the report's wording)
  -h, --help            this text
";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub quick: bool,
    pub check: bool,
    pub url: Option<String>,
    pub out: Option<PathBuf>,
    pub duration: Duration,
    pub runs: usize,
    pub concurrency: usize,
    pub replica_cpu: f64,
    pub redis_cpu: f64,
    /// Redis quotas besides `redis_cpu` for scenario b's sessions.
    pub more_redis_cpus: Vec<f64>,
    pub replicas: usize,
    pub max_replicas: usize,
    pub shard_max_replicas: usize,
    pub only: Vec<char>,
    pub profile: bool,
    pub keep_logs: bool,
}

impl Options {
    pub fn wants(&self, scenario: char) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }

    /// Seconds for a scenario that is not an oha run (outage phases, issuer runs).
    pub fn phase(&self, full_secs: u64, quick_secs: f64) -> Duration {
        if self.quick {
            Duration::from_secs_f64(quick_secs)
        } else {
            Duration::from_secs(full_secs)
        }
    }
}

pub enum Parsed {
    Help,
    Run(Options),
    /// Re-render the report in this directory from its results.json.
    Render(PathBuf),
}

pub fn parse(args: &[String]) -> anyhow::Result<Parsed> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = Options {
        quick,
        check: false,
        url: None,
        out: None,
        duration: Duration::from_secs(if quick { 1 } else { 10 }),
        runs: 3,
        concurrency: if quick { 32 } else { 64 },
        replica_cpu: 0.1,
        redis_cpu: 0.05,
        more_redis_cpus: if quick { vec![0.2] } else { vec![0.1, 0.2] },
        replicas: 2,
        max_replicas: if quick { 3 } else { 6 },
        shard_max_replicas: 8,
        only: Vec::new(),
        profile: !quick,
        keep_logs: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .with_context(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--render" => return Ok(Parsed::Render(PathBuf::from(value()?))),
            "--quick" => {}
            "--check" => options.check = true,
            "--url" => options.url = Some(value()?.trim_end_matches('/').to_owned()),
            "--out" => options.out = Some(PathBuf::from(value()?)),
            "--duration" => options.duration = Duration::from_secs_f64(number(flag, &value()?)?),
            "--runs" => options.runs = count(flag, &value()?, 1, 20)?,
            "--concurrency" => options.concurrency = count(flag, &value()?, 1, 4096)?,
            "--replica-cpu" => options.replica_cpu = number(flag, &value()?)?,
            "--redis-cpu" => options.redis_cpu = number(flag, &value()?)?,
            "--more-redis-cpus" => options.more_redis_cpus = numbers(flag, &value()?)?,
            "--replicas" => options.replicas = count(flag, &value()?, 1, 8)?,
            "--max-replicas" => options.max_replicas = count(flag, &value()?, 1, 8)?,
            "--shard-max-replicas" => options.shard_max_replicas = count(flag, &value()?, 1, 16)?,
            "--only" => {
                options.only = value()?
                    .split(',')
                    .map(|s| match s.trim() {
                        s @ ("a" | "b" | "c" | "d" | "e" | "f" | "g" | "h") => {
                            Ok(s.chars().next().unwrap_or('a'))
                        }
                        other => bail!("--only takes scenario letters a to h, not {other:?}"),
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            "--no-profile" => options.profile = false,
            "--keep-logs" => options.keep_logs = true,
            _ => bail!("unknown option {arg:?} (see --help)"),
        }
    }
    if options.duration < Duration::from_millis(500) {
        bail!("--duration must be at least 0.5 seconds");
    }
    Ok(Parsed::Run(options))
}

fn number(flag: &str, value: &str) -> anyhow::Result<f64> {
    match value.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => bail!("{flag} must be a positive number, not {value:?}"),
    }
}

/// A comma-separated list of positive numbers; "none" is the empty list.
fn numbers(flag: &str, value: &str) -> anyhow::Result<Vec<f64>> {
    if value == "none" {
        return Ok(Vec::new());
    }
    value.split(',').map(|v| number(flag, v.trim())).collect()
}

fn count(flag: &str, value: &str, min: usize, max: usize) -> anyhow::Result<usize> {
    match value.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => bail!("{flag} must be a whole number from {min} to {max}, not {value:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Options {
        let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        match parse(&args).unwrap() {
            Parsed::Run(options) => options,
            Parsed::Help | Parsed::Render(_) => panic!("not a run"),
        }
    }

    #[test]
    fn quick_shortens_runs_and_flags_override() {
        let full = run("");
        assert_eq!(full.duration, Duration::from_secs(10));
        assert!(full.profile && !full.quick);
        let quick = run("--quick --check --only a,e");
        assert!(quick.quick && quick.check && !quick.profile);
        assert_eq!(quick.duration, Duration::from_secs(1));
        assert!(quick.wants('a') && quick.wants('e') && !quick.wants('b'));
        let custom = run("--url http://127.0.0.1:8080/ --runs=5 --replica-cpu 0.25");
        assert_eq!(custom.url.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(custom.runs, 5);
        assert_eq!(custom.replica_cpu, 0.25);
        assert_eq!(full.more_redis_cpus, vec![0.1, 0.2]);
        assert_eq!(
            run("--more-redis-cpus 0.3,0.4").more_redis_cpus,
            vec![0.3, 0.4]
        );
        assert!(run("--more-redis-cpus none").more_redis_cpus.is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let err = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
            match parse(&args) {
                Err(e) => e.to_string(),
                Ok(_) => "parsed".to_owned(),
            }
        };
        assert!(err("--runs 0").contains("--runs must be"));
        assert!(err("--only x").contains("scenario letters"));
        assert!(err("--replica-cpu -1").contains("positive number"));
        assert!(err("--more-redis-cpus 0.1,x").contains("positive number"));
        assert!(err("--frobnicate").contains("unknown option"));
        assert!(err("--url").contains("needs a value"));
    }
}
