//! What a distributed run did, as it happens: every stage as it was cut and every attempt at
//! every task, with times on the run's clock. The coordinator hands each record to a
//! [`Watch`] (the CLI's progress display) and keeps them for the run's report.

use super::channels::Compression;
use super::protocol::AttemptId;
use flow_planner::Channel;
use serde::Serialize;

/// A whole distributed run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunRecord {
    /// Workers (functions) the run started with.
    pub workers: usize,
    /// How stage outputs moved: `direct`, `storage`, or `as planned` (each task's record
    /// says which).
    pub channel: String,
    /// Compression of channel data.
    pub compression: Compression,
    /// The run store's URL.
    pub store: String,
    /// Seconds from the first worker's launch to the last one's shutdown.
    pub seconds: f64,
    /// Every stage of every job.
    pub stages: Vec<StageRecord>,
    /// Every attempt at every task.
    pub tasks: Vec<TaskRecord>,
}

/// One stage of one job (a sink's plan), as cut from the DataFusion plan.
#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    /// The job: one per sink, in program order.
    pub job: usize,
    /// The stage within the job.
    pub stage: usize,
    /// Tasks (one per partition).
    pub tasks: usize,
    /// Stages it reads.
    pub inputs: Vec<usize>,
    /// How its output is divided: `hash(N)` buckets, or `whole`.
    pub output: String,
    /// DataFusion operators, root first.
    pub operators: Vec<String>,
    /// Files its scans read.
    pub sources: Vec<String>,
}

impl StageRecord {
    /// A short name for people: the operators that give the stage its character, and the
    /// files it scans.
    pub fn label(&self) -> String {
        const MAIN: [&str; 6] = [
            "HashJoinExec",
            "SortMergeJoinExec",
            "NestedLoopJoinExec",
            "AggregateExec",
            "SortExec",
            "UnionExec",
        ];
        let mut names: Vec<String> = self
            .operators
            .iter()
            .filter(|o| MAIN.contains(&o.as_str()))
            .map(|o| o.trim_end_matches("Exec").to_lowercase())
            .collect();
        names.dedup();
        let files: Vec<&str> = self
            .sources
            .iter()
            .map(|s| s.rsplit('/').next().unwrap_or(s))
            .collect();
        if !files.is_empty() {
            names.push(format!("scan {}", files.join(", ")));
        }
        if names.is_empty() {
            names.extend(
                self.operators
                    .first()
                    .map(|o| o.trim_end_matches("Exec").to_lowercase()),
            );
        }
        format!(
            "job {} stage {}: {}",
            self.job,
            self.stage,
            names.join(" + ")
        )
    }
}

/// One attempt at one task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    /// Which attempt.
    pub id: AttemptId,
    /// The worker (function) that ran it: its slot number in the run.
    pub worker: usize,
    /// The worker's process id.
    pub pid: u32,
    /// How its output moved.
    pub channel: Channel,
    /// When it was sent, seconds after the run started.
    pub start_s: f64,
    /// When its answer came back.
    pub end_s: f64,
    /// Seconds the worker itself spent on it.
    pub busy_s: f64,
    /// Rows it produced.
    pub rows: u64,
    /// Bytes of output it wrote to its channel.
    pub bytes: u64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl TaskRecord {
    /// Whether the attempt succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Someone watching a run: told about each stage when it is cut and each attempt when it ends.
pub trait Watch: Send + Sync + std::fmt::Debug {
    /// A job's stages, before any of its tasks runs.
    fn stages(&self, stages: &[StageRecord]);
    /// An attempt ended (successfully or not).
    fn task(&self, task: &TaskRecord);
    /// A job's last stage was read back.
    fn job_done(&self, job: usize);
    /// A sink (`save`, `show`) starts: the `index`-th of `total`, in program order. Told in
    /// one-process runs too, which have no stages.
    fn sink(&self, index: usize, total: usize, label: &str) {
        let _ = (index, total, label);
    }
    /// Every sink is done.
    fn finished(&self) {}
}
