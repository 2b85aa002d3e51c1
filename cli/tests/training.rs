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
