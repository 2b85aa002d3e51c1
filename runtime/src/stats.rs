//! The file-system [`Statistics`]: sizes of the files a `load` reads, exact row counts and
//! column sizes from Parquet footers, row estimates for text formats from a sample of their
//! first bytes, and, from a sample of rows (spread over a Parquet file's row groups, the
//! first rows of other formats), the distinct values of a column and the fraction of rows a
//! predicate keeps.

use crate::remembered::remembered;
use datafusion::arrow;
use datafusion::arrow::array::{Array, AsArray, BooleanArray};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::prelude::SessionContext;
use flow_compiler::{CsvOptions, Format, ResolvedLoad};
use flow_planner::{ColumnBytes, SourceStats, Statistics};
// hashbrown with its fast default hasher: a sample hashes 50,000 values per column.
use datafusion::common::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Bytes of a text file read to estimate its row length.
const SAMPLE_BYTES: usize = 256 * 1024;

/// Measures sources on the local file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStatistics;

impl Statistics for FileStatistics {
    fn source(&self, load: &ResolvedLoad, csv: &CsvOptions) -> Option<SourceStats> {
        remembered(
            &load.files,
            format!("source {:?} {csv:?}", load.format),
            || measure_source(load, csv),
        )
    }

    fn model_bytes(&self, path: &str) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    fn distinct(&self, load: &ResolvedLoad, csv: &CsvOptions, column: &str) -> Option<u64> {
        remembered(
            &load.files,
            format!("distinct {column} {:?} {csv:?}", load.format),
            || measure_distinct(load, csv, column),
        )
    }

    fn selectivity(&self, load: &ResolvedLoad, csv: &CsvOptions, predicate: &Expr) -> Option<f64> {
        remembered(
            &load.files,
            format!("keeps {predicate} {:?} {csv:?}", load.format),
            || measure_selectivity(load, csv, predicate),
        )
    }

    fn list_lengths(&self, load: &ResolvedLoad, csv: &CsvOptions, expr: &Expr) -> Option<Vec<u64>> {
        // A function's text need not say all it holds (`tokenize(review)` holds its
        // tokenizer and its length), so its hash is part of the question.
        let mut hash = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(expr, &mut hash);
        let hash = std::hash::Hasher::finish(&hash);
        remembered(
            &load.files,
            format!("lengths {expr} #{hash:016x} {:?} {csv:?}", load.format),
            || measure_list_lengths(load, csv, expr),
        )
    }

    fn column_bytes(&self, load: &ResolvedLoad, columns: &[&str]) -> Option<ColumnBytes> {
        remembered(
            &load.files,
            format!("columns {columns:?} {:?}", load.format),
            || measure_column_bytes(load, columns),
        )
    }
}

fn measure_source(load: &ResolvedLoad, csv: &CsvOptions) -> Option<SourceStats> {
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

fn measure_distinct(load: &ResolvedLoad, csv: &CsvOptions, column: &str) -> Option<u64> {
    let index = load.schema.index_of(column).ok()?;
    let field = load.schema.field(index).clone();
    let converter = RowConverter::new(vec![SortField::new(field.data_type().clone())]).ok()?;
    let mut values = Values::default();
    for run in sample_rows(load, csv, &[index], SAMPLE_ROWS)? {
        let mut rows = Vec::new();
        for batch in run {
            rows.push(converter.convert_columns(&[batch.column(0).clone()]).ok()?);
        }
        values.run(rows.iter().flat_map(|r| r.iter()));
    }
    let total = FileStatistics
        .source(load, csv)
        .map_or(values.sampled, |s| s.rows);
    Some(values.estimate(total))
}

fn measure_selectivity(load: &ResolvedLoad, csv: &CsvOptions, predicate: &Expr) -> Option<f64> {
    let (predicate, columns) = over_load(load, predicate)?;
    let (mut kept, mut sampled) = (0usize, 0usize);
    for batch in sample_rows(load, csv, &columns, SAMPLE_ROWS)?
        .into_iter()
        .flatten()
    {
        let value = predicate.evaluate(&batch).ok()?;
        let value = value.into_array(batch.num_rows()).ok()?;
        let mask = value.as_any().downcast_ref::<BooleanArray>()?;
        kept += mask.true_count();
        sampled += batch.num_rows();
    }
    (sampled > 0).then(|| kept as f64 / sampled as f64)
}

/// Rows sampled to measure a list's lengths: the lists are computed (a tokenizer runs over
/// each text), so fewer rows than for a column's values.
const LENGTH_SAMPLE_ROWS: usize = 1_000;

fn measure_list_lengths(load: &ResolvedLoad, csv: &CsvOptions, expr: &Expr) -> Option<Vec<u64>> {
    let (expr, columns) = over_load(load, expr)?;
    let mut lengths = Vec::new();
    for batch in sample_rows(load, csv, &columns, LENGTH_SAMPLE_ROWS)?
        .into_iter()
        .flatten()
    {
        let value = expr
            .evaluate(&batch)
            .ok()?
            .into_array(batch.num_rows())
            .ok()?;
        let lists = value.as_list_opt::<i32>()?;
        lengths.extend((0..lists.len()).map(|i| {
            if lists.is_null(i) {
                0
            } else {
                u64::try_from(lists.value_length(i)).unwrap_or(0)
            }
        }));
    }
    Some(lengths)
}

/// `expr` (naming a load's columns unqualified) made ready to run on sampled rows, and the
/// load's columns it reads, which are what is sampled.
fn over_load(
    load: &ResolvedLoad,
    expr: &Expr,
) -> Option<(Arc<dyn datafusion::physical_expr::PhysicalExpr>, Vec<usize>)> {
    let mut columns: Vec<usize> = expr
        .column_refs()
        .into_iter()
        .map(|c| load.schema.index_of(&c.name).ok())
        .collect::<Option<_>>()?;
    columns.sort_unstable();
    columns.dedup();
    let schema = load.schema.project(&columns).ok()?;
    let df_schema = Arc::new(DFSchema::try_from(schema).ok()?);
    // Some functions exist only to be rewritten by the optimiser (`coalesce` becomes a
    // `CASE`) and cannot run as written: simplify first, as a plan's expressions are.
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(df_schema.clone())
            .build(),
    );
    let expr = simplifier.coerce(expr.clone(), &df_schema).ok()?;
    let expr = simplifier.simplify(expr).ok()?;
    let expr = SessionContext::new()
        .create_physical_expr(expr, &df_schema)
        .ok()?;
    Some((expr, columns))
}

fn measure_column_bytes(load: &ResolvedLoad, columns: &[&str]) -> Option<ColumnBytes> {
    if load.format != Format::Parquet {
        return None;
    }
    parquet_column_bytes(&load.files, columns)
}

/// What `columns` of Parquet `files` hold, from their footers.
pub(crate) fn parquet_column_bytes(files: &[String], columns: &[&str]) -> Option<ColumnBytes> {
    use parquet::basic::Compression;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut bytes = ColumnBytes::default();
    for file in files {
        let reader = SerializedFileReader::new(File::open(file).ok()?).ok()?;
        for group in reader.metadata().row_groups() {
            for chunk in group.columns() {
                let top = chunk.column_path().parts().first();
                if !top.is_some_and(|name| columns.contains(&name.as_str())) {
                    continue;
                }
                let decoded = u64::try_from(chunk.uncompressed_size()).unwrap_or(0);
                bytes.stored += u64::try_from(chunk.compressed_size()).unwrap_or(0);
                bytes.decoded += decoded;
                bytes.values += u64::try_from(chunk.num_values()).unwrap_or(0);
                match chunk.compression() {
                    Compression::UNCOMPRESSED => {}
                    Compression::SNAPPY | Compression::LZ4 | Compression::LZ4_RAW => {
                        bytes.fast_codec += decoded;
                    }
                    _ => bytes.entropy_codec += decoded,
                }
            }
        }
    }
    Some(bytes)
}

/// Rows read one after another from one place of a file.
type Run = Vec<RecordBatch>;

/// Up to [`SAMPLE_ROWS`] rows of a load's `columns` (indices into its schema), in that
/// order, as runs of consecutive rows: one per row group sampled of Parquet files, the first
/// rows of other formats.
fn sample_rows(
    load: &ResolvedLoad,
    csv: &CsvOptions,
    columns: &[usize],
    limit: usize,
) -> Option<Vec<Run>> {
    let mut out = Vec::new();
    let mut sampled = 0usize;
    for file in &load.files {
        for run in sample(load, csv, Path::new(file), limit - sampled, columns)? {
            sampled += run.iter().map(RecordBatch::num_rows).sum::<usize>();
            out.push(run);
        }
        if sampled >= limit {
            break;
        }
    }
    Some(out)
}

/// What a sample shows of one column's values.
#[derive(Default)]
struct Values {
    /// How often each value was seen.
    counts: HashMap<Vec<u8>, u32>,
    sampled: u64,
    /// Rows and value changes of each run.
    runs: Vec<(u64, u64)>,
    /// Whether every run was in order (ascending or descending).
    sorted: bool,
}

impl Values {
    /// Adds a run of consecutive rows, in Arrow's comparable row encoding.
    fn run<'r>(&mut self, rows: impl Iterator<Item = datafusion::arrow::row::Row<'r>>) {
        if self.runs.is_empty() {
            self.sorted = true;
        }
        let (mut n, mut changes) = (0u64, 0u64);
        let (mut up, mut down) = (true, true);
        let mut previous: Option<datafusion::arrow::row::Row<'r>> = None;
        for row in rows {
            *self.counts.entry_ref(row.as_ref()).or_insert(0) += 1;
            if let Some(p) = previous {
                match p.cmp(&row) {
                    std::cmp::Ordering::Less => (changes, down) = (changes + 1, false),
                    std::cmp::Ordering::Greater => (changes, up) = (changes + 1, false),
                    std::cmp::Ordering::Equal => {}
                }
            }
            previous = Some(row);
            n += 1;
        }
        self.sampled += n;
        self.sorted &= up || down;
        self.runs.push((n, changes));
    }

    /// Distinct values of the column over `total` rows. A file stored in the column's
    /// order shows in each run a stretch of its values that changes as often as the rows
    /// around it do: a run of `n` rows with `c` changes standing for `share` rows adds
    /// `c × (share / n − 1)` values nobody saw to those seen. Otherwise
    /// [`distinct_estimate`].
    fn estimate(&self, total: u64) -> u64 {
        let seen = self.counts.len() as u64;
        if self.sampled >= total || self.sampled == 0 {
            return seen;
        }
        let changed = self.runs.iter().any(|(_, c)| *c > 0);
        let repeated = self.counts.values().any(|c| *c > 1);
        if !(self.sorted && changed && repeated) {
            return distinct_estimate(&self.counts, self.sampled, total);
        }
        let share = total as f64 / self.runs.len() as f64;
        let unseen: f64 = self
            .runs
            .iter()
            .map(|(n, c)| *c as f64 * (share / (*n).max(1) as f64 - 1.0).max(0.0))
            .sum();
        let estimate = seen as f64 + unseen;
        (estimate.round() as u64).clamp(seen, total)
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
fn distinct_estimate(counts: &HashMap<Vec<u8>, u32>, sampled: u64, total: u64) -> u64 {
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

/// Up to `limit` rows of `columns` of one file of a load, read with its schema.
fn sample(
    load: &ResolvedLoad,
    csv: &CsvOptions,
    path: &Path,
    limit: usize,
    columns: &[usize],
) -> Option<Vec<Run>> {
    if limit == 0 {
        return Some(Vec::new());
    }
    if load.format == Format::Parquet {
        return parquet_sample(load, path, limit, columns);
    }
    Some(vec![text_sample(load, csv, path, limit, columns)?])
}

/// The first `limit` rows of `columns` of a file stored row by row.
fn text_sample(
    load: &ResolvedLoad,
    csv: &CsvOptions,
    path: &Path,
    limit: usize,
    columns: &[usize],
) -> Option<Run> {
    let file = File::open(path).ok()?;
    let schema = load.schema.clone();
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>> = match load.format {
        Format::Csv => Box::new(
            arrow::csv::ReaderBuilder::new(schema)
                .with_header(csv.header)
                .with_delimiter(csv.delimiter)
                .with_projection(columns.to_vec())
                .build(file)
                .ok()?,
        ),
        Format::Json => Box::new(
            arrow::json::ReaderBuilder::new(schema)
                .build(std::io::BufReader::new(file))
                .ok()?
                .map(|b| b.and_then(|b| b.project(columns))),
        ),
        _ => Box::new(arrow::ipc::reader::FileReader::try_new(file, Some(columns.to_vec())).ok()?),
    };
    first_rows(batches, limit)
}

/// Row groups a Parquet sample is spread over: a file sorted by some column shows a few of
/// its values in its first rows, and something of all of them across its row groups.
const SAMPLE_ROW_GROUPS: usize = 8;

/// Up to `limit` rows of `columns` of a Parquet file, the first rows of row groups spread
/// evenly over the file.
fn parquet_sample(
    load: &ResolvedLoad,
    path: &Path,
    limit: usize,
    columns: &[usize],
) -> Option<Vec<Run>> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
    // The footer is read once; each row group sampled reuses it.
    let metadata = ArrowReaderMetadata::load(&File::open(path).ok()?, Default::default()).ok()?;
    let builder = |path: &Path| {
        let file = File::open(path).ok()?;
        Some(ParquetRecordBatchReaderBuilder::new_with_metadata(
            file,
            metadata.clone(),
        ))
    };
    let groups = metadata.metadata().num_row_groups();
    // The file's own order of columns may differ from the load's: pick them by name.
    let roots: Vec<usize> = columns
        .iter()
        .map(|c| {
            metadata
                .schema()
                .index_of(load.schema.field(*c).name())
                .ok()
        })
        .collect::<Option<_>>()?;
    let spread = groups.clamp(1, SAMPLE_ROW_GROUPS);
    let each = limit.div_ceil(spread);
    let run = |k: usize| -> Option<Run> {
        let reader = builder(path)?;
        let mask = ProjectionMask::roots(reader.parquet_schema(), roots.iter().copied());
        let mut reader = reader.with_projection(mask).with_limit(each);
        if groups > 0 {
            reader = reader.with_row_groups(vec![k * groups / spread]);
        }
        let mut run = Vec::new();
        for batch in reader.build().ok()? {
            // The mask keeps the file's order of columns; the caller asked for its own.
            let batch = batch.ok()?;
            let order: Vec<usize> = columns
                .iter()
                .map(|c| batch.schema().index_of(load.schema.field(*c).name()).ok())
                .collect::<Option<_>>()?;
            run.push(batch.project(&order).ok()?);
        }
        Some(run)
    };
    // Row groups decode apart (a page each, decompressed): planning waits on this, and the
    // machine's cores are idle while it plans.
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..spread).map(|k| scope.spawn(move || run(k))).collect();
        runs.into_iter().map(|r| r.join().ok().flatten()).collect()
    })
}

/// The first `limit` rows of a stream of batches.
fn first_rows(
    batches: impl Iterator<Item = Result<RecordBatch, ArrowError>>,
    limit: usize,
) -> Option<Vec<RecordBatch>> {
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

    /// A Parquet file of `rows` rows in row groups of 10,000: `id` counts up, `order` repeats
    /// each value four times in order, `store` is one of five in blocks, `shuffled` is one of
    /// 1,000 in no order.
    fn parquet_fixture(dir: &Path, rows: i64) -> ResolvedLoad {
        written_parquet(
            dir,
            rows,
            parquet::file::properties::WriterProperties::builder(),
        )
    }

    fn written_parquet(
        dir: &Path,
        rows: i64,
        props: parquet::file::properties::WriterPropertiesBuilder,
    ) -> ResolvedLoad {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use parquet::arrow::ArrowWriter;
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("order", DataType::Int64, false),
            Field::new("store", DataType::Utf8, false),
            Field::new("shuffled", DataType::Int64, false),
        ]));
        let path = dir.join("t.parquet");
        let props = props.set_max_row_group_row_count(Some(10_000)).build();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema.clone(), Some(props))
                .unwrap();
        let ids: Vec<i64> = (0..rows).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i / 4))),
                Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| format!("s{}", i * 5 / rows)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    ids.iter().map(|i| (i * 7_919) % 1_000),
                )),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        ResolvedLoad {
            schema,
            format: Format::Parquet,
            files: vec![path.display().to_string()],
        }
    }

    #[test]
    fn distinct_values_of_a_sorted_column_follow_its_changes() {
        let dir = tempfile::tempdir().unwrap();
        let load = parquet_fixture(dir.path(), 400_000);
        let csv = CsvOptions::default();
        let within = |column: &str, expected: f64| {
            let n = FileStatistics.distinct(&load, &csv, column).unwrap() as f64;
            assert!(
                (n / expected - 1.0).abs() < 0.05,
                "{column}: {n} distinct, expected about {expected}"
            );
        };
        // Sorted with repeats: the first rows of each row group would say 12,500.
        within("order", 100_000.0);
        // Sorted, few values: still few.
        within("store", 5.0);
        within("shuffled", 1_000.0);
        within("id", 400_000.0);
    }

    #[test]
    fn lengths_of_a_computed_list_come_from_a_sample() {
        use datafusion::logical_expr::col;
        use flow_compiler::tokenize::Tokenize;
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let bytes = std::fs::read(examples.join("models/sentiment-tokenizer.json")).unwrap();
        let tokenizer =
            Arc::new(flow_stdlib::text::Tokenizer::from_bytes(bytes, "tokenizer").unwrap());
        let load = ResolvedLoad {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("review", DataType::Utf8, true),
                Field::new("label", DataType::Int64, true),
            ])),
            format: Format::Csv,
            files: vec![examples.join("data/imdb_reviews.csv").display().to_string()],
        };
        let csv = CsvOptions::default();
        let lengths = |cut: usize| {
            let tokenize = Arc::new(Tokenize::udf(tokenizer.clone(), cut));
            let expr = tokenize.call(vec![col("review")]);
            FileStatistics.list_lengths(&load, &csv, &expr).unwrap()
        };
        let long = lengths(512);
        assert_eq!(long.len(), 300, "every review of a small file");
        let mean = long.iter().sum::<u64>() as f64 / 300.0;
        // IMDb reviews: a median of about 230 tokens, a long tail.
        assert!((150.0..350.0).contains(&mean), "{mean}");
        assert!(long.iter().all(|n| (3..=512).contains(n)), "{long:?}");
        // A function the optimiser rewrites before it runs (`coalesce`) is measured too.
        let tokenize = Arc::new(Tokenize::udf(tokenizer.clone(), 512));
        let filled = datafusion::functions::core::expr_fn::coalesce(vec![
            col("review"),
            datafusion::logical_expr::lit(""),
        ]);
        let filled = FileStatistics
            .list_lengths(&load, &csv, &tokenize.call(vec![filled]))
            .unwrap();
        assert_eq!(filled, long);
        // The same data with another cut is another question, not a remembered answer.
        let short = lengths(64);
        assert!(short.iter().all(|n| *n <= 64), "{short:?}");
        assert!(short.iter().filter(|n| **n == 64).count() > 250);
    }

    #[test]
    fn selectivity_is_measured_on_a_sample_spread_over_the_file() {
        use datafusion::logical_expr::{col, lit};
        let dir = tempfile::tempdir().unwrap();
        let load = parquet_fixture(dir.path(), 400_000);
        let csv = CsvOptions::default();
        let keeps = |predicate: Expr| FileStatistics.selectivity(&load, &csv, &predicate).unwrap();
        // The first rows alone would say all or nothing.
        assert_eq!(keeps(col("id").lt(lit(100_000i64))), 0.25);
        assert_eq!(keeps(col("store").eq(lit("s1"))), 0.25);
        let some = keeps(col("shuffled").lt(lit(100i64)));
        assert!((some - 0.1).abs() < 0.01, "{some}");
        // Literals are coerced to the column's type, as the optimiser would.
        assert_eq!(keeps(col("id").lt_eq(lit(-1i32))), 0.0);
        assert_eq!(
            FileStatistics.selectivity(&load, &csv, &col("nothing").eq(lit(1))),
            None
        );
    }

    #[test]
    fn a_parquet_scan_reads_the_bytes_of_its_columns() {
        let dir = tempfile::tempdir().unwrap();
        let load = parquet_fixture(dir.path(), 100_000);
        let all = FileStatistics
            .column_bytes(&load, &["id", "order", "store", "shuffled"])
            .unwrap();
        let one = FileStatistics.column_bytes(&load, &["id"]).unwrap();
        assert!(
            0 < one.stored && one.stored < all.stored,
            "{one:?} of {all:?}"
        );
        assert_eq!((one.values, all.values), (100_000, 400_000));
        let file = std::fs::metadata(&load.files[0]).unwrap().len();
        assert!(all.stored <= file, "{all:?} of a {file}-byte file");
        let csv_load = ResolvedLoad {
            format: Format::Csv,
            ..load
        };
        assert_eq!(FileStatistics.column_bytes(&csv_load, &["id"]), None);
    }

    #[test]
    fn a_parquet_scan_knows_what_is_compressed_and_how() {
        use parquet::basic::{Compression, ZstdLevel};
        use parquet::file::properties::WriterProperties;
        use parquet::schema::types::ColumnPath;
        let dir = tempfile::tempdir().unwrap();
        let props = WriterProperties::builder()
            .set_column_compression(ColumnPath::from("id"), Compression::SNAPPY)
            .set_column_compression(
                ColumnPath::from("order"),
                Compression::ZSTD(ZstdLevel::default()),
            );
        let load = written_parquet(dir.path(), 100_000, props);
        let bytes = |columns: &[&str]| FileStatistics.column_bytes(&load, columns).unwrap();
        let (id, order, store) = (bytes(&["id"]), bytes(&["order"]), bytes(&["store"]));
        assert_eq!((id.fast_codec, id.entropy_codec), (id.decoded, 0));
        assert_eq!((order.fast_codec, order.entropy_codec), (0, order.decoded));
        assert_eq!((store.fast_codec, store.entropy_codec), (0, 0));
        assert_eq!(store.decoded, store.stored);
        // Zstandard shrinks a column of runs (`order` repeats each value four times).
        assert!(order.decoded > order.stored, "{order:?}");
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
