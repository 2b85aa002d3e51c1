//! `infer` as a DataFusion operator, so it runs wherever its input's partitions run: in one
//! process, or inside a stage shipped to workers (the model travels in the plan). That is the
//! parallel batch inference of the planner: each partition is scored where it is produced.

use super::AnyModel;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use std::sync::Arc;

/// The columns `infer` replaces when the table already has them.
pub const SCORE_COLUMNS: [&str; 3] = ["prediction", "probability", "distance"];

/// Scores every batch of its input with a model, `batch` rows per call.
#[derive(Debug)]
pub struct InferExec {
    pub input: Arc<dyn ExecutionPlan>,
    pub model: Arc<AnyModel>,
    pub batch: Option<usize>,
    schema: SchemaRef,
    cache: Arc<PlanProperties>,
}

impl InferExec {
    /// `schema` is the scored table as the compiler declared it.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        model: Arc<AnyModel>,
        batch: Option<usize>,
        schema: SchemaRef,
    ) -> InferExec {
        let cache = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.properties().partitioning.clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        InferExec {
            input,
            model,
            batch,
            schema,
            cache,
        }
    }
}

/// Scores one batch, `size` rows per call of the model, shaped as `schema`.
pub fn score(
    model: &AnyModel,
    input: &RecordBatch,
    size: Option<usize>,
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let chunks = model
        .predict_in(input, size)
        .map_err(|e| DataFusionError::Execution(format!("{}{e}", super::ML_ERROR)))?;
    let mut out = Vec::new();
    for (chunk, scored) in chunks {
        let mut columns: Vec<ArrayRef> = chunk
            .schema()
            .fields()
            .iter()
            .zip(chunk.columns())
            .filter(|(f, _)| !SCORE_COLUMNS.contains(&f.name().as_str()))
            .map(|(_, c)| c.clone())
            .collect();
        columns.extend(scored.into_iter().map(|(_, c)| c));
        let batch = super::conform_columns(columns, schema)
            .map_err(|e| DataFusionError::Execution(format!("{}{e}", super::ML_ERROR)))?;
        out.push(batch);
    }
    Ok(out)
}

impl DisplayAs for InferExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "InferExec: model={}, batch={}",
            self.model.kind(),
            self.batch
                .map_or("whole input batches".into(), |b| b.to_string())
        )
    }
}

impl ExecutionPlan for InferExec {
    fn name(&self) -> &str {
        "InferExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.cache
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(InferExec::new(
                input,
                self.model.clone(),
                self.batch,
                self.schema.clone(),
            ))),
            _ => Err(DataFusionError::Internal(
                "InferExec has exactly one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let model = self.model.clone();
        let size = self.batch;
        let schema = self.schema.clone();
        let scored = input.flat_map(move |batch| {
            let out = batch.and_then(|b| score(&model, &b, size, &schema));
            futures::stream::iter(match out {
                Ok(batches) => batches.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            scored,
        )))
    }
}

/// The scored table of an `infer` step: its input plan and the model, planned into
/// [`InferExec`] when scanned.
#[derive(Debug)]
pub struct ScoredTable {
    pub input: LogicalPlan,
    pub model: Arc<AnyModel>,
    pub batch: Option<usize>,
    pub schema: SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for ScoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = state.create_physical_plan(&self.input).await?;
        let exec: Arc<dyn ExecutionPlan> = Arc::new(InferExec::new(
            input,
            self.model.clone(),
            self.batch,
            self.schema.clone(),
        ));
        let Some(projection) = projection else {
            return Ok(exec);
        };
        let exprs: Vec<ProjectionExpr> = projection
            .iter()
            .map(|&i| {
                let name = self.schema.field(i).name().clone();
                ProjectionExpr {
                    expr: Arc::new(Column::new(&name, i)),
                    alias: name,
                }
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, exec)?))
    }
}
