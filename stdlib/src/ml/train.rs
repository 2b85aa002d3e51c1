//! Training in one process: encoding the table, fitting the scaler, and minibatch gradient
//! descent (or Lloyd's algorithm for k-means), seeded so the same data and seed give the
//! same model bit for bit.

use super::encode::{self, Standardizer};
use super::kmeans;
use super::matrix::Matrix;
use super::model::{Body, Input, Label, Model};
use super::net::{Head, Net, Picked};
use super::optim::Optimizer;
use crate::error::MlError;
use crate::models::Task;
use crate::spec::{OptimizerKind, TrainSpec};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// The training table made ready for the kernels: a model with everything but its learnt
/// parameters, the scaled inputs, and the targets of the network's head.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub model: Model,
    pub x: Matrix,
    /// `rows × outputs` of the network's head (empty for k-means).
    pub targets: Vec<f64>,
}

const WHAT: &str = "training data";

/// Rows copied together for training: a block of 20 features is 640 KB, within the
/// second-level cache.
const BLOCK_ROWS: usize = 4096;

/// Encodes `batch` for `spec`, fitting the categories, the scaler and the label's classes.
pub fn prepare(spec: &TrainSpec, batch: &RecordBatch) -> Result<Prepared, MlError> {
    let kind = crate::models::find(&spec.kind)
        .ok_or_else(|| MlError::data(format!("there is no model kind `{}`", spec.kind)))?;
    if batch.num_rows() == 0 {
        return Err(MlError::data(format!(
            "the training data of `{}` has no rows",
            spec.kind
        )));
    }
    let features = encode::fit(&spec.features, batch)?;
    let inputs = features
        .iter()
        .map(|f| {
            let data_type = encode::column(batch, f.column(), WHAT)?
                .data_type()
                .to_string();
            Ok(Input {
                column: f.column().to_string(),
                data_type,
            })
        })
        .collect::<Result<Vec<_>, MlError>>()?;
    let mut x = encode::encode(&features, batch, WHAT)?;
    let scaler = if kind.task == Task::Clustering {
        Standardizer::none(x.cols)
    } else {
        Standardizer::fit(&features, &x)
    };
    scaler.apply(&mut x);
    let mut model = Model {
        kind: spec.kind.clone(),
        task: kind.task,
        features,
        inputs,
        label: None,
        scaler,
        body: Body::Centres {
            k: spec.k,
            centres: Vec::new(),
        },
    };
    let mut targets = Vec::new();
    if let Some(name) = &spec.label {
        let array = encode::column(batch, name, WHAT)?;
        refuse_null_label(array, name)?;
        let mut label = Label {
            column: name.clone(),
            data_type: array.data_type().to_string(),
            classes: Vec::new(),
            mean: 0.0,
            scale: 1.0,
        };
        let head = match kind.task {
            Task::Regression => {
                let y = encode::numeric(array, name, WHAT)?;
                let n = y.len() as f64;
                label.mean = y.iter().sum::<f64>() / n;
                let var = y.iter().map(|v| (v - label.mean).powi(2)).sum::<f64>() / n;
                label.scale = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
                targets = y.iter().map(|v| (v - label.mean) / label.scale).collect();
                Head::Identity
            }
            _ => {
                let (classes, index) = classes(array)?;
                if classes.len() < 2 {
                    return Err(MlError::data(format!(
                        "the label `{name}` has a single class ({}) in the training data; a \
                         classifier needs at least two",
                        classes.first().map_or("none", String::as_str)
                    )));
                }
                let head = if spec.kind == "logistic" {
                    if classes.len() > 2 {
                        return Err(MlError::data(format!(
                            "`logistic` is a binary classifier, but the label `{name}` has {} \
                             classes ({}); use `softmax` for more than two",
                            classes.len(),
                            shorten(&classes)
                        )));
                    }
                    targets = index.iter().map(|&i| i as f64).collect();
                    Head::Sigmoid
                } else {
                    let c = classes.len();
                    targets = vec![0.0; index.len() * c];
                    for (r, &i) in index.iter().enumerate() {
                        targets[r * c + i] = 1.0;
                    }
                    Head::Softmax
                };
                label.classes = classes;
                head
            }
        };
        let outputs = match head {
            Head::Softmax => label.classes.len(),
            _ => 1,
        };
        let hidden = if spec.kind == "mlp" {
            spec.hidden.as_slice()
        } else {
            &[]
        };
        let net = Net::new(x.cols, hidden, outputs, head);
        model.body = Body::Net {
            params: vec![0.0; net.param_count()],
            net,
        };
        model.label = Some(label);
    }
    Ok(Prepared { model, x, targets })
}

fn refuse_null_label(array: &arrow::array::ArrayRef, name: &str) -> Result<(), MlError> {
    match (0..array.len()).find(|&i| array.is_null(i)) {
        Some(row) => Err(MlError::data(format!(
            "the label `{name}` is null in row {} of the training data; a model cannot learn \
             from a missing answer — drop such rows first (`filter {name} is not null`)",
            row + 1
        ))),
        None => Ok(()),
    }
}

/// Refuses nulls in the label and numeric features, naming the row as the table had it.
fn refuse_nulls(spec: &TrainSpec, batch: &RecordBatch) -> Result<(), MlError> {
    if let Some(name) = &spec.label {
        refuse_null_label(encode::column(batch, name, WHAT)?, name)?;
    }
    for feature in &spec.features {
        if let crate::spec::Feature::Numeric { column } = feature {
            encode::numeric(encode::column(batch, column, WHAT)?, column, WHAT)?;
        }
    }
    Ok(())
}

/// The distinct values of a label in their natural order (numbers by value), as text, and
/// each row's class index.
pub fn classes(array: &arrow::array::ArrayRef) -> Result<(Vec<String>, Vec<usize>), MlError> {
    let text = cast(array, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let numeric = array.data_type().is_numeric();
    let key = |s: &str| -> (u64, String) {
        if numeric {
            // Order numbers by value: map the float's bits to an order-preserving integer.
            let v: f64 = s.parse().unwrap_or(f64::NAN);
            let bits = v.to_bits();
            let ordered = if v.is_sign_negative() {
                !bits
            } else {
                bits | (1 << 63)
            };
            (ordered, String::new())
        } else {
            (0, s.to_string())
        }
    };
    let mut distinct: BTreeMap<(u64, String), String> = BTreeMap::new();
    for value in text.iter().flatten() {
        distinct
            .entry(key(value))
            .or_insert_with(|| value.to_string());
    }
    let classes: Vec<String> = distinct.into_values().collect();
    let index = text
        .iter()
        .map(|v| {
            let v = v.unwrap_or_default();
            classes.iter().position(|c| c == v).unwrap_or(0)
        })
        .collect();
    Ok((classes, index))
}

/// At most five classes, for messages.
pub(crate) fn shorten(classes: &[String]) -> String {
    let mut out: Vec<String> = classes.iter().take(5).map(|c| format!("`{c}`")).collect();
    if classes.len() > 5 {
        out.push(format!("and {} more", classes.len() - 5));
    }
    out.join(", ")
}

/// Trains a model on `batches` in this process.
pub fn fit(spec: &TrainSpec, batches: &[RecordBatch]) -> Result<Model, MlError> {
    Ok(fit_prepared(spec, prepare_batches(spec, batches)?))
}

/// The training table of `batches` made ready: nulls refused (naming the row as it came),
/// rows in their canonical order, encoded.
pub fn prepare_batches(spec: &TrainSpec, batches: &[RecordBatch]) -> Result<Prepared, MlError> {
    let Some(first) = batches.first() else {
        return Err(MlError::data(format!(
            "the training data of `{}` has no rows",
            spec.kind
        )));
    };
    let batch = arrow::compute::concat_batches(&first.schema(), batches)?;
    refuse_nulls(spec, &batch)?;
    let batch = canonical_order(spec, &batch)?;
    prepare(spec, &batch)
}

/// The starting parameters of `net` for `spec`'s seed (what one process starts from too).
pub fn initial_params(spec: &TrainSpec, net: &Net) -> Vec<f64> {
    net.init(&mut ChaCha8Rng::seed_from_u64(spec.seed))
}

/// The rows of `batch` sorted by the columns training reads, so the model depends on which
/// rows the table holds and not on the order they arrived in (which varies with partitions
/// and workers). Rows equal in those columns are interchangeable.
pub fn canonical_order(spec: &TrainSpec, batch: &RecordBatch) -> Result<RecordBatch, MlError> {
    let mut names: Vec<&str> = spec.features.iter().map(|f| f.column()).collect();
    names.extend(spec.label.as_deref());
    let columns = names
        .iter()
        .map(|n| {
            Ok(arrow::compute::SortColumn {
                values: encode::column(batch, n, WHAT)?.clone(),
                options: None,
            })
        })
        .collect::<Result<Vec<_>, MlError>>()?;
    let indices = arrow::compute::lexsort_to_indices(&columns, None)?;
    Ok(arrow::compute::take_record_batch(batch, &indices)?)
}

/// Trains on prepared data.
pub fn fit_prepared(spec: &TrainSpec, prepared: Prepared) -> Model {
    let Prepared {
        mut model,
        x,
        targets,
    } = prepared;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    match &mut model.body {
        Body::Centres { k, centres } => {
            let k = (*k).min(x.rows).max(1);
            let (fitted, _) = kmeans::fit(&x, k, spec.max_iter, spec.n_init, &mut rng);
            *centres = fitted.data;
        }
        Body::Net { net, params } => {
            *params = net.init(&mut rng);
            let mut optimizer = Optimizer::new(spec.optimizer, spec.learning_rate, params.len());
            let mut grad = vec![0.0; params.len()];
            let mut order: Vec<usize> = (0..x.rows).collect();
            let mut scratch = Vec::new();
            let outputs = net.outputs();
            let batch = spec.batch_size.max(1);
            // The shuffled rows are copied a block at a time into one contiguous buffer and
            // trained on there: reading them where they lie is a cache miss per row, which
            // costs more than the step. Blocks hold whole batches, so the steps are the same.
            let block_rows = batch * BLOCK_ROWS.div_ceil(batch);
            let mut block = Matrix::default();
            let mut block_targets = Vec::new();
            // A block's rows, by their place in the block.
            let local: Vec<usize> = (0..block_rows.min(x.rows)).collect();
            let online = batch == 1 && spec.optimizer == OptimizerKind::Sgd && net.sizes.len() == 2;
            let l2 = spec.l2_for(x.rows);
            for _ in 0..spec.epochs_for(x.rows) {
                order.shuffle(&mut rng);
                for rows in order.chunks(block_rows) {
                    x.gather_into(rows, &mut block);
                    block_targets.clear();
                    for &r in rows {
                        block_targets.extend_from_slice(&targets[r * outputs..(r + 1) * outputs]);
                    }
                    for chunk in local[..rows.len()].chunks(batch) {
                        let picked = Picked {
                            x: &block,
                            targets: &block_targets,
                            rows: chunk,
                        };
                        if online {
                            // The same arithmetic as below, without the gradient buffer.
                            net.sgd_row(params, picked, spec.learning_rate, l2, &mut scratch);
                        } else {
                            net.gradient_rows(params, picked, l2, &mut grad, &mut scratch);
                            optimizer.step(params, &grad);
                        }
                    }
                }
            }
        }
    }
    model
}
