//! Throughput of flow's ML kernels on data already in memory, for `bench/ml.sh`, which runs
//! the scikit-learn and onnxruntime side on the same files in the same run:
//!
//!     ml_throughput train CSV LABEL EPOCHS     # logistic, plain SGD, one row per step
//!     ml_throughput onnx MODEL CSV BATCH [f32|as-read]
//!                                              # ONNX inference, BATCH rows per call
//!     ml_throughput transformer MODEL TOKENIZER CSV ROWS LENGTH BATCH
//!                                              # the first ROWS texts (`review`), cut to
//!                                              # LENGTH tokens, BATCH sequences per call
//!
//! Prints rows per second (training: rows × epochs / seconds), the median of 5 runs (`RUNS`). ONNX
//! inference reads the table's columns as `Float32` by default — the values and type
//! onnxruntime is handed — or `as-read` from the CSV (`Int64` for integers, twice the bytes).

// The allocator `flowc` runs with, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::ReaderBuilder;
use datafusion::arrow::csv::reader::Format;
use flow_runtime::ml::AnyModel;
use flow_runtime::ml::onnx;
use flow_stdlib::ml::train;
use flow_stdlib::{ArgValue, Feature, TrainSpec};
use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

fn read(path: &str) -> RecordBatch {
    let mut file = File::open(path).expect("the CSV file");
    let (schema, _) = Format::default()
        .with_header(true)
        .infer_schema(&mut file, None)
        .expect("a CSV header");
    let file = File::open(path).expect("the CSV file");
    let reader = ReaderBuilder::new(Arc::new(schema))
        .with_header(true)
        .with_batch_size(1 << 20)
        .build(file)
        .expect("a CSV reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("CSV rows")).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("rows")
}

/// Timed runs: `RUNS` from the environment (a profiler wants many), 5 by default.
fn runs() -> usize {
    std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["train", csv, label, epochs] => {
            let batch = read(csv);
            let epochs: i64 = epochs.parse().expect("epochs");
            let mut spec = TrainSpec::new(flow_stdlib::models::find("logistic").unwrap());
            spec.set("label", ArgValue::Column(label.to_string()));
            let features = batch
                .schema()
                .fields()
                .iter()
                .filter(|f| f.name() != label)
                .map(|f| Feature::Numeric {
                    column: f.name().clone(),
                })
                .collect();
            spec.set("features", ArgValue::Features(features));
            spec.set("epochs", ArgValue::Int(epochs));
            spec.set("batch_size", ArgValue::Int(1));
            spec.set("optimizer", ArgValue::Text("sgd".into()));
            let runs = (0..runs())
                .map(|_| {
                    let start = Instant::now();
                    train::fit(&spec, std::slice::from_ref(&batch)).expect("training");
                    start.elapsed().as_secs_f64()
                })
                .collect();
            let rows = batch.num_rows() as f64 * epochs as f64;
            println!("{:.0}", rows / median(runs));
        }
        ["onnx", model, csv, size, rest @ ..] => {
            let batch = read(csv);
            let batch = match rest {
                [] | ["f32"] => as_f32(&batch),
                ["as-read"] => batch,
                _ => usage(),
            };
            let size: usize = size.parse().expect("batch size");
            let model = AnyModel::Onnx(onnx::load(std::path::Path::new(model)).expect("model"));
            let runs = (0..runs())
                .map(|_| {
                    let start = Instant::now();
                    let mut at = 0;
                    while at < batch.num_rows() {
                        let n = size.min(batch.num_rows() - at);
                        model.predict(&batch.slice(at, n)).expect("scores");
                        at += n;
                    }
                    start.elapsed().as_secs_f64()
                })
                .collect();
            println!("{:.0}", batch.num_rows() as f64 / median(runs));
        }
        ["transformer", model, tokenizer, csv, rows, length, size] => {
            let texts = read(csv);
            let rows: usize = rows.parse().expect("rows");
            let texts = texts.slice(0, rows.min(texts.num_rows()));
            let tokenizer = flow_stdlib::text::Tokenizer::from_bytes(
                std::fs::read(tokenizer).expect("the tokenizer file"),
                tokenizer,
            )
            .expect("a tokenizer");
            let review = texts.column_by_name("review").expect("a `review` column");
            let tokens = tokenizer
                .encode(review.as_ref(), length.parse().expect("length"))
                .expect("tokens");
            let batch = RecordBatch::try_from_iter([("tokens", tokens)]).expect("a table");
            let size: usize = size.parse().expect("batch size");
            let model = flow_runtime::ml::load_onnx(std::path::Path::new(model)).expect("model");
            let runs = (0..runs())
                .map(|_| {
                    let start = Instant::now();
                    model.predict_in(&batch, Some(size)).expect("scores");
                    start.elapsed().as_secs_f64()
                })
                .collect();
            println!("{:.3}", batch.num_rows() as f64 / median(runs));
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: ml_throughput train CSV LABEL EPOCHS | onnx MODEL CSV BATCH [f32|as-read] \
         | transformer MODEL TOKENIZER CSV ROWS LENGTH BATCH"
    );
    std::process::exit(2);
}

/// `batch` with every column cast to `Float32`.
fn as_f32(batch: &RecordBatch) -> RecordBatch {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let columns: Vec<_> = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::cast(c, &DataType::Float32).expect("numbers"))
        .collect();
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| Field::new(f.name(), DataType::Float32, f.is_nullable()))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("the same shape")
}
