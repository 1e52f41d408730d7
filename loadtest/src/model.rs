//! The capacity model: the scaling law with measured constants, checked against scenario b.
//!
//! Every request costs CPU in a few places: the replica that answers it (`c_r`), Redis (`c_s`,
//! sessions only: a token replica never asks the store), nginx (`c_b`) and, on this one machine,
//! the load generator (`c_g`). Give each replica a quota `q_r` of CPU and Redis a quota `q_s`,
//! and a cluster of `N` replicas can serve at most
//!
//! ```text
//! X(N) = min( N·q_r / c_r ,  q_s / c_s ,  C / (c_r + c_s + c_b + c_g) )
//!             replicas        the store     the whole machine (C cores)
//! ```
//!
//! requests per second: whichever runs out first. The first term grows with `N`; the second does
//! not, so sessions stop scaling at the **knee** `N* = (q_s / q_r) · (c_r / c_s)`, and tokens,
//! which have no second term, go on until the balancer or the machine. That is the project's
//! claim as a formula.
//!
//! The constants come from scenario a (one run, every variant on the same quota'd replicas,
//! Redis unlimited), and the prediction is checked against scenario b, which measures N = 1 to
//! 6 replicas with Redis under several quotas: a different run at different ratios `q_r / q_s`,
//! so the model is tested, not fitted. With the same constants the report also sizes, on paper,
//! what 10k, 100k and 1M requests per second would need.

use crate::bench::LOAD_GENERATOR;
use crate::results::{Results, Scaling, Variant, on_session_replicas};

/// CPU µs per request of one variant, in each place it is spent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// The replica that answered.
    pub replica: f64,
    /// Redis (0 for the token variants, which never reach it).
    pub store: f64,
    /// nginx.
    pub balancer: f64,
    /// oha (0 when the run did not record it).
    pub load_generator: f64,
}

impl Costs {
    /// Everything one request costs the machine.
    pub fn total(&self) -> f64 {
        self.replica + self.store + self.balancer + self.load_generator
    }
}

/// What limits throughput at a given point: the first term of the law to run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Replicas,
    Store,
    Machine,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Replicas => "replicas",
            Limit::Store => "Redis",
            Limit::Machine => "machine",
        }
    }
}

/// The law's answer for one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub rps: f64,
    pub limit: Limit,
}

/// The law itself: requests per second for `n` replicas of quota `replica_cpu` each, the store
/// under `store_cpu` (None: not used, or not limited), on a machine of `cores` cores.
pub fn predict(
    costs: &Costs,
    n: usize,
    replica_cpu: f64,
    store_cpu: Option<f64>,
    cores: f64,
) -> Prediction {
    let per_second = |cpu: f64, us: f64| {
        if us > 0.0 {
            cpu * 1e6 / us
        } else {
            f64::INFINITY
        }
    };
    let mut best = Prediction {
        rps: per_second(n as f64 * replica_cpu, costs.replica),
        limit: Limit::Replicas,
    };
    let store = match store_cpu {
        Some(quota) if costs.store > 0.0 => per_second(quota, costs.store),
        _ => f64::INFINITY,
    };
    for (rps, limit) in [
        (store, Limit::Store),
        (per_second(cores, costs.total()), Limit::Machine),
    ] {
        if rps < best.rps {
            best = Prediction { rps, limit };
        }
    }
    best
}

/// Where the replicas' term meets the store's: `(q_s / q_r) · (c_r / c_s)` replicas.
pub fn knee(costs: &Costs, replica_cpu: f64, store_cpu: f64) -> Option<f64> {
    (costs.store > 0.0 && replica_cpu > 0.0)
        .then(|| (store_cpu / replica_cpu) * (costs.replica / costs.store))
}

/// The constants of one run: each variant's costs (scenario a) and the machine's cores.
#[derive(Debug, Clone, PartialEq)]
pub struct Constants {
    pub cores: f64,
    /// (variant key, label, costs), for the variants scenario b measures too.
    pub variants: Vec<(String, String, Costs)>,
}

impl Constants {
    pub fn costs(&self, key: &str) -> Option<&Costs> {
        self.variants
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, c)| c)
    }
}

/// The variants the model covers, by scenario a's keys.
const MODELLED: [&str; 3] = ["tokens", "tokens-cache", "sessions"];

/// The constants, from scenario a under per-replica quotas; None when it did not run (or
/// measured no CPU: a `--url` run).
pub fn constants(results: &Results) -> Option<Constants> {
    let same = results.same.as_ref()?;
    let cores = results
        .meta
        .machine
        .get("cores")
        .and_then(|c| c.parse::<f64>().ok())
        .filter(|c| *c > 0.0)?;
    let variants: Vec<(String, String, Costs)> = MODELLED
        .iter()
        .filter_map(|key| {
            let v = same.get(key)?;
            Some((v.key.clone(), v.label.clone(), costs_of(v)?))
        })
        .collect();
    (!variants.is_empty()).then_some(Constants { cores, variants })
}

fn costs_of(v: &Variant) -> Option<Costs> {
    let replica = v.cpu_us(v.replica_kind())?;
    // Only a session request reaches Redis; what Redis spends meanwhile on a token run is its
    // own housekeeping, not the request's.
    let store = if on_session_replicas(&v.route) {
        v.cpu_us("redis")?
    } else {
        0.0
    };
    Some(Costs {
        replica,
        store,
        balancer: v.cpu_us("nginx").unwrap_or(0.0),
        load_generator: v.cpu_us(LOAD_GENERATOR).unwrap_or(0.0),
    })
}

/// One point of scenario b against the law.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub replicas: usize,
    pub predicted: Prediction,
    pub measured: f64,
}

impl Point {
    /// measured / predicted − 1: +0.10 means the run did 10% better than the law said.
    pub fn error(&self) -> f64 {
        self.measured / self.predicted.rps - 1.0
    }
}

/// One curve of scenario b (a variant, at one store quota) against the law.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub key: String,
    pub label: String,
    /// Redis's quota, for the sessions.
    pub store_cpu: Option<f64>,
    pub knee: Option<f64>,
    pub points: Vec<Point>,
}

impl Curve {
    /// The measured point nearest the predicted knee: where the law is most easily wrong (both
    /// terms matter there), so the one whose error the report states.
    pub fn at_knee(&self) -> Option<&Point> {
        let knee = self.knee?;
        self.points.iter().min_by(|a, b| {
            let d = |p: &Point| (p.replicas as f64 - knee).abs();
            d(a).total_cmp(&d(b))
        })
    }

    /// The largest error of any point, by size.
    pub fn worst(&self) -> Option<&Point> {
        self.points
            .iter()
            .max_by(|a, b| a.error().abs().total_cmp(&b.error().abs()))
    }
}

/// Every curve of scenario b that the constants cover, predicted and measured.
pub fn check(constants: &Constants, scaling: &Scaling) -> Vec<Curve> {
    let mut plans: Vec<(String, String, &str, Option<f64>)> = vec![
        ("tokens".into(), "tokens, no cache".into(), "tokens", None),
        (
            "tokens-cache".into(),
            "tokens, cache on".into(),
            "tokens-cache",
            None,
        ),
    ];
    for (quota, key) in scaling.session_quotas() {
        let label = format!("sessions, Redis {quota} CPU");
        plans.push((key, label, "sessions", Some(quota)));
    }
    plans
        .into_iter()
        .filter_map(|(key, label, costs_key, store_cpu)| {
            let costs = constants.costs(costs_key)?;
            let points: Vec<Point> = scaling
                .series(&key)
                .into_iter()
                .filter(|(_, rps)| *rps > 0.0)
                .map(|(n, measured)| Point {
                    replicas: n,
                    predicted: predict(costs, n, scaling.replica_cpu, store_cpu, constants.cores),
                    measured,
                })
                .collect();
            let knee = store_cpu.and_then(|q| knee(costs, scaling.replica_cpu, q));
            (!points.is_empty()).then_some(Curve {
                key,
                label,
                store_cpu,
                knee,
                points,
            })
        })
        .collect()
}

/// What a target throughput needs, on paper, for one variant: CPU cores at each place.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    pub rps: f64,
    pub replica_cores: f64,
    pub store_cores: f64,
    /// Redis executes commands on one thread: one shard can use about one core.
    pub store_shards: usize,
    pub balancer_cores: f64,
}

/// The throughputs the report sizes.
pub const PAPER_TARGETS: [f64; 3] = [10_000.0, 100_000.0, 1_000_000.0];

/// The cores `rps` requests per second need with these costs (the load generator left out: it
/// stands for the clients, who bring their own machines).
pub fn size(costs: &Costs, rps: f64) -> Sizing {
    let cores = |us: f64| rps * us / 1e6;
    let store_cores = cores(costs.store);
    Sizing {
        rps,
        replica_cores: cores(costs.replica),
        store_cores,
        store_shards: store_cores.ceil() as usize,
        balancer_cores: cores(costs.balancer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ScalePoint, sessions_key};
    use crate::testdata;

    const SESSION: Costs = Costs {
        replica: 40.0,
        store: 10.0,
        balancer: 20.0,
        load_generator: 10.0,
    };

    #[test]
    fn the_law_takes_whichever_runs_out_first() {
        // 1 replica of 0.1 CPU at 40 µs: 2,500 rps; Redis 0.05 CPU at 10 µs: 5,000 rps.
        let one = predict(&SESSION, 1, 0.1, Some(0.05), 2.0);
        assert_eq!(one.limit, Limit::Replicas);
        assert!((one.rps - 2_500.0).abs() < 1e-6);
        // 4 replicas could do 10,000; Redis stops them at 5,000.
        let four = predict(&SESSION, 4, 0.1, Some(0.05), 2.0);
        assert_eq!(four.limit, Limit::Store);
        assert!((four.rps - 5_000.0).abs() < 1e-6);
        // Without a store quota, 2 cores at 80 µs a request are the limit: 25,000 rps.
        let many = predict(&SESSION, 100, 0.1, None, 2.0);
        assert_eq!(many.limit, Limit::Machine);
        assert!((many.rps - 25_000.0).abs() < 1e-6);
    }

    #[test]
    fn the_knee_is_where_replicas_meet_the_store() {
        // (0.05 / 0.1) · (40 / 10) = 2 replicas.
        assert!((knee(&SESSION, 0.1, 0.05).unwrap() - 2.0).abs() < 1e-9);
        let tokens = Costs {
            store: 0.0,
            ..SESSION
        };
        assert!(knee(&tokens, 0.1, 0.05).is_none());
        // At the knee both terms agree.
        let at = predict(&SESSION, 2, 0.1, Some(0.05), 100.0);
        assert!((at.rps - 0.05 * 1e6 / 10.0).abs() < 1e-6);
    }

    #[test]
    fn sizing_counts_cores_and_whole_shards() {
        let s = size(&SESSION, 100_000.0);
        assert!((s.replica_cores - 4.0).abs() < 1e-9);
        assert!((s.store_cores - 1.0).abs() < 1e-9);
        assert_eq!(s.store_shards, 1);
        assert_eq!(size(&SESSION, 1_000_000.0).store_shards, 10);
        assert!((s.balancer_cores - 2.0).abs() < 1e-9);
    }

    #[test]
    fn curves_compare_each_point_and_find_the_knee() {
        let constants = Constants {
            cores: 2.0,
            variants: vec![("sessions".into(), "sessions".into(), SESSION)],
        };
        let point = |n: usize, plain: f64, more: f64| {
            let mut a = Variant::new("sessions", "sessions", "/sapi/me", n);
            a.runs = vec![testdata::run(plain, plain as u64, 0)];
            let mut b = Variant::new(&sessions_key(0.2), "sessions", "/sapi/me", n);
            b.runs = vec![testdata::run(more, more as u64, 0)];
            ScalePoint {
                replicas: n,
                variants: vec![a, b],
            }
        };
        let scaling = Scaling {
            replica_cpu: 0.1,
            redis_cpu: 0.05,
            more_redis_cpus: vec![0.2],
            points: vec![
                point(1, 2_500.0, 2_000.0),
                point(2, 5_500.0, 5_000.0),
                point(3, 5_000.0, 7_500.0),
            ],
        };
        let curves = check(&constants, &scaling);
        assert_eq!(curves.len(), 2);
        let low = &curves[0];
        assert_eq!(low.store_cpu, Some(0.05));
        let at = low.at_knee().unwrap();
        assert_eq!(at.replicas, 2);
        assert!((at.error() - 0.1).abs() < 1e-9);
        let high = &curves[1];
        // Knee at 8 replicas: the nearest measured is 3.
        assert!((high.knee.unwrap() - 8.0).abs() < 1e-9);
        assert_eq!(high.at_knee().unwrap().replicas, 3);
        assert_eq!(high.worst().unwrap().replicas, 1);
    }
}
