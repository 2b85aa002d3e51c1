//! The ML standard library end to end (compile, train, infer, evaluate, model files):
//! quality against scikit-learn (`quality`), and models as values and files (`models`).

mod models;
mod onnx;
mod quality;
mod transformer;

use flow_lang::Diagnostic;
use flow_runtime::{FileSchemaSource, RunOptions};
use std::path::{Path, PathBuf};

/// The folder of the exported data sets and the reference figures.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ml/data")
}

/// The absolute path of a data file, for programs that run in another folder.
pub fn data(file: &str) -> String {
    data_dir().join(file).display().to_string()
}

fn options() -> RunOptions {
    RunOptions {
        partitions: Some(2),
        cluster: None,
        watch: None,
    }
}

/// Compiles `program` against `dir`; the first error.
fn compile(dir: &Path, program: &str) -> Result<flow_compiler::Compiled, Diagnostic> {
    let parsed = flow_lang::parse(program);
    assert!(
        parsed.diagnostics.is_empty(),
        "{program}\n{:#?}",
        parsed.diagnostics
    );
    let compiled = flow_compiler::compile(&parsed.program, &FileSchemaSource::new(dir));
    match compiled.diagnostics.iter().find(|d| d.is_error()) {
        Some(d) => Err(d.clone()),
        None => Ok(compiled),
    }
}

/// Runs `program` in `dir`: what it printed, or the first error from checking or running.
pub fn run(dir: &Path, program: &str) -> Result<String, Diagnostic> {
    let compiled = compile(dir, program)?;
    let mut out = Vec::new();
    flow_runtime::run(&compiled, &options(), &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

/// The whole table of the first sink of `program`, run in the data folder.
pub fn collect(program: &str) -> Result<Vec<datafusion::arrow::array::RecordBatch>, Diagnostic> {
    let dir = data_dir();
    let compiled = compile(&dir, program)?;
    flow_runtime::collect(&compiled, &options(), 0)
}
