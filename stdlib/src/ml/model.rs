//! A trained model: what it reads, how it encodes and scales it, its parameters; and how it
//! scores a table.

use super::encode::{self, Standardizer};
use super::kmeans;
use super::matrix::Matrix;
use super::net::{Head, Net};
use crate::error::MlError;
use crate::models::Task;
use crate::spec::Feature;
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One column the model reads, with the type training saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub column: String,
    /// Arrow's name of the type (`Int64`, `Utf8`, ...).
    pub data_type: String,
}

/// What the model predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub column: String,
    pub data_type: String,
    /// Classifiers: the classes in order (a binary model's positive class is the second).
    pub classes: Vec<String>,
    /// Regression: the label is learnt standardised; these undo it.
    pub mean: f64,
    pub scale: f64,
}

/// The learnt parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Net { net: Net, params: Vec<f64> },
    Centres { k: usize, centres: Vec<f64> },
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub kind: String,
    pub task: Task,
    pub features: Vec<Feature>,
    pub inputs: Vec<Input>,
    pub label: Option<Label>,
    pub scaler: Standardizer,
    pub body: Body,
}

/// The columns `infer` adds, in order.
pub type Scored = Vec<(&'static str, ArrayRef)>;

impl Model {
    /// The input matrix of `batch`, encoded and scaled as in training.
    pub fn inputs_of(&self, batch: &RecordBatch, what: &str) -> Result<Matrix, MlError> {
        let mut x = encode::encode(&self.features, batch, what)?;
        self.scaler.apply(&mut x);
        Ok(x)
    }

    /// Scores every row of `batch`: `prediction`, and `probability` for classifiers (of the
    /// positive class for two classes, of the predicted class otherwise) or `distance` for
    /// clustering (squared, to the row's centre).
    pub fn predict(&self, batch: &RecordBatch) -> Result<Scored, MlError> {
        let x = self.inputs_of(batch, "table given to `infer`")?;
        match &self.body {
            Body::Centres { centres, .. } => {
                let centres = Matrix {
                    rows: centres.len() / x.cols.max(1),
                    cols: x.cols,
                    data: centres.clone(),
                };
                let (labels, distances) = kmeans::assign(&x, &centres);
                Ok(vec![
                    (
                        "prediction",
                        Arc::new(Int64Array::from_iter_values(
                            labels.iter().map(|l| *l as i64),
                        )) as ArrayRef,
                    ),
                    (
                        "distance",
                        Arc::new(Float64Array::from(distances)) as ArrayRef,
                    ),
                ])
            }
            Body::Net { net, params } => {
                let out = net.forward(params, &x);
                let label = self.label.as_ref();
                match net.head {
                    Head::Identity => {
                        let (mean, scale) = label.map_or((0.0, 1.0), |l| (l.mean, l.scale));
                        let values: Vec<f64> = out.data.iter().map(|v| v * scale + mean).collect();
                        Ok(vec![(
                            "prediction",
                            Arc::new(Float64Array::from(values)) as ArrayRef,
                        )])
                    }
                    Head::Sigmoid | Head::Softmax => {
                        let classes = label.map(|l| l.classes.as_slice()).unwrap_or(&[]);
                        let mut predicted = Vec::with_capacity(out.rows);
                        let mut probability = Vec::with_capacity(out.rows);
                        for r in 0..out.rows {
                            let row = out.row(r);
                            let (best, p) = if net.head == Head::Sigmoid {
                                (usize::from(row[0] >= 0.5), row[0])
                            } else {
                                let (best, p) = row.iter().enumerate().fold(
                                    (0, f64::NEG_INFINITY),
                                    |a, (i, &p)| {
                                        if p > a.1 { (i, p) } else { a }
                                    },
                                );
                                (best, if row.len() == 2 { row[1] } else { p })
                            };
                            predicted.push(classes.get(best).map(String::as_str));
                            probability.push(p);
                        }
                        let predicted: ArrayRef = Arc::new(StringArray::from(predicted));
                        let data_type = label
                            .and_then(|l| l.data_type.parse::<DataType>().ok())
                            .unwrap_or(DataType::Utf8);
                        Ok(vec![
                            ("prediction", cast(&predicted, &data_type)?),
                            (
                                "probability",
                                Arc::new(Float64Array::from(probability)) as ArrayRef,
                            ),
                        ])
                    }
                }
            }
        }
    }
}
