//! loadtest: tokens against sessions, measured. Usually run as `cargo xtask bench [--quick]`.
//!
//! It builds the services in release mode, starts stacks through the same launcher as the tests
//! (the `stack` crate) with a CPU quota per replica, drives them with oha, and writes
//! `loadtest/results/<timestamp>/report.md` with SVG plots. `--help` lists the scenarios and
//! options; each scenario's module says what it measures and how:
//!
//! - [`same`]: a (tokens, sessions, baseline on the same replicas) and c (store look-ups),
//! - [`scaling`]: b (1 to N replicas),
//! - [`outage`]: d (Redis stopped mid-run),
//! - [`issuer`]: e (logins, refreshes, RS256 signing),
//! - [`network`]: f (the store across a network: added round trips to Redis),
//! - [`k6`]: g (the k6 scripts, the realistic client above all, beside oha),
//! - [`bench`]: what they share (stacks, one measured oha run with CPU accounting),
//! - [`oha`], [`perf`], [`machine`]: the tools around them,
//! - [`results`]: everything measured, as data (`results.json`),
//! - [`analysis`]: the targets judged against the results, as typed findings,
//! - [`report`], [`markdown`], [`plots`], [`svg`]: the report written from results and findings,
//! - [`check`]: what CI checks in the results (`--check`).

mod analysis;
mod bench;
mod check;
mod client;
mod issuer;
mod k6;
mod machine;
mod markdown;
mod model;
mod network;
mod oha;
mod options;
mod outage;
mod perf;
mod plots;
mod report;
mod results;
mod same;
mod scaling;
mod shards;
mod svg;
#[cfg(test)]
mod testdata;

use anyhow::Context;
use bench::Bench;
use options::{Options, Parsed};
use results::Results;
use stack::{Binaries, Profile, workspace_root};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match options::parse(&args) {
        Ok(Parsed::Help) => {
            print!("{}", options::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Render(dir)) => {
            return match render(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("error: {e:#}\nrun with --help for the usage");
            return ExitCode::from(2);
        }
    };
    match run(options, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options, args: &[String]) -> anyhow::Result<()> {
    let oha = oha::find()?;
    // Before minutes of load, not after: in CI a missing k6 is an error (k6::find).
    if options.wants('g') && options.url.is_none() {
        k6::find()?;
    }
    let started = Instant::now();
    let timestamp = machine::timestamp();
    let out_dir = options.out.clone().unwrap_or_else(|| {
        workspace_root()
            .join("loadtest")
            .join("results")
            .join(&timestamp)
    });
    let load_before = machine::load_average();
    let busy_note = machine::busy_note();
    if let Some(note) = &busy_note {
        eprintln!("warning: the machine is busy: {note} Figures will be noisy.");
    }
    let binaries = match options.url {
        Some(_) => None,
        None => {
            eprintln!("building auth-issuer and api (release)…");
            Some(Binaries::build(Profile::Release)?)
        }
    };
    let work = tempfile::Builder::new()
        .prefix("authscale-loadtest-")
        .tempdir()
        .context("cannot create a work directory")?;
    let profiler = if options.profile && options.url.is_none() {
        let found = perf::Profiler::detect(work.path());
        if found.is_none() {
            eprintln!(
                "note: perf is not usable here (apt-get install linux-perf): no profiles this run"
            );
        }
        found
    } else {
        None
    };
    let mut results = Results::default();
    results.meta = results::Meta {
        timestamp: timestamp.clone(),
        command: std::iter::once("cargo xtask bench".to_owned())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        quick: options.quick,
        git: machine::git_commit(),
        machine: machine::describe(),
        load_before,
        busy_note,
        oha: oha::version(&oha),
        duration_secs: options.duration.as_secs_f64(),
        runs: options.runs,
        concurrency: options.concurrency,
        replica_cpu: options.replica_cpu,
        redis_cpu: options.redis_cpu,
        target: match &options.url {
            Some(url) => format!("the stack already running at {url}"),
            None => "local stacks started by the launcher (release builds)".to_owned(),
        },
        ..results::Meta::default()
    };
    let mut bench = Bench::new(
        options.clone(),
        oha,
        binaries,
        work.path().to_path_buf(),
        out_dir.clone(),
        profiler,
    )?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let outcome = runtime.block_on(scenarios(&mut bench, &mut results));
    results.meta.load_after = machine::load_average();
    results.meta.elapsed_secs = started.elapsed().as_secs_f64();
    if let Err(e) = &outcome {
        results
            .skipped
            .push(format!("the run stopped with an error: {e:#}"));
    }
    report::write(&out_dir, &results)?;
    println!("\nreport: {}", out_dir.join("report.md").display());
    if let Err(e) = outcome {
        let kept: PathBuf = work.keep();
        eprintln!("the stacks' logs are kept in {}", kept.display());
        return Err(e);
    }
    if options.keep_logs {
        let kept: PathBuf = work.keep();
        eprintln!("the stacks' logs are kept in {}", kept.display());
    }
    let problems = check::check(&results);
    if problems.is_empty() {
        println!("check: every scenario had non-zero throughput and no errors");
    } else {
        for p in &problems {
            eprintln!("check: {p}");
        }
        if options.check {
            anyhow::bail!(
                "{} problem(s) in the results (listed above)",
                problems.len()
            );
        }
    }
    Ok(())
}

/// `--render DIR`: the report and plots again, from `DIR/results.json`.
fn render(dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join("results.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let results: Results =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
    report::write(dir, &results)?;
    println!("report: {}", dir.join("report.md").display());
    Ok(())
}

async fn scenarios(bench: &mut Bench, results: &mut Results) -> anyhow::Result<()> {
    let options = bench.options.clone();
    if let Some(url) = &options.url {
        let mut target = bench.remote(url).await?;
        if options.wants('a') {
            let same = same::run(bench, &mut target, None, &mut results.profiles, "a").await?;
            results.same = Some(same);
        }
        if options.wants('e') {
            results.issuer = Some(issuer::run(bench, &target).await?);
        }
        for (letter, what) in [
            (
                'b',
                "b (scaling): it starts stacks of 1 to 4 replicas itself",
            ),
            (
                'c',
                "c (store look-ups): it reads each replica's /metrics port",
            ),
            ('d', "d (store outage): it stops and restarts Redis"),
            (
                'f',
                "f (store across a network): it puts a delay proxy in front of Redis",
            ),
            (
                'g',
                "g (k6): it starts a stack with short-lived access tokens",
            ),
            ('h', "h (sharding): it starts Redis Clusters itself"),
        ] {
            if options.wants(letter) {
                results
                    .skipped
                    .push(format!("{what}; run without --url for it"));
            }
        }
        return Ok(());
    }
    if ['a', 'c', 'd', 'e'].iter().any(|s| options.wants(*s)) {
        let mut stacks = same::start_stacks(bench, Some(options.replica_cpu)).await?;
        results.meta.cpu_limits_applied = stacks
            .plain
            .stack
            .as_ref()
            .is_some_and(|s| s.cpu_limits_applied());
        if options.wants('a') {
            let same = same::run(
                bench,
                &mut stacks.plain,
                Some(&mut stacks.cache),
                &mut results.profiles,
                "a",
            )
            .await?;
            results.same = Some(same);
        }
        if options.wants('c') {
            results.lookups = Some(same::lookups(bench, &mut stacks).await?);
        }
        // Before the outage, which empties Redis.
        if options.wants('e') {
            results.issuer = Some(issuer::run(bench, &stacks.plain).await?);
        }
        if options.wants('d') {
            results.outage = Some(outage::run(bench, &mut stacks.plain).await?);
        }
        stacks.plain.stop().await?;
        stacks.cache.stop().await?;
    }
    // a again without per-replica limits (full runs): the whole machine is then the bottleneck,
    // and Redis's CPU counts against sessions like everything else.
    if options.wants('a') && !options.quick {
        let mut stacks = same::start_stacks(bench, None).await?;
        let same = same::run(
            bench,
            &mut stacks.plain,
            Some(&mut stacks.cache),
            &mut results.profiles,
            "a, no limit",
        )
        .await?;
        results.same_unlimited = Some(same);
        stacks.plain.stop().await?;
        stacks.cache.stop().await?;
    }
    if options.wants('b') {
        results.scaling = Some(scaling::run(bench).await?);
    }
    if options.wants('f') {
        results.network = Some(network::run(bench).await?);
    }
    if options.wants('g') {
        match k6::find()? {
            Some(k6) => results.k6 = Some(k6::run(bench, &k6).await?),
            None => results.skipped.push(format!(
                "g (k6): k6 is not installed ({}); CI installs it",
                k6::INSTALL
            )),
        }
    }
    if options.wants('h') {
        results.shards = Some(shards::run(bench).await?);
    }
    Ok(())
}
