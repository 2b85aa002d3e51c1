//! The leaf that stands where a stage boundary was cut: [`ExchangeReadExec`] reads, for each of
//! its partitions, the outputs of the producing stage's tasks from wherever they were put —
//! a worker's memory over a direct channel, or the run's object store.

use super::channels::{Channels, Location};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
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

/// How the producing stage's output is divided among this reader's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadKind {
    /// Partition `j` reads bucket `j` of every producing task (a hash shuffle).
    Bucket,
    /// Partition `j` reads all of producing task `j`'s output (a gather or broadcast: the
    /// operator above merges the partitions).
    Task,
}

/// Reads the output of another stage.
#[derive(Debug)]
pub struct ExchangeReadExec {
    /// The producing stage.
    pub stage: usize,
    /// How its output maps onto partitions.
    pub kind: ReadKind,
    /// Per partition, the places its rows are read from; empty until the coordinator knows
    /// where the producers' committed outputs are.
    pub locations: Vec<Vec<Location>>,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
}

impl ExchangeReadExec {
    /// A reader of `partitions` partitions whose locations are filled in later.
    pub fn new(
        stage: usize,
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
        ExchangeReadExec {
            stage,
            kind,
            locations: vec![Vec::new(); partitions],
            schema,
            cache,
        }
    }

    /// The same reader with its locations known.
    pub fn with_locations(&self, locations: Vec<Vec<Location>>) -> Self {
        ExchangeReadExec {
            stage: self.stage,
            kind: self.kind,
            locations,
            schema: self.schema.clone(),
            cache: self.cache.clone(),
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.locations.len()
    }
}

impl DisplayAs for ExchangeReadExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let kind = match self.kind {
            ReadKind::Bucket => "bucket",
            ReadKind::Task => "task",
        };
        write!(
            f,
            "ExchangeReadExec: stage={}, by={kind}, partitions={}",
            self.stage,
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
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), 4);
        let tx = builder.tx();
        let handle = tokio::runtime::Handle::current();
        builder.spawn_blocking(move || {
            for location in &locations {
                channels.read(location, &handle, &mut |batch| {
                    tx.blocking_send(Ok(batch))
                        .map_err(|_| DataFusionError::Execution("reader went away".into()))
                })?;
            }
            Ok(())
        });
        Ok(builder.build())
    }
}
