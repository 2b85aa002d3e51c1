//! The file-system [`Statistics`]: sizes of the files a `load` reads, exact row counts from
//! Parquet footers, row estimates for text formats from a sample of their first bytes, and
//! distinct values of a column from a sample of its first rows.

use datafusion::arrow;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use flow_compiler::{CsvOptions, Format, ResolvedLoad};
use flow_planner::{SourceStats, Statistics};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Bytes of a text file read to estimate its row length.
const SAMPLE_BYTES: usize = 256 * 1024;

/// Measures sources on the local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStatistics;

impl Statistics for FileStatistics {
    fn source(&self, load: &ResolvedLoad, csv: &CsvOptions) -> Option<SourceStats> {
        let mut total = SourceStats {
            bytes: 0,
            rows: 0,
            exact: true,
        };
        for file in &load.files {
            let path = Path::new(file);
            let bytes = std::fs::metadata(path).ok()?.len();
            let (rows, exact) = match load.format {
                Format::Parquet => (parquet_rows(path)?, true),
                Format::Csv => {
                    let (lines, exact) = text_rows(path, bytes)?;
                    // The header line names the columns; it is not a row.
                    (lines.saturating_sub(u64::from(csv.header)), exact)
                }
                Format::Json => text_rows(path, bytes)?,
                Format::Arrow => {
                    let width = flow_planner::stats::row_width(&load.schema);
                    ((bytes as f64 / width).ceil() as u64, false)
                }
            };
            total.bytes += bytes;
            total.rows += rows;
            total.exact &= exact;
        }
        Some(total)
    }

    fn model_bytes(&self, path: &str) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    fn distinct(&self, load: &ResolvedLoad, csv: &CsvOptions, column: &str) -> Option<u64> {
        let index = load.schema.index_of(column).ok()?;
        let field = load.schema.field(index).clone();
        let mut counts: HashMap<Box<[u8]>, u32> = HashMap::new();
        let converter = RowConverter::new(vec![SortField::new(field.data_type().clone())]).ok()?;
        let mut sampled = 0usize;
        for file in &load.files {
            for batch in sample(load, csv, Path::new(file), SAMPLE_ROWS - sampled)? {
                let rows = converter
                    .convert_columns(&[batch.column(index).clone()])
                    .ok()?;
                for row in rows.iter() {
                    *counts.entry(row.as_ref().into()).or_insert(0) += 1;
                }
                sampled += batch.num_rows();
            }
            if sampled >= SAMPLE_ROWS {
                break;
            }
        }
        let total = self.source(load, csv).map_or(sampled as u64, |s| s.rows);
        Some(distinct_estimate(&counts, sampled as u64, total))
    }
}

/// Rows sampled to estimate a column's distinct values.
const SAMPLE_ROWS: usize = 50_000;

/// Distinct values of a column of `total` rows from the value counts of a sample of `sampled`
/// of them: exact when the sample is everything, else the GEE estimator (Charikar et al.,
/// 2000): values seen once stand for `sqrt(total / sampled)` values each, values seen more
/// often for themselves, so a column of a few repeated values stays a few; a sample without
/// repeats is a key. The sample is the files' first rows: a file sorted by the column shows
/// fewer values than it has.
fn distinct_estimate(counts: &HashMap<Box<[u8]>, u32>, sampled: u64, total: u64) -> u64 {
    let seen = counts.len() as u64;
    if sampled >= total || sampled == 0 {
        return seen;
    }
    let once = counts.values().filter(|c| **c == 1).count() as f64;
    if once == seen as f64 {
        // Nothing repeated in the sample: a key column.
        return total;
    }
    let scale = (total as f64 / sampled as f64).sqrt();
    let estimate = scale * once + (seen as f64 - once);
    (estimate.round() as u64).clamp(seen, total)
}

/// The first `limit` rows of one file of a load, read with its schema.
fn sample(
    load: &ResolvedLoad,
    csv: &CsvOptions,
    path: &Path,
    limit: usize,
) -> Option<Vec<RecordBatch>> {
    if limit == 0 {
        return Some(Vec::new());
    }
    let file = File::open(path).ok()?;
    let schema = load.schema.clone();
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>> = match load.format {
        Format::Csv => Box::new(
            arrow::csv::ReaderBuilder::new(schema)
                .with_header(csv.header)
                .with_delimiter(csv.delimiter)
                .build(file)
                .ok()?,
        ),
        Format::Json => Box::new(
            arrow::json::ReaderBuilder::new(schema)
                .build(std::io::BufReader::new(file))
                .ok()?,
        ),
        Format::Arrow => Box::new(arrow::ipc::reader::FileReader::try_new(file, None).ok()?),
        Format::Parquet => Box::new(
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .ok()?
                .with_limit(limit)
                .build()
                .ok()?,
        ),
    };
    let mut out = Vec::new();
    let mut rows = 0;
    for batch in batches {
        let batch = batch.ok()?;
        let take = (limit - rows).min(batch.num_rows());
        rows += take;
        out.push(batch.slice(0, take));
        if rows >= limit {
            break;
        }
    }
    Some(out)
}

fn parquet_rows(path: &Path) -> Option<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(File::open(path).ok()?).ok()?;
    u64::try_from(reader.metadata().file_metadata().num_rows()).ok()
}

/// Rows of a line-oriented file: counted when the sample is the whole file, else the file's
/// size over the sample's mean line length.
fn text_rows(path: &Path, bytes: u64) -> Option<(u64, bool)> {
    let mut sample = Vec::with_capacity(SAMPLE_BYTES.min(bytes as usize));
    File::open(path)
        .ok()?
        .take(SAMPLE_BYTES as u64)
        .read_to_end(&mut sample)
        .ok()?;
    let lines = sample.iter().filter(|b| **b == b'\n').count() as u64
        + u64::from(sample.last().is_some_and(|b| *b != b'\n'));
    if sample.len() as u64 >= bytes {
        return Some((lines, true));
    }
    let mean = sample.len() as f64 / lines.max(1) as f64;
    Some(((bytes as f64 / mean).ceil() as u64, false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn text_files_are_counted_or_estimated() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.csv");
        std::fs::write(&small, "a,b\n1,2\n3,4\n").unwrap();
        assert_eq!(text_rows(&small, 12), Some((3, true)));
        let big = dir.path().join("big.csv");
        let line = "12345,abcdefghij\n";
        std::fs::write(&big, line.repeat(40_000)).unwrap();
        let (rows, exact) = text_rows(&big, (line.len() * 40_000) as u64).unwrap();
        assert!(!exact);
        assert!((rows as i64 - 40_000).abs() < 100, "{rows}");
    }

    #[test]
    fn distinct_values_come_from_a_sample() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let mut text = String::from("id,store\n");
        for i in 0..200_000 {
            text.push_str(&format!("{i},s{}\n", i % 5));
        }
        std::fs::write(&path, text).unwrap();
        let load = ResolvedLoad {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("store", DataType::Utf8, true),
            ])),
            format: Format::Csv,
            files: vec![path.display().to_string()],
        };
        let csv = CsvOptions::default();
        // Five stores in 200,000 rows stay five; unique ids scale to the file's rows.
        assert_eq!(FileStatistics.distinct(&load, &csv, "store"), Some(5));
        // A sample without repeats is a key: as many values as the file has rows (estimated
        // from its first bytes, for a CSV file this size).
        let rows = FileStatistics.source(&load, &csv).unwrap().rows;
        assert!((180_000..=240_000).contains(&rows), "{rows}");
        assert_eq!(FileStatistics.distinct(&load, &csv, "id"), Some(rows));
        assert_eq!(FileStatistics.distinct(&load, &csv, "nothing"), None);
    }

    #[test]
    fn missing_files_are_not_measured() {
        let load = ResolvedLoad {
            schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
            format: Format::Csv,
            files: vec!["/nonexistent/file.csv".into()],
        };
        assert_eq!(FileStatistics.source(&load, &CsvOptions::default()), None);
    }
}
