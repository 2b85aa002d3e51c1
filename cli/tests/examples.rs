//! Every `examples/*.flow` is checked, formatted and run end to end. Programs that use the ML
//! steps stop with E0028 until the ML standard library lands; the others must succeed, and
//! their printed tables are snapshotted, as is the DAG `flowc explain` prints for each.

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected at least five examples");
    files
}

fn flowc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn uses_ml(source: &str) -> bool {
    ["| train ", "| infer ", "| evaluate "]
        .iter()
        .any(|s| source.contains(s))
}

#[test]
fn every_example_checks_is_formatted_and_runs() {
    for path in examples() {
        let p = path.to_str().unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let check = flowc(&["check", p]);
        assert_eq!(
            check.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let fmt = flowc(&["fmt", "--check", p]);
        assert_eq!(
            fmt.status.code(),
            Some(0),
            "{name} is not canonically formatted"
        );
        let explain = flowc(&["explain", p]);
        assert_eq!(explain.status.code(), Some(0), "{name}: explain failed");
        insta::assert_snapshot!(
            format!("explain__{name}"),
            String::from_utf8_lossy(&explain.stdout)
        );
        let run = flowc(&["run", p]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        let source = std::fs::read_to_string(&path).unwrap();
        if uses_ml(&source) {
            assert_eq!(run.status.code(), Some(1), "{name}");
            assert!(
                stderr.contains("E0028"),
                "{name} should stop at the ML step: {stderr}"
            );
        } else {
            assert_eq!(run.status.code(), Some(0), "{name}: {stderr}");
            let stdout =
                String::from_utf8_lossy(&run.stdout).replace(env!("CARGO_MANIFEST_DIR"), "");
            insta::assert_snapshot!(format!("run__{name}"), stdout);
        }
    }
}
