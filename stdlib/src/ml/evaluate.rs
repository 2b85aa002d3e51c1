//! `evaluate`: the metrics of a scored table against its label column.

use super::encode::{column, numeric};
use super::train::{classes, shorten};
use crate::error::MlError;
use crate::metrics;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

const WHAT: &str = "table given to `evaluate`";

/// The metrics of `batch` (a whole scored table): classification when it has `probability`,
/// clustering when it has `distance`, regression otherwise. `known` are the classes the model
/// was trained on, when the model is known; a label outside them is an error.
pub fn evaluate(
    batch: &RecordBatch,
    label: &str,
    known: Option<&[String]>,
) -> Result<Vec<(&'static str, Option<f64>)>, MlError> {
    if batch.num_rows() == 0 {
        return Err(MlError::data("`evaluate` got a table with no rows"));
    }
    let has = |name: &str| batch.column_by_name(name).is_some();
    let values = if has("probability") {
        classification(batch, label, known)?
    } else if has("distance") {
        let distance = numeric(column(batch, "distance", WHAT)?, "distance", WHAT)?;
        vec![Some(metrics::order_free_sum(distance))]
    } else {
        let actual = numeric(column(batch, label, WHAT)?, label, WHAT)?;
        let predicted = numeric(column(batch, "prediction", WHAT)?, "prediction", WHAT)?;
        metrics::regression(&actual, &predicted)?
    };
    let names = if has("probability") {
        metrics::CLASSIFICATION_METRICS
    } else if has("distance") {
        metrics::CLUSTERING_METRICS
    } else {
        metrics::REGRESSION_METRICS
    };
    Ok(names.iter().copied().zip(values).collect())
}

fn classification(
    batch: &RecordBatch,
    label: &str,
    known: Option<&[String]>,
) -> Result<Vec<Option<f64>>, MlError> {
    let actual = column(batch, label, WHAT)?;
    if let Some(row) = (0..actual.len()).find(|&i| actual.is_null(i)) {
        return Err(MlError::data(format!(
            "the label `{label}` is null in row {} of the table given to `evaluate`",
            row + 1
        )));
    }
    let predicted = column(batch, "prediction", WHAT)?;
    let classes = match known {
        Some(known) => known.to_vec(),
        None => {
            let both = arrow::compute::concat(&[
                cast(actual, &DataType::Utf8)?.as_ref(),
                cast(predicted, &DataType::Utf8)?.as_ref(),
            ])?;
            classes(&both)?.0
        }
    };
    let index = |array: &arrow::array::ArrayRef, name: &str| -> Result<Vec<usize>, MlError> {
        let text = cast(array, &DataType::Utf8)?;
        text.as_string::<i32>()
            .iter()
            .enumerate()
            .map(|(row, v)| {
                let v = v.unwrap_or_default();
                classes.iter().position(|c| c == v).ok_or_else(|| {
                    MlError::data(format!(
                        "`{name}` holds the class `{v}` (row {}) that the model never saw in \
                         training; it knows {}",
                        row + 1,
                        shorten(&classes)
                    ))
                })
            })
            .collect()
    };
    let actual = index(actual, label)?;
    let predicted = index(predicted, "prediction")?;
    let probability = cast(column(batch, "probability", WHAT)?, &DataType::Float64)?;
    let probability: Vec<f64> = probability
        .as_primitive::<Float64Type>()
        .iter()
        .map(|p| p.unwrap_or(0.5))
        .collect();
    Ok(metrics::classification(
        &actual,
        &predicted,
        &probability,
        classes.len(),
    ))
}
