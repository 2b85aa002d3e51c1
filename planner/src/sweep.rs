//! Sweeps: plan the same pipeline at every value of one knob (`workers=1..64`,
//! `memory_mb=512..4096`) and show the time/cost frontier, as a table and as an SVG chart.

use crate::ops::OpGraph;
use crate::options::Options;
use crate::profile::Profile;
use crate::units;
use plotters::prelude::*;
use std::fmt::Write as _;

/// The knob a sweep turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// At most this many functions per stage, as `--workers` means.
    Workers,
    /// Memory of every function.
    MemoryMb,
}

impl Axis {
    /// The name written in `--sweep`.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Workers => "workers",
            Axis::MemoryMb => "memory_mb",
        }
    }
}

/// A parsed `--sweep` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// What varies.
    pub axis: Axis,
    /// The values planned, ascending.
    pub values: Vec<u32>,
}

impl Sweep {
    /// Reads `workers=1..64` (powers of two between, ends included), `memory_mb=512..4096`
    /// (the profile's memory sizes between) or an explicit list `workers=1,3,9`.
    pub fn parse(spec: &str, profile: &Profile) -> Result<Sweep, String> {
        let usage = "write `workers=1..64`, `memory_mb=512..4096` or a list like `workers=1,2,8`";
        let (key, values) = spec
            .split_once('=')
            .ok_or_else(|| format!("`{spec}` is not a sweep; {usage}"))?;
        let axis = match key.trim() {
            "workers" => Axis::Workers,
            "memory_mb" | "memory-mb" => Axis::MemoryMb,
            other => return Err(format!("cannot sweep `{other}`; {usage}")),
        };
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{}` is not a positive whole number; {usage}", s.trim()))
        };
        let mut values: Vec<u32> = if let Some((a, b)) = values.split_once("..") {
            let (a, b) = (number(a)?, number(b.trim_start_matches('='))?);
            if a > b {
                return Err(format!("the range {a}..{b} is empty; {usage}"));
            }
            let mut v = vec![a, b];
            match axis {
                Axis::Workers => {
                    let mut k = 1u32;
                    while k < b {
                        if k > a {
                            v.push(k);
                        }
                        k = k.saturating_mul(2);
                    }
                }
                Axis::MemoryMb => v.extend(
                    profile
                        .memory_candidates()
                        .into_iter()
                        .filter(|m| (a..=b).contains(m)),
                ),
            }
            v
        } else {
            values.split(',').map(number).collect::<Result<_, _>>()?
        };
        values.sort_unstable();
        values.dedup();
        if values.len() > 64 {
            return Err(format!(
                "{} points are too many for one sweep (at most 64)",
                values.len()
            ));
        }
        Ok(Sweep { axis, values })
    }
}

/// One planned point of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The value of the axis.
    pub value: u32,
    /// Seconds and dollars, or why no plan exists at this value.
    pub outcome: Result<(f64, f64), String>,
    /// Whether no other point is both at least as fast and at least as cheap.
    pub frontier: bool,
}

/// Plans `graph` at every value of the sweep.
pub fn run(graph: &OpGraph, profile: &Profile, options: &Options, sweep: &Sweep) -> Vec<Point> {
    let mut points: Vec<Point> = sweep
        .values
        .iter()
        .map(|&value| {
            let mut o = options.clone();
            match sweep.axis {
                // What `--workers N` means to `flowc plan`: at most N functions per stage.
                Axis::Workers => o.workers = Some(value),
                Axis::MemoryMb => o.memory_mb = Some(value),
            }
            let outcome = crate::plan_graph(graph.clone(), profile, &o)
                .map(|p| (p.predicted_s, p.predicted_usd))
                .map_err(|e| e.message);
            Point {
                value,
                outcome,
                frontier: false,
            }
        })
        .collect();
    mark_frontier(&mut points);
    points
}

/// Marks the points no other point beats on both time and cost.
pub fn mark_frontier(points: &mut [Point]) {
    let planned: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| p.outcome.clone().ok())
        .collect();
    for p in points {
        p.frontier = match p.outcome {
            Ok((s, usd)) => !planned
                .iter()
                .any(|(s2, u2)| (*s2 < s && *u2 <= usd) || (*s2 <= s && *u2 < usd)),
            Err(_) => false,
        };
    }
}

/// The sweep as a table; `*` marks the time/cost frontier.
pub fn table(axis: Axis, points: &[Point]) -> String {
    let mut out = format!(
        "{:>10}  {:>14}  {:>12}  frontier\n",
        axis.name(),
        "predicted",
        "cost"
    );
    for p in points {
        match &p.outcome {
            Ok((s, usd)) => {
                let _ = writeln!(
                    out,
                    "{:>10}  {:>14}  {:>12}  {}",
                    p.value,
                    units::seconds(*s),
                    units::usd(*usd),
                    if p.frontier { "*" } else { "" }
                );
            }
            Err(why) => {
                let _ = writeln!(out, "{:>10}  no plan: {why}", p.value);
            }
        }
    }
    out
}

/// The sweep as an SVG chart: predicted time against cost, one labelled point per value,
/// the frontier joined by a line.
pub fn svg(axis: Axis, title: &str, points: &[Point]) -> Result<String, String> {
    let planned: Vec<(u32, f64, f64, bool)> = points
        .iter()
        .filter_map(|p| {
            p.outcome
                .as_ref()
                .ok()
                .map(|(s, u)| (p.value, *s, *u, p.frontier))
        })
        .collect();
    if planned.is_empty() {
        return Err("no value of the sweep has a plan to draw".into());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (_, s, u, _) in &planned {
        x0 = x0.min(*s);
        x1 = x1.max(*s);
        y0 = y0.min(*u);
        y1 = y1.max(*u);
    }
    let pad = |lo: f64, hi: f64| {
        let d = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
        ((lo - d * 0.1).max(0.0), hi + d * 0.1)
    };
    let (x0, x1) = pad(x0, x1);
    let (y0, y1) = pad(y0, y1);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (800, 560)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| format!("cannot draw the chart: {e}");
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc("predicted time (s)")
            .y_desc("predicted cost ($)")
            .y_label_formatter(&|v| units::usd(*v))
            .draw()
            .map_err(|e| fail(&e))?;
        let mut frontier: Vec<(f64, f64)> =
            planned.iter().filter(|p| p.3).map(|p| (p.1, p.2)).collect();
        frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(frontier, BLUE.stroke_width(2)))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(planned.iter().map(|(v, s, u, f)| {
                let color = if *f { BLUE } else { RED };
                EmptyElement::at((*s, *u))
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(format!("{}={v}", axis.name()), (6, -14), ("sans-serif", 12))
            }))
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_to_powers_of_two_and_memory_sizes() {
        let aws = Profile::builtin("aws").unwrap();
        let s = Sweep::parse("workers=1..64", &aws).unwrap();
        assert_eq!(s.values, [1, 2, 4, 8, 16, 32, 64]);
        let s = Sweep::parse("workers=3..20", &aws).unwrap();
        assert_eq!(s.values, [3, 4, 8, 16, 20]);
        let s = Sweep::parse("memory_mb=1024..4096", &aws).unwrap();
        assert_eq!(s.values, [1024, 1769, 2048, 3538, 4096]);
        assert_eq!(Sweep::parse("workers=4,1", &aws).unwrap().values, [1, 4]);
        for bad in [
            "workers",
            "cpus=1..2",
            "workers=8..2",
            "workers=0..4",
            "workers=a",
        ] {
            assert!(Sweep::parse(bad, &aws).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_frontier_keeps_points_nothing_beats() {
        let point = |value, s, u| Point {
            value,
            outcome: Ok((s, u)),
            frontier: false,
        };
        let mut points = vec![point(1, 10.0, 1.0), point(2, 5.0, 1.5), point(4, 6.0, 2.0)];
        mark_frontier(&mut points);
        assert_eq!(
            points.iter().map(|p| p.frontier).collect::<Vec<_>>(),
            [true, true, false]
        );
        let svg = svg(Axis::Workers, "test", &points).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("workers=2"),
            "{svg}"
        );
        assert!(table(Axis::Workers, &points).contains('*'));
    }
}
