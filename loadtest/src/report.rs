//! Writes a run's report into its folder: `results.json` (everything measured), the plots and
//! `report.md`.
//!
//! The work is split by what it produces: `analysis.rs` judges the targets, `markdown/` writes
//! report.md from the results and those findings, `plots.rs` draws the SVGs and `check.rs` is
//! what CI checks. This module only puts the files in place, so that a fresh run and
//! `--render` (which reads an old results.json back) write exactly the same report.

use crate::markdown::markdown;
use crate::plots;
use crate::results::Results;
use std::path::Path;

/// Writes report.md, results.json and the plots into `dir`.
pub fn write(dir: &Path, results: &Results) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    plots::write(dir, results)?;
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    std::fs::write(dir.join("report.md"), markdown(results))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::results;

    #[test]
    fn the_report_states_targets_and_ratios() {
        let md = markdown(&results(0));
        assert!(md.contains(
            "| tokens (no cache) at least 1.35x the rps of sessions, each replica under its CPU \
             quota (a) | 1.75x"
        ));
        assert!(md.contains("| one RS256 signature at most 300 µs | 250 µs | met |"));
        assert!(md.contains("| 70% |"), "{md}");
        assert!(md.contains("**MISSED**"), "refreshes: 10/s");
        assert!(md.contains("Every scenario had non-zero throughput and no errors."));
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &results(0)).unwrap();
        for file in ["report.md", "results.json", "latency.svg", "throughput.svg"] {
            assert!(dir.path().join(file).is_file(), "{file}");
        }
        // results.json reads back into the same results (what --render relies on).
        let text = std::fs::read_to_string(dir.path().join("results.json")).unwrap();
        let again: Results = serde_json::from_str(&text).unwrap();
        assert_eq!(markdown(&again), markdown(&results(0)));
    }

    #[test]
    fn the_store_across_a_network_and_k6_have_their_sections() {
        let md = markdown(&crate::testdata::network_and_k6(0));
        assert!(
            md.contains("| 2 ms | 2.10 | 900 | 1.00 | 3.00 | 500 | 3.00 | 3.00 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("at +2 ms the sessions' p50 moved by +2.00 ms and the tokens' by +0.00 ms"),
            "{md}"
        );
        assert!(
            md.contains("| `realistic.js` | 0 | 0 | 300 | 25 | 16 | 0 | 0 | me 1.50 / 9.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| `/api/me` | `realistic.js` | 1.50 | 9.00 | 1.00 | 3.00 | 800 |"),
            "{md}"
        );
    }
}
