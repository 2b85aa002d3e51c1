//! ONNX models run with tract agree with onnxruntime (`scripts/onnx-model.py` recorded its
//! outputs for the committed model), and bad ONNX files get errors.

use super::{collect, data, run};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use flow_lang::Code;
use std::path::Path;

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models/digits.onnx")
        .display()
        .to_string()
}

#[test]
fn predictions_equal_onnxruntime() {
    let scored = collect(&format!(
        "show load \"digits-test.csv\" | infer load \"{}\" batch 64\n",
        model()
    ))
    .unwrap();
    let reference = std::fs::read_to_string(data("digits-onnxruntime.csv")).unwrap();
    let mut rows = reference.lines().skip(1);
    let mut checked = 0;
    for batch in &scored {
        let prediction = batch["prediction"].as_primitive::<Int64Type>();
        let probability = batch["probability"].as_primitive::<Float64Type>();
        for r in 0..batch.num_rows() {
            let line = rows.next().expect("as many rows as onnxruntime scored");
            let mut cells = line.split(',');
            let label: i64 = cells.next().unwrap().parse().unwrap();
            let best = cells
                .map(|c| c.parse::<f64>().unwrap())
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(prediction.value(r), label, "row {checked}");
            assert!(
                (probability.value(r) - best).abs() <= 1e-5,
                "row {checked}: {} vs {best}",
                probability.value(r)
            );
            checked += 1;
        }
    }
    assert!(rows.next().is_none());
    assert_eq!(checked, 450);
}

#[test]
fn the_onnx_model_is_checked_against_the_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "f0,f1\n1,2\n").unwrap();
    let err = run(
        dir.path(),
        &format!("show load \"t.csv\" | infer load \"{}\"\n", model()),
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0019);
    assert!(err.message.contains("`f2`"), "{}", err.message);
}

#[test]
fn a_file_that_is_not_onnx_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "f0\n1\n").unwrap();
    std::fs::write(dir.path().join("bad.onnx"), b"FLOWMODEL 1\n{}").unwrap();
    let err = run(
        dir.path(),
        "show load \"t.csv\" | infer load \"bad.onnx\"\n",
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0020);
    assert!(err.message.contains("not an ONNX model"), "{}", err.message);
}
