//! Data-parallel training on worker processes: with 2 and 4 workers each `sync` mode reaches
//! the single-process metrics within one point, on scikit-learn's breast cancer data (binary,
//! logistic) and digits (ten classes, softmax); a worker killed while training is
//! survived; and training divides between as many workers as the plan says.

mod cluster;

use cluster::{flowc, run_ok};
use std::path::Path;

fn data(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../runtime/tests/ml/data")
        .join(file)
        .display()
        .to_string()
}

/// A program training `kind` on `set` and evaluating it on the held-out rows.
fn program(set: &str, kind: &str, width: usize, sync: Option<&str>) -> String {
    let features: Vec<String> = (0..width).map(|i| format!("f{i}")).collect();
    let sync = sync.map_or(String::new(), |s| format!(", sync = \"{s}\""));
    format!(
        "let model = load \"{}\" | train {kind}(label = label, features = [{}], epochs = 30, batch_size = 32{sync})\n\
         show load \"{}\" | infer model | evaluate label\n",
        data(&format!("{set}-train.csv")),
        features.join(", "),
        data(&format!("{set}-test.csv")),
    )
}

/// The accuracy `evaluate` printed (the first column of its one row).
fn accuracy(stdout: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("| 0.") || l.starts_with("| 1 "))
        .unwrap_or_else(|| panic!("no metrics in {text}"));
    row.split('|').nth(1).unwrap().trim().parse().unwrap()
}

fn run(dir: &Path, name: &str, text: &str, flags: &[&str]) -> f64 {
    let path = dir.join(format!("{name}.flow"));
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap();
    let mut args = vec!["run", p];
    args.extend_from_slice(flags);
    accuracy(&run_ok(&args, &[], &format!("{name} {}", flags.join(" "))).stdout)
}

#[test]
fn every_sync_mode_reaches_the_single_process_metrics() {
    let dir = tempfile::tempdir().unwrap();
    for (set, kind, width) in [("breast_cancer", "logistic", 30), ("digits", "softmax", 64)] {
        let single = run(dir.path(), set, &program(set, kind, width, None), &[]);
        for sync in ["allreduce", "scatter_reduce", "average"] {
            let text = program(set, kind, width, Some(sync));
            for workers in ["2", "4"] {
                let got = run(dir.path(), set, &text, &["--workers", workers]);
                assert!(
                    got >= single - 0.01,
                    "{set} {sync} on {workers} workers: {got} vs {single} in one process"
                );
            }
        }
    }
}

#[test]
fn a_worker_killed_while_training_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let text = program("breast_cancer", "logistic", 30, Some("allreduce"));
    let single = run(dir.path(), "bc", &text, &[]);
    let path = dir.path().join("bc.flow");
    let out = flowc(
        &["run", path.to_str().unwrap(), "--workers", "2"],
        &[("FLOW_FAULTS", "kill@train")],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(accuracy(&out.stdout) >= single - 0.01);
}

#[test]
fn training_divides_as_the_plan_says_unless_the_program_names_a_sync_mode() {
    // Breast cancer's 455 training rows are not worth dividing: the plan gives the training
    // one function, and the run trains where the rows are, in the coordinator, even with two
    // workers running. Naming a sync mode asks for data-parallel training on all of them.
    let dir = tempfile::tempdir().unwrap();
    for (sync, expected) in [
        (None, "training in the coordinator"),
        (Some("allreduce"), "training on 2 workers:"),
    ] {
        let path = dir.path().join("bc.flow");
        std::fs::write(&path, program("breast_cancer", "logistic", 30, sync)).unwrap();
        let out = flowc(
            &["run", path.to_str().unwrap(), "--workers", "2", "-v"],
            &[],
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{log}");
        assert!(log.contains(expected), "{sync:?}: {log}");
    }
}

/// Two `train` steps in one program, of different kinds and sync modes, the second an `mlp`
/// without `hidden` (the catalogue's `[64]` applies).
fn two_models() -> String {
    let features: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    let features = features.join(", ");
    let train = data("breast_cancer-train.csv");
    let test = data("breast_cancer-test.csv");
    format!(
        "let rows = load \"{train}\"\n\
         let linear = rows | train logistic(label = label, features = [{features}], epochs = 5, batch_size = 32, sync = \"average\")\n\
         let deep = rows | train mlp(label = label, features = [{features}], epochs = 5, batch_size = 64, sync = \"allreduce\")\n\
         show load \"{test}\" | infer linear | evaluate label\n\
         show load \"{test}\" | infer deep | evaluate label\n"
    )
}

#[test]
fn two_train_steps_each_train_with_their_own_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.flow");
    std::fs::write(&path, two_models()).unwrap();
    let out = flowc(
        &["run", path.to_str().unwrap(), "--workers", "2", "-v"],
        &[],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let trainings: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("training on 2 workers: ").map(|(_, t)| t))
        .collect();
    assert_eq!(trainings.len(), 2, "{log}");
    assert!(trainings[0].starts_with("average with "), "{trainings:?}");
    assert!(trainings[1].starts_with("allreduce with "), "{trainings:?}");
}

#[test]
fn an_mlp_without_hidden_is_priced_with_the_layer_it_trains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.flow");
    std::fs::write(&path, two_models()).unwrap();
    let out = flowc(&["plan", path.to_str().unwrap(), "--format", "json"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trains: Vec<(String, u64, String)> = plan["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| &op["kind"])
        .filter(|kind| kind["op"] == "train")
        .map(|kind| {
            (
                kind["model"].as_str().unwrap().to_string(),
                kind["params"].as_u64().unwrap(),
                kind["sync"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    // 30 inputs: logistic has 30 weights and a bias; the mlp 30 → 64 → 1.
    assert_eq!(
        trainings_of(&trains),
        [
            ("logistic", 31, "average"),
            ("mlp", 31 * 64 + 65, "allreduce")
        ]
    );
}

fn trainings_of(t: &[(String, u64, String)]) -> Vec<(&str, u64, &str)> {
    t.iter()
        .map(|(m, p, s)| (m.as_str(), *p, s.as_str()))
        .collect()
}
