//! The fixed costs of a distributed run, measured by running one as a user would: `flowc
//! run --workers 2 --report` in a fresh process each time (a process's first plans cost more
//! than its later ones, and every real run is a fresh process), on a program of several
//! sinks, each a join, a grouping and a sort of two small files — the shape of a typical
//! pipeline, cut into stages with shuffles between them — over so few rows that every task
//! is all overhead. From each run's report: how long until the first task is sent (worker
//! start-up), each task from sent to answered, the gap between one job's end and the next
//! one's first task (planning the sink and cutting it into stages), and the time from the
//! last answer to the run's end.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

/// The fixed costs the `local` profile's `compute` section holds, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overheads {
    pub cold_start_s: f64,
    pub task_overhead_s: f64,
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

/// Runs a program of `jobs` sinks `runs` times with `exe` (the `flowc` executable), in
/// `dir`; each figure is its median over the runs (start-up on a shared machine varies).
pub fn measure(exe: &Path, dir: &Path, jobs: usize, runs: usize) -> Result<Overheads, String> {
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
    let sink = "show load \"customers.csv\" | join load \"orders.csv\" on customer_id \
                | group country { orders = count(), total = sum(amount) } | sort country\n";
    write("calibration.flow", sink.repeat(jobs.max(2)))?;
    let runs = (0..runs.max(1))
        .map(|_| once(exe, dir))
        .collect::<Result<Vec<_>, _>>()?;
    let figure = |f: fn(&Overheads) -> f64| median(runs.iter().map(f).collect());
    Ok(Overheads {
        cold_start_s: figure(|o| o.cold_start_s),
        task_overhead_s: figure(|o| o.task_overhead_s),
        job_overhead_s: figure(|o| o.job_overhead_s),
        teardown_s: figure(|o| o.teardown_s),
    })
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
        // The first job is planned while the workers start, and its tasks are each worker's
        // first (code paths run for the first time): what it took beyond a later job and a
        // job's planning is the start-up. The sinks are all the same.
        cold_start_s: (first.1 - job - later).max(0.0),
        task_overhead_s: task,
        job_overhead_s: job,
        teardown_s: (report.measured_s - last.1).max(0.0),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
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
        // Job 0 ends at 14 ms; a later job takes 2 ms (the median of 2, 2 and 18), planning 3.
        assert!((o.cold_start_s - 0.009).abs() < 1e-12, "{o:?}");
        assert!((o.task_overhead_s - 0.002).abs() < 1e-12, "{o:?}");
        assert!((o.teardown_s - 0.005).abs() < 1e-12, "{o:?}");
    }
}
