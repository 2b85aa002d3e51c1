//! Cutting a DataFusion physical plan into stages at its exchanges, the way the planner's
//! stage formation does on the logical DAG: a hash repartition becomes a hash shuffle between
//! two stages; the input of an operator that merges every partition (coalesce, sort-preserving
//! merge — under a join's build side that makes a broadcast) becomes a gather. Everything
//! between two cuts is fused into one task per partition.

use super::exchange::{ExchangeReadExec, ReadKind};
use super::record::StageRecord;
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};
use std::sync::Arc;

/// How a stage's tasks divide their output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Into `n` buckets by the hash of the keys of the [`RepartitionExec`] on top of the plan.
    Hash(usize),
    /// Into `n` buckets, batches dealt round-robin: the scatter of inference batches.
    Scatter(usize),
    /// One bucket per task, merged by the consumer (or read by the coordinator for the last
    /// stage).
    Whole,
}

/// One stage of a job.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// Index in the job's stages.
    pub id: usize,
    /// What each task runs. For [`Output::Hash`] the root is the repartition: a task runs
    /// partition `task` of its input and divides the rows itself.
    pub plan: Arc<dyn ExecutionPlan>,
    /// Number of tasks (partitions of the stage's input of the root).
    pub tasks: usize,
    /// How the output is divided.
    pub output: Output,
    /// Stages whose outputs this one reads.
    pub inputs: Vec<usize>,
}

impl StagePlan {
    /// The stage as reports and progress displays describe it.
    pub fn record(&self, job: usize) -> StageRecord {
        let mut operators = Vec::new();
        let mut sources = Vec::new();
        let mut pending = vec![self.plan.clone()];
        while let Some(node) = pending.pop() {
            operators.push(node.name().to_string());
            if let Some(scan) = node.downcast_ref::<DataSourceExec>()
                && let Some(files) = scan.data_source().downcast_ref::<FileScanConfig>()
            {
                for file in files.file_groups.iter().flat_map(|g| g.iter()) {
                    let path = file.object_meta.location.to_string();
                    if !sources.contains(&path) {
                        sources.push(path);
                    }
                }
            }
            pending.extend(node.children().into_iter().rev().cloned());
        }
        StageRecord {
            job,
            stage: self.id,
            tasks: self.tasks,
            inputs: self.inputs.clone(),
            output: match self.output {
                Output::Hash(n) => format!("hash({n})"),
                Output::Scatter(n) => format!("scatter({n})"),
                Output::Whole => "whole".into(),
            },
            operators,
            sources,
        }
    }

    /// Buckets each task writes.
    pub fn buckets(&self) -> usize {
        match self.output {
            Output::Hash(n) | Output::Scatter(n) => n,
            Output::Whole => 1,
        }
    }
}

/// How the cutter may reshape the scans of a plan ([`super::row_groups::RowGroups`]; `()`
/// leaves them as DataFusion made them).
pub trait Scans {
    /// A stage's plan with its scan divided into tasks, before they are counted.
    fn divide(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>>;

    /// The input of a merge as one partition, when every task of the consumer reading it
    /// whole costs less than a stage of its own; `None` to cut a stage there.
    fn whole(&self, plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>>;
}

impl Scans for () {
    fn divide(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(plan)
    }

    fn whole(&self, _plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(None)
    }
}

/// Cuts a plan into stages, producers before consumers; the last stage computes the result.
/// `scans` divides each stage's scan into tasks, and may keep a small input of a merge in its
/// consumer's stage, read whole by every task, rather than cut a stage for it.
pub fn cut(plan: Arc<dyn ExecutionPlan>, scans: &dyn Scans) -> Result<Vec<StagePlan>> {
    let mut stages = Vec::new();
    let root = cut_below(plan, &mut stages, scans)?;
    let root = scans.divide(root)?;
    push(
        &mut stages,
        root.clone(),
        root.output_partitioning().partition_count(),
        Output::Whole,
    );
    Ok(stages)
}

fn push(
    stages: &mut Vec<StagePlan>,
    plan: Arc<dyn ExecutionPlan>,
    tasks: usize,
    output: Output,
) -> usize {
    let id = stages.len();
    let mut inputs = Vec::new();
    collect_inputs(&plan, &mut inputs);
    stages.push(StagePlan {
        id,
        plan,
        tasks,
        output,
        inputs,
    });
    id
}

fn collect_inputs(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<usize>) {
    if let Some(r) = plan.downcast_ref::<ExchangeReadExec>() {
        if !out.contains(&r.stage) {
            out.push(r.stage);
        }
        return;
    }
    for c in plan.children() {
        collect_inputs(c, out);
    }
}

fn cut_below(
    plan: Arc<dyn ExecutionPlan>,
    stages: &mut Vec<StagePlan>,
    scans: &dyn Scans,
) -> Result<Arc<dyn ExecutionPlan>> {
    let exchange =
        plan.downcast_ref::<RepartitionExec>()
            .and_then(|rep| match rep.partitioning() {
                Partitioning::Hash(_, n) => Some((rep, Output::Hash(*n), *n)),
                Partitioning::RoundRobinBatch(n) => Some((rep, Output::Scatter(*n), *n)),
                _ => None,
            });
    if let Some((rep, output, n)) = exchange {
        let input = cut_below(rep.input().clone(), stages, scans)?;
        let producer = scans.divide(replace(plan.clone(), vec![input])?)?;
        let input = producer.children()[0].clone();
        let tasks = input.output_partitioning().partition_count();
        let schema = input.schema();
        let id = push(stages, producer, tasks, output);
        return Ok(Arc::new(ExchangeReadExec::new(
            id,
            ReadKind::Bucket,
            n,
            schema.clone(),
            datafusion::physical_expr::EquivalenceProperties::new(schema),
        )));
    }
    let merges = plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<SortPreservingMergeExec>().is_some();
    let mut children = Vec::new();
    for child in plan.children() {
        let child = cut_below(child.clone(), stages, scans)?;
        if merges && child.output_partitioning().partition_count() > 1 {
            if let Some(whole) = scans.whole(&child)? {
                children.push(whole);
                continue;
            }
            let child = scans.divide(child)?;
            let tasks = child.output_partitioning().partition_count();
            let eq = child.equivalence_properties().clone();
            let schema = child.schema();
            let id = push(stages, child, tasks, Output::Whole);
            children.push(
                Arc::new(ExchangeReadExec::new(id, ReadKind::Task, tasks, schema, eq))
                    as Arc<dyn ExecutionPlan>,
            );
        } else {
            children.push(child);
        }
    }
    if children.is_empty() {
        return Ok(plan);
    }
    replace(plan, children)
}

fn replace(
    plan: Arc<dyn ExecutionPlan>,
    children: Vec<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::physical_expr::expressions::col;

    #[test]
    fn a_hash_repartition_is_a_shuffle_and_a_round_robin_one_a_scatter() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..10))],
        )
        .unwrap();
        let partitions = vec![vec![batch.clone()], vec![batch]];
        let key = col("x", &schema).unwrap();
        for (partitioning, output) in [
            (Partitioning::Hash(vec![key], 3), Output::Hash(3)),
            (Partitioning::RoundRobinBatch(3), Output::Scatter(3)),
        ] {
            let source =
                MemorySourceConfig::try_new_exec(&partitions, schema.clone(), None).unwrap();
            let repartition = RepartitionExec::try_new(source, partitioning).unwrap();
            let plan = Arc::new(CoalescePartitionsExec::new(Arc::new(repartition)));
            let stages = cut(plan, &()).unwrap();
            assert_eq!(
                stages.len(),
                3,
                "producers, the buckets' readers, the merge"
            );
            assert_eq!((stages[0].tasks, stages[0].output), (2, output));
            assert_eq!(stages[0].buckets(), 3);
            assert_eq!((stages[1].tasks, stages[1].inputs.clone()), (3, vec![0]));
            assert_eq!((stages[2].tasks, stages[2].inputs.clone()), (1, vec![1]));
        }
    }
}
