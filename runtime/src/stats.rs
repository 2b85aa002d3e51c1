//! The file-system [`Statistics`]: sizes of the files a `load` reads, exact row counts from
//! Parquet footers, and row estimates for text formats from a sample of their first bytes.

use flow_compiler::{Format, ResolvedLoad};
use flow_planner::{SourceStats, Statistics};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Bytes of a text file read to estimate its row length.
const SAMPLE_BYTES: usize = 256 * 1024;

/// Measures sources on the local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStatistics;

impl Statistics for FileStatistics {
    fn source(&self, load: &ResolvedLoad) -> Option<SourceStats> {
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
                Format::Csv | Format::Json => text_rows(path, bytes)?,
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
    fn missing_files_are_not_measured() {
        let load = ResolvedLoad {
            schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
            format: Format::Csv,
            files: vec!["/nonexistent/file.csv".into()],
        };
        assert_eq!(FileStatistics.source(&load), None);
    }
}
