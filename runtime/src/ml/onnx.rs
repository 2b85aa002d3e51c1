//! ONNX models, run with tract: a model with one 2-D float input (rows × features) and
//! either a class label and class probabilities (classifiers, as scikit-learn's exporter
//! writes them) or a single number per row (regressors). The table columns it reads are
//! named by the model's `flow.inputs` metadata (comma-separated); without it, by the table's
//! numeric columns in order.
//!
//! A classifier that ends the way scikit-learn's exporter ends one — a softmax over the
//! classes, and the label picked from a constant class table by the arg-max of those
//! probabilities — runs in tract up to the logits; the softmax and the pick happen here.
//! tract evaluates both one short row at a time, which cost five times its matrix products
//! on the digits model; the arithmetic (first maximum wins, as ONNX's `ArgMax`) is the same.

use datafusion::arrow::array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};

use super::model_input::{self, Layout};
use flow_stdlib::MlError;
use flow_stdlib::ml::model::Scored;
use flow_stdlib::models::Task;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};
use tract_onnx::tract_core::tract_linalg::reduce::MapReduce;
use tract_onnx::tract_core::tract_linalg::routines::Func;

/// A runnable plan, the layout of the matrix it reads and how its outputs become scores.
#[derive(Clone)]
struct Plan {
    run: Arc<TypedRunnableModel>,
    layout: Layout,
    tail: Tail,
    /// Run states kept between calls (one per thread scoring at once): tract keeps its
    /// buffers in them, which a fresh state would allocate again.
    states: Arc<std::sync::Mutex<Vec<TypedSimpleState>>>,
    /// Input tensors kept between calls, for the same reason: each is overwritten whole.
    inputs: Arc<std::sync::Mutex<Vec<Arc<Tensor>>>>,
}

impl Plan {
    fn new(run: Arc<TypedRunnableModel>, layout: Layout, tail: Tail) -> Plan {
        Plan {
            run,
            layout,
            tail,
            states: Default::default(),
            inputs: Default::default(),
        }
    }

    /// A tensor of `shape` to write the next input into: a kept one nobody else holds, or a
    /// new one.
    fn input(&self, shape: &[usize]) -> TractResult<Arc<Tensor>> {
        if let Ok(mut kept) = self.inputs.lock()
            && let Some(at) = kept
                .iter_mut()
                .position(|t| t.shape() == shape && Arc::get_mut(t).is_some())
        {
            return Ok(kept.swap_remove(at));
        }
        Ok(Arc::new(Tensor::zero::<f32>(shape)?))
    }

    /// Keeps `input` for a later call (a few at most: one per thread scoring at once).
    fn keep(&self, input: Arc<Tensor>) {
        if let Ok(mut kept) = self.inputs.lock()
            && kept.len() < 8
        {
            kept.push(input);
        }
    }

    /// Runs the plan on `inputs` in a kept state, or a new one when all are in use.
    fn outputs(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let kept = self.states.lock().ok().and_then(|mut s| s.pop());
        let mut state = match kept {
            Some(state) => state,
            None => self.run.spawn()?,
        };
        let outputs = state.run(inputs)?;
        // A state that failed is dropped: what it holds is not known.
        if let Ok(mut states) = self.states.lock() {
            states.push(state);
        }
        Ok(outputs)
    }
}

/// How the outputs of tract's plan become `prediction` and `probability`.
#[derive(Debug, Clone)]
enum Tail {
    /// The plan's outputs are the model's: `scores` (probabilities or values) and, for
    /// classifiers, `label`.
    Outputs { label: Option<usize>, scores: usize },
    /// The plan stops at a softmax classifier's logits (its only output); the probabilities
    /// and the label (`classes[arg-max]`) are computed here.
    Softmax {
        classes: Vec<i64>,
        /// tract's kernel for `exp(x - max)` over a slice, the best this CPU runs.
        exp: Box<dyn MapReduce<f32, f32>>,
        /// Whether the plan gives the logits class by class (`classes × rows`), transposed
        /// in the graph where tract writes the last product that way, or row by row.
        by_class: bool,
    },
}

/// A loaded, optimised ONNX model.
pub struct OnnxModel {
    /// The file, to ship the model to workers.
    pub bytes: Arc<Vec<u8>>,
    plan: Plan,
    /// Plans optimised for one batch size, which tract runs two to three times faster than
    /// the general one.
    sized: std::sync::Mutex<std::collections::HashMap<usize, Plan>>,
    /// The columns it reads, when the file names them.
    pub inputs: Option<Vec<String>>,
    /// Where those are in the schema of the batches last scored.
    found: std::sync::Mutex<Option<(datafusion::arrow::datatypes::SchemaRef, Vec<usize>)>>,
    width: usize,
    label: Option<usize>,
    scores: usize,
    pub task: Task,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("width", &self.width)
            .field("task", &self.task)
            .finish()
    }
}

/// The declared width (features per row) of the graph's first input.
fn input_width(proto: &pb::ModelProto) -> Option<usize> {
    let input = proto.graph.as_ref()?.input.first()?;
    let pb::type_proto::Value::TensorType(tensor) = input.r#type.as_ref()?.value.as_ref()?;
    let dims = &tensor.shape.as_ref()?.dim;
    if dims.len() != 2 {
        return None;
    }
    match dims[1].value.as_ref()? {
        pb::tensor_shape_proto::dimension::Value::DimValue(d) => usize::try_from(*d).ok(),
        pb::tensor_shape_proto::dimension::Value::DimParam(_) => None,
    }
}

/// Reads and optimises the model in `path`; the error is a sentence about the file.
pub fn load(path: &Path) -> Result<OnnxModel, String> {
    let bytes = super::load::read(path)?;
    from_bytes(bytes, &path.display().to_string())
}

/// Optimises the ONNX model in `bytes`; `name` names it in errors.
pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<OnnxModel, String> {
    let onnx = tract_onnx::onnx();
    let proto = onnx
        .proto_model_for_read(&mut bytes.as_slice())
        .map_err(|_| format!("{} is not an ONNX model (it does not decode as one)", name))?;
    if proto.graph.is_none() {
        return Err(format!("{} is not an ONNX model (it has no graph)", name));
    }
    let inputs: Option<Vec<String>> = proto
        .metadata_props
        .iter()
        .find(|e| e.key == "flow.inputs")
        .map(|e| e.value.split(',').map(|c| c.trim().to_string()).collect());
    let width = input_width(&proto)
        .or_else(|| inputs.as_ref().map(Vec::len))
        .ok_or_else(|| {
            format!(
                "{} does not say how many features a row has (its input is not rows × a fixed \
                 width, and it has no `flow.inputs` metadata)",
                name
            )
        })?;
    let fail = |e: TractError| format!("{} cannot be run: {e}", name);
    let mut model = onnx.model_for_proto_model(&proto).map_err(fail)?;
    let rows = model.sym("rows");
    model
        .set_input_fact(0, f32::fact(&[rows.to_dim(), width.to_dim()]).into())
        .map_err(fail)?;
    let typed = model.into_optimized().map_err(fail)?;
    let mut label = None;
    let mut scores = None;
    for (i, outlet) in typed.output_outlets().map_err(fail)?.iter().enumerate() {
        let fact = typed.outlet_fact(*outlet).map_err(fail)?;
        // tract folds a constant class table into symbolic integers (TDim).
        let integer = fact.datum_type.is_integer() || fact.datum_type == DatumType::TDim;
        if integer && fact.rank() == 1 && label.is_none() {
            label = Some(i);
        } else if fact.datum_type.is_float() && scores.is_none() {
            scores = Some(i);
        }
    }
    let scores = scores.ok_or_else(|| {
        format!(
            "{} has no floating-point output to read predictions or probabilities from",
            name
        )
    })?;
    let task = if label.is_some() {
        Task::Classification
    } else {
        Task::Regression
    };
    if let Some(inputs) = &inputs
        && inputs.len() != width
    {
        return Err(format!(
            "{} names {} input columns in `flow.inputs` but reads {width} features",
            name,
            inputs.len()
        ));
    }
    let plan = runnable(typed, Layout::RowMajor, label, scores).map_err(fail)?;
    Ok(OnnxModel {
        bytes: Arc::new(bytes),
        plan,
        sized: Default::default(),
        inputs,
        found: Default::default(),
        width,
        label,
        scores,
        task,
    })
}

/// The plan of `model` (reading a matrix in `layout`) whose outputs `label` and `scores` are
/// the label and the scores: cut at the logits when it ends in a softmax classifier's tail.
fn runnable(
    model: TypedModel,
    layout: Layout,
    label: Option<usize>,
    scores: usize,
) -> TractResult<Plan> {
    if let Some(label) = label
        && let Some((logits, classes)) = softmax_tail(&model, label, scores)?
    {
        let exp = Func::Softmax2.map_reduce_f32()?;
        let transposed = (|| -> TractResult<Arc<TypedRunnableModel>> {
            let mut cut = model.clone();
            let moved = cut.wire_node("flow.logits.by_class", AxisOp::Move(1, 0), &[logits])?;
            cut.select_output_outlets(&moved)?;
            cut.into_optimized()?.into_runnable()
        })();
        if let Ok(run) = transposed {
            let tail = Tail::Softmax {
                classes,
                exp,
                by_class: true,
            };
            return Ok(Plan::new(run, layout, tail));
        }
        let mut cut = model;
        cut.select_output_outlets(&[logits])?;
        let tail = Tail::Softmax {
            classes,
            exp,
            by_class: false,
        };
        return Ok(Plan::new(
            cut.into_compact()?.into_runnable()?,
            layout,
            tail,
        ));
    }
    Ok(Plan::new(
        model.into_runnable()?,
        layout,
        Tail::Outputs { label, scores },
    ))
}

/// `model`, whose one input is `rows × width`, reading instead the `width × rows` matrix of
/// the table's columns one after another and transposing it in the graph: tract folds the
/// transposition into the packing of the first matrix product, which then reads runs of
/// consecutive values, and flow writes each column in one run instead of striding by rows.
fn column_major(model: &TypedModel, rows: usize, width: usize) -> TractResult<TypedModel> {
    let [source] = model.input_outlets()? else {
        return Err(TractError::msg("the model has more than one input"));
    };
    let mut out = TypedModel {
        symbols: model.symbols.clone(),
        ..TypedModel::default()
    };
    let mut wired: std::collections::HashMap<OutletId, OutletId> = Default::default();
    for id in model.eval_order()? {
        let node = model.node(id);
        if id == source.node {
            let columns = out.add_source("flow.columns", f32::fact([width, rows]))?;
            let rows = out.wire_node("flow.columns.transposed", AxisOp::Move(1, 0), &[columns])?;
            wired.insert(*source, rows[0]);
            continue;
        }
        let inputs: TVec<OutletId> = node.inputs.iter().map(|i| wired[i]).collect();
        for (slot, outlet) in out
            .wire_node(&node.name, node.op.clone(), &inputs)?
            .into_iter()
            .enumerate()
        {
            wired.insert(OutletId::new(id, slot), outlet);
        }
    }
    let outputs: Vec<OutletId> = model.output_outlets()?.iter().map(|o| wired[o]).collect();
    out.select_output_outlets(&outputs)?;
    Ok(out)
}

/// The logits and the class table when output `scores` is a softmax over the classes of rows
/// × classes `f32` logits and output `label` is, through casts and reshapes, the class table
/// indexed by the first arg-max of those probabilities.
fn softmax_tail(
    model: &TypedModel,
    label: usize,
    scores: usize,
) -> TractResult<Option<(OutletId, Vec<i64>)>> {
    let outputs = model.output_outlets()?;
    let (Some(&probabilities), Some(&picked)) = (outputs.get(scores), outputs.get(label)) else {
        return Ok(None);
    };
    let node = model.node(probabilities.node);
    let fact = model.outlet_fact(probabilities)?;
    let Some(softmax) = node.op_as::<Softmax>() else {
        return Ok(None);
    };
    let width = fact
        .shape
        .get(1)
        .and_then(|d| d.as_i64())
        .and_then(|d| usize::try_from(d).ok());
    if softmax.kind != SoftmaxKind::Softmax
        || softmax.quant_output_dt.is_some()
        || softmax.axes.as_slice() != [1]
        || fact.rank() != 2
        || fact.datum_type != f32::datum_type()
        || node.inputs.len() != 1
    {
        return Ok(None);
    }
    let mut at = picked;
    while let node = model.node(at.node)
        && (node.op_is::<Cast>() || node.op_is::<IntoShape>() || node.op_is::<AxisOp>())
    {
        at = node.inputs[0];
    }
    let gather = model.node(at.node);
    let Some(op) = gather.op_as::<Gather>() else {
        return Ok(None);
    };
    if op.axis != 0 || gather.inputs.len() != 2 {
        return Ok(None);
    }
    let Some(table) = model.outlet_fact(gather.inputs[0])?.konst.clone() else {
        return Ok(None);
    };
    let arg_max = model.node(gather.inputs[1].node);
    let first_max = arg_max
        .op_as::<Reduce>()
        .is_some_and(|r| r.reducer == Reducer::ArgMax(false) && r.axes.as_slice() == [1]);
    if !first_max
        || arg_max.inputs.as_slice() != [probabilities]
        || table.rank() != 1
        || !table.datum_type().is_integer()
        || width != Some(table.len())
    {
        return Ok(None);
    }
    let classes = table
        .cast_to::<i64>()?
        .to_plain_array_view::<i64>()?
        .iter()
        .copied()
        .collect();
    Ok(Some((node.inputs[0], classes)))
}

/// Softmax of each row of `logits` (`rows × classes`): the class of its first largest
/// probability and that probability (for two classes, the second class's). The probabilities
/// are `exp(z - max) / sum`, the exponentials from tract's own softmax kernel run over the
/// whole batch at once; the largest probability is `1 / sum` and the order of the
/// probabilities is that of the exponentials, so the arg-max is taken over those and only the
/// probability returned is divided. The logits are first laid out class by class, so that
/// every step below runs over all the rows at once (in vector registers) instead of over one
/// row of a few classes at a time.
pub(super) fn softmax_scores(
    logits: &mut [f32],
    already_by_class: bool,
    classes: &[i64],
    exp: &dyn MapReduce<f32, f32>,
) -> TractResult<(Vec<i64>, Vec<f64>)> {
    let c = classes.len().max(1);
    let rows = logits.len() / c;
    let mut transposed = Vec::new();
    let by_class: &mut [f32] = if already_by_class {
        &mut logits[..rows * c]
    } else {
        transposed.resize(rows * c, 0f32);
        for (r, row) in logits.chunks_exact(c).enumerate() {
            for (j, z) in row.iter().enumerate() {
                transposed[j * rows + r] = *z;
            }
        }
        &mut transposed
    };
    let mut max = by_class[..rows].to_vec();
    for class in by_class.chunks_exact(rows.max(1)).skip(1) {
        for (m, z) in max.iter_mut().zip(class) {
            *m = if *z > *m { *z } else { *m };
        }
    }
    for class in by_class.chunks_exact_mut(rows.max(1)) {
        for (z, m) in class.iter_mut().zip(&max) {
            *z -= m;
        }
    }
    exp.run_with_params(by_class, 0.0)?;
    // Two passes over the classes, each a loop the compiler runs in vector registers on any
    // x86-64: the sums and largest exponentials, then, from the last class to the first, the
    // class that reaches the largest (so the first such wins). The class is kept as an `f32`
    // (exact below 2^24) because selecting floats by a float comparison vectorises where
    // mixing integer and float lanes does not.
    let mut sum = vec![0f32; rows];
    let mut best_e = vec![f32::NEG_INFINITY; rows];
    for class in by_class.chunks_exact(rows.max(1)) {
        for ((e, s), be) in class.iter().zip(sum.iter_mut()).zip(best_e.iter_mut()) {
            *s += *e;
            *be = if *e > *be { *e } else { *be };
        }
    }
    let mut best = vec![0f32; rows];
    for (j, class) in by_class.chunks_exact(rows.max(1)).enumerate().rev() {
        let j = j as f32;
        for ((e, be), b) in class.iter().zip(&best_e).zip(best.iter_mut()) {
            *b = if *e == *be { j } else { *b };
        }
    }
    let picked = if c == 2 {
        &by_class[rows..]
    } else {
        &best_e[..]
    };
    let labels = best.iter().map(|b| classes[*b as usize]).collect();
    let probability = picked
        .iter()
        .zip(&sum)
        .map(|(e, s)| f64::from(e / s))
        .collect();
    Ok((labels, probability))
}

impl OnnxModel {
    /// The columns of `batch` this model reads.
    fn columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, MlError> {
        let what = "table given to `infer`";
        match &self.inputs {
            Some(names) => {
                // Every batch of a scan shares its schema: find the columns once for it.
                let schema = batch.schema();
                let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((known, at)) = found.as_ref()
                    && Arc::ptr_eq(known, &schema)
                {
                    return Ok(at.iter().map(|i| batch.column(*i).clone()).collect());
                }
                for n in names {
                    flow_stdlib::ml::encode::column(batch, n, what)?;
                }
                let at: Vec<usize> = names
                    .iter()
                    .filter_map(|n| schema.index_of(n).ok())
                    .collect();
                let columns = at.iter().map(|i| batch.column(*i).clone()).collect();
                *found = Some((schema, at));
                Ok(columns)
            }
            None => {
                let numeric: Vec<ArrayRef> = batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .filter(|(f, _)| {
                        f.data_type().is_numeric()
                            && !super::scored::SCORE_COLUMNS.contains(&f.name().as_str())
                    })
                    .map(|(_, c)| c.clone())
                    .collect();
                if numeric.len() != self.width {
                    return Err(MlError::data(format!(
                        "the ONNX model reads {} features, but the table has {} numeric columns; \
                         select exactly its inputs, in order, before `infer`",
                        self.width,
                        numeric.len()
                    )));
                }
                Ok(numeric)
            }
        }
    }

    /// The plan for batches of `rows` rows: one optimised for that size, made the first time
    /// it is asked for (a few sizes at most: the batch and the remainders); the general plan
    /// when that fails or too many sizes came.
    fn plan_for(&self, rows: usize) -> Plan {
        const SIZES: usize = 8;
        let Ok(mut sized) = self.sized.lock() else {
            return self.plan.clone();
        };
        if let Some(plan) = sized.get(&rows) {
            return plan.clone();
        }
        if sized.len() >= SIZES {
            return self.plan.clone();
        }
        let made = (|| -> TractResult<Plan> {
            let onnx = tract_onnx::onnx();
            let proto = onnx.proto_model_for_read(&mut self.bytes.as_slice())?;
            let mut model = onnx.model_for_proto_model(&proto)?;
            model.set_input_fact(0, f32::fact([rows, self.width]).into())?;
            let typed = model.into_typed()?;
            match column_major(&typed, rows, self.width) {
                Ok(columns) => runnable(
                    columns.into_optimized()?,
                    Layout::ColumnMajor,
                    self.label,
                    self.scores,
                ),
                Err(_) => runnable(
                    typed.into_optimized()?,
                    Layout::RowMajor,
                    self.label,
                    self.scores,
                ),
            }
        })();
        let plan = made.unwrap_or_else(|_| self.plan.clone());
        sized.insert(rows, plan.clone());
        plan
    }

    /// Scores `batch`: `prediction`, and for classifiers `probability` (of the positive class
    /// for two classes, of the predicted class otherwise).
    pub fn predict(&self, batch: &RecordBatch) -> Result<Scored, MlError> {
        let columns = self.columns(batch)?;
        let rows = batch.num_rows();
        for (c, column) in columns.iter().enumerate() {
            if column.null_count() > 0
                && let Some(row) = (0..column.len()).find(|&i| column.is_null(i))
            {
                return Err(MlError::data(format!(
                    "input column {} of the ONNX model is null in row {}",
                    c + 1,
                    row + 1
                )));
            }
        }
        let plan = self.plan_for(rows);
        let shape = match plan.layout {
            Layout::RowMajor => [rows, self.width],
            Layout::ColumnMajor => [self.width, rows],
        };
        // Written where tract reads it (a tensor made from a vector would be copied again),
        // in a tensor kept from an earlier call when one is free.
        let fail = |e: TractError| MlError::data(e.to_string());
        let mut input = plan.input(&shape).map_err(fail)?;
        {
            let tensor = Arc::get_mut(&mut input)
                .ok_or_else(|| MlError::data("the model's input is still in use"))?;
            let mut plain = tensor.try_as_plain_ram_mut().map_err(fail)?;
            let values = plain.as_slice_mut::<f32>().map_err(fail)?;
            model_input::fill(&columns, plan.layout, values)?;
        }
        let outputs = plan
            .outputs(tvec!(TValue::from_const(input.clone())))
            .map_err(|e| MlError::data(format!("the ONNX model failed: {e}")))?;
        plan.keep(input);
        let floats = |outputs: &[TValue], i: usize| -> Result<Vec<f32>, MlError> {
            let values = outputs[i]
                .cast_to::<f32>()
                .map_err(|e| MlError::data(e.to_string()))?;
            let values = values
                .to_plain_array_view::<f32>()
                .map_err(|e| MlError::data(e.to_string()))?;
            Ok(match values.as_slice() {
                Some(slice) => slice.to_vec(),
                None => values.iter().copied().collect(),
            })
        };
        match &plan.tail {
            Tail::Softmax {
                classes,
                exp,
                by_class,
            } => {
                let failed = |e: TractError| MlError::data(format!("the ONNX model failed: {e}"));
                // The plan's one output, owned: the softmax works in it.
                let mut logits = outputs
                    .into_iter()
                    .next()
                    .ok_or_else(|| MlError::data("the ONNX model gave no logits"))?
                    .into_tensor();
                if logits.datum_type() != f32::datum_type() {
                    logits = logits.cast_to::<f32>().map_err(failed)?.into_owned();
                }
                let mut plain = logits.try_as_plain_ram_mut().map_err(failed)?;
                let slice = plain.as_slice_mut::<f32>().map_err(failed)?;
                let (labels, probability) =
                    softmax_scores(slice, *by_class, classes, exp.as_ref()).map_err(failed)?;
                Ok(vec![
                    ("prediction", Arc::new(Int64Array::from(labels)) as ArrayRef),
                    (
                        "probability",
                        Arc::new(Float64Array::from(probability)) as ArrayRef,
                    ),
                ])
            }
            Tail::Outputs {
                label: None,
                scores,
            } => {
                let flat = floats(&outputs, *scores)?;
                let per_row = flat.len().checked_div(rows).unwrap_or(0).max(1);
                let values: Vec<f64> = flat.chunks(per_row).map(|r| f64::from(r[0])).collect();
                Ok(vec![(
                    "prediction",
                    Arc::new(Float64Array::from(values)) as ArrayRef,
                )])
            }
            Tail::Outputs {
                label: Some(label),
                scores,
            } => {
                let flat = floats(&outputs, *scores)?;
                let per_row = flat.len().checked_div(rows).unwrap_or(0).max(1);
                let labels = outputs[*label]
                    .cast_to::<i64>()
                    .map_err(|e| MlError::data(e.to_string()))?;
                let labels: Vec<i64> = labels
                    .to_plain_array_view::<i64>()
                    .map_err(|e| MlError::data(e.to_string()))?
                    .iter()
                    .copied()
                    .collect();
                let probability: Vec<f64> = flat
                    .chunks(per_row)
                    .map(|r| {
                        if r.len() == 2 {
                            f64::from(r[1])
                        } else {
                            f64::from(r.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                        }
                    })
                    .collect();
                Ok(vec![
                    ("prediction", Arc::new(Int64Array::from(labels)) as ArrayRef),
                    (
                        "probability",
                        Arc::new(Float64Array::from(probability)) as ArrayRef,
                    ),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};

    fn digits() -> OnnxModel {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/digits.onnx")).unwrap()
    }

    fn table(rows: usize) -> RecordBatch {
        let columns = (0..64).map(|c| {
            let values = (0..rows as i64).map(|r| (r * 7 + c) % 17);
            (
                format!("f{c}"),
                Arc::new(Int64Array::from_iter_values(values)) as ArrayRef,
            )
        });
        RecordBatch::try_from_iter(columns).unwrap()
    }

    fn scores(model: &OnnxModel, batch: &RecordBatch) -> (Vec<i64>, Vec<f64>) {
        let scored = model.predict(batch).unwrap();
        let labels = scored[0].1.as_primitive::<Int64Type>().values().to_vec();
        let probability = scored[1].1.as_primitive::<Float64Type>().values().to_vec();
        (labels, probability)
    }

    #[test]
    fn scikit_learns_classifier_tail_is_computed_here() {
        let model = digits();
        assert!(
            matches!(model.plan.tail, Tail::Softmax { ref classes, .. } if classes.len() == 10)
        );
        let plan = model.plan_for(7);
        assert_eq!(plan.layout, Layout::ColumnMajor);
        assert!(matches!(plan.tail, Tail::Softmax { by_class: true, .. }));
    }

    #[test]
    fn every_plan_scores_a_row_the_same() {
        // The first sizes get plans of their own (column-major), later ones the general plan.
        let model = digits();
        let all = table(40);
        let (labels, probability) = scores(&model, &all);
        let mut at = 0;
        for size in 1..=8 {
            let (l, p) = scores(&model, &all.slice(at, size));
            assert_eq!(l, labels[at..at + size], "{size} rows");
            for (a, b) in p.iter().zip(&probability[at..at + size]) {
                assert!((a - b).abs() < 1e-6, "{size} rows: {a} vs {b}");
            }
            at += size;
        }
        assert!(model.sized.lock().unwrap().len() >= 8);
    }

    #[test]
    fn probabilities_are_a_softmax() {
        let (labels, probability) = softmax_scores(
            &mut [1.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0],
            false,
            &[5, 6, 7],
            &*Func::Softmax2.map_reduce_f32().unwrap(),
        )
        .unwrap();
        // A tie goes to the first of the tied classes, wherever they are.
        assert_eq!(labels, [6, 5, 6]);
        let e = [1f64.exp(), 3f64.exp(), 2f64.exp()];
        assert!((probability[0] - e[1] / e.iter().sum::<f64>()).abs() < 1e-6);
        assert!(
            (probability[1] - 1.0 / 3.0).abs() < 1e-6,
            "ties: the first class"
        );
    }
}
