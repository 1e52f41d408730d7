//! Scenario f: the store across a network. Tokens and sessions at a fixed concurrency while every
//! exchange with Redis takes an added round trip of 0, 0.5 and 2 ms.
//!
//! On this machine Redis answers over loopback; in production it is another machine. The
//! launcher's delay proxy (`stack::delay_proxy`) sits between the services and Redis and holds
//! every byte for half the round trip in each direction, so a request and its answer take the
//! whole added round trip longer. A session request does one store look-up, so its latency
//! should rise by at least the round trip; a token request never reaches the store, so its
//! latency should not move. Throughput follows: at a fixed number of connections each one
//! waits longer per request.
//!
//! One stack, with the proxy, for all three round trips (the delay is changed between runs), so
//! the only difference between the points is the delay itself. "0" is the proxy with no added
//! delay, not the stack without it: the proxy's own copying is in every point. Runs are
//! interleaved in rounds like scenario a, and before each round the scenario times `PING`
//! through the proxy: the round trip the services actually got.
//!
//! No CPU quota on any process: a quota's throttling adds waits of up to its 10 ms period,
//! which would drown a 0.5 ms round trip. The concurrency is low ([`CONCURRENCY`]) for the same
//! reason: with many more connections than cores, requests queue for CPU and the added round
//! trip hides inside the queueing instead of showing in the latency.

use crate::bench::{Bench, Credentials, Spec};
use crate::results::{Network, NetworkPoint, Variant, median};
use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The added round trips, in ms.
pub const ROUND_TRIPS_MS: [f64; 3] = [0.0, 0.5, 2.0];

/// oha's connections in this scenario (see the module comment).
pub const CONCURRENCY: usize = 8;

/// `PING`s per measurement of the proxy's round trip.
const PINGS: usize = 50;

/// The variants: (key, label, route, credentials).
const PLANS: [(&str, &str, &str, Credentials); 2] = [
    ("tokens", "tokens", "/api/me", Credentials::Bearer),
    ("sessions", "sessions", "/sapi/me", Credentials::Cookie),
];

pub async fn run(bench: &mut Bench) -> anyhow::Result<Network> {
    let options = bench.options.clone();
    let replicas = options.replicas;
    eprintln!(
        "[f] {replicas}+{replicas} replicas, no CPU limits, Redis behind the delay proxy; \
         added round trips {ROUND_TRIPS_MS:?} ms at {CONCURRENCY} connections"
    );
    let spec = Spec {
        jwt: replicas,
        session: replicas,
        store_delay: Some(Duration::ZERO),
        ..Spec::default()
    };
    let mut target = bench.start("network", spec).await?;
    let mut points: Vec<NetworkPoint> = ROUND_TRIPS_MS
        .iter()
        .map(|&rtt| NetworkPoint {
            added_rtt_ms: rtt,
            ping_ms: Vec::new(),
            variants: PLANS
                .iter()
                .map(|(key, label, route, _)| Variant::new(key, label, route, replicas))
                .collect(),
        })
        .collect();
    let rounds = if options.quick { 1 } else { options.runs };
    for round in 1..=rounds {
        for point in &mut points {
            let stack = target.stack_mut()?;
            stack.set_store_delay(Duration::from_secs_f64(point.added_rtt_ms / 2000.0))?;
            let proxy = proxy_addr(&stack.store_url())?;
            point.ping_ms.push(ping_round_trip(proxy).await?);
            for ((_, label, route, credentials), variant) in
                PLANS.iter().zip(point.variants.iter_mut())
            {
                let mut load = bench
                    .load(&mut target, route, *credentials, options.duration)
                    .await?;
                load.concurrency = CONCURRENCY;
                let (result, cpu, _) = bench.measure(&target, &load, None).await?;
                let line = variant.record(&load, result, cpu);
                let rtt = point.added_rtt_ms;
                eprintln!("[f +{rtt} ms {round}/{rounds}] {label:<9} {line}");
            }
        }
    }
    target.stop().await?;
    Ok(Network {
        concurrency: CONCURRENCY,
        replicas,
        points,
    })
}

/// `redis://127.0.0.1:PORT` → the address.
fn proxy_addr(url: &str) -> anyhow::Result<SocketAddr> {
    url.trim_start_matches("redis://")
        .parse()
        .with_context(|| format!("not a redis://host:port address: {url}"))
}

/// The median round trip (ms) of [`PINGS`] `PING`s, one after the other on one connection.
async fn ping_round_trip(addr: SocketAddr) -> anyhow::Result<f64> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach Redis through the proxy at {addr}"))?;
    stream.set_nodelay(true)?;
    let mut times = Vec::with_capacity(PINGS);
    let mut reply = [0u8; 7];
    for _ in 0..PINGS {
        let started = Instant::now();
        stream.write_all(b"PING\r\n").await?;
        stream.read_exact(&mut reply).await?;
        anyhow::ensure!(&reply == b"+PONG\r\n", "Redis answered {reply:?} to PING");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(times.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_address_is_read_from_the_store_url() {
        let addr = proxy_addr("redis://127.0.0.1:6400").unwrap();
        assert_eq!(addr.port(), 6400);
        assert!(proxy_addr("redis://nowhere").is_err());
    }
}
