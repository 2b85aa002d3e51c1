//! Every `examples/*.flow` is checked, formatted and run end to end; each must succeed, and
//! its printed tables are snapshotted (models are seeded, so their metrics are too), as is
//! the DAG `flowc explain` prints for each.

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
        assert_eq!(run.status.code(), Some(0), "{name}: {stderr}");
        let stdout = String::from_utf8_lossy(&run.stdout).replace(env!("CARGO_MANIFEST_DIR"), "");
        insta::assert_snapshot!(format!("run__{name}"), stdout);
    }
}

/// `flowc plan` with no calibrated profile in the way, so plans depend only on the repo.
fn plan(args: &[&str]) -> std::process::Output {
    let config = std::env::temp_dir().join(format!("flow-plan-config-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_flowc"))
        .arg("plan")
        .args(args)
        .env("NO_COLOR", "1")
        .env("XDG_CONFIG_HOME", config)
        .output()
        .unwrap()
}

#[test]
fn every_example_plans_on_both_targets() {
    for path in examples() {
        let p = path.to_str().unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        // On Lambda without a rendezvous host every exchange goes through storage; with one
        // (an address that is never contacted: planning only prices it) functions may pair.
        for (target, more, suffix) in [
            ("local", &[][..], ""),
            ("lambda", &[][..], ""),
            (
                "lambda",
                &["--rendezvous", "203.0.113.7:7000"][..],
                "_rendezvous",
            ),
        ] {
            let mut args = vec![p, "--target", target];
            args.extend(more);
            let out = plan(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(0), "{name} on {target}: {stderr}");
            insta::assert_snapshot!(
                format!("plan__{name}__{target}{suffix}"),
                String::from_utf8_lossy(&out.stdout)
            );
            args.extend(["--format", "json"]);
            let json = plan(&args);
            let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
            for key in [
                "predicted_s",
                "predicted_usd",
                "stages",
                "exchanges",
                "version",
            ] {
                assert!(value.get(key).is_some(), "{name}: JSON plan lacks `{key}`");
            }
            for x in value["exchanges"].as_array().unwrap() {
                for key in [
                    "from",
                    "to",
                    "pattern",
                    "channel",
                    "bytes",
                    "predicted_s",
                    "reason",
                ] {
                    assert!(x.get(key).is_some(), "{name}: exchange lacks `{key}`");
                }
            }
        }
    }
}

#[test]
fn plan_prints_dot_every_rule_and_sweeps() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/analytics.flow");
    let dot = plan(&[example, "--format", "dot"]);
    let dot = String::from_utf8_lossy(&dot.stdout);
    assert!(
        dot.starts_with("digraph plan {") && dot.contains("->"),
        "{dot}"
    );
    let verbose = plan(&[example, "--verbose"]);
    let verbose = String::from_utf8_lossy(&verbose.stdout);
    for rule in flow_planner::rules::RULES {
        assert!(
            verbose.contains(&format!("=== after {} ===", rule.name())),
            "--verbose misses {}",
            rule.name()
        );
    }
    let svg = std::env::temp_dir().join(format!("flow-sweep-{}.svg", std::process::id()));
    let sweep = plan(&[
        example,
        "--target",
        "lambda",
        "--sweep",
        "workers=1..8",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&sweep.stdout);
    assert_eq!(sweep.status.code(), Some(0), "{table}");
    assert!(table.contains("frontier") && table.contains('*'), "{table}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.contains("<svg") && chart.contains("the plan flowc plan chooses by itself"));
    // Every swept value is labelled, alone or with the values whose points it shares.
    let labelled: Vec<&str> = chart
        .split("workers=")
        .skip(1)
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_digit() || c == ',')).next())
        .flat_map(|l| l.split(','))
        .collect();
    for value in ["1", "2", "4", "8"] {
        assert!(
            labelled.contains(&value),
            "{value} unlabelled: {labelled:?}"
        );
    }
    let _ = std::fs::remove_file(svg);
    let bad = plan(&[example, "--sweep", "cpus=1..4"]);
    assert_eq!(bad.status.code(), Some(2));
}
