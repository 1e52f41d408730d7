//! What a run's results say about the project's targets, as data.
//!
//! The load test exists to check a handful of claims: tokens serve more requests than sessions on
//! the same replicas, the verification cache brings tokens close to no auth at all, token replicas
//! scale out, and the issuer signs fast enough. Each claim is a [`Target`]; [`findings`] turns the
//! results of one run into one [`Finding`] per target: the measured value, a [`Verdict`] against
//! the target's goal, the [`Evidence`] the report shows beside the value (for the targets that
//! show any) and, when the goal was missed, an [`Explanation`] built from the same run's other
//! figures.
//!
//! Nothing here writes text. The renderer (`markdown/`) decides how a finding reads; keeping the
//! two apart means a verdict is never derived from a sentence, and a sentence never has to be
//! parsed to learn which target it is about.

use crate::results::{Results, Same};

/// Goals for the ratios, each measured within one run so that the machine's speed cancels out.
pub const TOKENS_OVER_SESSIONS: f64 = 1.35;
pub const CACHE_OVER_BASELINE: f64 = 0.95;
pub const SCALING_1_TO_4: f64 = 3.8;
/// The replica count the scaling goal is stated for: a speedup to fewer replicas says nothing.
pub const SCALING_REPLICAS: usize = 4;
pub const REFRESHES_PER_SEC: f64 = 1500.0;
pub const SIGN_US: f64 = 300.0;

/// The claims a run is checked against, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// a (or a′): tokens without the cache serve more requests per second than sessions.
    TokensOverSessions(Limits),
    /// a: tokens with the verification cache come close to the no-auth route.
    CacheOverBaseline,
    /// b: token replicas scale from 1 to 4 replicas.
    TokenScaling,
    /// e: refreshes per second the issuer completes on the whole machine.
    IssuerRefreshes,
    /// e: one RS256 signature, timed in a loop in this process.
    Rs256Signature,
}

/// Which of the two runs of scenario a a finding comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limits {
    /// Each replica under its CPU quota: the replicas are the bottleneck (a).
    PerReplicaQuota,
    /// No limit on any process: everything shares the machine (a′).
    WholeMachine,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::TokensOverSessions(Limits::PerReplicaQuota),
        Target::TokensOverSessions(Limits::WholeMachine),
        Target::CacheOverBaseline,
        Target::TokenScaling,
        Target::IssuerRefreshes,
        Target::Rs256Signature,
    ];

    pub fn goal(self) -> Goal {
        match self {
            Target::TokensOverSessions(_) => Goal::AtLeast(TOKENS_OVER_SESSIONS),
            Target::CacheOverBaseline => Goal::AtLeast(CACHE_OVER_BASELINE),
            Target::TokenScaling => Goal::AtLeast(SCALING_1_TO_4),
            Target::IssuerRefreshes => Goal::AtLeast(REFRESHES_PER_SEC),
            Target::Rs256Signature => Goal::AtMost(SIGN_US),
        }
    }
}

/// A bound on the measured value, in the target's own unit (a ratio, requests/s or µs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    pub fn is_met_by(self, value: f64) -> bool {
        match self {
            Goal::AtLeast(bound) => value >= bound,
            Goal::AtMost(bound) => value <= bound,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The scenario did not run (or measured nothing usable), so there is nothing to judge.
    NotMeasured,
}

/// One target judged against one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub target: Target,
    /// `None` exactly when the verdict is [`Verdict::NotMeasured`].
    pub measured: Option<f64>,
    pub verdict: Verdict,
    /// The figures behind the measured value that the report shows; `None` when the target was
    /// not measured, and for targets whose value is shown alone.
    pub evidence: Option<Evidence>,
    /// Why the goal was missed, from this run's figures; only for a missed goal.
    pub explanation: Option<Explanation>,
}

impl Finding {
    pub fn is_measured(&self) -> bool {
        self.measured.is_some()
    }
}

/// The figures behind a measured value that the report shows next to it.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// Scenario a: median requests/s of variant `of` over that of variant `against`, measured
    /// in the same interleaved rounds on the same kind of replicas.
    RpsRatio { of: Median, against: Median },
    /// Scenario b: the most replicas the speedup was measured at.
    Scaling { replicas: usize },
}

/// The median requests/s of one variant of scenario a, over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Median {
    pub variant: String,
    pub rps: f64,
}

/// Why a goal was missed, as the figures that explain it; the renderer words it.
#[derive(Debug, Clone, PartialEq)]
pub enum Explanation {
    /// a: under a quota each request's replica CPU sets throughput, and an RSA verification
    /// costs the replica about what a Redis round trip does.
    ReplicaCostsAlike {
        /// One verification in a hot loop (e).
        verify_hot_us: Option<f64>,
        /// What the cache saves a token replica per request (a): the verification in situ.
        verify_in_replica_us: Option<f64>,
    },
    /// a′: nginx and oha share the cores, so what auth adds is a smaller share of each request.
    SharedCoresCompressRatio,
    /// a: what a cached token request still costs the replica above the no-auth route, against
    /// what the goal allows: at a fixed quota rps is the inverse of CPU per request, so the
    /// ratio goal `g` allows `baseline · (1/g − 1)` µs above the baseline.
    CacheLeftovers {
        /// Replica CPU per request of the cached `/api/me` minus that of its `/api/ping`.
        above_baseline_us: Option<f64>,
        /// What the goal allows above the baseline's replica CPU per request.
        allowed_us: Option<f64>,
    },
    /// b: replicas add CPU only to themselves; the unlimited processes compete for the rest.
    UnlimitedProcessesShareCores {
        /// Share of CFS periods the token replicas were throttled at the most replicas.
        tokens_throttled: Option<f64>,
    },
    /// e: a refresh signs two tokens, and the issuer shares the cores.
    RefreshSignsTwice { issuer_cpu_us: Option<f64> },
    /// e: RSA is pure CPU; OpenSSL timed at the same moment shows the machine's speed.
    MachineSetsSigningSpeed { openssl_sign_us: Option<f64> },
}

/// One finding per [`Target`], in [`Target::ALL`]'s order.
pub fn findings(results: &Results) -> Vec<Finding> {
    Target::ALL
        .into_iter()
        .map(|target| judge(target, results))
        .collect()
}

fn judge(target: Target, results: &Results) -> Finding {
    let measurement = measure(target, results);
    let (measured, verdict, evidence) = match measurement {
        Some((value, evidence)) => {
            let met = target.goal().is_met_by(value) && reaches_stated_scale(evidence.as_ref());
            let verdict = if met { Verdict::Met } else { Verdict::Missed };
            (Some(value), verdict, evidence)
        }
        None => (None, Verdict::NotMeasured, None),
    };
    let explanation = (verdict == Verdict::Missed).then(|| explain(target, results));
    Finding {
        target,
        measured,
        verdict,
        evidence,
        explanation,
    }
}

/// The scaling goal is "from 1 to 4": a run that stopped at fewer replicas cannot meet it.
fn reaches_stated_scale(evidence: Option<&Evidence>) -> bool {
    match evidence {
        Some(Evidence::Scaling { replicas }) => *replicas == SCALING_REPLICAS,
        _ => true,
    }
}

/// The target's value and the evidence the report shows with it; `None` when the scenario did
/// not run or measured nothing usable.
fn measure(target: Target, results: &Results) -> Option<(f64, Option<Evidence>)> {
    match target {
        Target::TokensOverSessions(limits) => {
            let same = match limits {
                Limits::PerReplicaQuota => results.same.as_ref()?,
                Limits::WholeMachine => results.same_unlimited.as_ref()?,
            };
            let (value, evidence) = ratio(same, "tokens", "sessions")?;
            Some((value, Some(evidence)))
        }
        Target::CacheOverBaseline => {
            let value = results.same.as_ref()?.ratio_to_baseline("tokens-cache")?;
            Some((value, None))
        }
        Target::TokenScaling => {
            let scaling = results.scaling.as_ref()?;
            let speedup = scaling.speedup_to("tokens", SCALING_REPLICAS)?;
            let evidence = Evidence::Scaling {
                replicas: scaling.most_replicas().min(SCALING_REPLICAS),
            };
            Some((speedup, Some(evidence)))
        }
        Target::IssuerRefreshes => {
            let refreshes = &results.issuer.as_ref()?.refreshes;
            Some((refreshes.per_sec(), None))
        }
        Target::Rs256Signature => {
            // The harness times signing first (issuer.rs), so the first loop is the signature.
            let sign = results.issuer.as_ref()?.signing.first()?;
            Some((sign.us_per_op, None))
        }
    }
}

/// rps of `of` over rps of `against`, both medians of the same scenario-a run.
fn ratio(same: &Same, of: &str, against: &str) -> Option<(f64, Evidence)> {
    let median = |key: &str| {
        let v = same.get(key)?;
        Some(Median {
            variant: v.key.clone(),
            rps: v.rps(),
        })
    };
    let (of, against) = (median(of)?, median(against)?);
    if against.rps <= 0.0 {
        return None;
    }
    let value = of.rps / against.rps;
    Some((value, Evidence::RpsRatio { of, against }))
}

fn explain(target: Target, results: &Results) -> Explanation {
    match target {
        Target::TokensOverSessions(Limits::WholeMachine) => Explanation::SharedCoresCompressRatio,
        Target::TokensOverSessions(Limits::PerReplicaQuota) => Explanation::ReplicaCostsAlike {
            verify_hot_us: results.issuer.as_ref().and_then(|i| i.verify_us()),
            verify_in_replica_us: results.same.as_ref().and_then(|same| {
                let replica_cpu = |key: &str| {
                    let v = same.get(key)?;
                    v.cpu_us(v.replica_kind())
                };
                Some(replica_cpu("tokens")? - replica_cpu("tokens-cache")?)
            }),
        },
        Target::CacheOverBaseline => {
            let cpu = |key: &str| {
                let v = results.same.as_ref()?.get(key)?;
                v.cpu_us(v.replica_kind())
            };
            let baseline = results
                .same
                .as_ref()
                .and_then(|same| same.get("tokens-cache")?.baseline.clone())
                .and_then(|key| cpu(&key));
            Explanation::CacheLeftovers {
                above_baseline_us: cpu("tokens-cache").zip(baseline).map(|(c, b)| c - b),
                allowed_us: baseline.map(|b| b * (1.0 / CACHE_OVER_BASELINE - 1.0)),
            }
        }
        Target::TokenScaling => Explanation::UnlimitedProcessesShareCores {
            tokens_throttled: results
                .scaling
                .as_ref()
                .and_then(|s| s.points.last())
                .and_then(|p| p.variants.iter().find(|v| v.key == "tokens"))
                .and_then(|v| v.throttled(v.replica_kind())),
        },
        Target::IssuerRefreshes => Explanation::RefreshSignsTwice {
            issuer_cpu_us: results
                .issuer
                .as_ref()
                .and_then(|i| i.issuer_cpu_us_per_refresh),
        },
        Target::Rs256Signature => Explanation::MachineSetsSigningSpeed {
            openssl_sign_us: results.issuer.as_ref().and_then(|i| i.openssl_sign_us()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn finding(results: &Results, target: Target) -> Finding {
        findings(results)
            .into_iter()
            .find(|f| f.target == target)
            .unwrap()
    }

    #[test]
    fn a_ratio_carries_its_medians_and_verdict() {
        let results = testdata::results(0);
        let f = finding(
            &results,
            Target::TokensOverSessions(Limits::PerReplicaQuota),
        );
        assert_eq!(f.verdict, Verdict::Met);
        assert!((f.measured.unwrap() - 1.75).abs() < 1e-9);
        let Some(Evidence::RpsRatio { of, against, .. }) = &f.evidence else {
            panic!("{f:?}");
        };
        assert_eq!((of.variant.as_str(), of.rps), ("tokens", 700.0));
        assert_eq!((against.variant.as_str(), against.rps), ("sessions", 400.0));
        assert_eq!(f.explanation, None, "a met goal needs no explanation");
    }

    #[test]
    fn scenarios_not_run_are_not_measured() {
        let results = testdata::results(0);
        for target in [
            Target::TokensOverSessions(Limits::WholeMachine),
            Target::CacheOverBaseline,
            Target::TokenScaling,
        ] {
            let f = finding(&results, target);
            assert_eq!(f.verdict, Verdict::NotMeasured, "{target:?}");
            assert!(f.measured.is_none() && f.evidence.is_none() && f.explanation.is_none());
        }
    }

    #[test]
    fn a_missed_goal_is_explained_from_the_same_run() {
        let mut results = testdata::results(0);
        results.issuer.as_mut().unwrap().issuer_cpu_us_per_refresh = Some(2000.0);
        let refreshes = finding(&results, Target::IssuerRefreshes);
        assert_eq!(refreshes.verdict, Verdict::Missed, "10 refreshes/s");
        assert_eq!(
            refreshes.explanation,
            Some(Explanation::RefreshSignsTwice {
                issuer_cpu_us: Some(2000.0)
            })
        );
        let sign = finding(&results, Target::Rs256Signature);
        assert_eq!((sign.measured, sign.verdict), (Some(250.0), Verdict::Met));
        results.issuer.as_mut().unwrap().signing[0].us_per_op = 301.0;
        let sign = finding(&results, Target::Rs256Signature);
        assert_eq!(sign.verdict, Verdict::Missed);
        assert!(matches!(
            sign.explanation,
            Some(Explanation::MachineSetsSigningSpeed { .. })
        ));
    }

    #[test]
    fn scaling_counts_only_up_to_four_replicas() {
        let three = testdata::scaling(&[(1, 100.0), (3, 400.0)]);
        let f = judge(Target::TokenScaling, &three);
        assert_eq!((f.measured, f.verdict), (Some(4.0), Verdict::Missed));
        let four = testdata::scaling(&[(1, 100.0), (4, 390.0)]);
        assert_eq!(judge(Target::TokenScaling, &four).verdict, Verdict::Met);
    }
}
