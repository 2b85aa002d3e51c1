//! The fixed costs of a distributed run, measured by running one as a user would: `flowc
//! run --workers 2 --report` in a fresh process each time (a process's first plans cost more
//! than its later ones, and every real run is a fresh process), on a program of several
//! sinks, each a join, a grouping and a sort of two small files — the shape of a typical
//! pipeline, cut into stages with shuffles between them — over so few rows that every task
//! is all overhead. From each run's report: how long until the first task is sent beyond a
//! job's planning (worker start-up), how much longer the first job takes than later ones per
//! task in a row (code run for the first time), each task from sent to answered, the gap
//! between one job's end and the next one's first task (planning the sink and cutting it
//! into stages; less what the planner prices per node of the sink's plan), and the time from
//! the last answer to the run's end.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The fixed costs the `local` profile's `compute` section holds, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overheads {
    pub cold_start_s: f64,
    pub task_overhead_s: f64,
    pub first_task_s: f64,
    pub job_overhead_s: f64,
    pub teardown_s: f64,
}

/// What this reads of a run's `--report` JSON.
#[derive(Debug, Deserialize)]
struct Report {
    measured_s: f64,
    tasks: Vec<Task>,
}

#[derive(Debug, Deserialize)]
struct Task {
    id: TaskId,
    start_s: f64,
    end_s: f64,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TaskId {
    job: usize,
}

/// Tasks one after another in a job of the calibration program (scan; join and partial
/// aggregate; final aggregate and sort), as the planner plans it: a test below holds them
/// to the plan.
const CHAIN_TASKS: f64 = 3.0;

/// Runs a program of `jobs` sinks `runs` times with `exe` (the `flowc` executable), in
/// `dir`; each figure is its median over the runs (start-up on a shared machine varies).
pub fn measure(
    exe: &Path,
    dir: &Path,
    jobs: usize,
    runs: usize,
    plan_s_per_node: f64,
) -> Result<Overheads, String> {
    write_program(dir, jobs)?;
    let planning = plan_s_per_node * planning_nodes(dir, SINK)?;
    let runs = (0..runs.max(1))
        .map(|_| once(exe, dir))
        .collect::<Result<Vec<_>, _>>()?;
    let figure = |f: fn(&Overheads) -> f64| median(runs.iter().map(f).collect());
    Ok(Overheads {
        cold_start_s: figure(|o| o.cold_start_s),
        task_overhead_s: figure(|o| o.task_overhead_s),
        first_task_s: figure(|o| o.first_task_s),
        // The planner adds each job's planning by the size of its plan; what is left is
        // the part every job pays alike.
        job_overhead_s: (figure(|o| o.job_overhead_s) - planning).max(0.0),
        teardown_s: figure(|o| o.teardown_s),
    })
}

/// One sink of the calibration program: a join, a grouping and a sort of two small files.
const SINK: &str = "show load \"customers.csv\" | join load \"orders.csv\" on customer_id \
                    | group country { orders = count(), total = sum(amount) } | sort country\n";

/// Writes the calibration program of `jobs` sinks and its two files into `dir`.
fn write_program(dir: &Path, jobs: usize) -> Result<(), String> {
    let customers: String = (0..40).map(|c| format!("{c},country{}\n", c % 5)).collect();
    let orders: String = (0..200)
        .map(|o| format!("{o},{},{}.5\n", o % 40, o % 17))
        .collect();
    let write = |name: &str, text: String| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("cannot write a scratch file: {e}"))
    };
    write("customers.csv", format!("customer_id,country\n{customers}"))?;
    write(
        "orders.csv",
        format!("order_id,customer_id,amount\n{orders}"),
    )?;
    write("calibration.flow", SINK.repeat(jobs.max(2)))
}

/// Nodes of the operators and expressions of `program`'s jobs, counted as the planner counts
/// them when it prices planning.
fn planning_nodes(dir: &Path, program: &str) -> Result<f64, String> {
    let (_, compiled) =
        flow_compiler::parse_and_compile(program, &crate::files::FileSchemaSource::new(dir));
    let error = |d: &&flow_lang::Diagnostic| d.severity == flow_lang::Severity::Error;
    if let Some(d) = compiled.diagnostics.iter().find(error) {
        return Err(format!(
            "the calibration program does not compile: {}",
            d.message
        ));
    }
    let graph = flow_planner::ops::lower(&compiled.dag, &crate::stats::FileStatistics);
    Ok(graph.ops.iter().map(flow_planner::Op::planning_nodes).sum())
}

/// One run's fixed costs.
fn once(exe: &Path, dir: &Path) -> Result<Overheads, String> {
    let report_path = dir.join("calibration-report.json");
    let run = Command::new(exe)
        .args([
            "run",
            "calibration.flow",
            "--workers",
            "2",
            "--channel",
            "direct",
        ])
        .arg("--report")
        .arg(&report_path)
        .current_dir(dir)
        // The user's calibrated profile is what is being replaced: plan without it.
        .env("XDG_CONFIG_HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if !run.status.success() {
        return Err(format!(
            "the calibration run failed: {}",
            String::from_utf8_lossy(&run.stderr).trim()
        ));
    }
    let text = std::fs::read_to_string(&report_path)
        .map_err(|e| format!("the calibration run left no report: {e}"))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| format!("the calibration run's report does not read: {e}"))?;
    overheads(&report)
}

/// The fixed costs one run's report shows.
fn overheads(report: &Report) -> Result<Overheads, String> {
    let tasks: Vec<&Task> = report.tasks.iter().filter(|t| t.error.is_none()).collect();
    let task = median(tasks.iter().map(|t| t.end_s - t.start_s).collect());
    // Each job's first task sent and last answer back.
    let mut jobs: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for t in &tasks {
        let span = jobs.entry(t.id.job).or_insert((t.start_s, t.end_s));
        *span = (span.0.min(t.start_s), span.1.max(t.end_s));
    }
    let spans: Vec<(f64, f64)> = jobs.into_values().collect();
    let (Some(first), Some(last)) = (spans.first(), spans.last()) else {
        return Err("the calibration run ran no task".into());
    };
    let job = median(spans.windows(2).map(|w| w[1].0 - w[0].1).collect());
    let later = median(spans.iter().skip(1).map(|s| s.1 - s.0).collect());
    Ok(Overheads {
        // The first job is planned while the workers start: what its first task waited
        // beyond a job's planning is the start-up. Its tasks are each worker's first (code
        // paths run for the first time): what it took beyond a later job, spread over the
        // tasks one after another in a job, is what a first task costs more. The sinks are
        // all the same.
        cold_start_s: (first.0 - job).max(0.0),
        first_task_s: ((first.1 - first.0 - later) / CHAIN_TASKS).max(0.0),
        task_overhead_s: task,
        job_overhead_s: job,
        teardown_s: (report.measured_s - last.1).max(0.0),
    })
}

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    values
        .get(values.len() / 2)
        .copied()
        .unwrap_or(0.0)
        .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_ignores_order_and_is_never_negative() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![-1.0]), 0.0);
        assert_eq!(median(vec![]), 0.0);
    }

    #[test]
    fn a_report_splits_into_start_up_tasks_jobs_and_teardown() {
        let task = |job, start_s, end_s| Task {
            id: TaskId { job },
            start_s,
            end_s,
            error: None,
        };
        let report = Report {
            measured_s: 0.050,
            tasks: vec![
                task(0, 0.010, 0.012),
                task(0, 0.012, 0.014),
                task(1, 0.017, 0.019),
                task(2, 0.022, 0.024),
                task(3, 0.027, 0.045),
            ],
        };
        let o = overheads(&report).unwrap();
        assert!((o.job_overhead_s - 0.003).abs() < 1e-12, "{o:?}");
        // Job 0 starts at 10 ms, 3 of them planning; it takes 4 ms where a later job takes
        // 2 (the median of 2, 2 and 18): 2 ms more over its three tasks in a row.
        assert!((o.cold_start_s - 0.007).abs() < 1e-12, "{o:?}");
        assert!((o.first_task_s - 0.002 / 3.0).abs() < 1e-12, "{o:?}");
        assert!((o.task_overhead_s - 0.002).abs() < 1e-12, "{o:?}");
        assert!((o.teardown_s - 0.005).abs() < 1e-12, "{o:?}");
    }

    #[test]
    fn the_calibration_sink_is_planned_as_its_chain_of_tasks() {
        let dir = tempfile::tempdir().unwrap();
        write_program(dir.path(), 1).unwrap();
        let (_, compiled) = flow_compiler::parse_and_compile(
            SINK,
            &crate::files::FileSchemaSource::new(dir.path()),
        );
        let graph = flow_planner::ops::lower(&compiled.dag, &crate::stats::FileStatistics);
        let profile = flow_planner::Profile::builtin("local").unwrap();
        let options = flow_planner::Options {
            workers: Some(2),
            ..Default::default()
        };
        let plan = flow_planner::plan_graph(graph, &profile, &options).unwrap();
        // Tasks one after another: a stage that goes on in its producer's task adds none.
        let mut depth = vec![0.0_f64; plan.stages.len()];
        for s in 0..plan.stages.len() {
            let before = plan.inputs_of(s).map(|x| depth[x.from]).fold(0.0, f64::max);
            depth[s] = before + if plan.continues_task(s) { 0.0 } else { 1.0 };
        }
        let chain = depth.iter().copied().fold(0.0, f64::max);
        assert_eq!(chain, CHAIN_TASKS, "{}", plan.to_json());
        // Planning is priced by the sink's operators and expressions.
        assert!(planning_nodes(dir.path(), SINK).unwrap() > plan.ops.len() as f64);
    }
}
