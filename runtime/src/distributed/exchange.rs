//! The leaf that stands where the plan puts an exchange: [`ExchangeReadExec`] reads one output
//! of the producing stage's tasks from wherever they were put — a worker's memory over a
//! direct channel, or the run's object store — either the task's own bucket of every
//! producer (a shuffle, a scatter) or everything (a gather, a broadcast, the coordinator).

use super::channels::{Channels, Location, read_opened};
use super::outbox::Outbox;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Statistics, stats::Precision};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a consuming task reads of the producers' output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadKind {
    /// Task `t` reads bucket `t` of every producing task (a hash shuffle, a scatter).
    Share,
    /// Every bucket of every producing task (a gather, a broadcast).
    Whole,
    /// What this task itself computed for its other outputs (work they share).
    Own,
}

impl ReadKind {
    /// What each consuming task reads of an exchange of this pattern.
    pub fn of(pattern: flow_planner::Pattern) -> ReadKind {
        use flow_planner::Pattern;
        match pattern {
            Pattern::HashShuffle | Pattern::Scatter | Pattern::Repartition => ReadKind::Share,
            Pattern::Gather | Pattern::Broadcast => ReadKind::Whole,
        }
    }
}

/// Reads one output of another stage.
#[derive(Debug)]
pub struct ExchangeReadExec {
    /// The producing stage.
    pub stage: usize,
    /// Which of its outputs.
    pub output: usize,
    /// How its output maps onto the reading task.
    pub kind: ReadKind,
    /// Per partition, the places its rows are read from; empty until the coordinator knows
    /// where the producers' committed outputs are.
    pub locations: Vec<Vec<Location>>,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
    /// The planner's estimate of what a task reads, for DataFusion's choices while the
    /// stage is planned (which side of a join to build on); unknown in the workers.
    statistics: Arc<Statistics>,
}

impl ExchangeReadExec {
    /// A reader of `partitions` partitions whose locations are filled in later.
    pub fn new(
        (stage, output): (usize, usize),
        kind: ReadKind,
        partitions: usize,
        schema: SchemaRef,
        eq: EquivalenceProperties,
    ) -> Self {
        let cache = Arc::new(PlanProperties::new(
            eq,
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        let statistics = Arc::new(Statistics::new_unknown(&schema));
        ExchangeReadExec {
            stage,
            output,
            kind,
            locations: vec![Vec::new(); partitions],
            schema,
            cache,
            statistics,
        }
    }

    /// The same reader, expected to read about `rows` rows of `bytes` bytes.
    pub fn with_estimate(mut self, rows: f64, bytes: f64) -> Self {
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.num_rows = Precision::Inexact(rows.max(0.0) as usize);
        statistics.total_byte_size = Precision::Inexact(bytes.max(0.0) as usize);
        self.statistics = Arc::new(statistics);
        self
    }

    /// The same reader with its locations known.
    pub fn with_locations(&self, locations: Vec<Vec<Location>>) -> Self {
        ExchangeReadExec {
            stage: self.stage,
            output: self.output,
            kind: self.kind,
            locations,
            schema: self.schema.clone(),
            cache: self.cache.clone(),
            statistics: self.statistics.clone(),
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.locations.len()
    }
}

/// Reads an output this worker's task kept for its other outputs.
fn read_here(
    outbox: Option<&Outbox>,
    key: &str,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let batches = outbox.and_then(|o| o.batches(key)).ok_or_else(|| {
        DataFusionError::Internal(format!("the task's own output {key} is not kept"))
    })?;
    for batch in batches {
        sink(batch)?;
    }
    Ok(())
}

impl DisplayAs for ExchangeReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let kind = match self.kind {
            ReadKind::Share => "share",
            ReadKind::Whole => "whole",
            ReadKind::Own => "own",
        };
        write!(
            f,
            "ExchangeReadExec: stage={}, output={}, reads={kind}, partitions={}",
            self.stage,
            self.output,
            self.locations.len()
        )
    }
}

impl ExecutionPlan for ExchangeReadExec {
    fn name(&self) -> &str {
        "ExchangeReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(self.statistics.clone())
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "ExchangeReadExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(locations) = self.locations.get(partition).cloned() else {
            return Err(DataFusionError::Internal(format!(
                "ExchangeReadExec has no partition {partition}"
            )));
        };
        let channels: Arc<Channels> = context
            .session_config()
            .get_extension()
            .ok_or_else(|| DataFusionError::Internal("no channels in the task context".into()))?;
        let outbox: Option<Arc<Outbox>> = context.session_config().get_extension();
        let schema = self.schema.clone();
        let mut builder = RecordBatchReceiverStream::builder(schema.clone(), 4);
        let tx = builder.tx();
        let handle = tokio::runtime::Handle::current();
        builder.spawn_blocking(move || {
            let mut send = |batch: RecordBatch| {
                // The producer named its columns; the reader's plan knows them by position.
                let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())?;
                tx.blocking_send(Ok(batch))
                    .map_err(|_| DataFusionError::Execution("reader went away".into()))
            };
            let mut ahead = channels.open_ahead(&locations, &handle);
            for (location, ahead) in locations.iter().zip(&mut ahead) {
                match (location, ahead.take()) {
                    (Location::Here { key }, _) => read_here(outbox.as_deref(), key, &mut send)?,
                    (_, Some(opening)) => {
                        let opened = opening.join().map_err(|_| {
                            DataFusionError::Internal("opening a channel panicked".into())
                        })??;
                        read_opened(opened, &mut send)?;
                    }
                    (_, None) => channels.read(location, &handle, &mut send)?,
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}
