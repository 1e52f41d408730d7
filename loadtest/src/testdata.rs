//! Small, hand-made results for the unit tests of the analysis, the renderer and the check: a
//! few variants with round figures, so that each test can say exactly what it expects.

use crate::oha::RunResult;
use crate::results::{
    Issuer, K6, K6Script, MicroBench, Network, NetworkPoint, Results, Same, ScalePoint, Scaling,
    Throughput, Variant,
};
use std::collections::BTreeMap;

pub fn run(rps: f64, ok: u64, failed: u64) -> RunResult {
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

/// Scenario a (baseline 1000 rps, tokens 700, sessions 400) and e (10 refreshes/s, a 250 µs
/// signature); `sessions_failed` failed session requests.
pub fn results(sessions_failed: u64) -> Results {
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

/// Scenario b alone: the token variant's rps at each replica count.
pub fn scaling(points: &[(usize, f64)]) -> Results {
    let points = points
        .iter()
        .map(|&(replicas, rps)| {
            let mut tokens = Variant::new("tokens", "tokens, no cache", "/api/me", replicas);
            tokens.runs = vec![run(rps, rps as u64, 0)];
            ScalePoint {
                replicas,
                variants: vec![tokens],
            }
        })
        .collect();
    Results {
        scaling: Some(Scaling {
            replica_cpu: 0.1,
            redis_cpu: 0.05,
            more_redis_cpus: vec![],
            points,
        }),
        ..Results::default()
    }
}

/// Scenarios f and g alone: sessions' p50 1 ms, then 1 ms more per added ms of round trip,
/// tokens' p50 1 ms throughout; one realistic k6 run with `unexpected` unexplained answers.
pub fn network_and_k6(unexpected: u64) -> Results {
    let points = [0.0, 0.5, 2.0]
        .iter()
        .map(|&rtt| {
            let mut tokens = Variant::new("tokens", "tokens", "/api/me", 2);
            tokens.runs = vec![run(900.0, 900, 0)];
            let mut sessions = Variant::new("sessions", "sessions", "/sapi/me", 2);
            let mut slower = run(500.0, 500, 0);
            slower.p50_ms += rtt;
            sessions.runs = vec![slower];
            NetworkPoint {
                added_rtt_ms: rtt,
                ping_ms: vec![0.1 + rtt],
                variants: vec![tokens, sessions],
            }
        })
        .collect();
    let mut oha = Variant::new("/api/me", "oha, tokens", "/api/me", 2);
    oha.runs = vec![run(800.0, 800, 0)];
    Results {
        network: Some(Network {
            concurrency: 8,
            replicas: 2,
            points,
        }),
        k6: Some(K6 {
            version: "k6 v1.1.0".into(),
            access_ttl_secs: 5,
            scripts: vec![K6Script {
                script: "realistic.js".into(),
                requests: 300,
                rps: 25.0,
                refreshes: 16,
                unexpected,
                routes: vec![("me".into(), 1.5, 9.0)],
                ..K6Script::default()
            }],
            oha: vec![oha],
        }),
        ..Results::default()
    }
}
