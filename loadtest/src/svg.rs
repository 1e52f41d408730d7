//! Plots as hand-written SVG: a line chart and a grouped bar chart, nothing more. A plotting
//! crate would cost more build time than these two pictures are worth, and SVG is text that
//! renders in any browser and on GitHub.

use std::fmt::Write as _;

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// Colours that stay apart for people with the common colour-vision deficiencies (Okabe-Ito).
pub const COLORS: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed and without markers: a prediction rather than a measurement.
    pub dashed: bool,
}

/// A shaded vertical band with a label (e.g. "Redis down").
pub struct Band {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound and step for an axis from 0 to `max`: steps of 1, 2 or 5 × 10^k.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2);
    }
    let rough = max / 5.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

fn format_tick(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn frame(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" text-anchor="middle" font-size="15" font-weight="bold">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text transform="translate(18,{}) rotate(-90)" text-anchor="middle">{}</text>
"##,
        (LEFT + WIDTH - RIGHT) / 2.0,
        escape(title),
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 15.0,
        escape(x_label),
        (TOP + HEIGHT - BOTTOM) / 2.0,
        escape(y_label),
    );
}

fn y_axis(out: &mut String, y_max: f64, y_step: f64) -> impl Fn(f64) -> f64 + use<> {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = move |v: f64| HEIGHT - BOTTOM - v / y_max * plot_h;
    let mut v = 0.0;
    while v <= y_max + y_step / 2.0 {
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            format_tick(v)
        );
        v += y_step;
    }
    y
}

/// The baseline under the plot area, drawn after the grid so that it stays on top of it.
fn x_axis(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#333"/>"##,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
}

fn legend(out: &mut String, entries: &[(&str, &str)]) {
    for (i, (name, color)) in entries.iter().enumerate() {
        let y = TOP + 10.0 + i as f64 * 20.0;
        let x = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            out,
            r##"<rect x="{x}" y="{:.1}" width="14" height="10" fill="{color}"/><text x="{}" y="{:.1}">{}</text>"##,
            y - 9.0,
            x + 20.0,
            y,
            escape(name)
        );
    }
}

/// Lines through the points of each series, with markers; x ticks at `x_ticks`.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_ticks: &[f64],
    band: Option<&Band>,
) -> String {
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    let all = series.iter().flat_map(|s| s.points.iter());
    let y_top = all.clone().map(|p| p.1).fold(0.0, f64::max) * 1.08;
    let x_min = x_ticks
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let x_max = x_ticks
        .iter()
        .copied()
        .chain(all.map(|p| p.0))
        .fold(f64::NEG_INFINITY, f64::max);
    let x_min = if x_ticks.first().is_some_and(|t| *t > 0.0) {
        x_ticks.first().copied().unwrap_or(0.0) - 0.5
    } else {
        x_min
    };
    let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + (v - x_min) / (x_max - x_min) * plot_w;
    let (y_max, y_step) = nice_axis(y_top);
    if let Some(band) = band {
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#f4cccc"/><text x="{:.1}" y="{}" text-anchor="middle" fill="#900">{}</text>"##,
            x(band.from),
            (x(band.to) - x(band.from)).max(1.0),
            HEIGHT - TOP - BOTTOM,
            (x(band.from) + x(band.to)) / 2.0,
            TOP - 6.0,
            escape(&band.label)
        );
    }
    let y = y_axis(&mut out, y_max, y_step);
    for tick in x_ticks {
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
            x(*tick),
            HEIGHT - BOTTOM + 18.0,
            format_tick(*tick)
        );
    }
    x_axis(&mut out);
    for s in series {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(px, py)| format!("{:.1},{:.1}", x(*px), y(*py)))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="7 5""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r##"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.5"{dash}/>"##,
            path.join(" "),
            s.color
        );
        if !s.dashed && s.points.len() <= 12 {
            for (px, py) in &s.points {
                let _ = writeln!(
                    out,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>{}: {:.0}</title></circle>"##,
                    x(*px),
                    y(*py),
                    s.color,
                    escape(&s.name),
                    py
                );
            }
        }
    }
    let entries: Vec<(&str, &str)> = series.iter().map(|s| (s.name.as_str(), s.color)).collect();
    legend(&mut out, &entries);
    out.push_str("</svg>\n");
    out
}

/// Groups of bars: one group per `groups` entry, one bar per series in it.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    series_names: &[&str],
    groups: &[(String, Vec<f64>)],
) -> String {
    let mut out = String::new();
    frame(&mut out, title, "", y_label);
    let y_top = groups
        .iter()
        .flat_map(|g| g.1.iter().copied())
        .fold(0.0, f64::max)
        * 1.08;
    let (y_max, y_step) = nice_axis(y_top);
    let y = y_axis(&mut out, y_max, y_step);
    let plot_w = WIDTH - LEFT - RIGHT;
    let group_w = plot_w / groups.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series_names.len().max(1) as f64;
    for (g, (label, values)) in groups.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + group_w * 0.1;
        for (i, value) in values.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}: {:.2}</title></rect>"##,
                gx + i as f64 * bar_w,
                y(*value),
                bar_w - 2.0,
                (HEIGHT - BOTTOM - y(*value)).max(0.0),
                escape(series_names.get(i).copied().unwrap_or("")),
                value
            );
        }
        // Labels may be long: split on ", " onto two lines.
        let (first, second) = label.split_once(", ").unwrap_or((label.as_str(), ""));
        let cx = gx + group_w * 0.4;
        let size = if group_w < 90.0 { "10" } else { "12" };
        let _ = writeln!(
            out,
            r##"<text x="{cx:.1}" y="{}" text-anchor="middle" font-size="{size}">{}</text><text x="{cx:.1}" y="{}" text-anchor="middle" font-size="{size}">{}</text>"##,
            HEIGHT - BOTTOM + 16.0,
            escape(first),
            HEIGHT - BOTTOM + 30.0,
            escape(second)
        );
    }
    x_axis(&mut out);
    let entries: Vec<(&str, &str)> = series_names
        .iter()
        .enumerate()
        .map(|(i, n)| (*n, COLORS[i % COLORS.len()]))
        .collect();
    legend(&mut out, &entries);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_axis(9300.0), (10_000.0, 2000.0));
        assert_eq!(nice_axis(4.2), (5.0, 1.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn charts_are_well_formed_svg_with_escaped_text() {
        let line = line_chart(
            "rps <by> replicas",
            "replicas",
            "rps",
            &[Series {
                name: "tokens & co".into(),
                color: COLORS[0],
                points: vec![(1.0, 1000.0), (2.0, 2000.0)],
                dashed: false,
            }],
            &[1.0, 2.0],
            Some(&Band {
                from: 1.2,
                to: 1.5,
                label: "Redis down".into(),
            }),
        );
        assert!(line.starts_with("<svg") && line.trim_end().ends_with("</svg>"));
        assert!(line.contains("rps &lt;by&gt; replicas") && line.contains("tokens &amp; co"));
        assert!(line.contains("<polyline") && line.contains("Redis down"));
        let bars = bar_chart(
            "latency",
            "ms",
            &["p50", "p99"],
            &[("tokens, no cache".into(), vec![1.0, 2.0])],
        );
        assert_eq!(bars.matches("<rect x=").count(), 2 + 2, "{bars}");
        assert!(bars.contains(">tokens<") && bars.contains(">no cache<"));
    }
}
