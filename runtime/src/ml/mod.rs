//! Running the ML steps of a DAG — `train`, `infer`, `evaluate`, model files — with the
//! standard library's kernels, on tables the engine computes. Results are kept per node, so a
//! model trained once serves every `infer` and `save` that uses it.

pub mod load;
mod model_input;
pub mod onnx;
pub mod scored;
pub mod transformer;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use flow_compiler::{Dag, NodeId, NodeKind};
use flow_lang::{Code, Diagnostic, Span};
use flow_stdlib::ml::{Model, evaluate, train};
use flow_stdlib::{MlError, TrainSpec};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Marks a scoring error inside a DataFusion error, so the run reports it as E0033.
pub(crate) const ML_ERROR: &str = "[model] ";

/// A model a run can score tables with.
#[derive(Debug)]
pub enum AnyModel {
    Flow(Model),
    Onnx(onnx::OnnxModel),
    /// An ONNX transformer: reads token ids, gives class logits.
    Transformer(transformer::TransformerModel),
}

/// The ONNX model in `bytes` (`name` names it in errors): a transformer when its inputs are
/// token ids, otherwise a model of a table's numeric columns.
pub fn open_onnx(bytes: Vec<u8>, name: &str) -> Result<AnyModel, String> {
    use tract_onnx::prelude::Framework;
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|_| format!("{name} is not an ONNX model (it does not decode as one)"))?;
    if transformer::reads_tokens(&proto) {
        transformer::TransformerModel::new(bytes, &proto, name).map(AnyModel::Transformer)
    } else {
        onnx::from_bytes(bytes, name).map(AnyModel::Onnx)
    }
}

/// The ONNX model in the file `path`; the error is a sentence about the file.
pub fn load_onnx(path: &Path) -> Result<AnyModel, String> {
    let bytes = load::read(path)?;
    open_onnx(bytes, &path.display().to_string())
}

impl AnyModel {
    pub fn kind(&self) -> &str {
        match self {
            AnyModel::Flow(m) => &m.kind,
            AnyModel::Onnx(_) => "onnx",
            AnyModel::Transformer(_) => "onnx transformer",
        }
    }

    /// The model as bytes for a worker: whether it is ONNX, and its file.
    pub fn to_wire(&self) -> (bool, Vec<u8>) {
        match self {
            AnyModel::Flow(m) => (false, flow_stdlib::ml::file::to_bytes(m)),
            AnyModel::Onnx(m) => (true, m.bytes.as_ref().clone()),
            AnyModel::Transformer(m) => (true, m.bytes.as_ref().clone()),
        }
    }

    /// The model [`AnyModel::to_wire`] shipped.
    pub fn from_wire(onnx: bool, bytes: Vec<u8>) -> Result<AnyModel, String> {
        if onnx {
            open_onnx(bytes, "the shipped ONNX model")
        } else {
            flow_stdlib::ml::file::from_bytes(&bytes)
                .map(AnyModel::Flow)
                .map_err(|e| e.to_string())
        }
    }

    pub fn predict(&self, batch: &RecordBatch) -> Result<flow_stdlib::ml::model::Scored, MlError> {
        match self {
            AnyModel::Flow(m) => m.predict(batch),
            AnyModel::Onnx(m) => m.predict(batch),
            AnyModel::Transformer(m) => m.predict(batch, transformer::DEFAULT_BATCH),
        }
    }

    /// Scores `batch`, `size` rows per call of the model (the whole batch when not given):
    /// each chunk of rows and its scores. A transformer takes the whole batch and groups its
    /// rows by length into calls of `size` rows itself.
    pub fn predict_in(
        &self,
        batch: &RecordBatch,
        size: Option<usize>,
    ) -> Result<Vec<(RecordBatch, flow_stdlib::ml::model::Scored)>, MlError> {
        if let AnyModel::Transformer(m) = self {
            let scored = m.predict(batch, size.unwrap_or(transformer::DEFAULT_BATCH))?;
            return Ok(vec![(batch.clone(), scored)]);
        }
        let size = size.unwrap_or(batch.num_rows()).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        while start < batch.num_rows() {
            let chunk = batch.slice(start, size.min(batch.num_rows() - start));
            start += chunk.num_rows();
            let scored = self.predict(&chunk)?;
            out.push((chunk, scored));
        }
        Ok(out)
    }

    /// The classes a classifier was trained on, when the model says.
    fn classes(&self) -> Option<Vec<String>> {
        match self {
            AnyModel::Flow(m) => m
                .label
                .as_ref()
                .map(|l| l.classes.clone())
                .filter(|c| !c.is_empty()),
            AnyModel::Onnx(_) | AnyModel::Transformer(_) => None,
        }
    }
}

/// What the ML steps need from the engine that runs the rest of the program.
pub(crate) trait MlHost {
    /// The whole table of a relational node, with what `results` computed substituted.
    async fn rows(
        &mut self,
        node: NodeId,
        results: &MlResults,
    ) -> Result<Vec<RecordBatch>, Diagnostic>;

    /// Trains the model of DAG node `node` on prepared data: in this process, or across the
    /// run's workers as the plan gives that node's training stage.
    fn train(
        &mut self,
        node: NodeId,
        spec: &TrainSpec,
        prepared: train::Prepared,
    ) -> Result<Model, String>;
}

/// What the ML nodes of a run computed.
#[derive(Debug, Default)]
pub struct MlResults {
    models: HashMap<NodeId, Arc<AnyModel>>,
    tables: HashMap<NodeId, Vec<RecordBatch>>,
}

impl MlResults {
    pub fn model(&self, node: NodeId) -> Option<&Arc<AnyModel>> {
        self.models.get(&node)
    }

    /// The rows of an `infer` or `evaluate` node, shaped as `schema` (the compiler's view).
    pub fn table(
        &self,
        node: NodeId,
        schema: &SchemaRef,
    ) -> Option<Result<Vec<RecordBatch>, String>> {
        let batches = self.tables.get(&node)?;
        Some(batches.iter().map(|b| conform(b, schema)).collect())
    }

    /// Computes `node` and every ML node it depends on that is not computed yet. `rows`
    /// computes the table of a relational node (with these results substituted).
    pub(crate) async fn ensure(
        &mut self,
        dag: &Dag,
        node: NodeId,
        host: &mut impl MlHost,
    ) -> Result<(), Diagnostic> {
        let mut upstream = vec![node];
        let mut stack = vec![node];
        while let Some(n) = stack.pop() {
            for i in dag.inputs(n) {
                if !upstream.contains(&i) {
                    upstream.push(i);
                    stack.push(i);
                }
            }
        }
        // The compiler adds a node after everything it reads.
        upstream.sort();
        for n in upstream {
            if self.models.contains_key(&n) || self.tables.contains_key(&n) {
                continue;
            }
            let at = dag.node(n).span;
            match &dag.node(n).kind {
                NodeKind::ModelSource { file, .. } => {
                    let full = Path::new(file);
                    let model = if load::is_onnx(full) {
                        load_onnx(full)
                    } else {
                        load::native(full).map(AnyModel::Flow)
                    }
                    .map_err(|m| Diagnostic::error(Code::E0033, m, at, "this model"))?;
                    self.models.insert(n, Arc::new(model));
                }
                NodeKind::Train { spec, .. } => {
                    let data = data_input(dag, n);
                    let batches = host.rows(data, self).await?;
                    // Training is CPU work (or, on a cluster, waiting on the workers' steps)
                    // on data this task borrows: it runs here, with the runtime told to move
                    // its other tasks elsewhere meanwhile.
                    let model = tokio::task::block_in_place(|| {
                        let prepared = train::prepare_batches(spec, &batches)
                            .map_err(|e| ml_error(e, at, "while training this model"))?;
                        host.train(n, spec, prepared).map_err(|message| {
                            Diagnostic::error(Code::E0029, message, at, "while training this model")
                        })
                    })?;
                    self.models.insert(n, Arc::new(AnyModel::Flow(model)));
                }
                NodeKind::Evaluate { label } => {
                    let data = data_input(dag, n);
                    let batches = host.rows(data, self).await?;
                    let classes = model_behind(dag, data)
                        .and_then(|m| self.models.get(&m))
                        .and_then(|m| m.classes());
                    let table = evaluate_table(&batches, label, classes.as_deref())
                        .map_err(|e| ml_error(e, at, "while evaluating this table"))?;
                    self.tables.insert(n, vec![table]);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The model an `infer` node scores with.
    pub fn model_of(&self, dag: &Dag, node: NodeId) -> Result<Arc<AnyModel>, Diagnostic> {
        dag.inputs(node)
            .into_iter()
            .find_map(|i| self.models.get(&i).cloned())
            .ok_or_else(|| {
                Diagnostic::error(
                    Code::E0029,
                    "the model of this step was not computed",
                    dag.node(node).span,
                    "here",
                )
            })
    }
}

fn is_model(dag: &Dag, node: NodeId) -> bool {
    matches!(
        dag.node(node).kind,
        NodeKind::Train { .. } | NodeKind::ModelSource { .. }
    )
}

/// The table an ML step reads (not its model).
pub(crate) fn data_input(dag: &Dag, node: NodeId) -> NodeId {
    let inputs = dag.inputs(node);
    inputs
        .iter()
        .copied()
        .find(|i| !is_model(dag, *i))
        .unwrap_or(inputs[0])
}

/// The model whose `infer` made the table of `node`, if one did.
fn model_behind(dag: &Dag, node: NodeId) -> Option<NodeId> {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if matches!(dag.node(n).kind, NodeKind::Infer { .. }) {
            return dag.inputs(n).into_iter().find(|i| is_model(dag, *i));
        }
        stack.extend(dag.inputs(n));
    }
    None
}

fn ml_error(e: MlError, at: Span, label: &str) -> Diagnostic {
    Diagnostic::error(Code::E0033, e.to_string(), at, label)
}

/// The one-row table of `evaluate`.
fn evaluate_table(
    batches: &[RecordBatch],
    label: &str,
    classes: Option<&[String]>,
) -> Result<RecordBatch, MlError> {
    let Some(first) = batches.first() else {
        return Err(MlError::data("`evaluate` got a table with no rows"));
    };
    let all = datafusion::arrow::compute::concat_batches(&first.schema(), batches)?;
    let metrics = evaluate::evaluate(&all, label, classes)?;
    let fields: Vec<Field> = metrics
        .iter()
        .map(|(name, _)| Field::new(*name, datafusion::arrow::datatypes::DataType::Float64, true))
        .collect();
    let columns: Vec<ArrayRef> = metrics
        .iter()
        .map(|(_, v)| Arc::new(Float64Array::from(vec![*v])) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// `batch` with `schema`'s names and types, column by column in order.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, String> {
    conform_columns(batch.columns().to_vec(), schema)
}

/// `columns` as a batch of `schema`, each cast to its field's type where it differs.
pub(crate) fn conform_columns(
    columns: Vec<ArrayRef>,
    schema: &SchemaRef,
) -> Result<RecordBatch, String> {
    if columns.len() != schema.fields().len() {
        return Err(format!(
            "the step produced {} columns where {} were expected",
            columns.len(),
            schema.fields().len()
        ));
    }
    let columns = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type()).map_err(|e| {
                    format!(
                        "column `{}` cannot be made {}: {e}",
                        f.name(),
                        f.data_type()
                    )
                })
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}
