//! Statistics: what the planner knows about sizes before anything runs. Sources are measured
//! through the [`Statistics`] trait (file sizes, Parquet footers, CSV samples), so the
//! planner stays pure and the language server can answer from the same numbers; everything
//! downstream of a source is estimated here from the defaults below.

use flow_compiler::{CsvOptions, ResolvedLoad};
use serde::{Deserialize, Serialize};

/// What is known about the files of one `load`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SourceStats {
    /// Bytes stored (what a function reads from storage).
    pub bytes: u64,
    /// Rows: exact from Parquet or Arrow metadata, estimated from a sample for text formats.
    pub rows: u64,
    /// Whether `rows` was counted rather than estimated.
    pub exact: bool,
}

/// Measures sources. Implementations do the IO (the runtime reads footers and samples files).
pub trait Statistics {
    /// Statistics of the files a load reads; `None` when they cannot be measured, and the
    /// planner then assumes [`UNKNOWN_SOURCE`].
    fn source(&self, load: &ResolvedLoad, csv: &CsvOptions) -> Option<SourceStats>;

    /// Size in bytes of a model file, if it can be measured.
    fn model_bytes(&self, path: &str) -> Option<u64>;

    /// Distinct values of one column of a load's files, estimated from a sample of its rows;
    /// `None` when unknown (the planner then assumes [`GROUPS_PER_ROW`] of a grouping's
    /// input).
    fn distinct(&self, load: &ResolvedLoad, csv: &CsvOptions, column: &str) -> Option<u64> {
        let _ = (load, csv, column);
        None
    }

    /// Fraction of a load's rows that `predicate` keeps, measured on a sample of its rows.
    /// The predicate names the load's columns unqualified. `None` when it cannot be measured
    /// (the planner then assumes [`FILTER_SELECTIVITY`]).
    fn selectivity(
        &self,
        load: &ResolvedLoad,
        csv: &CsvOptions,
        predicate: &datafusion::logical_expr::Expr,
    ) -> Option<f64> {
        let _ = (load, csv, predicate);
        None
    }

    /// How many items the list `expr` gives in each of a sample of a load's rows (the token
    /// ids `tokenize` makes of a review, say); `expr` names the load's columns unqualified.
    /// `None` when it cannot be measured (the planner then assumes every list as long as it
    /// may be).
    fn list_lengths(
        &self,
        load: &ResolvedLoad,
        csv: &CsvOptions,
        expr: &datafusion::logical_expr::Expr,
    ) -> Option<Vec<u64>> {
        let _ = (load, csv, expr);
        None
    }

    /// What a scan of a load reads and decodes when it reads only `columns`: measured where
    /// the format stores columns apart (Parquet's column chunks); `None` for formats read
    /// whole (text), which are priced per byte stored.
    fn column_bytes(&self, load: &ResolvedLoad, columns: &[&str]) -> Option<ColumnBytes> {
        let _ = (load, columns);
        None
    }
}

/// What a scan of a columnar file costs to decode, for the columns it reads. Decoding
/// depends on more than the bytes stored: a column that is dictionary-encoded is small on
/// disk and still yields a value per row, and a compressed page is first inflated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnBytes {
    /// Bytes stored: what is read from storage.
    pub stored: u64,
    /// Bytes of the pages once decompressed: what the decoder walks through.
    pub decoded: u64,
    /// Of `decoded`, the bytes of pages compressed with a byte-oriented codec (Snappy, LZ4):
    /// inflating costs per byte it yields.
    pub fast_codec: u64,
    /// Of `decoded`, the bytes of pages compressed with an entropy codec (Zstandard, gzip,
    /// Brotli).
    pub entropy_codec: u64,
    /// Values decoded: rows times the columns read.
    pub values: u64,
}

/// Knows nothing: every source is [`UNKNOWN_SOURCE`]. For tests and for tools without files.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStatistics;

impl Statistics for NoStatistics {
    fn source(&self, _load: &ResolvedLoad, _csv: &CsvOptions) -> Option<SourceStats> {
        None
    }

    fn model_bytes(&self, _path: &str) -> Option<u64> {
        None
    }
}

/// Assumed for a source that cannot be measured: a million rows of 100 bytes.
pub const UNKNOWN_SOURCE: SourceStats = SourceStats {
    bytes: 100_000_000,
    rows: 1_000_000,
    exact: false,
};

/// Assumed for a model file that cannot be measured.
pub const UNKNOWN_MODEL_BYTES: u64 = 1_000_000;

/// Fraction of rows a filter keeps when its predicate cannot be measured on a sample of one
/// source ([`Statistics::selectivity`]): DataFusion's default (`default_filter_selectivity`).
pub const FILTER_SELECTIVITY: f64 = 0.2;

/// Groups an aggregation with keys produces, as a fraction of its input rows, when the data
/// cannot tell ([`Statistics::distinct`]).
pub const GROUPS_PER_ROW: f64 = 0.1;

/// Width assumed for a string or binary value, in bytes (Arrow offsets included).
pub const VARIABLE_WIDTH_BYTES: f64 = 24.0;

/// Bytes a value of this type takes in Arrow memory.
pub fn type_width(ty: &datafusion::arrow::datatypes::DataType) -> f64 {
    use datafusion::arrow::datatypes::DataType as T;
    match ty {
        T::Null => 0.0,
        T::Boolean => 0.125,
        T::Int8 | T::UInt8 => 1.0,
        T::Int16 | T::UInt16 | T::Float16 => 2.0,
        T::Int32 | T::UInt32 | T::Float32 | T::Date32 | T::Time32(_) => 4.0,
        T::Int64
        | T::UInt64
        | T::Float64
        | T::Date64
        | T::Time64(_)
        | T::Timestamp(_, _)
        | T::Duration(_)
        | T::Interval(_) => 8.0,
        T::Decimal128(_, _) => 16.0,
        T::Decimal256(_, _) => 32.0,
        T::FixedSizeBinary(n) => f64::from((*n).max(0)),
        T::List(f) | T::LargeList(f) => 4.0 * type_width(f.data_type()) + 4.0,
        T::Struct(fields) => fields.iter().map(|f| type_width(f.data_type())).sum(),
        _ => VARIABLE_WIDTH_BYTES,
    }
}

/// Bytes per row of a schema in Arrow memory (never zero, so sizes stay meaningful).
pub fn row_width(schema: &datafusion::arrow::datatypes::Schema) -> f64 {
    schema
        .fields()
        .iter()
        .map(|f| type_width(f.data_type()))
        .sum::<f64>()
        .max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn widths_follow_arrow_layouts() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("day", DataType::Date32, true),
        ]);
        assert_eq!(row_width(&schema), 8.0 + VARIABLE_WIDTH_BYTES + 4.0);
        assert_eq!(row_width(&Schema::empty()), 1.0);
    }
}
