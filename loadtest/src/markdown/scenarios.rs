//! One section of report.md per scenario: the table of its medians, and the one-line summary
//! under it.
//!
//! The sections print what was measured and nothing more; what the figures mean is said once,
//! in the notes (`notes.rs`), where figures from several scenarios can be put side by side.

use crate::k6::route_of;
use crate::results::{Issuer, K6, Lookups, Network, Outage, Same, Scaling, Variant, median};
use std::fmt::Write as _;

/// a (and a′): every variant on the same replicas, with its CPU per request.
pub fn section_same(md: &mut String, same: &Same, title: &str, plots: bool) {
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
            cpu_cell(v, v.replica_kind()),
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

/// b: the medians at each replica count, and how busy Redis was.
pub fn section_scaling(md: &mut String, scaling: &Scaling) {
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
    let last = scaling.most_replicas();
    for (key, label) in [
        ("tokens", "tokens, no cache"),
        ("tokens-cache", "tokens, cache on"),
        ("sessions", "sessions"),
    ] {
        if let Some(s) = scaling.speedup(key) {
            let _ = write!(md, "\n{label}: **{s:.2}x** from 1 to {last} replicas.");
        }
    }
    md.push_str("\n\n");
}

/// h: sessions on one Redis against three shards: the medians, the knee of each, the ratio.
pub fn section_shards(md: &mut String, shards: &Scaling) {
    use crate::shards::{CLUSTER, CLUSTER_SHARDS, ONE, SESSIONS_PER_SHARD, knee};
    let _ = writeln!(
        md,
        "## h. Sharding the store: 1 Redis against a Redis Cluster of {CLUSTER_SHARDS}\n\n\
         Session replicas limited to {} CPU each; every Redis shard limited to {} CPU (so the \
         cluster has {CLUSTER_SHARDS} times the Redis CPU). The load is spread over \
         {SESSIONS_PER_SHARD} sessions per shard of the cluster (as many on the one Redis), one \
         oha per session, all at once; rps added up, p99 the worst of them. Medians of the runs.\n\n\
         | replicas | 1 Redis (rps) | its CPU (of quota) | {CLUSTER_SHARDS} shards (rps) | their CPU (of quota) | failed |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: |",
        shards.replica_cpu, shards.redis_cpu
    );
    for p in &shards.points {
        let get = |key: &str| p.variants.iter().find(|v| v.key == key);
        let rps = |key: &str| get(key).map_or("-".to_owned(), |v| format!("{:.0}", v.rps()));
        let used = |key: &str, n: usize| {
            get(key)
                .and_then(|v| v.cpus("redis"))
                .map_or("-".to_owned(), |c| {
                    format!("{:.0}%", c / (shards.redis_cpu * n as f64) * 100.0)
                })
        };
        let failed: u64 = p.variants.iter().map(Variant::failures).sum();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {failed} |",
            p.replicas,
            rps(ONE),
            used(ONE, 1),
            rps(CLUSTER),
            used(CLUSTER, CLUSTER_SHARDS)
        );
    }
    let (one, cluster) = (knee(&shards.series(ONE)), knee(&shards.series(CLUSTER)));
    if let (Some(one), Some(cluster)) = (one, cluster) {
        let last = shards.most_replicas();
        let beyond = |k: (usize, f64)| {
            if k.0 == last {
                " (still growing at the last point: the knee is at or beyond it)"
            } else {
                ""
            }
        };
        let _ = writeln!(
            md,
            "\nKnee (the last replica count before one more adds under a tenth): 1 Redis at {} \
             replicas, {:.0} rps{}; {CLUSTER_SHARDS} shards at {} replicas, {:.0} rps{}. \
             Ratio at the knees: **{:.2}x**.",
            one.0,
            one.1,
            beyond(one),
            cluster.0,
            cluster.1,
            beyond(cluster),
            cluster.1 / one.1
        );
    }
    if let Some(v) = shards.points.first().and_then(|p| p.variants.first()) {
        let _ = writeln!(md, "\nEach run: {}.\n", v.command);
    }
}

/// c: what the replicas sent to Redis per request, by their own metrics and by Redis's.
pub fn section_lookups(md: &mut String, lookups: &Lookups) {
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

/// d: successes and failures before, during and after Redis was down.
pub fn section_outage(md: &mut String, outage: &Outage) {
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

/// e: logins, refreshes, and the RS256 loops.
pub fn section_issuer(md: &mut String, issuer: &Issuer) {
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

/// µs of CPU per request of one kind of process, or "-" when it was not accounted.
fn cpu_cell(v: &Variant, kind: &str) -> String {
    v.cpu_us(kind)
        .map_or("-".to_owned(), |us| format!("{us:.0}"))
}

/// f: tokens and sessions at each added round trip to Redis, and what the p50s did.
pub fn section_network(md: &mut String, network: &Network) {
    let _ = writeln!(
        md,
        "## f. The store across a network\n\n\
         The launcher's delay proxy sits between the services and Redis and holds every byte \
         for half the added round trip in each direction, so every exchange with Redis takes the \
         added round trip longer. One stack ({} token and {} session replicas, no CPU limits) \
         for every point, the delay changed between runs; at 0 the proxy is there with no added \
         delay. {} connections per oha run. \"PING\": the median round trip of `PING` through \
         the proxy, measured before each round (loopback and the proxy's own copying included). \
         Medians of the runs.\n\n\
         | added round trip | PING ms | tokens rps | tokens p50 ms | tokens p99 ms | sessions rps | sessions p50 ms | sessions p99 ms | failed |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        network.replicas, network.replicas, network.concurrency
    );
    for point in &network.points {
        let cells = |key: &str| {
            point.get(key).map_or("- | - | -".to_owned(), |v| {
                format!("{:.0} | {:.2} | {:.2}", v.rps(), v.p50(), v.p99())
            })
        };
        let failed: u64 = point.variants.iter().map(Variant::failures).sum();
        let _ = writeln!(
            md,
            "| {} ms | {:.2} | {} | {} | {failed} |",
            point.added_rtt_ms,
            median(point.ping_ms.iter().copied()),
            cells("tokens"),
            cells("sessions")
        );
    }
    let rises: Vec<String> = network
        .points
        .iter()
        .skip(1)
        .filter_map(|point| {
            let sessions = network.p50_rise("sessions", point)?;
            let tokens = network.p50_rise("tokens", point)?;
            Some(format!(
                "at +{} ms the sessions' p50 moved by {sessions:+.2} ms and the tokens' by \
                 {tokens:+.2} ms",
                point.added_rtt_ms
            ))
        })
        .collect();
    if !rises.is_empty() {
        let _ = writeln!(
            md,
            "\nSeen, against no added delay: {} (expected: the sessions' p50 up by at least the \
             added round trip, the tokens' not at all).",
            rises.join("; ")
        );
    }
    if let Some(v) = network.points.first().and_then(|p| p.variants.first()) {
        let _ = writeln!(md, "\nEach run: `{}` (and so on per route).", v.command);
    }
    md.push('\n');
}

/// g: what each k6 script counted and measured, then its routes beside oha's runs on them.
pub fn section_k6(md: &mut String, k6: &K6) {
    let _ = writeln!(
        md,
        "## g. k6: the realistic client and the steady scripts\n\n\
         {}, against a stack of its own whose access tokens live {} s, so that the realistic \
         clients refresh during the run. Figures from k6's `--summary-export`. \"Unexpected\": \
         answers the realistic client's flow does not explain (its `unexpected` counter); for \
         the steady scripts, failed `/me` requests. k6 counts the realistic client's 401s \
         (before a refresh) and Alice's 403s as failed requests; both are expected.\n\n\
         | script | VUs | s | requests | rps | refreshes | re-logins | unexpected | p50 / p99 ms per route | exit |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        k6.version, k6.access_ttl_secs
    );
    for s in &k6.scripts {
        let routes: Vec<String> = s
            .routes
            .iter()
            .map(|(name, p50, p99)| format!("{name} {p50:.2} / {p99:.2}"))
            .collect();
        let exit = s.exit_code.map_or("killed".to_owned(), |c| c.to_string());
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {:.0} | {} | {} | {} | {} | {exit} |",
            s.script,
            s.vus,
            s.duration_secs,
            s.requests,
            s.rps,
            s.refreshes,
            s.relogins,
            s.unexpected,
            routes.join(", ")
        );
    }
    md.push_str(
        "\nThe same routes measured by oha on the same stack right after the scripts (oha: one \
         credential, no pauses, as many connections as the steady scripts have VUs):\n\n\
         | route | k6 script | k6 p50 ms | k6 p99 ms | oha p50 ms | oha p99 ms | oha rps | oha answers |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for s in &k6.scripts {
        for (name, p50, p99) in &s.routes {
            let Some(route) = route_of(&s.script, name) else {
                continue;
            };
            let oha = k6.oha.iter().find(|v| v.route == route);
            let oha_cells = oha.map_or("- | - | - | -".to_owned(), |v| {
                format!(
                    "{:.2} | {:.2} | {:.0} | {}",
                    v.p50(),
                    v.p99(),
                    v.rps(),
                    v.outcome()
                )
            });
            let _ = writeln!(
                md,
                "| `{route}` | `{}` | {p50:.2} | {p99:.2} | {oha_cells} |",
                s.script
            );
        }
    }
    if let Some(s) = k6.scripts.first() {
        let _ = writeln!(md, "\nEach script: `{}` (and so on).", s.command);
    }
    let crossed: Vec<String> = k6
        .scripts
        .iter()
        .flat_map(|s| s.crossed.iter().map(move |c| format!("`{}` {c}", s.script)))
        .collect();
    if !crossed.is_empty() {
        let _ = writeln!(md, "\nk6 thresholds crossed: {}.", crossed.join("; "));
    }
    md.push('\n');
}
