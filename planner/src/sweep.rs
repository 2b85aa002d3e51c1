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

/// The sweep as an SVG chart: predicted time against cost, one point per value, the
/// frontier joined by a line, the plan the planner chooses by itself (`chosen`, time and
/// cost) marked, and a legend. Costs are drawn in the unit that keeps their labels short
/// ($, m$ or µ$); points close together share one label. A profile without prices (every
/// cost zero) is drawn as time against the swept value.
pub fn svg(
    axis: Axis,
    title: &str,
    points: &[Point],
    chosen: Option<(f64, f64)>,
) -> Result<String, String> {
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
    let priced = planned.iter().any(|p| p.2 > 0.0);
    let (scale, unit) = cost_unit(planned.iter().map(|p| p.2).fold(0.0, f64::max));
    // (x, y) of each point: time and cost, or the swept value and time without prices.
    let at = |value: u32, s: f64, u: f64| -> (f64, f64) {
        if priced {
            (s, u * scale)
        } else {
            (f64::from(value), s)
        }
    };
    let xy: Vec<(f64, f64)> = planned.iter().map(|p| at(p.0, p.1, p.2)).collect();
    let range = |v: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = v.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let d = (hi - lo).abs().max(hi.abs() * 0.05).max(1e-9);
        ((lo - d * 0.1).max(0.0), hi + d * 0.15)
    };
    let (x0, x1) = range(&mut xy.iter().map(|p| p.0));
    let (y0, y1) = range(&mut xy.iter().map(|p| p.1));
    let labels = shared_labels(axis, &planned, &xy, (x1 - x0, y1 - y0));
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (800, 560)).into_drawing_area();
        let fail = |e: &dyn std::fmt::Display| format!("cannot draw the chart: {e}");
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| fail(&e))?;
        let (x_desc, y_desc) = if priced {
            (
                "predicted time (s)".to_string(),
                format!("predicted cost ({unit})"),
            )
        } else {
            (axis.name().to_string(), "predicted time (s)".to_string())
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|v| short_number(*v))
            .x_label_formatter(&|v| short_number(*v))
            .draw()
            .map_err(|e| fail(&e))?;
        // With prices, the frontier and the points it beats; without, time by value.
        let joined = |p: &(u32, f64, f64, bool)| p.3 || !priced;
        let mut line: Vec<(f64, f64)> = planned
            .iter()
            .zip(&xy)
            .filter(|(p, _)| joined(p))
            .map(|(_, xy)| *xy)
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let line_label = if priced {
            "frontier: no other point is both faster and cheaper"
        } else {
            "predicted time"
        };
        chart
            .draw_series(LineSeries::new(line, BLUE.stroke_width(2)))
            .map_err(|e| fail(&e))?
            .label(line_label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        if planned.iter().any(|p| !joined(p)) {
            chart
                .draw_series(
                    planned
                        .iter()
                        .zip(&xy)
                        .filter(|(p, _)| !joined(p))
                        .map(|(_, xy)| Circle::new(*xy, 4, RED.filled())),
                )
                .map_err(|e| fail(&e))?
                .label("beaten on both time and cost by another point")
                .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
        }
        chart
            .draw_series(
                planned
                    .iter()
                    .zip(&xy)
                    .filter(|(p, _)| joined(p))
                    .map(|(_, xy)| Circle::new(*xy, 4, BLUE.filled())),
            )
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(labels.iter().map(|(xy, text)| {
                EmptyElement::at(*xy) + Text::new(text.clone(), (6, -14), ("sans-serif", 12))
            }))
            .map_err(|e| fail(&e))?;
        if let Some((s, u)) = chosen {
            let mark = if priced {
                (s, u * scale)
            } else {
                (f64::NAN, s)
            };
            if mark.0.is_finite() {
                chart
                    .draw_series(std::iter::once(Circle::new(mark, 9, BLACK.stroke_width(2))))
                    .map_err(|e| fail(&e))?
                    .label("the plan flowc plan chooses by itself")
                    .legend(|(x, y)| Circle::new((x + 8, y), 6, BLACK.stroke_width(2)));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(out)
}

/// The unit costs up to `max` dollars are drawn in, and its factor.
fn cost_unit(max: f64) -> (f64, &'static str) {
    if max >= 0.01 {
        (1.0, "$")
    } else if max >= 1e-5 {
        (1e3, "thousandths of a $")
    } else {
        (1e6, "millionths of a $")
    }
}

/// An axis number in at most four significant digits, without trailing zeros.
fn short_number(v: f64) -> String {
    let text = if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// One label per group of points closer than a twentieth of the chart to each other:
/// `workers=1,2,4` rather than three labels drawn over each other.
fn shared_labels(
    axis: Axis,
    planned: &[(u32, f64, f64, bool)],
    xy: &[(f64, f64)],
    (width, height): (f64, f64),
) -> Vec<((f64, f64), String)> {
    let near = |a: (f64, f64), b: (f64, f64)| {
        ((a.0 - b.0) / width).abs() < 0.05 && ((a.1 - b.1) / height).abs() < 0.05
    };
    let mut groups: Vec<((f64, f64), Vec<u32>)> = Vec::new();
    for (p, at) in planned.iter().zip(xy) {
        match groups.iter_mut().find(|(first, _)| near(*first, *at)) {
            Some((_, values)) => values.push(p.0),
            None => groups.push((*at, vec![p.0])),
        }
    }
    groups
        .into_iter()
        .map(|(at, values)| {
            let values: Vec<String> = values.iter().map(u32::to_string).collect();
            (at, format!("{}={}", axis.name(), values.join(",")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text elements of an SVG: (x, y, text).
    fn texts(svg: &str) -> Vec<(f64, f64, String)> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let attr = |name: &str| -> Option<f64> {
                    let at = t.find(&format!(" {name}=\""))? + name.len() + 3;
                    t[at..].split('"').next()?.parse().ok()
                };
                let body = t
                    .split_once('>')?
                    .1
                    .split("</text>")
                    .next()?
                    .trim()
                    .to_string();
                Some((attr("x")?, attr("y")?, body))
            })
            .collect()
    }

    fn point(value: u32, s: f64, usd: f64, frontier: bool) -> Point {
        Point {
            value,
            outcome: Ok((s, usd)),
            frontier,
        }
    }

    #[test]
    fn the_chart_has_short_labels_no_overlaps_a_legend_and_the_chosen_plan() {
        // Small costs (a few millionths of a dollar) and two nearly equal points.
        let points = vec![
            point(1, 2.0, 4.0e-6, false),
            point(2, 2.001, 4.0e-6, false),
            point(8, 0.9, 5.0e-6, true),
            point(64, 0.4, 9.0e-6, true),
        ];
        let svg = svg(Axis::Workers, "t", &points, Some((0.9, 5.0e-6))).unwrap();
        let texts = texts(&svg);
        let all: Vec<&str> = texts.iter().map(|t| t.2.as_str()).collect();
        for needed in [
            "frontier: no other point is both faster and cheaper",
            "the plan flowc plan chooses by itself",
            "predicted cost (millionths of a $)",
            "workers=1,2",
        ] {
            assert!(all.contains(&needed), "{needed} missing from {all:?}");
        }
        // Axis numbers are short.
        for (_, _, t) in &texts {
            if t.parse::<f64>().is_ok() {
                assert!(t.len() <= 6, "axis label {t}");
            }
        }
        // Point labels do not sit on one another.
        let labels: Vec<&(f64, f64, String)> = texts
            .iter()
            .filter(|t| t.2.starts_with("workers="))
            .collect();
        for (i, a) in labels.iter().enumerate() {
            for b in &labels[i + 1..] {
                assert!(
                    (a.0 - b.0).abs() > 30.0 || (a.1 - b.1).abs() > 10.0,
                    "{a:?} overlaps {b:?}"
                );
            }
        }
    }

    #[test]
    fn without_prices_the_chart_is_time_by_the_swept_value() {
        let points = vec![point(1, 0.03, 0.0, true), point(4, 0.02, 0.0, true)];
        let svg = svg(Axis::Workers, "t", &points, None).unwrap();
        let all: Vec<String> = texts(&svg).into_iter().map(|t| t.2).collect();
        assert!(all.iter().any(|t| t == "predicted time (s)"), "{all:?}");
        assert!(all.iter().any(|t| t == "workers"), "{all:?}");
        assert!(!all.iter().any(|t| t.contains("cost")), "{all:?}");
    }

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
        let svg = svg(Axis::Workers, "test", &points, None).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("workers=2"),
            "{svg}"
        );
        assert!(table(Axis::Workers, &points).contains('*'));
    }
}
