//! The notes of report.md: what the figures mean, and why each missed target was missed.
//!
//! A note is worded from figures of the same run, so that it stays true when the figures change:
//! the CPU each kind of request cost, what Redis added, how far sessions scaled. The reasons for
//! missed targets come from the analysis as an [`Explanation`] carrying its figures; this module
//! only puts them into sentences.

use super::{describe, measured};
use crate::analysis::{Explanation, Finding, REFRESHES_PER_SEC, TOKENS_OVER_SESSIONS};
use crate::results::Results;
use std::fmt::Write as _;

/// What the numbers mean, and why a target was missed, from the numbers themselves.
pub fn section_notes(md: &mut String, results: &Results, findings: &[Finding]) {
    let mut notes: Vec<String> = Vec::new();
    if let Some(same) = &results.same {
        let cost = |key: &str, kind: &str| same.get(key).and_then(|v| v.cpu_us(kind));
        let replica_cost = |key: &str| {
            let v = same.get(key)?;
            v.cpu_us(v.replica_kind())
        };
        if let (Some(t), Some(s), Some(p)) = (
            replica_cost("tokens"),
            replica_cost("sessions"),
            replica_cost("ping-jwt"),
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
            Some(
                replica_cost(key)?
                    + cost(key, "redis").unwrap_or(0.0)
                    + cost(key, "nginx").unwrap_or(0.0),
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
            scaling.most_replicas(),
            scaling.redis_cpu
        ));
    }
    for finding in findings {
        if let Some(why) = &finding.explanation {
            notes.push(format!(
                "Missed: {} (measured {}). {}",
                describe(finding.target),
                measured(finding),
                explain(why)
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

/// Why a target was missed, in words, from the figures the analysis attached.
fn explain(why: &Explanation) -> String {
    match why {
        Explanation::SharedCoresCompressRatio => {
            "With nothing limited, every request also pays for nginx and oha on the same 2 \
             cores (the nginx column alone is comparable to a replica's cost), so what the \
             auth method adds is a smaller share of the total and the ratio is compressed \
             towards 1; Redis's CPU does count against sessions here."
                .to_owned()
        }
        Explanation::ReplicaCostsAlike {
            verify_hot_us,
            verify_in_replica_us,
        } => {
            let verify = match (verify_hot_us, verify_in_replica_us) {
                (Some(hot), Some(real)) => format!(
                    " One RS256 verification costs {hot:.0} µs in a hot loop (section e) but \
                     about {real:.0} µs in the replica (the same request with the cache on costs \
                     that much less): in a server every verification starts with caches the \
                     network stack has just used."
                ),
                (Some(hot), None) => {
                    format!(" One RS256 verification alone costs {hot:.0} µs here (section e).")
                }
                _ => String::new(),
            };
            format!(
                "Under a per-replica quota, throughput is set by the CPU each request costs the \
                 replica (CPU columns of a). What auth adds there is, for tokens, the RSA-2048 \
                 public-key operation (the profile: AWS-LC's bignum squaring and Montgomery \
                 multiplication are the top symbols; parsing and claims are already small), and \
                 for sessions one Redis round trip as the replica sees it (encode, write, \
                 wake-up, read, decode) over loopback to an idle Redis.{verify} On this machine \
                 those two cost about the same, so the replicas alone cannot make tokens \
                 {TOKENS_OVER_SESSIONS}x faster; what sessions cost on top is Redis's own CPU \
                 (Redis column) and the fact that it is one shared process: b shows sessions \
                 stop scaling where tokens keep going, and the cache (a) removes the RSA cost \
                 altogether."
            )
        }
        Explanation::CacheLeftovers {
            above_baseline_us,
            allowed_us,
        } => {
            let figures = match (above_baseline_us, allowed_us) {
                (Some(above), Some(allowed)) => format!(
                    " Here a cached request cost the replica {above:.1} µs more than the \
                     no-auth route; the goal allows {allowed:.1} µs."
                ),
                _ => String::new(),
            };
            format!(
                "Under a quota, rps is the inverse of the replica's CPU per request, so the goal \
                 is a budget in microseconds above the no-auth route.{figures} With the cache a \
                 token request costs a SHA-256 of the token, a map look-up and a copy of the \
                 claims instead of an RSA verification; what is left above the baseline is that, \
                 the larger request (a ~700-byte Authorization header through nginx and hyper) \
                 and the larger /me answer (see the profile of tokens-cache). `verify-cost` \
                 (loadtest/README.md) measures those parts one by one on unthrottled servers."
            )
        }
        Explanation::UnlimitedProcessesShareCores { tokens_throttled } => {
            let note = tokens_throttled.map_or(String::new(), |t| {
                format!(
                    " At the most replicas, the token replicas were throttled in {:.0}% of \
                     their periods, i.e. they used their whole quota.",
                    t * 100.0
                )
            });
            format!(
                "Adding replicas adds CPU only to the replicas: nginx and oha share the rest of \
                 the 2 cores and do more work per second as throughput rises, so a busy machine \
                 takes their CPU first.{note}"
            )
        }
        Explanation::RefreshSignsTwice { issuer_cpu_us } => {
            let cpu = issuer_cpu_us.map_or(String::new(), |us| {
                format!(
                    " The issuer spent {us:.0} µs of CPU per refresh: {REFRESHES_PER_SEC:.0} \
                     refreshes/s would need {:.1} CPUs for the issuer alone.",
                    us * REFRESHES_PER_SEC / 1e6
                )
            });
            format!(
                "A refresh signs two tokens (access and refresh) and runs a Redis script; the \
                 signatures dominate (section e). The issuer shares the 2 cores with nginx, \
                 Redis and the client driving it.{cpu}"
            )
        }
        Explanation::MachineSetsSigningSpeed { openssl_sign_us } => openssl_sign_us.map_or(
            "See the noise warning: RSA signing is pure CPU and slows down with the machine."
                .to_owned(),
            |us| {
                format!(
                    "OpenSSL on the same machine at the same time needed {us:.0} µs per \
                     signature: the machine, not the code path, sets this figure."
                )
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::markdown::markdown;
    use crate::testdata;

    #[test]
    fn a_missed_target_is_noted_with_its_reason() {
        let mut results = testdata::results(0);
        results.issuer.as_mut().unwrap().issuer_cpu_us_per_refresh = Some(2000.0);
        let md = markdown(&results);
        assert!(md.contains(
            "- Missed: issuer at least 1500 refreshes/s on the whole machine (measured 10 \
             refreshes/s). A refresh signs two tokens"
        ));
        assert!(md.contains("1500 refreshes/s would need 3.0 CPUs for the issuer alone."));
        assert!(
            !md.contains("Missed: one RS256"),
            "the signature goal was met"
        );
    }
}
