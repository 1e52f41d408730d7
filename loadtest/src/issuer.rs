//! Scenario e: the issuer. Logins per second (Argon2id, slow on purpose), refreshes per second
//! (verify the refresh token, spend it atomically in Redis, sign a new pair), and what one RS256
//! signature costs, measured in this process.
//!
//! Refresh tokens are single-use, so oha (one fixed body) cannot drive refreshes: each client
//! here logs in once, then refreshes in a chain, always with the token the last refresh returned.

use crate::bench::{Bench, Target};
use crate::client::{self, USERS};
use crate::results::{Issuer, MicroBench, Throughput};
use auth_core::claims::{ACCESS_TYP, AccessClaims};
use auth_core::keys::{Jwks, KeyBits, SigningKey};
use auth_core::verify::{TokenRules, TrustedKeys};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(bench: &Bench, target: &Target) -> anyhow::Result<Issuer> {
    let quick = bench.options.quick;
    let phase = bench.options.phase(10, 2.0);
    let argon2 = argon2_parameters();
    eprintln!("[e] logins for {:.0} s ({argon2})", phase.as_secs_f64());
    let logins = logins(&target.base, if quick { 4 } else { 8 }, phase).await?;
    eprintln!(
        "[e] {:.1} logins/s, p50 {:.1} ms, p99 {:.1} ms, {} failed",
        logins.per_sec(),
        logins.p50_ms,
        logins.p99_ms,
        logins.failed()
    );
    let clients = if quick { 16 } else { 64 };
    eprintln!("[e] refreshes: {clients} clients, each a chain of rotations");
    let before = target.stack.as_ref().map(|s| s.cpu_stats());
    let started = Instant::now();
    let refreshes = refreshes(&target.base, clients, phase).await?;
    let elapsed = started.elapsed();
    let after = target.stack.as_ref().map(|s| s.cpu_stats());
    let issuer_cpu = before.zip(after).and_then(|(b, a)| {
        let used = |stats: &[stack::cgroup::CpuStat]| {
            stats
                .iter()
                .find(|s| s.name == "issuer")
                .and_then(|s| s.usage)
        };
        Some(used(&a)?.saturating_sub(used(&b)?))
    });
    // The CPU also covers the clients' logins before the timed window; close enough with 64
    // logins against tens of thousands of refreshes, and stated in the report.
    let issuer_cpu_us_per_refresh = issuer_cpu
        .filter(|_| refreshes.ok > 0)
        .map(|cpu| cpu.as_secs_f64() * 1e6 / refreshes.ok as f64);
    let issuer_cpus_during_refreshes =
        issuer_cpu.map(|cpu| cpu.as_secs_f64() / elapsed.as_secs_f64());
    eprintln!(
        "[e] {:.0} refreshes/s, p50 {:.1} ms, p99 {:.1} ms, {} failed{}",
        refreshes.per_sec(),
        refreshes.p50_ms,
        refreshes.p99_ms,
        refreshes.failed(),
        issuer_cpu_us_per_refresh.map_or(String::new(), |us| format!(
            "; issuer CPU {us:.0} µs per refresh"
        ))
    );
    let budget = bench.options.phase(2, 0.2);
    let mut signing = tokio::task::spawn_blocking(move || signing(budget)).await??;
    if !quick {
        // The same machine's OpenSSL, for scale: how fast RSA-2048 is here right now.
        signing.extend(tokio::task::spawn_blocking(openssl_speed).await?);
    }
    for m in &signing {
        eprintln!("[e] {:<58} {:>8.1} µs", m.label, m.us_per_op);
    }
    Ok(Issuer {
        argon2,
        logins,
        refreshes,
        issuer_cpu_us_per_refresh,
        issuer_cpus_during_refreshes,
        signing,
    })
}

/// The Argon2id parameters of the demo users' hashes (the PHC string carries them).
pub fn argon2_parameters() -> String {
    let path = stack::workspace_root().join("crates/auth-issuer/demo-users.json");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    describe_argon2(&text).unwrap_or_else(|| "Argon2id (parameters not found)".to_owned())
}

/// "Argon2id v19, m = 19456 KiB (19 MiB), t = 2 passes, p = 1 lane" from the first
/// `$argon2id$v=19$m=…,t=…,p=…$` in `text`.
pub fn describe_argon2(text: &str) -> Option<String> {
    let start = text.find("$argon2id$")?;
    let mut parts = text[start..].split('$').skip(2);
    let version = parts.next()?.strip_prefix("v=")?;
    let params: BTreeMap<&str, &str> = parts
        .next()?
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let m: u64 = params.get("m")?.parse().ok()?;
    Some(format!(
        "Argon2id v{version}, m = {m} KiB ({:.0} MiB), t = {} passes, p = {} lane(s)",
        m as f64 / 1024.0,
        params.get("t")?,
        params.get("p")?
    ))
}

#[derive(Default)]
struct Tally {
    ok_latencies: Vec<Duration>,
    failures: BTreeMap<String, u64>,
}

fn throughput(tallies: Vec<Tally>, concurrency: usize, secs: f64) -> Throughput {
    let mut latencies: Vec<Duration> = Vec::new();
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    for tally in tallies {
        latencies.extend(tally.ok_latencies);
        for (k, n) in tally.failures {
            *failures.entry(k).or_default() += n;
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            let i = ((latencies.len() as f64 * p) as usize).min(latencies.len() - 1);
            latencies[i].as_secs_f64() * 1000.0
        }
    };
    Throughput {
        concurrency,
        secs,
        ok: latencies.len() as u64,
        failures,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

async fn logins(base: &str, clients: usize, phase: Duration) -> anyhow::Result<Throughput> {
    let http = client::http()?;
    let start = Instant::now();
    let deadline = start + phase;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (http, base) = (http.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let user = USERS[i % USERS.len()];
            while Instant::now() < deadline {
                let sent = Instant::now();
                match client::login(&http, &base, user).await {
                    Ok(_) => tally.ok_latencies.push(sent.elapsed()),
                    Err(e) => {
                        let key = e.to_string().chars().take(60).collect::<String>();
                        *tally.failures.entry(key).or_default() += 1;
                    }
                }
            }
            tally
        }));
    }
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await?);
    }
    Ok(throughput(tallies, clients, start.elapsed().as_secs_f64()))
}

async fn refreshes(base: &str, clients: usize, phase: Duration) -> anyhow::Result<Throughput> {
    let http = client::http()?;
    // Log every client in first, outside the timed window.
    let mut pairs = Vec::new();
    for i in 0..clients {
        pairs.push(client::login(&http, base, USERS[i % USERS.len()]).await?);
    }
    let start = Instant::now();
    let deadline = start + phase;
    let mut tasks = Vec::new();
    for pair in pairs {
        let (http, base) = (http.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut refresh = pair.refresh;
            while Instant::now() < deadline {
                let sent = Instant::now();
                match client::refresh(&http, &base, &refresh).await {
                    Ok((_, Some(next))) => {
                        tally.ok_latencies.push(sent.elapsed());
                        refresh = next.refresh;
                    }
                    Ok((status, None)) => {
                        *tally.failures.entry(status.to_string()).or_default() += 1;
                        // A spent or revoked chain cannot go on: a failure ends this client.
                        break;
                    }
                    Err(e) => {
                        let key = e.to_string().chars().take(60).collect::<String>();
                        *tally.failures.entry(key).or_default() += 1;
                        break;
                    }
                }
            }
            tally
        }));
    }
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await?);
    }
    Ok(throughput(tallies, clients, start.elapsed().as_secs_f64()))
}

/// RS256 in this process, one thread: signing with the key parsed once (what the issuer does),
/// through `jsonwebtoken::encode` (which parses the key again on every call), and verifying.
pub fn signing(budget: Duration) -> anyhow::Result<Vec<MicroBench>> {
    let key = Arc::new(SigningKey::generate(KeyBits::B2048)?);
    let now = auth_core::now_secs();
    let claims = AccessClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "bob".into(),
        aud: "authscale-api".into(),
        exp: now + 300,
        iat: now,
        nbf: now,
        jti: "bench".into(),
        client_id: "authscale-demo".into(),
        name: "Bob".into(),
        roles: vec!["user".into(), "recruiter".into()],
    };
    let dir = tempfile::tempdir()?;
    let pem_path = dir.path().join("key.pem");
    key.persist(&pem_path)?;
    // What `EncodingKey::from_rsa_pem` keeps: the PKCS#1 DER, parsed again on every `encode`.
    let pem = std::fs::read_to_string(&pem_path)?;
    let pkcs1 = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::PrivateKey::from_pkcs8_pem(&pem)?.to_pkcs1_der()?
    };
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(pkcs1.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = Some(ACCESS_TYP.into());
    header.kid = Some(key.kid().to_owned());
    let token = auth_core::sign::sign_jwt(&key, ACCESS_TYP, &claims)?;
    let keys = TrustedKeys::from_jwks(&Jwks {
        keys: vec![key.public_jwk().clone()],
    });
    let rules = TokenRules::access("http://127.0.0.1:8080", "authscale-api", 30);

    let out = vec![
        time_it(
            "sign: key parsed once, AWS-LC (the issuer's path)",
            budget,
            || auth_core::sign::sign_jwt(&key, ACCESS_TYP, &claims).is_ok(),
        ),
        time_it(
            "sign: jsonwebtoken::encode (re-parses the key per call)",
            budget,
            || jsonwebtoken::encode(&header, &claims, &encoding).is_ok(),
        ),
        time_it(
            "verify: auth_core::verify (AWS-LC, key parsed once)",
            budget,
            || auth_core::verify::verify::<AccessClaims>(&token, &keys, &rules).is_ok(),
        ),
    ];
    Ok(out)
}

/// `openssl speed -seconds 2 rsa2048`: sign and verify µs, if openssl is installed.
fn openssl_speed() -> Vec<MicroBench> {
    let output = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "2", "rsa2048"])
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    parse_openssl_speed(&String::from_utf8_lossy(&output.stdout))
}

/// From the line `rsa 2048 bits 0.000244s 0.000021s 4098.4 47619.0`.
pub fn parse_openssl_speed(text: &str) -> Vec<MicroBench> {
    let Some(line) = text.lines().find(|l| l.starts_with("rsa 2048 bits")) else {
        return Vec::new();
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    let secs = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.trim_end_matches('s').parse::<f64>().ok())
    };
    let (Some(sign), Some(verify)) = (secs(3), secs(4)) else {
        return Vec::new();
    };
    vec![
        MicroBench {
            label: "for scale: `openssl speed rsa2048`, sign".into(),
            iterations: 0,
            us_per_op: sign * 1e6,
        },
        MicroBench {
            label: "for scale: `openssl speed rsa2048`, verify".into(),
            iterations: 0,
            us_per_op: verify * 1e6,
        },
    ]
}

fn time_it(label: &str, budget: Duration, mut op: impl FnMut() -> bool) -> MicroBench {
    // Warm up, then run until the budget is spent.
    for _ in 0..5 {
        op();
    }
    let start = Instant::now();
    let mut iterations = 0u64;
    let mut ok = true;
    while start.elapsed() < budget || iterations == 0 {
        ok &= op();
        iterations += 1;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;
    MicroBench {
        label: if ok {
            label.to_owned()
        } else {
            format!("{label} (FAILED)")
        },
        iterations,
        us_per_op: us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_parameters_are_read_from_a_phc_string() {
        let text = r#"{"password_hash":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"}"#;
        assert_eq!(
            describe_argon2(text).unwrap(),
            "Argon2id v19, m = 19456 KiB (19 MiB), t = 2 passes, p = 1 lane(s)"
        );
        assert!(describe_argon2("no hash here").is_none());
    }

    #[test]
    fn openssl_speed_output_is_read() {
        let text = "                  sign    verify    sign/s verify/s\n\
                    rsa 2048 bits 0.000244s 0.000021s   4098.4  47619.0\n";
        let rows = parse_openssl_speed(text);
        assert_eq!(rows.len(), 2);
        assert!((rows[0].us_per_op - 244.0).abs() < 1e-6);
        assert!((rows[1].us_per_op - 21.0).abs() < 1e-6);
        assert!(parse_openssl_speed("nothing").is_empty());
    }

    #[test]
    fn the_three_rs256_operations_succeed() {
        let results = signing(Duration::from_millis(1)).unwrap();
        assert_eq!(results.len(), 3);
        for r in results {
            assert!(!r.label.contains("FAILED"), "{}", r.label);
            assert!(r.iterations > 0);
        }
    }
}
