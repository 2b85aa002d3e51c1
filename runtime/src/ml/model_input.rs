//! Arrow columns as the `f32` matrix an ONNX model reads: column-major (the columns one after
//! another) for plans built to take it so, row-major otherwise.
//!
//! Row-major is written in tiles of rows: one column at a time over a whole batch strides the
//! matrix by a row per value, and on a model of 64 inputs those stores cost more than the
//! model itself.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use datafusion::arrow::error::ArrowError;

/// Rows written together: their part of the matrix stays in the first-level cache.
const TILE: usize = 64;

/// How a plan wants its input matrix laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    RowMajor,
    ColumnMajor,
}

/// A column's values, borrowed when `as` converts them straight to `f32` (rounding to
/// nearest, as arrow's cast does).
enum Values<'a> {
    I64(&'a [i64]),
    I32(&'a [i32]),
    F64(&'a [f64]),
    F32(&'a [f32]),
}

impl Values<'_> {
    /// Converts the values from `start` on, as many as `out` holds: `out[i * stride]` gets
    /// value `start + i`.
    fn write(&self, start: usize, out: &mut [f32], stride: usize) {
        fn write<T: Copy>(values: &[T], out: &mut [f32], stride: usize, f: impl Fn(T) -> f32) {
            if stride == 1 {
                // A run of consecutive values: a plain zip, which the compiler vectorises.
                for (slot, v) in out.iter_mut().zip(values) {
                    *slot = f(*v);
                }
            } else {
                for (slot, v) in out.iter_mut().step_by(stride).zip(values) {
                    *slot = f(*v);
                }
            }
        }
        match self {
            // Already `f32`, consecutive: a plain copy, which the C library does fastest.
            Values::F32(v) if stride == 1 => {
                let n = out.len().min(v.len().saturating_sub(start));
                out[..n].copy_from_slice(&v[start..start + n]);
            }
            Values::I64(v) => write(&v[start..], out, stride, |x| x as f32),
            Values::I32(v) => write(&v[start..], out, stride, |x| x as f32),
            Values::F64(v) => write(&v[start..], out, stride, |x| x as f32),
            Values::F32(v) => write(&v[start..], out, stride, |x| x),
        }
    }
}

/// Writes the matrix of `columns` in `layout` into `out` (`rows × columns.len()` values,
/// the tensor the model reads, so nothing is copied again). The columns have no nulls.
pub fn fill(columns: &[ArrayRef], layout: Layout, out: &mut [f32]) -> Result<(), ArrowError> {
    let rows = columns.first().map_or(0, |c| c.len());
    let width = columns.len();
    if out.len() != rows * width {
        return Err(ArrowError::InvalidArgumentError(format!(
            "a {rows} × {width} matrix does not fit {} values",
            out.len()
        )));
    }
    let cast: Vec<Option<ArrayRef>> = columns
        .iter()
        .map(|c| match c.data_type() {
            DataType::Int64 | DataType::Int32 | DataType::Float64 | DataType::Float32 => Ok(None),
            _ => cast(c, &DataType::Float32).map(Some),
        })
        .collect::<Result<_, _>>()?;
    let values: Vec<Values> = columns
        .iter()
        .zip(&cast)
        .map(|(column, cast)| match (cast, column.data_type()) {
            (Some(c), _) => Values::F32(c.as_primitive::<Float32Type>().values()),
            (None, DataType::Int64) => Values::I64(column.as_primitive::<Int64Type>().values()),
            (None, DataType::Int32) => Values::I32(column.as_primitive::<Int32Type>().values()),
            (None, DataType::Float64) => Values::F64(column.as_primitive::<Float64Type>().values()),
            (None, _) => Values::F32(column.as_primitive::<Float32Type>().values()),
        })
        .collect();
    match layout {
        // Column after column: runs of consecutive values, which the conversions vectorise.
        Layout::ColumnMajor => {
            for (values, column) in values.iter().zip(out.chunks_exact_mut(rows.max(1))) {
                values.write(0, column, 1);
            }
        }
        Layout::RowMajor => {
            for (t, tile) in out.chunks_mut(TILE * width.max(1)).enumerate() {
                for (c, values) in values.iter().enumerate() {
                    values.write(t * TILE, &mut tile[c..], width);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int32Array, Int64Array, UInt8Array};
    use std::sync::Arc;

    fn matrix(columns: &[ArrayRef], layout: Layout) -> Result<Vec<f32>, ArrowError> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut out = vec![f32::NAN; rows * columns.len()];
        fill(columns, layout, &mut out)?;
        Ok(out)
    }

    #[test]
    fn a_buffer_of_the_wrong_size_is_refused() {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..3));
        assert!(fill(&[column], Layout::RowMajor, &mut [0.0; 2]).is_err());
    }

    fn columns(rows: usize) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|r| r * 10),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|r| r as f64 + 0.5),
            )),
            Arc::new(Int32Array::from_iter_values((0..rows as i32).map(|r| -r))),
            Arc::new(UInt8Array::from_iter_values(
                (0..rows).map(|r| (r % 7) as u8),
            )),
        ]
    }

    fn row(r: usize) -> [f32; 4] {
        [r as f32 * 10.0, r as f32 + 0.5, -(r as f32), (r % 7) as f32]
    }

    #[test]
    fn row_major_rows_follow_each_other_across_tiles_and_types() {
        let rows = 2 * TILE + 3;
        let m = matrix(&columns(rows), Layout::RowMajor).unwrap();
        assert_eq!(m.len(), rows * 4);
        for r in 0..rows {
            assert_eq!(m[r * 4..r * 4 + 4], row(r), "row {r}");
        }
    }

    #[test]
    fn column_major_is_the_columns_one_after_another() {
        let rows = 5;
        let m = matrix(&columns(rows), Layout::ColumnMajor).unwrap();
        for r in 0..rows {
            let got: Vec<f32> = (0..4).map(|c| m[c * rows + r]).collect();
            assert_eq!(got, row(r), "row {r}");
        }
    }

    #[test]
    fn a_sliced_column_starts_at_its_offset() {
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..100));
        for layout in [Layout::RowMajor, Layout::ColumnMajor] {
            let m = matrix(&[column.slice(40, 20)], layout).unwrap();
            assert_eq!(m, (40..60).map(|v| v as f32).collect::<Vec<_>>());
        }
    }
}
