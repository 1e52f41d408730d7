//! The report's section on the scaling law: the constants, the prediction against scenario b,
//! the knee at each ratio of replica to store CPU, and what larger throughputs need on paper.
//! The arithmetic is in `crate::model`; this file only words it.

use crate::model::{self, Constants, Curve, PAPER_TARGETS};
use crate::results::Scaling;
use std::fmt::Write as _;

/// The section, when scenarios a and b both ran.
pub fn section(md: &mut String, constants: &Constants, scaling: &Scaling) {
    let curves = model::check(constants, scaling);
    md.push_str(
        "## The scaling law: the capacity model against scenario b\n\n\
         Each request costs CPU in the replica that answers it (`c_r`), in Redis (`c_s`, \
         sessions only), in nginx (`c_b`) and, on this one machine, in the load generator \
         (`c_g`). With each replica under a quota `q_r`, Redis under `q_s` and `C` cores in all, \
         `N` replicas serve at most\n\n\
         ```text\n\
         X(N) = min( N·q_r / c_r ,  q_s / c_s ,  C / (c_r + c_s + c_b + c_g) )\n\
         ```\n\n\
         requests per second. Sessions stop scaling at the knee `N* = (q_s / q_r) · (c_r / c_s)`; \
         tokens have no store term and scale until the machine (here) or the balancer (in a \
         cluster). The constants below are scenario a's (same quota'd replicas, Redis \
         unlimited); the measurements are scenario b's, a different run at several ratios \
         `q_r / q_s`: the model is checked, not fitted.\n\n",
    );
    let _ = writeln!(
        md,
        "| variant (scenario a) | c_r replica | c_s Redis | c_b nginx | c_g oha | total |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |"
    );
    for (_, label, c) in &constants.variants {
        let _ = writeln!(
            md,
            "| {label} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs |",
            c.replica,
            c.store,
            c.balancer,
            c.load_generator,
            c.total()
        );
    }
    let _ = writeln!(
        md,
        "\nC = {} cores; q_r = {} CPU per replica.\n\n![prediction (dashed) and measurement \
         (solid)](model.svg)\n",
        constants.cores, scaling.replica_cpu
    );
    knee_table(md, &curves, scaling.replica_cpu);
    point_table(md, &curves);
    paper_table(md, constants);
}

/// One row per curve: the knee, and the model's error there and at its worst.
fn knee_table(md: &mut String, curves: &[Curve], replica_cpu: f64) {
    md.push_str(
        "| curve | q_r / q_s | predicted knee N* | at N nearest the knee: predicted / measured \
         | error there | largest error (at N) |\n| --- | ---: | ---: | --- | ---: | ---: |\n",
    );
    for c in curves {
        let ratio = c
            .store_cpu
            .map_or("-".to_owned(), |q| format!("{:.2}", replica_cpu / q));
        let knee = c.knee.map_or("none".to_owned(), |k| format!("{k:.1}"));
        let (at, error) = match c.at_knee() {
            Some(p) => (
                format!(
                    "N={}: {:.0} / {:.0} rps",
                    p.replicas, p.predicted.rps, p.measured
                ),
                percent(p.error()),
            ),
            None => ("-".to_owned(), "-".to_owned()),
        };
        let worst = c.worst().map_or("-".to_owned(), |p| {
            format!("{} ({})", percent(p.error()), p.replicas)
        });
        let _ = writeln!(
            md,
            "| {} | {ratio} | {knee} | {at} | {error} | {worst} |",
            c.label
        );
    }
    md.push_str(
        "\nError = measured / predicted − 1 (positive: the run did better than the law said). \
         The goal is within ±15% at the knee.\n\n",
    );
}

/// Every point: measured rps, and the prediction with what limits it.
fn point_table(md: &mut String, curves: &[Curve]) {
    if curves.is_empty() {
        return;
    }
    md.push_str("| replicas |");
    for c in curves {
        let _ = write!(md, " {} |", c.label);
    }
    md.push_str("\n| ---: |");
    for _ in curves {
        md.push_str(" --- |");
    }
    md.push('\n');
    let mut rows: Vec<usize> = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.replicas))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    for replicas in rows {
        let _ = write!(md, "| {replicas} |");
        for c in curves {
            // By replica count, not position: a curve lacks the points that measured nothing.
            match c.points.iter().find(|q| q.replicas == replicas) {
                Some(q) => {
                    let _ = write!(
                        md,
                        " {:.0} (model {:.0}, {}) |",
                        q.measured,
                        q.predicted.rps,
                        q.predicted.limit.name()
                    );
                }
                None => md.push_str(" - |"),
            }
        }
        md.push('\n');
    }
    md.push_str(
        "\nEach cell: measured rps (the model's rps, and the term that limits it there).\n\n",
    );
}

/// What 10k, 100k and 1M requests per second need with these constants.
fn paper_table(md: &mut String, constants: &Constants) {
    md.push_str(
        "### On paper: what larger throughputs need\n\n\
         The same constants, multiplied out: CPU cores at each place (the clients bring their \
         own). Redis runs its commands on one thread, so a shard is counted as one core at \
         most; a real deployment plans headroom on top, and network and kernel costs grow with \
         real hops. This says how the variants *differ*, not what to buy.\n\n\
         | requests/s | variant | replica cores | Redis cores (shards) | nginx cores |\n\
         | ---: | --- | ---: | ---: | ---: |\n",
    );
    for rps in PAPER_TARGETS {
        for (_, label, costs) in &constants.variants {
            let s = model::size(costs, rps);
            let store = if s.store_cores > 0.0 {
                format!("{:.1} ({})", s.store_cores, s.store_shards)
            } else {
                "0".to_owned()
            };
            let _ = writeln!(
                md,
                "| {} | {label} | {:.1} | {store} | {:.1} |",
                thousands(rps),
                s.replica_cores,
                s.balancer_cores
            );
        }
    }
    md.push('\n');
}

fn percent(error: f64) -> String {
    format!("{:+.0}%", error * 100.0)
}

fn thousands(rps: f64) -> String {
    match rps as u64 {
        n if n >= 1_000_000 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Limit, Point, Prediction};

    fn curve(label: &str, points: &[(usize, f64)]) -> Curve {
        Curve {
            key: label.into(),
            label: label.into(),
            store_cpu: None,
            knee: None,
            points: points
                .iter()
                .map(|&(replicas, measured)| Point {
                    replicas,
                    predicted: Prediction {
                        rps: measured,
                        limit: Limit::Replicas,
                    },
                    measured,
                })
                .collect(),
        }
    }

    #[test]
    fn each_cell_sits_in_the_row_of_its_replica_count() {
        // The second curve measured nothing at 1 replica: its 2-replica figure must not slide up.
        let curves = [
            curve("a", &[(1, 100.0), (2, 200.0)]),
            curve("b", &[(2, 222.0)]),
        ];
        let mut md = String::new();
        point_table(&mut md, &curves);
        let row = |n: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {n} |")))
                .unwrap()
                .to_owned()
        };
        assert!(row("1").ends_with(" - |"), "{md}");
        assert!(row("2").contains("222 (model 222"), "{md}");
    }
}
