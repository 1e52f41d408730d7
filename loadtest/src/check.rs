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
    use crate::testdata::results;

    #[test]
    fn the_check_passes_a_clean_run_and_names_failures() {
        assert!(check(&results(0)).is_empty());
        let problems = check(&results(3));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("sessions had 3 failed"));
    }
}
