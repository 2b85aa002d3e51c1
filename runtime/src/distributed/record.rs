//! What a distributed run did, as it happens: every stage of the plan as it ran and every attempt at
//! every task, with times on the run's clock. The coordinator hands each record to a
//! [`Watch`] (the CLI's progress display) and keeps them for the run's report.

use super::channels::Compression;
use super::channels::StoreRequests;
use super::lowering::{Destination, OutputOf, Stage, for_each_scan, inlined};
use super::protocol::AttemptId;
use super::punched::Links;
use flow_planner::{Channel, PhysicalPlan};
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
    /// Times the platform refused to start a function for now (Lambda's throttling), each
    /// waited out and tried again.
    pub throttled: u64,
    /// What punched direct channels did: their setup times and the pairs that fell back to
    /// storage (empty without a rendezvous host).
    pub links: Links,
    /// Requests made of the run's store by the tasks, the training members and the
    /// coordinator: what the store bills for.
    pub store_requests: StoreRequests,
}

/// One stage of the plan as it ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageRecord {
    /// The job that first needed it: one per sink, training table or evaluation, in order.
    pub job: usize,
    /// The plan's stage id.
    pub stage: usize,
    /// Tasks: the stage's functions.
    pub tasks: usize,
    /// Stages it reads the outputs of.
    pub inputs: Vec<usize>,
    /// Its outputs, as `pattern(buckets) over channel → destination`.
    pub output: String,
    /// Each exchange of the plan it sends on, with the channel it moved over.
    pub exchanges: Vec<ExchangeRecord>,
    /// Whether workers ran its tasks (`workers`) or the coordinator did its work itself
    /// (training, evaluation, a sink reading what other stages sent).
    pub runs_in: &'static str,
    /// The stage whose task computed this one's work, when it was fused into it.
    pub computed_in: Option<usize>,
    /// The plan's operators, as `flowc plan` prints them.
    pub ops: Vec<String>,
    /// DataFusion operators of its task plans, root first.
    pub operators: Vec<String>,
    /// Files its scans read.
    pub sources: Vec<String>,
}

/// An exchange as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct ExchangeRecord {
    /// The plan's exchange id.
    pub id: usize,
    /// The channel its rows moved over.
    pub channel: Channel,
    /// Buckets each producing task divided them into.
    pub buckets: usize,
    /// Whether its reader took it as it was written, holding its producers to the reader's
    /// pace (nothing of it kept).
    pub paced: bool,
}

impl StageRecord {
    /// A stage whose tasks ran on workers.
    /// `paced` says which of its outputs its readers take as they are written.
    pub fn of(
        job: usize,
        stage: &Stage,
        plan: &PhysicalPlan,
        paced: impl Fn(&super::lowering::Output) -> bool,
    ) -> StageRecord {
        let mut operators = Vec::new();
        let mut sources = Vec::new();
        let mut exchanges = Vec::new();
        let mut outputs = Vec::new();
        for output in &stage.outputs {
            let mut pending = vec![output.plan.clone()];
            while let Some(node) = pending.pop() {
                operators.push(node.name().to_string());
                pending.extend(node.children().into_iter().rev().cloned());
            }
            for_each_scan(&output.plan, &mut |config| {
                for file in config.file_groups.iter().flat_map(|g| g.iter()) {
                    let path = file.object_meta.location.to_string();
                    if !sources.contains(&path) {
                        sources.push(path);
                    }
                }
            });
            match output.of.to {
                Destination::Exchange(x) => {
                    let exchange = &plan.exchanges[x];
                    exchanges.push(ExchangeRecord {
                        id: x,
                        channel: output.channel,
                        buckets: output.buckets,
                        paced: paced(output),
                    });
                    outputs.push(format!(
                        "{}({}) over {} to stage {}",
                        exchange.pattern.name(),
                        output.buckets,
                        output.channel.name(),
                        exchange.to
                    ));
                }
                Destination::Coordinator => {
                    outputs.push(format!(
                        "whole over {} to the coordinator",
                        output.channel.name()
                    ));
                }
                Destination::Shared => outputs.push("kept for the task's other outputs".into()),
            }
        }
        StageRecord {
            job,
            stage: stage.id,
            tasks: stage.tasks,
            inputs: stage.inputs.clone(),
            output: outputs.join(", "),
            exchanges,
            runs_in: "workers",
            computed_in: None,
            ops: ops_of(stage.id, plan),
            operators,
            sources,
        }
    }

    /// A stage with no tasks of its own: the coordinator's work (training, evaluation, a
    /// sink reading what other stages sent), or a stage fused into its consumer's task,
    /// whose exchange moved nothing.
    pub fn not_run(
        stage: &flow_planner::Stage,
        plan: &PhysicalPlan,
        outputs: &[Vec<OutputOf>],
    ) -> StageRecord {
        let mut inputs: Vec<usize> = plan.inputs_of(stage.id).map(|x| x.from).collect();
        inputs.dedup();
        let fused: Vec<&flow_planner::Exchange> = plan
            .exchanges
            .iter()
            .filter(|x| x.from == stage.id && inlined(plan, outputs, x))
            .collect();
        let (runs_in, output) = match fused.first() {
            Some(x) => ("fused", format!("computed in the task of stage {}", x.to)),
            None => ("coordinator", "in the coordinator".to_string()),
        };
        StageRecord {
            job: 0,
            stage: stage.id,
            tasks: stage.functions.max(1) as usize,
            inputs,
            output,
            exchanges: fused
                .iter()
                .map(|x| ExchangeRecord {
                    id: x.id,
                    channel: Channel::Fused,
                    buckets: 1,
                    paced: false,
                })
                .collect(),
            runs_in,
            computed_in: fused.first().map(|x| x.to),
            ops: ops_of(stage.id, plan),
            operators: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// A short name for people: the stage and its operators.
    pub fn label(&self) -> String {
        format!("stage {}: {}", self.stage, self.ops.join(" + "))
    }
}

fn ops_of(stage: usize, plan: &PhysicalPlan) -> Vec<String> {
    plan.stages[stage]
        .ops
        .iter()
        .map(|op| plan.ops[*op].op.kind.name().to_string())
        .collect()
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
    /// The worker's peak resident memory while it ran, in MB, where it could tell.
    pub peak_mb: Option<f64>,
    /// CPU seconds the worker spent on it, where it could tell.
    pub cpu_s: Option<f64>,
    /// The requests it made of the run's store.
    pub store_requests: StoreRequests,
    /// What the platform billed for it, in seconds, where it says.
    pub billed_s: Option<f64>,
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
