//! report.md, written from the results and the analysis's findings.
//!
//! The report reads top to bottom as a reader would ask: how was this measured (command, machine,
//! CPU limits), were the targets met, what did each scenario measure (one section each, in
//! `scenarios.rs`), and what do the figures mean (`notes.rs`, which also words why a missed
//! target was missed). Every figure comes from `results.json`, so `--render` rewrites the same
//! report from an old run.

mod model;
mod notes;
mod scenarios;

use crate::analysis::{self, Evidence, Finding, Limits, Target, Verdict};
use crate::analysis::{
    CACHE_OVER_BASELINE, REFRESHES_PER_SEC, SCALING_1_TO_4, SCALING_REPLICAS, SIGN_US,
    TOKENS_OVER_SESSIONS,
};
use crate::check;
use crate::results::Results;
use std::fmt::Write as _;

/// The whole report.md: how the run was made, the targets, one section per scenario that ran,
/// notes on what the figures mean, profiles, what did not run, and the CI check.
pub fn markdown(results: &Results) -> String {
    let meta = &results.meta;
    let mut md = String::new();
    let _ = writeln!(md, "# authscale load test, {}\n", meta.timestamp);
    if meta.quick {
        md.push_str(
            "> **Quick mode** (CI): runs are very short; the figures show that every scenario \
             works, not how fast anything is.\n\n",
        );
    }
    if let Some(note) = &meta.busy_note {
        let _ = writeln!(md, "> **Noise warning**: {note}\n");
    }
    let _ = writeln!(md, "Command: `{}`  ", meta.command);
    let _ = writeln!(md, "Commit: `{}`  ", meta.git);
    let _ = writeln!(md, "Target: {}  ", meta.target);
    let _ = writeln!(
        md,
        "Took {:.0} s. Load generator: {}, {} connections, {} s per run, {} runs per variant \
         (interleaved), medians reported.\n",
        meta.elapsed_secs, meta.oha, meta.concurrency, meta.duration_secs, meta.runs
    );

    let findings = analysis::findings(results);
    section_targets(&mut md, &findings);

    md.push_str("## Machine\n\n| | |\n| --- | --- |\n");
    for (k, v) in &meta.machine {
        let _ = writeln!(md, "| {k} | {v} |");
    }
    let _ = writeln!(md, "| load average before | {} |", meta.load_before);
    let _ = writeln!(md, "| load average after | {} |\n", meta.load_after);

    md.push_str("## CPU limits\n\n");
    if meta.cpu_limits_applied {
        let _ = writeln!(
            md,
            "Each process runs in its own cgroup (v1 `cpu` controller, CFS quota with a 10 ms \
             period, started inside its group).\n\n\
             | process | limit |\n| --- | --- |\n\
             | each replica (`api`, 1 tokio worker) | {} CPU |\n\
             | Redis in scenario b | {} CPU (sessions also at {}) |\n\
             | Redis in scenarios a, c, d | unlimited |\n\
             | everything in a′ | unlimited |\n\
             | issuer, nginx (1 worker), oha, this harness | unlimited (they share the 2 cores) |\n",
            meta.replica_cpu,
            meta.redis_cpu,
            more_quotas(results)
        );
    } else if meta.target.starts_with("local") {
        md.push_str(
            "**No CPU limits were applied** (no writable cgroup v1 cpu hierarchy): every process \
             shared the whole machine, so the ratios say little about per-replica costs and the \
             scaling scenario cannot show scaling.\n\n",
        );
    } else {
        md.push_str(
            "The stack was already running; its limits are whatever it was started with.\n\n",
        );
    }

    if let Some(same) = &results.same {
        scenarios::section_same(
            &mut md,
            same,
            "a. Tokens, sessions and the no-auth baseline, same replicas, same CPU limits",
            true,
        );
    }
    if let Some(same) = &results.same_unlimited {
        scenarios::section_same(
            &mut md,
            same,
            "a′. The same with no per-replica limit: every process shares the 2 cores",
            false,
        );
    }
    if let Some(scaling) = &results.scaling {
        scenarios::section_scaling(&mut md, scaling);
        if let Some(constants) = crate::model::constants(results) {
            model::section(&mut md, &constants, scaling);
        }
    }
    if let Some(lookups) = &results.lookups {
        scenarios::section_lookups(&mut md, lookups);
    }
    if let Some(outage) = &results.outage {
        scenarios::section_outage(&mut md, outage);
    }
    if let Some(issuer) = &results.issuer {
        scenarios::section_issuer(&mut md, issuer);
    }
    if let Some(network) = &results.network {
        scenarios::section_network(&mut md, network);
    }
    if let Some(k6) = &results.k6 {
        scenarios::section_k6(&mut md, k6);
    }
    if let Some(shards) = &results.shards {
        scenarios::section_shards(&mut md, shards);
    }
    notes::section_notes(&mut md, results, &findings);
    if !results.profiles.is_empty() {
        md.push_str(
            "## Profiles\n\nperf (`cpu-clock`, 999 Hz, one replica of the variant, last run of \
             scenario a), functions by share of that replica's samples. Full reports are in \
             `profiles/`.\n\n",
        );
        for profile in &results.profiles {
            let _ = writeln!(md, "```text\n{profile}\n```\n");
        }
    }
    if !results.skipped.is_empty() {
        md.push_str("## Not run\n\n");
        for s in &results.skipped {
            let _ = writeln!(md, "- {s}");
        }
        md.push('\n');
    }
    let problems = check::check(results);
    md.push_str("## Check\n\n");
    if problems.is_empty() {
        md.push_str("Every scenario had non-zero throughput and no errors.\n");
    } else {
        for p in &problems {
            let _ = writeln!(md, "- {p}");
        }
    }
    md
}

/// The further Redis quotas of scenario b, e.g. "0.1 and 0.2 CPU", or "no other quota".
fn more_quotas(results: &Results) -> String {
    let quotas: Vec<String> = results
        .scaling
        .as_ref()
        .map(|s| s.more_redis_cpus.iter().map(f64::to_string).collect())
        .unwrap_or_default();
    if quotas.is_empty() {
        "no other quota".to_owned()
    } else {
        format!("{} CPU", quotas.join(" and "))
    }
}

/// The targets table; a target whose scenario did not run is left out (the "Not run" section
/// says which scenarios were skipped).
fn section_targets(md: &mut String, findings: &[Finding]) {
    let judged: Vec<&Finding> = findings.iter().filter(|f| f.is_measured()).collect();
    if judged.is_empty() {
        return;
    }
    md.push_str("## Targets\n\n| target | measured | |\n| --- | --- | --- |\n");
    for finding in judged {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            describe(finding.target),
            measured(finding),
            verdict(finding.verdict)
        );
    }
    md.push('\n');
}

/// A target in words, its goal included.
fn describe(target: Target) -> String {
    match target {
        Target::TokensOverSessions(limits) => {
            let how = match limits {
                Limits::PerReplicaQuota => "each replica under its CPU quota (a)",
                Limits::WholeMachine => "no per-replica limit, whole machine (a′)",
            };
            format!("tokens (no cache) at least {TOKENS_OVER_SESSIONS}x the rps of sessions, {how}")
        }
        Target::CacheOverBaseline => format!(
            "tokens with the cache at least {:.0}% of the no-auth baseline",
            CACHE_OVER_BASELINE * 100.0
        ),
        Target::TokenScaling => {
            format!("tokens scale at least {SCALING_1_TO_4}x from 1 to {SCALING_REPLICAS} replicas")
        }
        Target::IssuerRefreshes => {
            format!("issuer at least {REFRESHES_PER_SEC:.0} refreshes/s on the whole machine")
        }
        Target::Rs256Signature => format!("one RS256 signature at most {SIGN_US:.0} µs"),
    }
}

/// The measured value in the target's unit, with the medians behind a ratio of rps.
fn measured(finding: &Finding) -> String {
    let Some(value) = finding.measured else {
        return "not measured".to_owned();
    };
    match (&finding.target, &finding.evidence) {
        (Target::TokensOverSessions(_), Some(Evidence::RpsRatio { of, against, .. })) => {
            format!("{value:.2}x ({:.0} against {:.0} rps)", of.rps, against.rps)
        }
        (Target::TokenScaling, Some(Evidence::Scaling { replicas, .. })) => {
            format!("{value:.2}x from 1 to {replicas}")
        }
        (Target::TokensOverSessions(_) | Target::TokenScaling, _) => format!("{value:.2}x"),
        (Target::CacheOverBaseline, _) => format!("{:.0}%", value * 100.0),
        (Target::IssuerRefreshes, _) => format!("{value:.0} refreshes/s"),
        (Target::Rs256Signature, _) => format!("{value:.0} µs"),
    }
}

fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Met => "met",
        Verdict::Missed => "**MISSED**",
        Verdict::NotMeasured => "not measured",
    }
}
