//! Turning the columns of a table into model inputs: numeric columns as they are, `one_hot`
//! indicators, hashed bags of words; and the standardisation fitted on the training data.

use super::matrix::Matrix;
use crate::error::MlError;
use crate::spec::Feature;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The column `name` of `batch`, or an error naming what needs it.
pub fn column<'a>(batch: &'a RecordBatch, name: &str, what: &str) -> Result<&'a ArrayRef, MlError> {
    batch.column_by_name(name).ok_or_else(|| {
        MlError::data(format!(
            "the {what} has no column `{name}`, which the model reads; columns: {}",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| format!("`{}`", f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The values of a column as text (for categories and words); nulls stay null.
fn as_text(array: &ArrayRef) -> Result<ArrayRef, MlError> {
    Ok(cast(array, &DataType::Utf8)?)
}

/// The features with what training learns about them filled in: the categories of each
/// `one_hot`, in sorted order.
pub fn fit(features: &[Feature], batch: &RecordBatch) -> Result<Vec<Feature>, MlError> {
    features
        .iter()
        .map(|f| match f {
            Feature::OneHot { column: name, .. } => {
                let text = as_text(column(batch, name, "training data")?)?;
                let text = text.as_string::<i32>();
                let categories: BTreeSet<&str> = text.iter().flatten().collect();
                Ok(Feature::OneHot {
                    column: name.clone(),
                    categories: categories.into_iter().map(str::to_string).collect(),
                })
            }
            other => Ok(other.clone()),
        })
        .collect()
}

/// Encodes every row of `batch`. `what` names the table in errors ("training data").
pub fn encode(features: &[Feature], batch: &RecordBatch, what: &str) -> Result<Matrix, MlError> {
    let width = features.iter().map(Feature::width).sum();
    let mut out = Matrix::zeros(batch.num_rows(), width);
    let mut offset = 0;
    for feature in features {
        let array = column(batch, feature.column(), what)?;
        match feature {
            Feature::Numeric { column: name } => {
                let values = numeric(array, name, what)?;
                for (r, v) in values.into_iter().enumerate() {
                    out.data[r * width + offset] = v;
                }
            }
            Feature::OneHot { categories, .. } => {
                let text = as_text(array)?;
                for (r, value) in text.as_string::<i32>().iter().enumerate() {
                    if let Some(i) =
                        value.and_then(|v| categories.binary_search_by(|c| c.as_str().cmp(v)).ok())
                    {
                        out.data[r * width + offset + i] = 1.0;
                    }
                }
            }
            Feature::BagOfWords {
                buckets, ngrams, ..
            } => {
                let text = as_text(array)?;
                for (r, value) in text.as_string::<i32>().iter().enumerate() {
                    let row = &mut out.data[r * width + offset..r * width + offset + buckets];
                    if let Some(value) = value {
                        count_words(value, *ngrams, row);
                    }
                }
            }
        }
        offset += feature.width();
    }
    Ok(out)
}

/// A numeric column as `f64`, refusing nulls with the row they are in.
pub fn numeric(array: &ArrayRef, name: &str, what: &str) -> Result<Vec<f64>, MlError> {
    if !(array.data_type().is_numeric() || *array.data_type() == DataType::Boolean) {
        return Err(MlError::data(format!(
            "column `{name}` of the {what} is {}, not a number",
            array.data_type()
        )));
    }
    let floats = cast(array, &DataType::Float64)?;
    let floats = floats.as_primitive::<Float64Type>();
    if let Some(row) = (0..floats.len()).find(|&i| floats.is_null(i)) {
        return Err(MlError::data(format!(
            "column `{name}` of the {what} is null in row {}; a model cannot use a missing value \
             — drop such rows first (`filter {name} is not null`)",
            row + 1
        )));
    }
    Ok(floats.values().to_vec())
}

/// Adds one to the bucket of every lower-cased word and word n-gram of `text`.
fn count_words(text: &str, ngrams: usize, buckets: &mut [f64]) {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let n = buckets.len() as u64;
    for start in 0..words.len() {
        let mut gram = String::new();
        for (len, word) in words[start..].iter().take(ngrams.max(1)).enumerate() {
            if len > 0 {
                gram.push(' ');
            }
            gram.push_str(word);
            let bucket = twox_hash::XxHash64::oneshot(0, gram.as_bytes()) % n;
            buckets[bucket as usize] += 1.0;
        }
    }
}

/// Per-input shift and scale; inputs from numeric columns are standardised, encoded
/// categories and word counts are left as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Fitted on `x`, scaling only the inputs that come from numeric features.
    pub fn fit(features: &[Feature], x: &Matrix) -> Standardizer {
        let mut mean = vec![0.0; x.cols];
        let mut scale = vec![1.0; x.cols];
        let mut offset = 0;
        let n = x.rows.max(1) as f64;
        for feature in features {
            if matches!(feature, Feature::Numeric { .. }) {
                let c = offset;
                let m = (0..x.rows).map(|r| x.data[r * x.cols + c]).sum::<f64>() / n;
                let var = (0..x.rows)
                    .map(|r| (x.data[r * x.cols + c] - m).powi(2))
                    .sum::<f64>()
                    / n;
                mean[c] = m;
                scale[c] = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
            }
            offset += feature.width();
        }
        Standardizer { mean, scale }
    }

    /// The identity on `cols` inputs.
    pub fn none(cols: usize) -> Standardizer {
        Standardizer {
            mean: vec![0.0; cols],
            scale: vec![1.0; cols],
        }
    }

    pub fn apply(&self, x: &mut Matrix) {
        for row in x.data.chunks_exact_mut(x.cols.max(1)) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "c",
                Arc::new(StringArray::from(vec![Some("b"), Some("a"), None])) as ArrayRef,
            ),
            (
                "t",
                Arc::new(StringArray::from(vec!["Good movie", "bad, BAD movie", ""])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn encodes_numbers_categories_and_words() {
        let features = vec![
            Feature::Numeric { column: "n".into() },
            Feature::OneHot {
                column: "c".into(),
                categories: vec![],
            },
            Feature::BagOfWords {
                column: "t".into(),
                buckets: 64,
                ngrams: 2,
            },
        ];
        let fitted = fit(&features, &batch()).unwrap();
        assert_eq!(
            fitted[1],
            Feature::OneHot {
                column: "c".into(),
                categories: vec!["a".into(), "b".into()]
            }
        );
        let x = encode(&fitted, &batch(), "test").unwrap();
        assert_eq!((x.rows, x.cols), (3, 1 + 2 + 64));
        assert_eq!(&x.row(0)[..3], &[1.0, 0.0, 1.0]);
        assert_eq!(
            &x.row(2)[..3],
            &[3.0, 0.0, 0.0],
            "null category encodes as zeros"
        );
        // "bad bad movie": words bad, bad, movie and bigrams "bad bad", "bad movie".
        assert_eq!(x.row(1)[3..].iter().sum::<f64>(), 5.0);
        assert_eq!(x.row(2)[3..].iter().sum::<f64>(), 0.0);
    }

    #[test]
    fn nulls_in_a_numeric_feature_name_the_row() {
        let b = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Float64Array::from(vec![Some(1.0), None])) as ArrayRef,
        )])
        .unwrap();
        let err = encode(
            &[Feature::Numeric { column: "x".into() }],
            &b,
            "training data",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("column `x` of the training data is null in row 2"),
            "{err}"
        );
    }

    #[test]
    fn text_is_not_a_number() {
        let err = encode(
            &[Feature::Numeric { column: "c".into() }],
            &batch(),
            "training data",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }

    #[test]
    fn standardizer_scales_numeric_inputs_only() {
        let features = vec![
            Feature::Numeric { column: "n".into() },
            Feature::OneHot {
                column: "c".into(),
                categories: vec!["a".into()],
            },
        ];
        let mut x = Matrix {
            rows: 2,
            cols: 2,
            data: vec![1.0, 1.0, 3.0, 0.0],
        };
        let s = Standardizer::fit(&features, &x);
        s.apply(&mut x);
        assert_eq!(x.data, vec![-1.0, 1.0, 1.0, 0.0]);
    }
}
