//! What reading a source costs, measured on files written here: decoding Parquet per value
//! and per byte of its pages, inflating each kind of codec per byte it yields, and parsing CSV
//! per byte. A Parquet column's cost does not follow its bytes on disk alone — a
//! dictionary-encoded column is small and still yields a value per row, a compressed one is
//! first inflated — so two uncompressed files of different shapes separate the price of a
//! value from the price of a byte, and the same file compressed two ways prices the codecs.

use super::timed;
use crate::stats::parquet_column_bytes;
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use flow_planner::ColumnBytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Seconds on one core per unit of a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScanKernels {
    /// CSV, per byte stored.
    pub text_s_per_byte: f64,
    /// Parquet, per value decoded.
    pub value_s: f64,
    /// Parquet, per byte of pages once decompressed.
    pub byte_s: f64,
    /// Snappy, per byte inflated.
    pub fast_codec_s_per_byte: f64,
    /// Zstandard, per byte inflated.
    pub entropy_codec_s_per_byte: f64,
}

/// Measures scans of `rows` generated rows in `dir`.
pub async fn measure(dir: &Path, rows: usize) -> Result<ScanKernels> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let (wide, narrow) = (wide_table(rows)?, narrow_table(rows)?);
    let plain = scan(&ctx, dir, "wide", &wide, Compression::UNCOMPRESSED).await?;
    let runs = scan(&ctx, dir, "narrow", &narrow, Compression::UNCOMPRESSED).await?;
    // Two files, two unknowns: seconds = values · per value + decoded bytes · per byte.
    let (v1, d1) = (plain.bytes.values as f64, plain.bytes.decoded as f64);
    let (v2, d2) = (runs.bytes.values as f64, runs.bytes.decoded as f64);
    let det = v1 * d2 - v2 * d1;
    let mut byte_s = (v1 * runs.seconds - v2 * plain.seconds) / det;
    let mut value_s = (plain.seconds * d2 - runs.seconds * d1) / det;
    if !(byte_s.is_finite() && value_s.is_finite() && byte_s >= 0.0 && value_s >= 0.0) {
        // Noise beyond what the two shapes can tell apart: price the values alone.
        byte_s = 0.0;
        value_s = (plain.seconds + runs.seconds) / (v1 + v2);
    }
    let decode = |s: &Scan| s.bytes.values as f64 * value_s + s.bytes.decoded as f64 * byte_s;
    let inflate = |s: &Scan| ((s.seconds - decode(s)) / s.bytes.decoded.max(1) as f64).max(0.0);
    let snappy = scan(&ctx, dir, "snappy", &wide, Compression::SNAPPY).await?;
    let zstd = Compression::ZSTD(ZstdLevel::default());
    let zstd = scan(&ctx, dir, "zstd", &wide, zstd).await?;
    Ok(ScanKernels {
        text_s_per_byte: csv(&ctx, dir, &wide).await?,
        value_s,
        byte_s,
        fast_codec_s_per_byte: inflate(&snappy),
        entropy_codec_s_per_byte: inflate(&zstd),
    })
}

/// A measured scan of one file.
struct Scan {
    bytes: ColumnBytes,
    seconds: f64,
}

/// Writes `batch` to `dir/name.parquet` with `codec` and times summing every column of it.
async fn scan(
    ctx: &SessionContext,
    dir: &Path,
    name: &str,
    batch: &RecordBatch,
    codec: Compression,
) -> Result<Scan> {
    let path = dir.join(format!("{name}.parquet"));
    let props = WriterProperties::builder().set_compression(codec).build();
    let mut writer = ArrowWriter::try_new(File::create(&path)?, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    let file = path.to_string_lossy().into_owned();
    let columns = names(batch);
    let bytes = parquet_column_bytes(std::slice::from_ref(&file), &columns)
        .ok_or_else(|| DataFusionError::Execution(format!("cannot read {file}'s footer")))?;
    ctx.register_parquet(name, &file, ParquetReadOptions::default())
        .await?;
    let seconds = decoding(ctx, name, batch).await?;
    Ok(Scan { bytes, seconds })
}

/// Seconds per byte of parsing the wide table written as CSV.
async fn csv(ctx: &SessionContext, dir: &Path, batch: &RecordBatch) -> Result<f64> {
    let path = dir.join("wide.csv");
    let mut writer = datafusion::arrow::csv::Writer::new(File::create(&path)?);
    writer.write(batch)?;
    drop(writer);
    let bytes = std::fs::metadata(&path)?.len() as f64;
    let file = path.to_string_lossy().into_owned();
    ctx.register_csv("text", &file, CsvReadOptions::new())
        .await?;
    Ok(decoding(ctx, "text", batch).await? / bytes.max(1.0))
}

/// Seconds of decoding the registered file `name` holding `batch`: summing its columns from
/// the file, less summing them from memory (which the planner prices apart, as the operators
/// after the scan).
async fn decoding(ctx: &SessionContext, name: &str, batch: &RecordBatch) -> Result<f64> {
    let columns = names(batch);
    let from_file = timed(ctx, &sums(name, &columns)).await?;
    ctx.deregister_table(name)?;
    ctx.register_table(name, super::in_batches(batch)?)?;
    let from_memory = timed(ctx, &sums(name, &columns)).await?;
    ctx.deregister_table(name)?;
    Ok((from_file - from_memory).max(0.0))
}

fn names(batch: &RecordBatch) -> Vec<&str> {
    batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect()
}

/// A query that decodes every value of `columns` and keeps almost nothing: sums, and the
/// length of text (a maximum would be answered from the footer's statistics instead).
fn sums(table: &str, columns: &[&str]) -> String {
    let sums: Vec<String> = columns
        .iter()
        .map(|c| match *c {
            "s" => format!("sum(length({c}))"),
            _ => format!("sum({c})"),
        })
        .collect();
    format!("SELECT {} FROM {table}", sums.join(", "))
}

/// Values with too many different ones for a dictionary, which Parquet stores plain, of
/// the kinds tables hold: an integer key below a million (its high bytes zero, as codecs
/// find them), a price in cents and a short code.
fn wide_table(rows: usize) -> Result<RecordBatch> {
    let mut next = super::xorshift(0x6a09_e667_f3bc_c908);
    let a: Vec<i64> = (0..rows).map(|_| (next() % (1 << 20)) as i64).collect();
    let b: Vec<f64> = (0..rows)
        .map(|_| (next() % 10_000_000) as f64 / 100.0)
        .collect();
    let s: Vec<String> = (0..rows)
        .map(|_| format!("w{:08x}", next() >> 32))
        .collect();
    let schema = Schema::new(vec![
        Field::new("a", DataType::Int64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(a)),
            Arc::new(Float64Array::from(b)),
            Arc::new(StringArray::from(s)),
        ],
    )?)
}

/// One integer column of sixteen values, which Parquet stores as a dictionary and runs of
/// small codes: many values in few bytes.
fn narrow_table(rows: usize) -> Result<RecordBatch> {
    let mut next = super::xorshift(0xbb67_ae85_84ca_a73b);
    let d: Vec<i64> = (0..rows).map(|_| (next() % 16) as i64).collect();
    let schema = Schema::new(vec![Field::new("d", DataType::Int64, false)]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(Int64Array::from(d))],
    )?)
}
