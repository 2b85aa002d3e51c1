//! The transformer path (`tokenize`, then `infer` with an ONNX transformer) against
//! onnxruntime and Python's `tokenizers` (scripts/sentiment-reference.py, run here; scripts/test
//! installs what it needs from PyPI), and what bad input gets.

use super::{collect, run};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use flow_lang::Code;
use flow_runtime::ml::AnyModel;
use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn file(name: &str) -> String {
    examples().join(name).display().to_string()
}

/// onnxruntime's logits and predictions for the first `rows` example reviews, by id.
fn reference(rows: usize) -> Vec<(i64, Vec<f32>, i64)> {
    let out = Command::new("python3")
        .arg(examples().join("../scripts/sentiment-reference.py"))
        .args([
            file("models/sentiment.onnx"),
            file("models/sentiment-tokenizer.json"),
            file("data/imdb_reviews.csv"),
        ])
        .args(["--length", "256", "--rows", &rows.to_string()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the reference needs onnxruntime, tokenizers and numpy (scripts/test installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let logits = v["logits"].as_array().unwrap();
            (
                v["id"].as_i64().unwrap(),
                logits.iter().map(|l| l.as_f64().unwrap() as f32).collect(),
                v["prediction"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The example reviews with their tokens, as flow makes them.
fn tokenized(rows: usize) -> Vec<RecordBatch> {
    collect(&format!(
        "show load \"{}\"\n  | take {rows}\n  | derive tokens = tokenize(review, \"{}\", length = 256)\n",
        file("data/imdb_reviews.csv"),
        file("models/sentiment-tokenizer.json"),
    ))
    .unwrap()
}

fn model() -> flow_runtime::ml::transformer::TransformerModel {
    match flow_runtime::ml::load_onnx(Path::new(&file("models/sentiment.onnx"))).unwrap() {
        AnyModel::Transformer(t) => t,
        other => panic!("not read as a transformer: {other:?}"),
    }
}

#[test]
fn logits_equal_onnxruntime() {
    let expected = reference(100);
    let model = model();
    let mut seen = 0;
    for batch in tokenized(100) {
        let ids = batch["id"].as_primitive::<Int64Type>();
        for (row, logits) in model.logits(&batch).unwrap().into_iter().enumerate() {
            let (id, want, _) = &expected[seen];
            assert_eq!(ids.value(row), *id);
            for (a, b) in logits.iter().zip(want) {
                assert!((a - b).abs() <= 1e-5, "review {id}: {logits:?} vs {want:?}");
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 100);
}

#[test]
fn batched_predictions_equal_onnxruntime() {
    // Length buckets and padded batches give every review what it gets alone.
    let expected = reference(300);
    let scored = collect(&format!(
        "show load \"{}\"\n  | derive tokens = tokenize(review, \"{}\", length = 256)\n  | infer load \"{}\" batch 16\n",
        file("data/imdb_reviews.csv"),
        file("models/sentiment-tokenizer.json"),
        file("models/sentiment.onnx"),
    ))
    .unwrap();
    let mut by_id = std::collections::HashMap::new();
    for batch in &scored {
        let ids = batch["id"].as_primitive::<Int64Type>();
        let prediction = batch["prediction"].as_primitive::<Int64Type>();
        let probability = batch["probability"].as_primitive::<Float64Type>();
        for r in 0..batch.num_rows() {
            by_id.insert(ids.value(r), (prediction.value(r), probability.value(r)));
        }
    }
    assert_eq!(by_id.len(), 300);
    for (id, logits, want) in expected {
        let (prediction, probability) = by_id[&id];
        assert_eq!(prediction, want, "review {id}");
        let softmax = 1.0 / (1.0 + f64::from(logits[0] - logits[1]).exp());
        assert!(
            (probability - softmax).abs() <= 1e-5,
            "review {id}: {probability} vs {softmax}"
        );
    }
}

/// A folder with `reviews.csv` holding `rows`, and the program run there.
fn run_on(rows: &str, program: &str) -> Result<String, flow_lang::Diagnostic> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("reviews.csv"), format!("id,review\n{rows}")).unwrap();
    let program = program
        .replace("TOKENIZER", &file("models/sentiment-tokenizer.json"))
        .replace("MODEL", &file("models/sentiment.onnx"));
    run(dir.path(), &program)
}

#[test]
fn an_empty_review_is_scored_and_a_null_one_is_named() {
    let scored = |text: &str| {
        format!(
            "show load \"reviews.csv\" schema {{ id: int64, review: string }}\n  | derive tokens = tokenize({text}, \"TOKENIZER\")\n  | infer load \"MODEL\"\n  | select id, prediction\n"
        )
    };
    let out = run_on("1,\n2,great fun\n", &scored("coalesce(review, \"\")")).unwrap();
    assert!(out.contains("(2 rows)"), "{out}");
    let err = run_on("1,fine\n2,\n", &scored("review")).unwrap_err();
    assert_eq!(err.code, Code::E0033);
    assert!(
        err.message
            .contains("the row (id = 2, review = null) has no tokens: its text is null"),
        "{}",
        err.message
    );
}

#[test]
fn a_review_longer_than_the_model_takes_is_cut() {
    // Without `length`, sequences are cut to 512 tokens, the model's longest.
    let long = "a wonderful film ".repeat(400);
    let out = run_on(
        &format!("1,{long}\n"),
        "show load \"reviews.csv\"\n  | derive tokens = tokenize(review, \"TOKENIZER\")\n  | infer load \"MODEL\"\n  | select id, prediction\n",
    )
    .unwrap();
    assert!(out.contains("| 1  | 1          |"), "{out}");
}

#[test]
fn token_ids_past_the_vocabulary_are_refused_not_run() {
    // A tokenizer of a bigger vocabulary than the model's gives ids tract must never see.
    let model = model();
    let batch = tokenized(2).remove(0);
    let mut ids: Vec<i32> = Vec::new();
    let list = batch["tokens"].as_list::<i32>();
    for v in list
        .value(0)
        .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
        .values()
    {
        ids.push(*v);
    }
    ids[1] = model.vocab_size as i32;
    let tokens = datafusion::arrow::array::ListArray::from_iter_primitive::<
        datafusion::arrow::datatypes::Int32Type,
        _,
        _,
    >([Some(ids.into_iter().map(Some))]);
    let bad = RecordBatch::try_from_iter([("tokens", std::sync::Arc::new(tokens) as _)]).unwrap();
    let err = model.predict(&bad, 4).unwrap_err().to_string();
    assert!(
        err.contains("the row () has token id 8000, outside the model's vocabulary of 8000"),
        "{err}"
    );
}

#[test]
fn check_time_errors_name_the_problem() {
    let check = |program: &str| run_on("1,fine\n", program).unwrap_err();
    let err = check("show load \"reviews.csv\" | derive t = tokenize(review, \"missing.json\")\n");
    assert_eq!(err.code, Code::E0036);
    assert!(
        err.message.contains("missing.json does not exist"),
        "{}",
        err.message
    );
    let err = check(&format!(
        "show load \"reviews.csv\" | derive t = tokenize(review, \"{}\")\n",
        file("models/digits.onnx")
    ));
    assert_eq!(err.code, Code::E0036);
    assert!(
        err.message.contains("is not a tokenizer"),
        "{}",
        err.message
    );
    let err = check("show load \"reviews.csv\" | derive t = tokenize(id, \"TOKENIZER\")\n");
    assert_eq!(err.code, Code::E0010);
    assert!(
        err.message.contains("needs text, but this is int64"),
        "{}",
        err.message
    );
    // A transformer on a table without token ids, and a table model on one with only tokens.
    let err = check("show load \"reviews.csv\" | infer load \"MODEL\"\n");
    assert_eq!(err.code, Code::E0019);
    assert!(err.message.contains("reads token ids"), "{}", err.message);
    let err = check(&format!(
        "show load \"reviews.csv\" | derive t = tokenize(review, \"TOKENIZER\") | select t | infer load \"{}\"\n",
        file("models/digits.onnx")
    ));
    assert_eq!(err.code, Code::E0019);
}
