//! The report's four pictures, drawn from the results with `svg.rs`'s two chart kinds.
//!
//! Each plot shows one scenario at a glance: requests/s against replicas (b), requests/s and
//! latency per variant on the same replicas (a), and answers per second through a Redis outage
//! (d). The tables in report.md hold the exact figures; the plots are for seeing the shape.

use crate::model::{self, Constants};
use crate::results::{Outage, Results, Same, Scaling};
use crate::svg::{self, Band, COLORS, Series};
use std::path::Path;

/// Writes the plots of the scenarios that ran into `dir`.
pub fn write(dir: &Path, results: &Results) -> std::io::Result<()> {
    if let Some(scaling) = &results.scaling {
        std::fs::write(dir.join("scaling.svg"), scaling_plot(scaling))?;
        if let Some(constants) = model::constants(results) {
            std::fs::write(dir.join("model.svg"), model_plot(&constants, scaling))?;
        }
    }
    if let Some(same) = &results.same {
        std::fs::write(dir.join("latency.svg"), latency_plot(same))?;
        std::fs::write(dir.join("throughput.svg"), throughput_plot(same))?;
    }
    if let Some(outage) = &results.outage {
        std::fs::write(dir.join("outage.svg"), outage_plot(outage))?;
    }
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
            dashed: false,
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

/// Scenario b's curves (solid) over the capacity model's (dashed), one colour per curve.
fn model_plot(constants: &Constants, scaling: &Scaling) -> String {
    let mut series = Vec::new();
    for (i, curve) in model::check(constants, scaling).iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let name = curve
            .label
            .replace("sessions, Redis ", "sessions, store ")
            .replace(" CPU", "");
        series.push(Series {
            name: name.clone(),
            color,
            points: curve
                .points
                .iter()
                .map(|p| (p.replicas as f64, p.measured))
                .collect(),
            dashed: false,
        });
        series.push(Series {
            name: format!("{name}: model"),
            color,
            points: curve
                .points
                .iter()
                .map(|p| (p.replicas as f64, p.predicted.rps))
                .collect(),
            dashed: true,
        });
    }
    let ticks: Vec<f64> = scaling.points.iter().map(|p| p.replicas as f64).collect();
    svg::line_chart(
        &format!(
            "Measured (solid) and predicted (dashed) requests/s; replicas at {} CPU",
            scaling.replica_cpu
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

fn outage_plot(outage: &Outage) -> String {
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
            dashed: false,
        });
        series.push(Series {
            name: format!("{}: failures/s", v.label),
            color: COLORS[i * 2 + 1],
            points: failed,
            dashed: false,
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
