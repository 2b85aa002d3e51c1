//! The distributed runtime against the single-process engine: every example and a suite of
//! join, group, sort and union pipelines on 1,000,000 rows give the same rows with 1, 2, 4
//! and 8 worker processes over each channel; killed workers are survived; a permanent failure
//! ends with a clear error and no partial output.

mod cluster;

use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use cluster::{
    SHUFFLE, big_matches, big_program, clear_outputs, examples_match, flowc, on_1_2_4_8_functions,
    run_ok, saved,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

fn on_each_channel() -> Vec<Vec<String>> {
    let mut variants = on_1_2_4_8_functions(&["--channel", "direct"]);
    variants.extend(on_1_2_4_8_functions(&["--channel", "storage"]));
    variants
}

#[test]
fn every_example_gives_the_same_rows_on_workers_over_each_channel() {
    examples_match(&on_each_channel(), &[]);
}

#[test]
fn a_million_rows_join_group_sort_and_union_match_the_single_process_engine() {
    big_matches(&on_each_channel(), &[]);
}

/// Parquet scans take the dynamic filters of joins, which must not make a task wait for
/// partitions other processes run.
#[test]
fn joins_over_parquet_give_the_same_rows_on_workers() {
    let (dir, p) = big_program(
        "let facts = load \"facts.csv\"\nlet dims = load \"dims.csv\"\n\
         save facts to \"facts.parquet\"\nsave dims to \"dims.parquet\"\n",
    );
    run_ok(&["run", &p], &[], "converting to Parquet");
    let program = dir.path().join("parquet.flow");
    std::fs::write(
        &program,
        SHUFFLE
            .replace("facts.csv", "facts.parquet")
            .replace("dims.csv", "dims.parquet"),
    )
    .unwrap();
    let p = program.to_str().unwrap();
    run_ok(&["run", p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    for flags in on_each_channel() {
        clear_outputs(dir.path());
        let mut args = vec!["run", p];
        args.extend(flags.iter().map(String::as_str));
        run_ok(&args, &[], &flags.join(" "));
        assert_eq!(saved(dir.path(), "joined.csv", true), expected, "{flags:?}");
    }
}

/// Writes `columns` (name and values) to a Parquet file in row groups of `group` rows.
fn write_parquet(path: &std::path::Path, columns: &[(&str, ArrayRef)], group: usize) {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, values)| Field::new(*name, values.data_type().clone(), false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.iter().map(|(_, values)| values.clone()).collect(),
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// TPC-H Q3 in small: a filtered dimension joined to `orders`, and `orders` joined to
/// `lines`, both files written in the order of the join key in many row groups, each task
/// reading its share of the row groups of each scan.
#[test]
fn a_join_of_parquet_files_clustered_on_its_key_matches_on_workers() {
    let dir = tempfile::tempdir().unwrap();
    let segments = 1000i64;
    write_parquet(
        &dir.path().join("segments.parquet"),
        &[
            (
                "seg_id",
                Arc::new(Int64Array::from_iter_values(0..segments)),
            ),
            (
                "kind",
                Arc::new(StringArray::from_iter_values(
                    (0..segments).map(|s| ["gold", "silver", "bronze"][(s % 3) as usize]),
                )),
            ),
        ],
        segments as usize,
    );
    let orders = 100_000i64;
    write_parquet(
        &dir.path().join("orders.parquet"),
        &[
            ("o_key", Arc::new(Int64Array::from_iter_values(0..orders))),
            (
                "o_seg",
                Arc::new(Int64Array::from_iter_values(
                    (0..orders).map(|o| (o * 7919) % segments),
                )),
            ),
            (
                "o_day",
                Arc::new(Int64Array::from_iter_values(
                    (0..orders).map(|o| (o * 31) % 1000),
                )),
            ),
        ],
        4_000,
    );
    // Between none and eleven lines per order, some orders without any.
    let keys: Vec<i64> = (0..orders)
        .flat_map(|o| std::iter::repeat_n(o, ((o * 13) % 12) as usize))
        .collect();
    let n = keys.len() as i64;
    write_parquet(
        &dir.path().join("lines.parquet"),
        &[
            ("l_key", Arc::new(Int64Array::from(keys))),
            (
                "l_price",
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| (i * 37) % 10_007),
                )),
            ),
            (
                "l_day",
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|i| (i * 17) % 1000),
                )),
            ),
        ],
        10_000,
    );
    let program = dir.path().join("q3.flow");
    std::fs::write(
        &program,
        r#"let segments = load "segments.parquet"
let orders = load "orders.parquet"
let lines = load "lines.parquet"

let revenue = segments
  | filter kind == "gold"
  | join orders on segments.seg_id == orders.o_seg
  | filter o_day < 500
  | join lines on orders.o_key == lines.l_key
  | filter l_day > 300
  | group o_key, o_day { revenue = sum(l_price), n = count() }
save revenue to "out/revenue.csv"
"#,
    )
    .unwrap();
    let p = program.to_str().unwrap();
    run_ok(&["run", p], &[], "one process");
    let expected = saved(dir.path(), "revenue.csv", false);
    assert!(expected.len() > 10_000, "{} rows", expected.len());
    for flags in on_each_channel() {
        clear_outputs(dir.path());
        let mut args = vec!["run", p, "-vv"];
        args.extend(flags.iter().map(String::as_str));
        run_ok(&args, &[], &flags.join(" "));
        assert_eq!(
            saved(dir.path(), "revenue.csv", false),
            expected,
            "{flags:?}"
        );
    }
}

#[test]
fn compressed_channels_give_the_same_rows() {
    let variants: Vec<Vec<String>> = ["lz4", "zstd"]
        .iter()
        .flat_map(|c| {
            ["direct", "storage"].map(|channel| {
                ["--workers", "2", "--channel", channel, "--compression", c]
                    .map(String::from)
                    .to_vec()
            })
        })
        .collect();
    big_matches(&variants, &[]);
}

/// The million facts' top thousand joined and grouped: the per-task top thousands are
/// gathered into the stage that joins them (with the merge of [`SHUFFLE`]'s sort run by the
/// coordinator, it has no stage of that role).
const GATHER: &str = r#"
let facts = load "facts.csv"
let dims = load "dims.csv"
let joined = facts | sort value desc, id | take 1000 | join dims on key
  | group name { n = count(), total = sum(value) } | sort name
save joined to "out/joined.csv"
"#;

#[test]
fn a_worker_killed_mid_shuffle_gather_or_save_is_survived() {
    let (dir, shuffle) = big_program(SHUFFLE);
    let gather = dir.path().join("gather.flow");
    std::fs::write(&gather, GATHER).unwrap();
    let gather = gather.to_str().unwrap();
    let answer = |p: &str| {
        clear_outputs(dir.path());
        run_ok(&["run", p], &[], "one process");
        saved(dir.path(), "joined.csv", true)
    };
    let (by_shuffle, by_gather) = (answer(&shuffle), answer(gather));
    for (fault, p, expected) in [
        ("kill@shuffle", shuffle.as_str(), &by_shuffle),
        ("kill@gather", gather, &by_gather),
        ("kill@last", shuffle.as_str(), &by_shuffle),
    ] {
        for channel in ["direct", "storage"] {
            clear_outputs(dir.path());
            let what = format!("{fault} over {channel}");
            let report = dir.path().join("faults.json");
            let args = [
                "run",
                p,
                "--workers",
                "2",
                "--channel",
                channel,
                "--report",
                report.to_str().unwrap(),
            ];
            run_ok(&args, &[("FLOW_FAULTS", fault)], &what);
            assert_eq!(&saved(dir.path(), "joined.csv", true), expected, "{what}");
            // The fault must have struck, or the run proves nothing.
            let report: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
            let died = report["tasks"].as_array().unwrap().iter().any(|t| {
                t["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("died while running it"))
            });
            assert!(died, "{what}: no worker died: {report}");
        }
    }
}

#[test]
fn a_permanent_failure_is_a_clear_error_and_leaves_no_output() {
    let (dir, p) = big_program(SHUFFLE);
    let store = dir.path().join("store");
    let args = [
        "run",
        &p,
        "--workers",
        "2",
        "--store",
        store.to_str().unwrap(),
    ];
    let run = flowc(&args, &[("FLOW_FAULTS", "fail@shuffle")]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed 4 times"), "{stderr}");
    assert!(stderr.contains("injected failure"), "{stderr}");
    assert_eq!(
        walk(&dir.path().join("out")),
        no_files(),
        "partial output left"
    );
    assert_eq!(walk(&store), no_files(), "temporary objects left");
}

#[test]
fn a_worker_without_the_run_secret_is_refused() {
    use flow_runtime::distributed::auth::{SECRET_ENV, Secret};
    use flow_runtime::distributed::channels::{Fetch, StreamEnd};
    use flow_runtime::distributed::protocol::{ToCoordinator, read_frame, receive, send};
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    // Without a secret, `flowc worker` does not start.
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

    // A real worker, with this test as its coordinator: its data port serves members of the
    // run and gives a stranger nothing but the nonce.
    let secret = Secret::generate().unwrap();
    let control = TcpListener::bind("127.0.0.1:0").unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["worker", "--connect"])
        .arg(control.local_addr().unwrap().to_string())
        .args(["--store", store.path().to_str().unwrap(), "--prefix", "x"])
        .env(SECRET_ENV, secret.to_hex())
        .spawn()
        .unwrap();
    let (mut conn, _) = control.accept().unwrap();
    secret
        .challenge(&mut conn)
        .expect("the worker proves it belongs to the run");
    let ToCoordinator::Hello { data_addr, .. } = receive(&mut conn).unwrap() else {
        panic!("the worker did not say hello")
    };
    let fetch = || Fetch {
        key: "j0/s0/t0/a0".into(),
        bucket: 0,
        wait_ms: 0,
    };
    let mut member = TcpStream::connect(&data_addr).unwrap();
    secret.answer(&mut member).unwrap();
    send(&mut member, &fetch()).unwrap();
    // A member is answered: no chunks, and the end says the worker does not hold the key.
    assert!(read_frame(&mut member).unwrap().is_empty());
    let end: StreamEnd = receive(&mut member).unwrap();
    assert_eq!(end, StreamEnd::Missing, "a member is answered");

    let mut stranger = TcpStream::connect(&data_addr).unwrap();
    stranger
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    Secret::generate().unwrap().answer(&mut stranger).unwrap();
    let _ = send(&mut stranger, &fetch());
    let mut rest = Vec::new();
    let read = stranger.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "a stranger received {} bytes ({read:?})",
        rest.len()
    );
    assert!(
        read.is_ok()
            || read.as_ref().is_err_and(|e| !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )),
        "the worker held a stranger's connection open: {read:?}"
    );
    drop(conn);
    assert!(
        worker.wait().unwrap().success(),
        "the worker ends with its run"
    );
}

#[test]
fn a_report_shows_every_task_the_bytes_per_channel_and_predictions() {
    let (dir, p) = big_program(SHUFFLE);
    let json = dir.path().join("run.json");
    let args = [
        "run",
        &p,
        "--workers",
        "2",
        "--report",
        json.to_str().unwrap(),
    ];
    run_ok(&args, &[("FLOW_FAULTS", "kill@shuffle")], "report");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["workers"], 2);
    assert_eq!(report["channel"], "as planned");
    assert!(report["predicted_s"].as_f64().unwrap() > 0.0);
    assert!(report["measured_s"].as_f64().unwrap() > 0.0);
    assert!(report["bytes_per_channel"]["direct"].as_u64().unwrap() > 0);
    let tasks = report["tasks"].as_array().unwrap();
    let failed = |t: &serde_json::Value| !t["error"].is_null();
    assert!(tasks.iter().any(failed), "the killed attempt is reported");
    for t in tasks {
        assert!(t["start_s"].as_f64().unwrap() <= t["end_s"].as_f64().unwrap());
    }
    let stages = report["stages"].as_array().unwrap();
    assert!(stages.len() >= 3, "scans, join/group, sort: {stages:?}");
    // Stages fused into another's task, or run by the coordinator, have no tasks of their own.
    for s in stages.iter().filter(|s| s["runs_in"] == "workers") {
        let of_stage = |t: &&serde_json::Value| t["id"]["stage"] == s["stage"] && !failed(t);
        let done = tasks.iter().filter(of_stage).count() as u64;
        assert!(
            done >= s["tasks"].as_u64().unwrap(),
            "every task of {s} succeeded"
        );
    }
    assert!(
        stages.iter().any(|s| s["predicted_s"].as_f64().is_some()),
        "some stage is paired with the planner's: {stages:?}"
    );
    // The killed attempt was run again: a retry, and only where a task failed.
    assert!(stages.iter().any(|s| s["retries"].as_u64().unwrap() >= 1));
    for s in stages.iter().filter(|s| s["runs_in"] == "workers") {
        assert_eq!(
            s["retries"].as_u64().unwrap(),
            s["attempts"].as_u64().unwrap() - s["tasks"].as_u64().unwrap()
        );
    }

    let html = dir.path().join("run.html");
    let args = [
        "run",
        &p,
        "--workers",
        "2",
        "--report",
        html.to_str().unwrap(),
    ];
    run_ok(&args, &[], "HTML report");
    let page = std::fs::read_to_string(&html).unwrap();
    for part in [
        "<svg",
        "function 0",
        "function 1",
        "Bytes per channel",
        "predicted",
        "start-up",
        "<th>retries</th>",
    ] {
        assert!(page.contains(part), "{part} missing from the HTML report");
    }

    let bad = flowc(&["run", &p, "--report", "run.txt"], &[]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("PATH.json"));
}

/// Processes whose command line mentions `needle` (the workers of one run name its store).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle) && c.contains(" worker "))
        .collect()
}

#[test]
fn ctrl_c_stops_every_worker_and_leaves_nothing_behind() {
    let (dir, program) = big_program(SHUFFLE);
    let store = dir.path().join("store");
    let store_arg = store.to_str().unwrap().to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["run", &program, "--workers", "2", "--channel", "storage"])
        .args(["--store", &store_arg])
        .env("FLOW_FAULTS", "stall@last")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the shuffle's objects are in the store: the run is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while walk(&store).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never wrote to its store"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(processes_mentioning(&store_arg).len(), 2, "two workers run");
    cluster::interrupt(child);
    assert_eq!(walk(&store), no_files(), "temporary objects left");
    assert_eq!(
        walk(&dir.path().join("out")),
        no_files(),
        "partial output left"
    );
    assert_eq!(
        processes_mentioning(&store_arg),
        Vec::<String>::new(),
        "workers left running"
    );
}

#[test]
fn a_finished_run_leaves_no_worker_running() {
    // The run does not wait for its idle workers to be torn down; it must still have stopped
    // them, not left them to wait for a coordinator that is gone.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "k,v\n1,2\n1,3\n2,4\n").unwrap();
    let program = dir.path().join("p.flow");
    std::fs::write(
        &program,
        "show load \"t.csv\" | group k { n = count() } | sort k\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    let store_arg = store.to_str().unwrap().to_string();
    let program = program.to_str().unwrap().to_string();
    run_ok(
        &["run", &program, "--workers", "3", "--store", &store_arg],
        &[],
        "a small run",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(&store_arg).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "workers left running: {:?}",
            processes_mentioning(&store_arg)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(walk(&store), no_files(), "temporary objects left");
}

fn no_files() -> Vec<std::path::PathBuf> {
    Vec::new()
}

/// Every file under `root`.
fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                pending.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files
}

/// Without `--channel`, each stage's output moves over the channel the plan chose for it:
/// with the built-in `local` profile everything goes direct; with a profile whose direct
/// channel is slow, the exchanges between functions go through storage.
#[test]
fn each_exchange_takes_the_channel_the_plan_chose() {
    let local =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../planner/profiles/local.toml");
    let text = std::fs::read_to_string(&local).unwrap();
    let slow: String = text
        .lines()
        .map(|l| {
            if l.starts_with("bandwidth_by_memory") {
                "bandwidth_by_memory = [[128, 1.0e3]]".to_string()
            } else if l.starts_with("flat_fanout_bytes_per_s") {
                "flat_fanout_bytes_per_s = 1.0e3".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (dir, p) = big_program(SHUFFLE);
    let slow_direct = dir.path().join("slow-direct.toml");
    std::fs::write(&slow_direct, slow).unwrap();
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    for (profile, storage_expected) in [(local.as_path(), false), (slow_direct.as_path(), true)] {
        clear_outputs(dir.path());
        let report = dir.path().join("run.json");
        let args = [
            "run",
            &p,
            "--workers",
            "2",
            "--profile",
            profile.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        run_ok(&args, &[], &profile.display().to_string());
        assert_eq!(saved(dir.path(), "joined.csv", true), expected);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(report["channel"], "as planned");
        let moved = &report["bytes_per_channel"];
        assert_eq!(
            moved["storage"].as_u64().unwrap_or(0) > 0,
            storage_expected,
            "{report}"
        );
        assert!(
            moved["direct"].as_u64().unwrap_or(0) > 0,
            "the last stage comes back direct"
        );
    }
}

/// Every review's prediction and probability from the sentiment example's model, scored by
/// `workers` worker processes (0: one process), and the run's report.
fn sentiment_scores(workers: usize) -> (Vec<String>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scores.csv");
    // Cut at 512 tokens the reviews are over a second of scoring, so the fan-out is
    // worth its start-up on every worker count tried.
    let p = &cluster::sentiment_program(
        dir.path(),
        512,
        " batch 8",
        "  | select id, prediction, probability\n  | sort id\n",
    );
    let n = workers.to_string();
    let report = dir.path().join("run.json");
    let mut args = vec!["run", p, "--report", report.to_str().unwrap()];
    if workers > 0 {
        args.extend(["--workers", &n]);
    }
    run_ok(&args, &[], &format!("sentiment on {workers} workers"));
    let lines = std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (lines, report)
}

/// The tasks of the stage that ran on the most functions: rows each produced and the CPU
/// seconds each spent.
fn widest_stage_tasks(report: &serde_json::Value) -> Vec<(u64, f64)> {
    let stages = report["stages"].as_array().unwrap();
    let widest = stages
        .iter()
        .max_by_key(|s| s["tasks"].as_u64().unwrap())
        .unwrap();
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"]["stage"] == widest["stage"] && t["error"].is_null())
        .map(|t| (t["rows"].as_u64().unwrap(), t["cpu_s"].as_f64().unwrap()))
        .collect()
}

/// Transformer inference fans out: the tokenizer and the model travel with the plan, and
/// each review's scores do not depend on which worker or batch scored it.
#[test]
fn transformer_predictions_are_the_same_on_1_2_and_4_workers() {
    let (single, _) = sentiment_scores(0);
    assert_eq!(single.len(), 301, "a header and 300 reviews");
    for workers in [1, 2, 4] {
        let (got, report) = sentiment_scores(workers);
        if workers > 1 {
            // The 300 reviews are one record batch; still every function scores a share.
            let tasks = widest_stage_tasks(&report);
            assert!(tasks.len() > 1, "{workers} workers: {tasks:?}");
            assert!(
                tasks.iter().all(|(rows, _)| *rows > 0),
                "{workers} workers: every function scores reviews: {tasks:?}"
            );
            let cpu: f64 = tasks.iter().map(|(_, cpu)| cpu).sum();
            assert!(cpu > 0.0, "the workers' CPU time is reported: {tasks:?}");
        }
        assert_eq!(got.len(), single.len());
        for (a, b) in got.iter().zip(&single) {
            let (a, b): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
            assert_eq!(a[..2], b[..2], "{workers} workers: id and prediction");
            if let (Ok(x), Ok(y)) = (a[2].parse::<f64>(), b[2].parse::<f64>()) {
                assert!(
                    (x - y).abs() < 1e-6,
                    "{workers} workers, review {}: {x} vs {y}",
                    a[0]
                );
            }
        }
    }
}
