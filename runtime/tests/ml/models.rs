//! Trained models as values and files: determinism, the native file round trip, and the
//! errors bad data and bad model files get (never panics).

use super::{data, run};
use flow_lang::{Code, Diagnostic};
use std::path::Path;

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn iris_features() -> &'static str {
    "features = [f0, f1, f2, f3]"
}

#[test]
fn same_seed_same_model_bit_for_bit() {
    let dir = temp();
    for kind in [
        "mlp(label = label, hidden = [8], epochs = 5, seed = 3, ",
        "softmax(label = label, optimizer = \"sgd\", epochs = 5, seed = 3, ",
        "kmeans(k = 3, seed = 3, ",
    ] {
        let mut files: Vec<Vec<u8>> = Vec::new();
        for attempt in ["a", "b"] {
            let program = format!(
                "save load \"{}\" | train {kind}{}) to \"{attempt}.model\"\n",
                data("iris-train.csv"),
                iris_features()
            );
            run(dir.path(), &program).unwrap();
            files.push(std::fs::read(dir.path().join(format!("{attempt}.model"))).unwrap());
        }
        assert_eq!(files[0], files[1], "{kind}");
        assert!(files[0].starts_with(b"FLOWMODEL 1\n"));
    }
}

#[test]
fn a_saved_model_scores_like_the_trained_one() {
    let dir = temp();
    let train = data("iris-train.csv");
    let test = data("iris-test.csv");
    run(
        dir.path(),
        &format!(
            "let model = load \"{train}\" | train softmax(label = label, {}, epochs = 20)\n\
             save model to \"iris.model\"\n\
             save load \"{test}\" | infer model to \"direct.csv\"\n",
            iris_features()
        ),
    )
    .unwrap();
    run(
        dir.path(),
        &format!(
            "let model = load \"iris.model\"\n\
             save load \"{test}\" | infer model batch 7 to \"loaded.csv\"\n"
        ),
    )
    .unwrap();
    let direct = std::fs::read_to_string(dir.path().join("direct.csv")).unwrap();
    let loaded = std::fs::read_to_string(dir.path().join("loaded.csv")).unwrap();
    assert_eq!(direct, loaded);
    assert!(
        direct
            .lines()
            .next()
            .unwrap()
            .ends_with(",label,prediction,probability")
    );
}

#[test]
fn a_loaded_model_is_checked_before_anything_runs() {
    let dir = temp();
    run(
        dir.path(),
        &format!(
            "save load \"{}\" | train logistic(label = label, features = [f0, f1]) to \"bc.model\"\n",
            data("breast_cancer-train.csv")
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("other.csv"), "f0,x\n1.0,2.0\n").unwrap();
    let err = run(
        dir.path(),
        "show load \"other.csv\" | infer load \"bc.model\"\n",
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0019, "{err:?}");
    assert!(err.message.contains("`f1`"), "{}", err.message);
}

#[test]
fn a_null_label_is_an_error_naming_the_row() {
    let dir = temp();
    std::fs::write(dir.path().join("t.csv"), "x,y\n1.0,1\n2.0,\n3.0,0\n").unwrap();
    let err = run(
        dir.path(),
        "save load \"t.csv\" | train logistic(label = y, features = [x]) to \"m.model\"\n",
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0033);
    assert!(
        err.message.contains("the label `y` is null in row 2"),
        "{}",
        err.message
    );
    assert!(!dir.path().join("m.model").exists());
}

#[test]
fn a_null_feature_is_an_error_naming_the_column_and_row() {
    let dir = temp();
    std::fs::write(dir.path().join("t.csv"), "x,y\n1.0,1\n,0\n").unwrap();
    let err = run(
        dir.path(),
        "save load \"t.csv\" | train logistic(label = y, features = [x]) to \"m.model\"\n",
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0033);
    assert!(
        err.message
            .contains("column `x` of the training data is null in row 2"),
        "{}",
        err.message
    );
}

#[test]
fn a_text_feature_is_refused_at_check_time() {
    let dir = temp();
    std::fs::write(dir.path().join("t.csv"), "x,y\na,1\nb,0\n").unwrap();
    let err = run(
        dir.path(),
        "save load \"t.csv\" | train logistic(label = y, features = [x]) to \"m.model\"\n",
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0017);
    assert!(err.message.contains("not a number"), "{}", err.message);
}

#[test]
fn a_class_never_seen_in_training_is_an_error() {
    let dir = temp();
    let err = run(
        dir.path(),
        &format!(
            "let model = load \"{}\" | filter label != \"virginica\" | train logistic(label = label, {})\n\
             show load \"{}\" | infer model | evaluate label\n",
            data("iris-train.csv"),
            iris_features(),
            data("iris-test.csv")
        ),
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0033);
    assert!(err.message.contains("class `virginica`"), "{}", err.message);
    assert!(
        err.message.contains("never saw in training"),
        "{}",
        err.message
    );
}

#[test]
fn more_than_two_classes_for_logistic_is_an_error() {
    let dir = temp();
    let err = run(
        dir.path(),
        &format!(
            "save load \"{}\" | train logistic(label = label, {}) to \"m.model\"\n",
            data("iris-train.csv"),
            iris_features()
        ),
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0033);
    assert!(err.message.contains("use `softmax`"), "{}", err.message);
}

fn model_file_error(dir: &Path, bytes: &[u8]) -> Diagnostic {
    std::fs::write(dir.join("bad.model"), bytes).unwrap();
    std::fs::write(dir.join("t.csv"), "x\n1.0\n").unwrap();
    run(dir, "show load \"t.csv\" | infer load \"bad.model\"\n").unwrap_err()
}

#[test]
fn a_file_that_is_not_a_model_is_an_error() {
    let dir = temp();
    let err = model_file_error(dir.path(), b"PAR1 not a model at all");
    assert_eq!(err.code, Code::E0020);
    assert!(err.message.contains("not a flow model"), "{}", err.message);
}

#[test]
fn a_model_from_a_future_version_is_an_error() {
    let dir = temp();
    let err = model_file_error(dir.path(), b"FLOWMODEL 99\n{\"anything\": true}\n");
    assert_eq!(err.code, Code::E0020);
    assert!(err.message.contains("newer flow"), "{}", err.message);
    assert!(err.message.contains("version 99"), "{}", err.message);
}

#[test]
fn a_damaged_model_is_an_error() {
    let dir = temp();
    let err = model_file_error(dir.path(), b"FLOWMODEL 1\n{\"kind\": ");
    assert_eq!(err.code, Code::E0020);
    assert!(err.message.contains("damaged"), "{}", err.message);
}

#[test]
fn a_missing_model_file_is_an_error() {
    let dir = temp();
    std::fs::write(dir.path().join("t.csv"), "x\n1.0\n").unwrap();
    let err = run(
        dir.path(),
        "show load \"t.csv\" | infer load \"nowhere.model\"\n",
    )
    .unwrap_err();
    assert_eq!(err.code, Code::E0020);
    assert!(err.message.contains("does not exist"), "{}", err.message);
}
