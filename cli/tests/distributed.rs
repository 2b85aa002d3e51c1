//! The distributed runtime against the single-process engine: every example and a suite of
//! join, group, sort and union pipelines on 1,000,000 rows give the same rows with 1, 2, 4
//! and 8 worker processes over each channel; killed workers are survived; a permanent failure
//! ends with a clear error and no partial output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn flowc(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_flowc"));
    c.args(args).env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The examples (programs and data) in a folder of their own, so their `save`s do not race
/// with the examples test.
fn examples_copy() -> (tempfile::TempDir, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    files.sort();
    (dir, files)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            if e.file_name() != "out" {
                copy_dir(&e.path(), &target);
            }
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Output lines in a canonical order (results are compared order-insensitively; programs
/// that sort are still checked, as every line must be there).
fn lines(out: &Output) -> Vec<String> {
    let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    l.sort();
    l
}

fn uses_ml(source: &str) -> bool {
    ["| train ", "| infer ", "| evaluate "]
        .iter()
        .any(|s| source.contains(s))
}

#[test]
fn every_example_gives_the_same_rows_on_workers_over_each_channel() {
    let (_dir, files) = examples_copy();
    for path in files {
        if uses_ml(&std::fs::read_to_string(&path).unwrap()) {
            continue;
        }
        let p = path.to_str().unwrap();
        let single = flowc(&["run", p], &[]);
        assert_eq!(single.status.code(), Some(0), "{p}");
        for workers in ["1", "2", "4", "8"] {
            for channel in ["direct", "storage"] {
                let run = flowc(&["run", p, "--workers", workers, "--channel", channel], &[]);
                assert_eq!(
                    run.status.code(),
                    Some(0),
                    "{p} on {workers} workers over {channel}: {}",
                    String::from_utf8_lossy(&run.stderr)
                );
                assert_eq!(
                    lines(&run),
                    lines(&single),
                    "{p} on {workers} workers over {channel}"
                );
            }
        }
    }
}

/// A million facts over a thousand keys, and the thousand keys' names.
fn big_data(dir: &Path) {
    use std::io::Write;
    let mut facts = std::io::BufWriter::new(std::fs::File::create(dir.join("facts.csv")).unwrap());
    writeln!(facts, "id,key,value").unwrap();
    for id in 0..1_000_000u64 {
        writeln!(facts, "{id},{},{}", (id * 7919) % 1000, (id * 31) % 10007).unwrap();
    }
    facts.flush().unwrap();
    let mut dims = std::fs::File::create(dir.join("dims.csv")).unwrap();
    writeln!(dims, "key,name").unwrap();
    for key in 0..1000 {
        writeln!(dims, "{key},name{}", key % 37).unwrap();
    }
}

const BIG: &str = r#"
let facts = load "facts.csv"
let dims = load "dims.csv"

let joined = facts | join dims on key | group name { n = count(), total = sum(value) }
save joined to "out/joined.csv"

let top = facts | filter value > 9000 | sort value desc, id | take 1000
save top to "out/top.csv"

let both = (facts | filter key < 10 | select id, key)
  | union (facts | filter key >= 990 | select id, key)
  | group key { n = count(), low = min(id) }
save both to "out/both.csv"
"#;

fn saved(dir: &Path, name: &str, sorted: bool) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("out").join(name)).unwrap();
    let mut l: Vec<String> = text.lines().map(str::to_string).collect();
    if !sorted {
        l.sort();
    }
    l
}

/// The three files `BIG` saves; only `top.csv` is sorted by the program.
fn big_outputs(dir: &Path) -> Vec<Vec<String>> {
    [
        ("joined.csv", false),
        ("top.csv", true),
        ("both.csv", false),
    ]
    .iter()
    .map(|(n, s)| saved(dir, n, *s))
    .collect()
}

#[test]
fn a_million_rows_join_group_sort_and_union_match_the_single_process_engine() {
    let dir = tempfile::tempdir().unwrap();
    big_data(dir.path());
    let program = dir.path().join("big.flow");
    std::fs::write(&program, BIG).unwrap();
    let p = program.to_str().unwrap();
    let single = flowc(&["run", p], &[]);
    assert_eq!(
        single.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    let expected = big_outputs(dir.path());
    assert_eq!(expected[1].len(), 1001, "header and 1000 rows");
    for workers in ["1", "2", "4", "8"] {
        for channel in ["direct", "storage"] {
            std::fs::remove_dir_all(dir.path().join("out")).unwrap();
            let run = flowc(&["run", p, "--workers", workers, "--channel", channel], &[]);
            assert_eq!(
                run.status.code(),
                Some(0),
                "{workers} workers over {channel}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            assert_eq!(
                big_outputs(dir.path()),
                expected,
                "{workers} workers over {channel}"
            );
        }
    }
}

const SHUFFLE: &str = r#"
let facts = load "facts.csv"
let dims = load "dims.csv"
let joined = facts | join dims on key | group name { n = count(), total = sum(value) } | sort name
save joined to "out/joined.csv"
"#;

#[test]
fn a_worker_killed_mid_shuffle_gather_or_save_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    big_data(dir.path());
    let program = dir.path().join("shuffle.flow");
    std::fs::write(&program, SHUFFLE).unwrap();
    let p = program.to_str().unwrap();
    let single = flowc(&["run", p], &[]);
    assert_eq!(single.status.code(), Some(0));
    let expected = saved(dir.path(), "joined.csv", true);
    for fault in ["kill@shuffle", "kill@gather", "kill@last"] {
        for channel in ["direct", "storage"] {
            std::fs::remove_dir_all(dir.path().join("out")).unwrap();
            let run = flowc(
                &["run", p, "--workers", "2", "--channel", channel],
                &[("FLOW_FAULTS", fault)],
            );
            assert_eq!(
                run.status.code(),
                Some(0),
                "{fault} over {channel}: {}",
                String::from_utf8_lossy(&run.stderr)
            );
            assert_eq!(
                saved(dir.path(), "joined.csv", true),
                expected,
                "{fault} over {channel}"
            );
        }
    }
}

#[test]
fn a_permanent_failure_is_a_clear_error_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    big_data(dir.path());
    let program = dir.path().join("shuffle.flow");
    std::fs::write(&program, SHUFFLE).unwrap();
    let p = program.to_str().unwrap();
    let store = dir.path().join("store");
    let run = flowc(
        &[
            "run",
            p,
            "--workers",
            "2",
            "--store",
            store.to_str().unwrap(),
        ],
        &[("FLOW_FAULTS", "fail@shuffle")],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed 4 times"), "{stderr}");
    assert!(stderr.contains("injected failure"), "{stderr}");
    let out = dir.path().join("out");
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "partial output left behind: {left:?}");
    let objects: Vec<_> = std::fs::read_dir(&store)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        objects.is_empty(),
        "temporary objects left behind: {objects:?}"
    );
}

#[test]
fn a_worker_without_the_run_secret_is_refused() {
    let run = flowc(
        &[
            "worker",
            "--connect",
            "127.0.0.1:9",
            "--store",
            "/tmp",
            "--prefix",
            "x",
        ],
        &[],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("FLOW_RUN_SECRET"));
}
