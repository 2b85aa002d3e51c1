//! ONNX models, run with tract: a model with one 2-D float input (rows × features) and
//! either a class label and class probabilities (classifiers, as scikit-learn's exporter
//! writes them) or a single number per row (regressors). The table columns it reads are
//! named by the model's `flow.inputs` metadata (comma-separated); without it, by the table's
//! numeric columns in order.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type};
use flow_stdlib::MlError;
use flow_stdlib::ml::model::Scored;
use flow_stdlib::models::Task;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;

type Plan = Arc<TypedRunnableModel>;

/// A loaded, optimised ONNX model.
pub struct OnnxModel {
    /// The file, to ship the model to workers.
    pub bytes: Arc<Vec<u8>>,
    plan: Plan,
    /// Plans optimised for one batch size, which tract runs faster than the general one.
    sized: std::sync::Mutex<std::collections::HashMap<usize, Plan>>,
    /// The columns it reads, when the file names them.
    pub inputs: Option<Vec<String>>,
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
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
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
    let plan = typed.into_runnable().map_err(fail)?;
    Ok(OnnxModel {
        bytes: Arc::new(bytes),
        plan,
        sized: Default::default(),
        inputs,
        width,
        label,
        scores,
        task,
    })
}

impl OnnxModel {
    /// The columns of `batch` this model reads.
    fn columns(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>, MlError> {
        let what = "table given to `infer`";
        match &self.inputs {
            Some(names) => names
                .iter()
                .map(|n| flow_stdlib::ml::encode::column(batch, n, what).cloned())
                .collect(),
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
            model.into_optimized()?.into_runnable()
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
        let mut input = vec![0f32; rows * self.width];
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
            // Straight to the tensor's type: one conversion per value.
            let values = cast(column, &DataType::Float32)?;
            let values = values.as_primitive::<Float32Type>();
            for (slot, v) in input[c..]
                .iter_mut()
                .step_by(self.width)
                .zip(values.values())
            {
                *slot = *v;
            }
        }
        let tensor = tract_ndarray::Array2::from_shape_vec((rows, self.width), input)
            .map_err(|e| MlError::data(e.to_string()))?;
        let outputs = self
            .plan_for(rows)
            .run(tvec!(Tensor::from(tensor).into_tvalue()))
            .map_err(|e| MlError::data(format!("the ONNX model failed: {e}")))?;
        let scores = outputs[self.scores]
            .cast_to::<f32>()
            .map_err(|e| MlError::data(e.to_string()))?;
        let scores = scores
            .to_plain_array_view::<f32>()
            .map_err(|e| MlError::data(e.to_string()))?;
        let per_row = scores.len().checked_div(rows).unwrap_or(0);
        let flat: Vec<f32> = scores.iter().copied().collect();
        match self.label {
            None => {
                let values: Vec<f64> = flat
                    .chunks(per_row.max(1))
                    .map(|r| f64::from(r[0]))
                    .collect();
                Ok(vec![(
                    "prediction",
                    Arc::new(Float64Array::from(values)) as ArrayRef,
                )])
            }
            Some(label) => {
                let labels = outputs[label]
                    .cast_to::<i64>()
                    .map_err(|e| MlError::data(e.to_string()))?;
                let labels: Vec<i64> = labels
                    .to_plain_array_view::<i64>()
                    .map_err(|e| MlError::data(e.to_string()))?
                    .iter()
                    .copied()
                    .collect();
                let probability: Vec<f64> = flat
                    .chunks(per_row.max(1))
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
