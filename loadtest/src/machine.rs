//! What the report says about the machine: CPU model, cores, memory, kernel, load.

use std::collections::BTreeMap;
use std::process::Command;

pub fn describe() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let lscpu = run("lscpu", &[]);
    let field = |name: &str| {
        lscpu
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches(':').trim().to_owned())
    };
    m.insert(
        "CPU".into(),
        field("Model name").unwrap_or_else(|| "unknown".into()),
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    m.insert("cores".into(), cores.to_string());
    if let Some(hv) = field("Hypervisor vendor") {
        m.insert("hypervisor".into(), hv);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(kb) = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        m.insert("memory".into(), format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    }
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    if let Some(name) = os.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
        m.insert("OS".into(), name.trim_matches('"').to_owned());
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    m.insert("kernel".into(), kernel.trim().to_owned());
    for (name, program, args) in [
        ("nginx", "nginx", &["-v"][..]),
        ("redis", "redis-server", &["--version"][..]),
    ] {
        let found = stack::programs::find(program, "").ok();
        if let Some(path) = found {
            let out = Command::new(path).args(args).output().ok();
            let text = out
                .map(|o| {
                    let both = [o.stdout, o.stderr].concat();
                    String::from_utf8_lossy(&both).trim().to_owned()
                })
                .unwrap_or_default();
            m.insert(name.into(), text.lines().next().unwrap_or("").to_owned());
        }
    }
    m
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A note when the machine is visibly busy before the run (1-minute load average above 0.5),
/// naming the processes using the most CPU.
pub fn busy_note() -> Option<String> {
    let one_minute: f64 = load_average().split_whitespace().next()?.parse().ok()?;
    if one_minute <= 0.5 {
        return None;
    }
    let top = run("ps", &["-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"]);
    let top: Vec<String> = top
        .lines()
        .filter(|l| !l.ends_with(" loadtest") && !l.ends_with(" ps"))
        .take(4)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Some(format!(
        "the 1-minute load average was {one_minute:.2} when the run started (busiest: {}).",
        top.join(", ")
    ))
}

/// `git rev-parse --short HEAD`, with `-dirty` when the work tree has changes.
pub fn git_commit() -> String {
    let root = stack::workspace_root();
    let root = root.to_string_lossy();
    let head = run("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let dirty = !run("git", &["-C", &root, "status", "--porcelain"])
        .trim()
        .is_empty();
    let head = head.trim();
    if head.is_empty() {
        "unknown".to_owned()
    } else if dirty {
        format!("{head} (work tree with uncommitted changes)")
    } else {
        head.to_owned()
    }
}

/// `YYYYMMDD-HHMMSS` in UTC, for the results directory.
pub fn timestamp() -> String {
    let secs = auth_core::now_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{mo:02}{d:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// What `program arg` prints (its first non-empty output, trimmed), or `fallback`: a tool's
/// version for the report.
pub fn version_of(program: &std::path::Path, arg: &str, fallback: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| fallback.to_owned())
}

fn run(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(timestamp().len(), 15);
    }
}
