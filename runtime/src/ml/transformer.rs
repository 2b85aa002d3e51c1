//! Transformer classifiers in ONNX, run with tract: a graph whose inputs are token ids and an
//! attention mask (and, for BERT-style graphs, token type ids), each `batch × sequence`
//! integers, and whose output is `batch × classes` logits. The table gives one column of
//! token ids (`list<int32>`, made by `tokenize`).
//!
//! Sequences are grouped by length into a few buckets, each padded to its bucket's length
//! ([`TransformerShape::padded_length`], which the planner prices by; the mask says where
//! the padding is), and run `batch` rows at a time with a plan built for
//! exactly that shape: tract runs fixed-shape plans about twice as fast as a general one.
//! Plans are built the first time a shape is needed and kept; a short last group is padded
//! to a power of two rows, so a model has at most a few plans per bucket.
//!
//! Every id is checked against the vocabulary before tract sees it: an id past the end of the
//! embedding table would make tract panic.

use super::onnx::softmax_scores;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::Int32Type;
use datafusion::arrow::util::display::array_value_to_string;
use flow_compiler::TransformerShape;
use flow_stdlib::MlError;
use flow_stdlib::ml::model::Scored;
use flow_stdlib::text::is_token_type;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::tract_linalg::reduce::MapReduce;
use tract_onnx::tract_core::tract_linalg::routines::Func;
use tract_onnx::tract_hir::infer::Factoid;

/// Rows per call when the program does not say.
pub const DEFAULT_BATCH: usize = TransformerShape::BATCH;

/// What each graph input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Ids,
    Mask,
    TokenTypes,
}

/// A loaded transformer classifier.
pub struct TransformerModel {
    /// The file, to ship the model to workers.
    pub bytes: Arc<Vec<u8>>,
    /// The graph's inputs, in order.
    inputs: Vec<(Input, DatumType)>,
    /// Every id must be below this.
    pub vocab_size: usize,
    /// The label of each class, in the order of the logits.
    pub classes: Vec<i64>,
    /// The token column it reads, when the file names it; else the table's one token column.
    pub column: Option<String>,
    /// What scoring a sequence costs, for the planner.
    pub shape: TransformerShape,
    /// Plans for `(rows, length)`, made when first needed.
    plans: Mutex<HashMap<(usize, usize), Arc<TypedRunnableModel>>>,
    /// The graph with symbolic batch and sequence axes, which each plan fixes.
    typed: TypedModel,
    symbols: [Option<Symbol>; 2],
    exp: Box<dyn MapReduce<f32, f32>>,
}

impl std::fmt::Debug for TransformerModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformerModel")
            .field("inputs", &self.inputs)
            .field("vocab_size", &self.vocab_size)
            .field("shape", &self.shape)
            .field("classes", &self.classes)
            .finish()
    }
}

/// The graph's inputs when they are all `batch × sequence` integers, named like a
/// transformer's (ids, mask, token types); `None` for any other graph.
fn token_inputs(graph: &pb::GraphProto) -> Option<Vec<(Input, DatumType)>> {
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(&i.name.as_str()))
        .collect();
    if inputs.is_empty() || inputs.len() > 3 {
        return None;
    }
    let mut out = Vec::new();
    for input in inputs {
        let pb::type_proto::Value::TensorType(tensor) = input.r#type.as_ref()?.value.as_ref()?;
        let datum = match tensor.elem_type {
            7 => DatumType::I64,
            6 => DatumType::I32,
            _ => return None,
        };
        if tensor.shape.as_ref()?.dim.len() != 2 {
            return None;
        }
        let name = input.name.to_lowercase();
        let kind = if name.contains("mask") {
            Input::Mask
        } else if name.contains("type") {
            Input::TokenTypes
        } else {
            Input::Ids
        };
        out.push((kind, datum));
    }
    let ids = out.iter().filter(|(k, _)| *k == Input::Ids).count();
    (ids == 1).then_some(out)
}

/// Whether the ONNX model in `bytes` reads token ids (and so is a transformer for flow).
pub fn reads_tokens(proto: &pb::ModelProto) -> bool {
    proto.graph.as_ref().and_then(token_inputs).is_some()
}

fn metadata<'a>(proto: &'a pb::ModelProto, key: &str) -> Option<&'a str> {
    proto
        .metadata_props
        .iter()
        .find(|e| e.key == key)
        .map(|e| e.value.trim())
}

/// The rows and width of the first 2-D constant that a `Gather` indexes with graph input
/// `ids`: the vocabulary and width of the word embeddings.
fn embeddings(graph: &pb::GraphProto, ids: &str) -> Option<(usize, usize)> {
    graph
        .node
        .iter()
        .filter(|n| n.op_type == "Gather" && n.input.get(1).is_some_and(|i| i == ids))
        .find_map(|n| {
            let table = graph.initializer.iter().find(|t| t.name == n.input[0])?;
            match table.dims.as_slice() {
                [rows, width] => {
                    Some((usize::try_from(*rows).ok()?, usize::try_from(*width).ok()?))
                }
                _ => None,
            }
        })
}

/// What the graph multiplies each token by: the constant matrices of its products, its
/// width and its attention layers (one softmax each).
fn shape(graph: &pb::GraphProto, width: usize, max_length: usize) -> TransformerShape {
    let constants: HashMap<&str, &pb::TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let matmul_params = graph
        .node
        .iter()
        .filter(|n| n.op_type == "MatMul" || n.op_type == "Gemm")
        .flat_map(|n| n.input.iter().take(2))
        .filter_map(|i| constants.get(i.as_str()))
        .filter(|t| t.dims.len() == 2)
        .map(|t| t.dims.iter().product::<i64>().max(0) as u64)
        .sum();
    let layers = graph.node.iter().filter(|n| n.op_type == "Softmax").count();
    TransformerShape {
        matmul_params,
        width: width as u64,
        layers: layers as u64,
        max_length: max_length as u64,
    }
}

impl TransformerModel {
    /// Reads the transformer in `bytes` (`proto` decoded from them); `name` names it in errors.
    pub fn new(bytes: Vec<u8>, proto: &pb::ModelProto, name: &str) -> Result<Self, String> {
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| format!("{name} has no graph"))?;
        let inputs = token_inputs(graph)
            .ok_or_else(|| format!("{name} does not read token ids and an attention mask"))?;
        let ids_name = graph
            .input
            .iter()
            .zip(&inputs)
            .find(|(_, (k, _))| *k == Input::Ids)
            .map(|(i, _)| i.name.clone())
            .unwrap_or_default();
        let number = |key: &str| metadata(proto, key).and_then(|v| v.parse::<usize>().ok());
        let embedded = embeddings(graph, &ids_name);
        let vocab_size = number("flow.vocab_size")
            .or(embedded.map(|(rows, _)| rows))
            .ok_or_else(|| {
                format!(
                    "{name} does not say how many token ids it knows (add `flow.vocab_size` to \
                     its metadata): flow checks every id against it before the model runs"
                )
            })?;
        let max_length = number("flow.max_length").unwrap_or(512).max(1);
        let shape = shape(graph, embedded.map_or(0, |(_, w)| w), max_length);
        let fail = |e: TractError| format!("{name} cannot be run: {e}");
        let (typed, symbols) = typed(proto, &inputs).map_err(fail)?;
        let probe = plan(&typed, &symbols, 1, 2.min(max_length)).map_err(fail)?;
        let fact = probe.model().output_fact(0).map_err(fail)?;
        let width = fact
            .shape
            .as_concrete()
            .filter(|s| s.len() == 2 && fact.datum_type.is_float())
            .map(|s| s[1])
            .ok_or_else(|| {
                format!("{name}'s first output is not logits, one row of class scores per sequence")
            })?;
        let classes: Vec<i64> = match metadata(proto, "flow.classes") {
            Some(list) => list
                .split(',')
                .map(|c| c.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("{name}'s `flow.classes` is not a list of integers"))?,
            None => (0..width as i64).collect(),
        };
        if classes.len() != width || width < 2 {
            return Err(format!(
                "{name} gives {width} scores per sequence but names {} classes",
                classes.len()
            ));
        }
        let exp = Func::Softmax2.map_reduce_f32().map_err(fail)?;
        let mut plans = HashMap::new();
        plans.insert((1, 2.min(max_length)), probe);
        Ok(TransformerModel {
            bytes: Arc::new(bytes),
            inputs,
            vocab_size,
            classes,
            column: metadata(proto, "flow.inputs").map(str::to_string),
            shape,
            plans: Mutex::new(plans),
            typed,
            symbols,
            exp,
        })
    }

    /// The longest sequence the model takes (its position table).
    pub fn max_length(&self) -> usize {
        self.shape.max_length as usize
    }

    /// The plan for `rows × length` inputs, made once.
    fn plan_for(&self, rows: usize, length: usize) -> Result<Arc<TypedRunnableModel>, MlError> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = plans.get(&(rows, length)) {
            return Ok(plan.clone());
        }
        let made = plan(&self.typed, &self.symbols, rows, length).map_err(|e| {
            MlError::data(format!("the transformer cannot run {rows} × {length}: {e}"))
        })?;
        plans.insert((rows, length), made.clone());
        Ok(made)
    }

    /// The token column of `batch`.
    fn tokens<'b>(&self, batch: &'b RecordBatch) -> Result<&'b ArrayRef, MlError> {
        let schema = batch.schema();
        let found: Vec<usize> = match &self.column {
            Some(name) => schema.index_of(name).into_iter().collect(),
            None => (0..schema.fields().len())
                .filter(|i| is_token_type(schema.field(*i).data_type()))
                .collect(),
        };
        match found.as_slice() {
            [one] if is_token_type(schema.field(*one).data_type()) => Ok(batch.column(*one)),
            [] | [_] => Err(MlError::data(
                "the transformer reads token ids, and the table has no column of them: make one \
                 with `derive tokens = tokenize(text, \"tokenizer.json\")`",
            )),
            _ => Err(MlError::data(
                "the transformer reads one column of token ids, and the table has several: \
                 select the one it reads",
            )),
        }
    }

    /// The ids of every row, checked: present, not empty, no longer than the model takes, and
    /// every id in the vocabulary.
    /// Errors name the row by its other values (`batch`'s): its place in a batch means
    /// nothing to whoever reads the message.
    fn sequences<'b>(
        &self,
        batch: &RecordBatch,
        tokens: &'b ArrayRef,
    ) -> Result<Vec<&'b [i32]>, MlError> {
        let list = tokens.as_list::<i32>();
        let values = list.values().as_primitive::<Int32Type>();
        if values.null_count() > 0 {
            return Err(MlError::data("a token id is null"));
        }
        let ids = values.values();
        let offsets = list.value_offsets();
        let mut out = Vec::with_capacity(list.len());
        for row in 0..list.len() {
            let at = || described(batch, row);
            if list.is_null(row) {
                return Err(MlError::data(format!(
                    "the row {} has no tokens: its text is null (drop such rows with `filter TEXT is not \
                     null`, or score them as empty with `coalesce(TEXT, \"\")`)",
                    at()
                )));
            }
            let sequence = &ids[offsets[row] as usize..offsets[row + 1] as usize];
            if sequence.is_empty() {
                return Err(MlError::data(format!("the row {} has no tokens", at())));
            }
            if sequence.len() > self.max_length() {
                return Err(MlError::data(format!(
                    "the row {} has {} tokens, and the model reads at most {}: cut them with \
                     `tokenize(..., length = {})`",
                    at(),
                    sequence.len(),
                    self.max_length(),
                    self.max_length()
                )));
            }
            if let Some(bad) = sequence
                .iter()
                .find(|id| usize::try_from(**id).map_or(true, |id| id >= self.vocab_size))
            {
                return Err(MlError::data(format!(
                    "the row {} has token id {bad}, outside the model's vocabulary of {} ids: \
                     was it tokenized with the model's own tokenizer?",
                    at(),
                    self.vocab_size
                )));
            }
            out.push(sequence);
        }
        Ok(out)
    }

    /// The padded length a sequence of `n` ids runs at.
    fn bucket(&self, n: usize) -> usize {
        self.shape.padded_length(n)
    }

    /// Scores `batch`, `size` rows per call of the model: `prediction` (the class with the
    /// largest logit) and `probability` (of the second class for two, else of the predicted).
    pub fn predict(&self, batch: &RecordBatch, size: usize) -> Result<Scored, MlError> {
        let tokens = self.tokens(batch)?;
        let sequences = self.sequences(batch, tokens)?;
        let mut by_bucket: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (row, s) in sequences.iter().enumerate() {
            by_bucket.entry(self.bucket(s.len())).or_default().push(row);
        }
        let rows = sequences.len();
        let mut prediction = vec![0i64; rows];
        let mut probability = vec![0f64; rows];
        let size = size.max(1);
        for (length, members) in by_bucket {
            for group in members.chunks(size) {
                // A short last group runs at a power of two rows, so few plans are made.
                let padded_rows = group.len().next_power_of_two().min(size);
                let mut logits = self.run(&sequences, group, padded_rows, length)?;
                let (labels, p) =
                    softmax_scores(&mut logits, false, &self.classes, self.exp.as_ref())
                        .map_err(|e| MlError::data(format!("the transformer failed: {e}")))?;
                for (i, row) in group.iter().enumerate() {
                    prediction[*row] = labels[i];
                    probability[*row] = p[i];
                }
            }
        }
        Ok(vec![
            (
                "prediction",
                Arc::new(Int64Array::from(prediction)) as ArrayRef,
            ),
            (
                "probability",
                Arc::new(Float64Array::from(probability)) as ArrayRef,
            ),
        ])
    }

    /// The logits of the rows `group` of `sequences`, run as `rows × length` (padding rows and
    /// positions have a zero mask), row by row: `group.len() × classes` values.
    fn run(
        &self,
        sequences: &[&[i32]],
        group: &[usize],
        rows: usize,
        length: usize,
    ) -> Result<Vec<f32>, MlError> {
        let plan = self.plan_for(rows, length)?;
        let mut ids = vec![0i64; rows * length];
        let mut mask = vec![0i64; rows * length];
        for (r, row) in group.iter().enumerate() {
            for (p, id) in sequences[*row].iter().enumerate() {
                ids[r * length + p] = i64::from(*id);
                mask[r * length + p] = 1;
            }
        }
        let fail = |e: TractError| MlError::data(format!("the transformer failed: {e}"));
        let tensor = |values: &[i64], datum: DatumType| -> TractResult<TValue> {
            let t = Tensor::from_shape(&[rows, length], values)?;
            Ok(t.cast_to_dt(datum)?.into_owned().into_tvalue())
        };
        let zeros = vec![0i64; rows * length];
        let inputs: TVec<TValue> = self
            .inputs
            .iter()
            .map(|(kind, datum)| match kind {
                Input::Ids => tensor(&ids, *datum),
                Input::Mask => tensor(&mask, *datum),
                Input::TokenTypes => tensor(&zeros, *datum),
            })
            .collect::<TractResult<_>>()
            .map_err(fail)?;
        let outputs = plan.run(inputs).map_err(fail)?;
        let logits = outputs[0].cast_to::<f32>().map_err(fail)?;
        let view = logits.to_plain_array_view::<f32>().map_err(fail)?;
        let all: Vec<f32> = view.iter().copied().collect();
        Ok(all[..group.len() * self.classes.len()].to_vec())
    }

    /// The logits of each sequence, one run per sequence at its own bucket: for tests that
    /// compare them with another engine's.
    pub fn logits(&self, batch: &RecordBatch) -> Result<Vec<Vec<f32>>, MlError> {
        let tokens = self.tokens(batch)?;
        let sequences = self.sequences(batch, tokens)?;
        (0..sequences.len())
            .map(|row| self.run(&sequences, &[row], 1, self.bucket(sequences[row].len())))
            .collect()
    }
}

/// The graph typed with its batch and sequence axes as symbols (as the file names them, so
/// the shapes it records inside agree), reading only what `inputs` says and giving only the
/// logits, and those two symbols.
fn typed(
    proto: &pb::ModelProto,
    inputs: &[(Input, DatumType)],
) -> TractResult<(TypedModel, [Option<Symbol>; 2])> {
    let mut model = tract_onnx::onnx().model_for_proto_model(proto)?;
    // Only the logits: a graph may have other outputs (hidden states) nobody reads.
    let first = model.output_outlets()?[0];
    model.select_output_outlets(&[first])?;
    let mut symbols = [None, None];
    for (i, (_, datum)) in inputs.iter().enumerate() {
        let fact = model.input_fact(i)?.clone();
        let mut dims: Vec<TDim> = Vec::with_capacity(2);
        for (axis, dim) in fact.shape.dims().enumerate().take(2) {
            let dim = dim.concretize().unwrap_or_else(|| {
                let name = ["rows", "length"][axis];
                model.symbols.sym(name).to_dim()
            });
            if let TDim::Sym(s) = &dim {
                symbols[axis].get_or_insert_with(|| s.clone());
            }
            dims.push(dim);
        }
        model.set_input_fact(i, InferenceFact::dt_shape(*datum, dims))?;
    }
    Ok((model.into_typed()?.into_decluttered()?, symbols))
}

/// A row as its first few values (`id = 7, label = 1`), the token ids left out.
fn described(batch: &RecordBatch, row: usize) -> String {
    let schema = batch.schema();
    let values: Vec<String> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(f, _)| !is_token_type(f.data_type()))
        .take(3)
        .map(|(f, column)| {
            let value = if column.is_null(row) {
                "null".to_string()
            } else {
                array_value_to_string(column, row).unwrap_or_else(|_| "?".into())
            };
            let value = match value.char_indices().nth(40) {
                Some((cut, _)) => format!("{}…", &value[..cut]),
                None => value,
            };
            format!("{} = {value}", f.name())
        })
        .collect();
    format!("({})", values.join(", "))
}

/// The optimised plan of the typed graph for `rows × length` inputs.
fn plan(
    typed: &TypedModel,
    symbols: &[Option<Symbol>; 2],
    rows: usize,
    length: usize,
) -> TractResult<Arc<TypedRunnableModel>> {
    let mut values = HashMap::new();
    for (symbol, value) in symbols.iter().zip([rows, length]) {
        if let Some(symbol) = symbol {
            values.insert(symbol.clone(), value.to_dim());
        }
    }
    typed
        .set_symbols(&values)?
        .into_optimized()?
        .into_runnable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentiment_model_loads() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/models/sentiment.onnx"
        );
        let bytes = std::fs::read(path).unwrap();
        let onnx = tract_onnx::onnx();
        let proto = onnx.proto_model_for_read(&mut bytes.as_slice()).unwrap();
        let inputs = token_inputs(proto.graph.as_ref().unwrap()).unwrap();
        let (typed, symbols) = typed(&proto, &inputs).unwrap_or_else(|e| panic!("{e:?}"));
        if let Err(e) = plan(&typed, &symbols, 1, 2) {
            panic!("{e:?}");
        }
    }
}
