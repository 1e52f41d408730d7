//! `report.md`, the SVG plots, and the check CI runs on them.

use crate::results::{Results, Same, Scaling, Variant};
use crate::svg::{self, Band, COLORS, Series};
use std::fmt::Write as _;
use std::path::Path;

/// The targets of issue 5, as ratios measured in one run.
pub const TOKENS_OVER_SESSIONS: f64 = 1.35;
pub const CACHE_OVER_BASELINE: f64 = 0.90;
pub const SCALING_1_TO_4: f64 = 3.5;
pub const REFRESHES_PER_SEC: f64 = 1500.0;
pub const SIGN_US: f64 = 300.0;

/// Writes report.md, results.json and the plots into `dir`.
pub fn write(dir: &Path, results: &Results) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut plots = Vec::new();
    if let Some(scaling) = &results.scaling {
        std::fs::write(dir.join("scaling.svg"), scaling_plot(scaling))?;
        plots.push("scaling.svg");
    }
    if let Some(same) = &results.same {
        std::fs::write(dir.join("latency.svg"), latency_plot(same))?;
        std::fs::write(dir.join("throughput.svg"), throughput_plot(same))?;
        plots.push("latency.svg");
        plots.push("throughput.svg");
    }
    if let Some(outage) = &results.outage {
        std::fs::write(dir.join("outage.svg"), outage_plot(outage))?;
        plots.push("outage.svg");
    }
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(dir.join("report.md"), markdown(results))?;
    Ok(())
}

fn scaling_plot(scaling: &Scaling) -> String {
    let names = [
        ("tokens", "tokens, no cache"),
        ("tokens-cache", "tokens, cache on"),
        ("sessions", "sessions"),
    ];
    let series: Vec<Series> = names
        .iter()
        .enumerate()
        .map(|(i, (key, name))| Series {
            name: (*name).to_owned(),
            color: COLORS[i],
            points: scaling
                .series(key)
                .into_iter()
                .map(|(n, rps)| (n as f64, rps))
                .collect(),
        })
        .collect();
    let ticks: Vec<f64> = scaling.points.iter().map(|p| p.replicas as f64).collect();
    svg::line_chart(
        &format!(
            "Requests/s against replicas ({} CPU each; Redis {} CPU)",
            scaling.replica_cpu, scaling.redis_cpu
        ),
        "replicas per variant",
        "requests per second (median)",
        &series,
        &ticks,
        None,
    )
}

fn latency_plot(same: &Same) -> String {
    let groups: Vec<(String, Vec<f64>)> = same
        .variants
        .iter()
        .map(|v| (short_label(&v.key), vec![v.p50(), v.p90(), v.p99()]))
        .collect();
    svg::bar_chart(
        &format!(
            "Latency per variant, {} replicas each (median of runs)",
            same.replicas
        ),
        "milliseconds",
        &["p50", "p90", "p99"],
        &groups,
    )
}

fn throughput_plot(same: &Same) -> String {
    let groups: Vec<(String, Vec<f64>)> = same
        .variants
        .iter()
        .map(|v| (short_label(&v.key), vec![v.rps()]))
        .collect();
    svg::bar_chart(
        &format!(
            "Requests/s per variant, {} replicas each (median of runs)",
            same.replicas
        ),
        "requests per second",
        &["requests/s"],
        &groups,
    )
}

/// Bar labels short enough to sit side by side (split in two lines at ", ").
fn short_label(key: &str) -> String {
    match key {
        "ping-jwt" => "no auth, token replicas",
        "tokens" => "tokens, no cache",
        "ping-session" => "no auth, session repl.",
        "sessions" => "sessions, one Redis round trip",
        "ping-cache" => "no auth, cache replicas",
        "tokens-cache" => "tokens, cache on",
        other => other,
    }
    .to_owned()
}

fn outage_plot(outage: &crate::results::Outage) -> String {
    let per_sec = 1.0 / outage.bucket_secs;
    // The last bucket is cut short by the end of the run: leave it out rather than show a drop.
    let whole = (outage.end / outage.bucket_secs).floor() as usize;
    let mut series = Vec::new();
    for (i, v) in outage.variants.iter().enumerate() {
        let ok = v
            .timeline
            .iter()
            .take(whole)
            .enumerate()
            .map(|(b, (ok, _))| ((b as f64 + 0.5) * outage.bucket_secs, *ok as f64 * per_sec))
            .collect();
        let failed = v
            .timeline
            .iter()
            .take(whole)
            .enumerate()
            .map(|(b, (_, f))| ((b as f64 + 0.5) * outage.bucket_secs, *f as f64 * per_sec))
            .collect();
        series.push(Series {
            name: format!("{}: successes/s", v.label),
            color: COLORS[i * 2],
            points: ok,
        });
        series.push(Series {
            name: format!("{}: failures/s", v.label),
            color: COLORS[i * 2 + 1],
            points: failed,
        });
    }
    let ticks: Vec<f64> = (0..=outage.end.ceil() as usize).map(|s| s as f64).collect();
    svg::line_chart(
        "Redis stopped mid-run: answers per second",
        "seconds",
        "answers per second",
        &series,
        &ticks,
        Some(&Band {
            from: outage.stopped_at,
            to: outage.started_at,
            label: "Redis down".into(),
        }),
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**MISSED**" }
}

fn cpu_cell(v: &Variant, kind: &str) -> String {
    v.cpu_us(kind)
        .map_or("-".to_owned(), |us| format!("{us:.0}"))
}

/// The targets, each with the measured figure. Also used for the summary at the top.
fn targets(results: &Results) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let views = [
        (&results.same, "each replica under its CPU quota (a)"),
        (
            &results.same_unlimited,
            "no per-replica limit, whole machine (a′)",
        ),
    ];
    for (same, how) in views {
        if let Some(same) = same
            && let (Some(t), Some(s)) = (same.get("tokens"), same.get("sessions"))
            && s.rps() > 0.0
        {
            let ratio = t.rps() / s.rps();
            out.push((
                format!(
                    "tokens (no cache) at least {TOKENS_OVER_SESSIONS}x the rps of sessions, {how}"
                ),
                format!("{ratio:.2}x ({:.0} against {:.0} rps)", t.rps(), s.rps()),
                ratio >= TOKENS_OVER_SESSIONS,
            ));
        }
    }
    if let Some(same) = &results.same
        && let Some(ratio) = same.ratio_to_baseline("tokens-cache")
    {
        out.push((
            format!(
                "tokens with the cache at least {:.0}% of the no-auth baseline",
                CACHE_OVER_BASELINE * 100.0
            ),
            format!("{:.0}%", ratio * 100.0),
            ratio >= CACHE_OVER_BASELINE,
        ));
    }
    if let Some(scaling) = &results.scaling
        && let Some(speedup) = scaling.speedup("tokens")
    {
        let last = scaling.points.last().map_or(0, |p| p.replicas);
        out.push((
            format!("tokens scale at least {SCALING_1_TO_4}x from 1 to 4 replicas"),
            format!("{speedup:.2}x from 1 to {last}"),
            speedup >= SCALING_1_TO_4 && last == 4,
        ));
    }
    if let Some(issuer) = &results.issuer {
        let per_sec = issuer.refreshes.per_sec();
        out.push((
            format!("issuer at least {REFRESHES_PER_SEC:.0} refreshes/s on the whole machine"),
            format!("{per_sec:.0} refreshes/s"),
            per_sec >= REFRESHES_PER_SEC,
        ));
        if let Some(sign) = issuer.signing.first() {
            out.push((
                format!("one RS256 signature at most {SIGN_US:.0} µs"),
                format!("{:.0} µs", sign.us_per_op),
                sign.us_per_op <= SIGN_US,
            ));
        }
    }
    out
}

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

    let goals = targets(results);
    if !goals.is_empty() {
        md.push_str("## Targets\n\n| target | measured | |\n| --- | --- | --- |\n");
        for (target, measured, ok) in &goals {
            let _ = writeln!(md, "| {target} | {measured} | {} |", verdict(*ok));
        }
        md.push('\n');
    }

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
             | Redis in scenario b | {} CPU |\n\
             | Redis in scenarios a, c, d | unlimited |\n\
             | everything in a′ | unlimited |\n\
             | issuer, nginx (1 worker), oha, this harness | unlimited (they share the 2 cores) |\n",
            meta.replica_cpu, meta.redis_cpu
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
        section_same(
            &mut md,
            same,
            "a. Tokens, sessions and the no-auth baseline, same replicas, same CPU limits",
            true,
        );
    }
    if let Some(same) = &results.same_unlimited {
        section_same(
            &mut md,
            same,
            "a′. The same with no per-replica limit: every process shares the 2 cores",
            false,
        );
    }
    if let Some(scaling) = &results.scaling {
        section_scaling(&mut md, scaling);
    }
    if let Some(lookups) = &results.lookups {
        md.push_str("## c. Store look-ups per request\n\n");
        md.push_str(
            "A fixed number of requests per variant; the replicas' `authscale_redis_commands_total` \
             (read from each replica's `/metrics`) and Redis's own `total_commands_processed` \
             before and after.\n\n\
             | variant | route | requests served | Redis commands sent by the replicas | per request | commands Redis executed | failed |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for row in &lookups.rows {
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {} | **{:.2}** | {} | {} |",
                row.label,
                row.route,
                row.served,
                row.store_commands,
                row.per_request(),
                row.redis_executed.map_or("-".to_owned(), |n| n.to_string()),
                row.failures
            );
        }
        md.push('\n');
    }
    if let Some(outage) = &results.outage {
        section_outage(&mut md, outage);
    }
    if let Some(issuer) = &results.issuer {
        section_issuer(&mut md, issuer);
    }
    section_notes(&mut md, results, &goals);
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
    let problems = check(results);
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

fn section_same(md: &mut String, same: &Same, title: &str, plots: bool) {
    let limit = same.replica_cpu.map_or(
        "no CPU limit on any process: the replicas, Redis, nginx, oha and the issuer share the \
         2 cores, so whatever costs CPU anywhere (Redis's too) costs throughput"
            .to_owned(),
        |cpu| format!("each replica limited to {cpu} CPU"),
    );
    let plots = if plots {
        "![requests per second](throughput.svg) ![latency](latency.svg)\n\n"
    } else {
        ""
    };
    let _ = writeln!(
        md,
        "## {title}\n\n\
         {} replicas per variant, {limit}. Each variant's ratio is against the no-auth route of \
         the same replicas, measured in the same rounds. CPU columns: µs of CPU per request, \
         from the cgroups (all replicas of the variant together; Redis; nginx).\n\n\
         {plots}| variant | route | rps (median) | vs baseline | p50 ms | p90 ms | p99 ms | replica CPU µs/req | Redis µs/req | nginx µs/req | runs (rps) | answers |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        same.replicas
    );
    for v in &same.variants {
        let ratio = same
            .ratio_to_baseline(&v.key)
            .map_or("baseline".to_owned(), |r| format!("{:.0}%", r * 100.0));
        let replica_kind = if v.route.starts_with("/sapi") {
            "session replicas"
        } else {
            "jwt replicas"
        };
        let runs: Vec<String> = v.runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
        let _ = writeln!(
            md,
            "| {} | `{}` | **{:.0}** | {ratio} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} |",
            v.label,
            v.route,
            v.rps(),
            v.p50(),
            v.p90(),
            v.p99(),
            cpu_cell(v, replica_kind),
            cpu_cell(v, "redis"),
            cpu_cell(v, "nginx"),
            runs.join(", "),
            v.outcome()
        );
    }
    if let (Some(t), Some(s)) = (same.get("tokens"), same.get("sessions"))
        && s.rps() > 0.0
    {
        let _ = writeln!(
            md,
            "\nTokens against sessions: **{:.2}x** the requests per second.",
            t.rps() / s.rps()
        );
    }
    if let Some(v) = same.variants.first() {
        let _ = writeln!(md, "\nEach run: `{}` (and so on per route).\n", v.command);
    }
}

fn section_scaling(md: &mut String, scaling: &Scaling) {
    let _ = writeln!(
        md,
        "## b. Scaling with replicas\n\n\
         Every replica limited to {} CPU, Redis to {} CPU (sessions only: token replicas never \
         reach it). Medians of the runs.\n\n![rps against replicas](scaling.svg)\n\n\
         | replicas | tokens, no cache | tokens, cache on | sessions | Redis CPU used (of its quota) | Redis throttled periods | failed |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        scaling.replica_cpu, scaling.redis_cpu
    );
    for p in &scaling.points {
        let get = |key: &str| p.variants.iter().find(|v| v.key == key);
        let rps = |key: &str| get(key).map_or("-".to_owned(), |v| format!("{:.0}", v.rps()));
        let sessions = get("sessions");
        let redis_used = sessions
            .and_then(|v| v.cpus("redis"))
            .map_or("-".to_owned(), |c| {
                format!("{:.0}%", c / scaling.redis_cpu * 100.0)
            });
        let redis_throttled = sessions
            .and_then(|v| v.throttled("redis"))
            .map_or("-".to_owned(), |t| format!("{:.0}%", t * 100.0));
        let failed: u64 = p.variants.iter().map(Variant::failures).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {redis_used} | {redis_throttled} | {failed} |",
            p.replicas,
            rps("tokens"),
            rps("tokens-cache"),
            rps("sessions")
        );
    }
    for (key, label) in [
        ("tokens", "tokens, no cache"),
        ("tokens-cache", "tokens, cache on"),
        ("sessions", "sessions"),
    ] {
        if let Some(s) = scaling.speedup(key) {
            let last = scaling.points.last().map_or(0, |p| p.replicas);
            let _ = write!(md, "\n{label}: **{s:.2}x** from 1 to {last} replicas.");
        }
    }
    md.push_str("\n\n");
}

fn section_outage(md: &mut String, outage: &crate::results::Outage) {
    let _ = writeln!(
        md,
        "## d. Store outage\n\n\
         Redis stopped at {:.1} s and started again (empty) at {:.1} s, under paced load on both \
         variants. Session clients log in again when their session is gone (401).\n\n\
         ![answers per second](outage.svg)\n\n\
         | variant | before: ok / failed | during: ok / failed | error rate during | answers during | after: ok / failed | store reachable again after | first success after | re-logins |\n\
         | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
        outage.stopped_at, outage.started_at
    );
    for v in &outage.variants {
        let statuses: Vec<String> = v
            .during_statuses
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let never = v.before.1 + v.during.1 + v.after.1 == 0;
        let secs = |s: Option<f64>| s.map_or("never".to_owned(), |s| format!("{s:.2} s"));
        let (back, first) = if never {
            ("never lost it".to_owned(), "never failed".to_owned())
        } else {
            (secs(v.store_back_after), secs(v.recovered_after))
        };
        let _ = writeln!(
            md,
            "| {} `{}` | {} / {} | {} / {} | **{:.1}%** | {} | {} / {} | {back} | {first} | {} |",
            v.label,
            v.route,
            v.before.0,
            v.before.1,
            v.during.0,
            v.during.1,
            v.error_rate_during() * 100.0,
            statuses.join(", "),
            v.after.0,
            v.after.1,
            v.relogins
        );
    }
    md.push('\n');
}

fn section_issuer(md: &mut String, issuer: &crate::results::Issuer) {
    let _ = writeln!(
        md,
        "## e. The issuer\n\n\
         Password hashing: **{}** (slow on purpose: each guess costs an attacker the same). The \
         issuer has no CPU limit here: it shares the 2 cores with nginx, Redis and the clients.\n\n\
         | operation | clients | per second | p50 ms | p99 ms | failed |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n\
         | login (`POST /auth/login`) | {} | **{:.1}** | {:.1} | {:.1} | {} |\n\
         | refresh (`POST /auth/refresh`, a chain of rotations per client) | {} | **{:.0}** | {:.1} | {:.1} | {} |\n",
        issuer.argon2,
        issuer.logins.concurrency,
        issuer.logins.per_sec(),
        issuer.logins.p50_ms,
        issuer.logins.p99_ms,
        issuer.logins.failed(),
        issuer.refreshes.concurrency,
        issuer.refreshes.per_sec(),
        issuer.refreshes.p50_ms,
        issuer.refreshes.p99_ms,
        issuer.refreshes.failed(),
    );
    if let Some(us) = issuer.issuer_cpu_us_per_refresh {
        let _ = writeln!(
            md,
            "The issuer spent **{us:.0} µs of CPU per refresh** ({:.2} CPUs busy during the \
             refresh run; the clients' logins just before it are included). A refresh verifies \
             one RS256 token, runs one Lua script in Redis and signs two tokens.\n",
            issuer.issuer_cpus_during_refreshes.unwrap_or(0.0)
        );
    }
    md.push_str("RS256 in this process, one thread, 2048-bit key:\n\n| operation | µs each | iterations |\n| --- | ---: | ---: |\n");
    for m in &issuer.signing {
        let iterations = if m.iterations == 0 {
            "-".to_owned()
        } else {
            m.iterations.to_string()
        };
        let _ = writeln!(
            md,
            "| {} | **{:.1}** | {iterations} |",
            m.label, m.us_per_op
        );
    }
    md.push('\n');
}

/// What the numbers mean, and why a target was missed, from the numbers themselves.
fn section_notes(md: &mut String, results: &Results, goals: &[(String, String, bool)]) {
    let mut notes: Vec<String> = Vec::new();
    if let Some(same) = &results.same {
        let cost = |key: &str, kind: &str| same.get(key).and_then(|v| v.cpu_us(kind));
        if let (Some(t), Some(s), Some(p)) = (
            cost("tokens", "jwt replicas"),
            cost("sessions", "session replicas"),
            cost("ping-jwt", "jwt replicas"),
        ) {
            notes.push(format!(
                "Per request, a token replica spent {t:.0} µs of CPU, a session replica {s:.0} µs, \
                 and a replica answering the no-auth route {p:.0} µs. Under a CPU quota the \
                 replicas are the bottleneck, so throughput follows these costs: auth adds about \
                 {:.0} µs for tokens (the RS256 verification and the claims) and {:.0} µs for \
                 sessions (the Redis round trip as seen from the replica: encoding, two syscalls, \
                 a wake-up, decoding).",
                t - p,
                s - p
            ));
        }
        let total = |key: &str| {
            let v = same.get(key)?;
            let replicas = if v.route.starts_with("/sapi") {
                "session replicas"
            } else {
                "jwt replicas"
            };
            Some(
                v.cpu_us(replicas)?
                    + v.cpu_us("redis").unwrap_or(0.0)
                    + v.cpu_us("nginx").unwrap_or(0.0),
            )
        };
        if let (Some(t), Some(s)) = (total("tokens"), total("sessions")) {
            notes.push(format!(
                "Counting every process (replicas, Redis and nginx), a token request cost \
                 {t:.0} µs of CPU and a session request {s:.0} µs: sessions cost {:.2}x as much \
                 CPU per request system-wide.",
                s / t
            ));
        }
        if let Some(r) = cost("sessions", "redis") {
            notes.push(format!(
                "Redis itself spent {r:.0} µs per session request on top: work no token request \
                 causes anywhere, and the part that does not scale out, since every session \
                 replica shares the one store."
            ));
        }
    }
    if let Some(scaling) = &results.scaling
        && let Some(s) = scaling.speedup("sessions")
    {
        notes.push(format!(
            "Sessions went {s:.2}x from 1 to {} replicas: each replica added its CPU, but every \
             request also needs Redis, limited to {} CPU; where the table shows Redis near 100% \
             of its quota, more session replicas only queue in front of it.",
            scaling.points.last().map_or(0, |p| p.replicas),
            scaling.redis_cpu
        ));
    }
    for (target, measured, ok) in goals {
        if !ok {
            notes.push(format!(
                "Missed: {target} (measured {measured}). {}",
                miss_reason(target, results)
            ));
        }
    }
    if results.meta.busy_note.is_some() {
        notes.push(
            "The machine was not idle during this run (see the noise warning): other processes \
             took CPU from the unlimited parts (nginx, oha, the issuer), which lowers and blurs \
             every figure; ratios within one run hold up better than absolute numbers."
                .to_owned(),
        );
    }
    if notes.is_empty() {
        return;
    }
    md.push_str("## Notes\n\n");
    for note in notes {
        let _ = writeln!(md, "- {note}");
    }
    md.push('\n');
}

fn miss_reason(target: &str, results: &Results) -> String {
    if target.contains("(a′)") {
        return "With nothing limited, every request also pays for nginx and oha on the same 2 \
                cores (the nginx column alone is comparable to a replica's cost), so what the \
                auth method adds is a smaller share of the total and the ratio is compressed \
                towards 1; Redis's CPU does count against sessions here."
            .to_owned();
    }
    if target.contains("sessions") {
        let verify = results.issuer.as_ref().and_then(|i| {
            i.signing
                .iter()
                .find(|m| m.label.starts_with("verify"))
                .map(|m| m.us_per_op)
        });
        let in_replica = results.same.as_ref().and_then(|same| {
            let uncached = same.get("tokens")?.cpu_us("jwt replicas")?;
            let cached = same.get("tokens-cache")?.cpu_us("jwt replicas")?;
            Some(uncached - cached)
        });
        let verify = match (verify, in_replica) {
            (Some(hot), Some(real)) => format!(
                " One RS256 verification costs {hot:.0} µs in a hot loop (section e) but about \
                 {real:.0} µs in the replica (the same request with the cache on costs that \
                 much less): in a server every verification starts with caches the network \
                 stack has just used."
            ),
            (Some(hot), None) => {
                format!(" One RS256 verification alone costs {hot:.0} µs here (section e).")
            }
            _ => String::new(),
        };
        return format!(
            "Under a per-replica quota, throughput is set by the CPU each request costs the \
             replica (CPU columns of a). What auth adds there is, for tokens, the RSA-2048 \
             public-key operation (the profile: AWS-LC's bignum squaring and Montgomery \
             multiplication are the top symbols; parsing and claims are already small), and \
             for sessions one Redis round trip as the replica sees it (encode, write, wake-up, \
             read, decode) over loopback to an idle Redis.{verify} On this machine those two \
             cost about the same, so the replicas alone cannot make tokens 1.35x faster; what \
             sessions cost on top is Redis's own CPU (Redis column) and the fact that it is one \
             shared process: b shows sessions stop scaling where tokens keep going, and the \
             cache (a) removes the RSA cost altogether."
        );
    }
    if target.contains("cache") {
        return "With the cache a token request costs a SHA-256 of the token, a map look-up and \
                a copy of the claims instead of an RSA verification; what is left above the \
                baseline is that, the larger request (a ~700-byte Authorization header through \
                nginx and hyper) and the larger /me answer (see the profile of tokens-cache)."
            .to_owned();
    }
    if target.contains("scale") {
        let note = results
            .scaling
            .as_ref()
            .and_then(|s| s.points.last())
            .and_then(|p| p.variants.iter().find(|v| v.key == "tokens"))
            .and_then(|v| v.throttled("jwt replicas"))
            .map_or(String::new(), |t| {
                format!(" At the most replicas, the token replicas were throttled in {:.0}% of their periods, i.e. they used their whole quota.", t * 100.0)
            });
        return format!(
            "Adding replicas adds CPU only to the replicas: nginx and oha share the rest of the \
             2 cores and do more work per second as throughput rises, so a busy machine takes \
             their CPU first.{note}"
        );
    }
    if target.contains("refreshes") {
        let cpu = results
            .issuer
            .as_ref()
            .and_then(|i| i.issuer_cpu_us_per_refresh)
            .map_or(String::new(), |us| {
                format!(
                    " The issuer spent {us:.0} µs of CPU per refresh: {REFRESHES_PER_SEC:.0} \
                     refreshes/s would need {:.1} CPUs for the issuer alone.",
                    us * REFRESHES_PER_SEC / 1e6
                )
            });
        return format!(
            "A refresh signs two tokens (access and refresh) and runs a Redis script; the \
             signatures dominate (section e). The issuer shares the 2 cores with nginx, Redis \
             and the client driving it.{cpu}"
        );
    }
    if target.contains("signature") {
        let openssl = results.issuer.as_ref().and_then(|i| {
            i.signing
                .iter()
                .find(|m| m.label.contains("openssl") && m.label.ends_with("sign"))
                .map(|m| m.us_per_op)
        });
        return openssl.map_or(
            "See the noise warning: RSA signing is pure CPU and slows down with the machine."
                .to_owned(),
            |us| {
                format!(
                    "OpenSSL on the same machine at the same time needed {us:.0} µs per \
                     signature: the machine, not the code path, sets this figure."
                )
            },
        );
    }
    String::new()
}

/// What CI checks: every scenario has non-zero throughput and no errors. Returns the problems.
pub fn check(results: &Results) -> Vec<String> {
    let mut problems = Vec::new();
    let mut variant = |scenario: &str, v: &Variant| {
        if v.runs.is_empty() || v.runs.iter().any(|r| r.rps <= 0.0 || r.ok() == 0) {
            problems.push(format!(
                "{scenario}: {} had a run with zero throughput",
                v.label
            ));
        }
        if v.failures() > 0 {
            problems.push(format!(
                "{scenario}: {} had {} failed requests ({})",
                v.label,
                v.failures(),
                v.outcome()
            ));
        }
    };
    for (name, same) in [("a", &results.same), ("a′", &results.same_unlimited)] {
        if let Some(same) = same {
            for v in &same.variants {
                variant(name, v);
            }
        }
    }
    if let Some(scaling) = &results.scaling {
        for p in &scaling.points {
            for v in &p.variants {
                variant(&format!("b ({} replicas)", p.replicas), v);
            }
        }
    }
    if let Some(lookups) = &results.lookups {
        for row in &lookups.rows {
            if row.served == 0 || row.failures > 0 {
                problems.push(format!(
                    "c: {}: {} served, {} failed",
                    row.label, row.served, row.failures
                ));
            }
            let expected = if row.route.starts_with("/sapi") {
                1.0
            } else {
                0.0
            };
            if (row.per_request() - expected).abs() > 1e-9 {
                problems.push(format!(
                    "c: {} made {:.3} store look-ups per request, not {expected}",
                    row.label,
                    row.per_request()
                ));
            }
        }
    }
    if let Some(outage) = &results.outage {
        for v in &outage.variants {
            if v.before.0 == 0 || v.after.0 == 0 {
                problems.push(format!(
                    "d: {} had no success before or after the outage",
                    v.label
                ));
            }
            if v.unexpected > 0 {
                problems.push(format!(
                    "d: {} had {} failures the outage does not explain",
                    v.label, v.unexpected
                ));
            }
            if v.route.starts_with("/api") && v.during.1 > 0 {
                problems.push(format!(
                    "d: tokens failed {} times while Redis was down: they must not need it",
                    v.during.1
                ));
            }
            if v.recovered_after.is_none() {
                problems.push(format!("d: {} never recovered", v.label));
            }
        }
    }
    if let Some(issuer) = &results.issuer {
        for (name, t) in [("logins", &issuer.logins), ("refreshes", &issuer.refreshes)] {
            if t.ok == 0 || t.failed() > 0 {
                problems.push(format!(
                    "e: {name}: {} succeeded, {} failed {:?}",
                    t.ok,
                    t.failed(),
                    t.failures
                ));
            }
        }
        for m in issuer
            .signing
            .iter()
            .filter(|m| !m.label.starts_with("for scale"))
        {
            if m.label.contains("FAILED") || m.iterations == 0 {
                problems.push(format!("e: {}", m.label));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oha::RunResult;
    use crate::results::{Issuer, MicroBench, Throughput};
    use std::collections::BTreeMap;

    fn run(rps: f64, ok: u64, failed: u64) -> RunResult {
        let mut statuses = BTreeMap::new();
        statuses.insert("200".to_owned(), ok);
        if failed > 0 {
            statuses.insert("503".to_owned(), failed);
        }
        RunResult {
            rps,
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            statuses,
            ..RunResult::default()
        }
    }

    fn results(sessions_failed: u64) -> Results {
        let mut ping = Variant::new("ping-jwt", "no auth, token replicas", "/api/ping", 2);
        ping.runs = vec![run(1000.0, 1000, 0)];
        let mut tokens = Variant::new("tokens", "tokens, no cache", "/api/me", 2);
        tokens.baseline = Some("ping-jwt".into());
        tokens.runs = vec![run(700.0, 700, 0)];
        let mut sessions = Variant::new("sessions", "sessions", "/sapi/me", 2);
        sessions.runs = vec![run(400.0, 400, sessions_failed)];
        let throughput = Throughput {
            concurrency: 4,
            secs: 1.0,
            ok: 10,
            ..Throughput::default()
        };
        Results {
            same: Some(Same {
                replicas: 2,
                replica_cpu: Some(0.1),
                variants: vec![ping, tokens, sessions],
            }),
            issuer: Some(Issuer {
                argon2: "Argon2id".into(),
                logins: throughput.clone(),
                refreshes: throughput,
                issuer_cpu_us_per_refresh: None,
                issuer_cpus_during_refreshes: None,
                signing: vec![MicroBench {
                    label: "sign".into(),
                    iterations: 10,
                    us_per_op: 250.0,
                }],
            }),
            ..Results::default()
        }
    }

    #[test]
    fn the_check_passes_a_clean_run_and_names_failures() {
        assert!(check(&results(0)).is_empty());
        let problems = check(&results(3));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("sessions had 3 failed"));
    }

    #[test]
    fn the_report_states_targets_and_ratios() {
        let md = markdown(&results(0));
        assert!(md.contains(
            "| tokens (no cache) at least 1.35x the rps of sessions, each replica under its CPU \
             quota (a) | 1.75x"
        ));
        assert!(md.contains("| one RS256 signature at most 300 µs | 250 µs | met |"));
        assert!(md.contains("| 70% |"), "{md}");
        assert!(md.contains("**MISSED**"), "refreshes: 10/s");
        assert!(md.contains("Every scenario had non-zero throughput and no errors."));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &results(0)).unwrap();
        for file in ["report.md", "results.json", "latency.svg", "throughput.svg"] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
        // results.json reads back into the same results (what --render relies on).
        let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let again: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(markdown(&again), markdown(&results(0)));
    }
}
