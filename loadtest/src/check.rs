//! The check CI runs on a run's results (`--check`): every scenario served requests and
//! nothing failed that should not have.
//!
//! Quick runs are too short to say anything about speed, so CI does not judge the targets (see
//! `analysis.rs`); it checks what must hold at any speed: non-zero throughput, no failed
//! requests, one store look-up per session request and none per token request, tokens unharmed
//! by a Redis outage, and the issuer's logins, refreshes and timed loops all succeeding.

use crate::results::{Results, Variant, on_token_replicas};

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
    if let Some(network) = &results.network {
        for point in &network.points {
            for v in &point.variants {
                variant(&format!("f (+{} ms)", point.added_rtt_ms), v);
            }
        }
    }
    // (k6's own scripts are checked below, once `variant` has let go of `problems`.)
    if let Some(k6) = &results.k6 {
        for v in &k6.oha {
            variant("g", v);
        }
    }
    if let Some(shards) = &results.shards {
        for p in &shards.points {
            for v in &p.variants {
                variant(&format!("h ({} replicas)", p.replicas), v);
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
            let expected = row.expected_per_request();
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
            if on_token_replicas(&v.route) && v.during.1 > 0 {
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
    if let Some(k6) = &results.k6 {
        for s in &k6.scripts {
            if s.requests == 0 {
                problems.push(format!("g: k6 {} sent no requests", s.script));
            }
            // What the realistic client is there to show: tokens expire under it and are
            // refreshed (the scenario gives them a lifetime shorter than the run).
            if s.script == "realistic.js" && s.refreshes == 0 {
                problems.push("g: k6 realistic.js never refreshed its token".to_owned());
            }
            if s.unexpected > 0 {
                problems.push(format!(
                    "g: k6 {} got {} unexpected answers",
                    s.script, s.unexpected
                ));
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
        // openssl's figures are for scale only: its absence or failure is not ours.
        for m in issuer.signing.iter().filter(|m| !m.is_for_scale()) {
            if m.failed() {
                problems.push(format!("e: {}", m.label));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{LookupRow, Lookups, MicroBench, Outage, OutageVariant};
    use crate::testdata::results;

    #[test]
    fn unexpected_k6_answers_fail_the_check() {
        assert!(check(&crate::testdata::network_and_k6(0)).is_empty());
        let problems = check(&crate::testdata::network_and_k6(2));
        assert_eq!(
            problems,
            vec!["g: k6 realistic.js got 2 unexpected answers"]
        );
        let mut never_refreshed = crate::testdata::network_and_k6(0);
        if let Some(k6) = never_refreshed.k6.as_mut() {
            k6.scripts[0].refreshes = 0;
        }
        assert_eq!(
            check(&never_refreshed),
            vec!["g: k6 realistic.js never refreshed its token"]
        );
    }

    #[test]
    fn the_check_passes_a_clean_run_and_names_failures() {
        assert!(check(&results(0)).is_empty());
        let problems = check(&results(3));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("sessions had 3 failed"));
    }

    #[test]
    fn the_check_holds_the_design_to_its_promises() {
        let row = |route: &str, served: u64, store_commands: u64| LookupRow {
            label: route.into(),
            route: route.into(),
            ok: served,
            failures: 0,
            served,
            store_commands,
            redis_executed: None,
        };
        let outage = |route: &str, during_failed: u64| OutageVariant {
            label: route.into(),
            route: route.into(),
            timeline: Vec::new(),
            before: (10, 0),
            during: (10, during_failed),
            after: (10, 0),
            during_statuses: Default::default(),
            recovered_after: Some(0.0),
            store_back_after: Some(0.0),
            relogins: 0,
            unexpected: 0,
        };
        let mut r = results(0);
        r.lookups = Some(Lookups {
            rows: vec![row("/api/me", 100, 0), row("/sapi/me", 100, 100)],
        });
        r.outage = Some(Outage {
            stopped_at: 1.0,
            started_at: 2.0,
            end: 3.0,
            bucket_secs: 0.5,
            variants: vec![outage("/api/me", 0), outage("/sapi/me", 5)],
        });
        r.issuer.as_mut().unwrap().signing.push(MicroBench {
            label: "for scale: `openssl speed rsa2048`, sign".into(),
            iterations: 0,
            us_per_op: 800.0,
        });
        assert!(check(&r).is_empty(), "{:?}", check(&r));

        // A token request that touches the store, tokens failing while Redis is down, and one of
        // our own loops that failed: each is named.
        r.lookups.as_mut().unwrap().rows[0].store_commands = 1;
        r.outage.as_mut().unwrap().variants[0].during.1 = 1;
        r.issuer.as_mut().unwrap().signing[0].label = "sign (FAILED)".into();
        let problems = check(&r);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("0.010 store look-ups per request, not 0"));
        assert!(problems[1].contains("tokens failed 1 times while Redis was down"));
        assert_eq!(problems[2], "e: sign (FAILED)");
    }
}
