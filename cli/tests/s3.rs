//! Storage hops through S3: the distributed differential tests again, with the run store in a
//! bucket of a local S3-compatible server (moto on loopback), endpoint and credentials taken
//! from the standard AWS variables. A failed run leaves no object behind in the bucket.

mod cluster;

use cluster::{
    S3Server, SHUFFLE, assert_failed_cleanly, big_matches, big_program, clear_outputs,
    examples_copy, examples_match, flowc, on_1_2_4_8_functions, run_ok, saved,
};

/// The server's variables as `flowc` takes them, plus `more`.
fn env<'a>(
    s3: &'a [(&'static str, String)],
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    s3.iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(more.iter().copied())
        .collect()
}

#[test]
fn examples_and_a_million_rows_match_the_single_process_engine_through_s3() {
    let s3 = S3Server::start("flow-test");
    let vars = s3.env();
    let store = format!("s3://{}/runs", s3.bucket);
    let variants = on_1_2_4_8_functions(&["--channel", "storage", "--store", &store]);
    examples_match(&variants, &env(&vars, &[]));
    big_matches(&variants, &env(&vars, &[]));
    assert_eq!(
        s3.keys(),
        Vec::<String>::new(),
        "runs leave no objects behind"
    );
}

#[test]
fn a_killed_worker_and_a_permanent_failure_through_s3() {
    let s3 = S3Server::start("flow-faults");
    let vars = s3.env();
    let store = format!("s3://{}/runs", s3.bucket);
    let (dir, p) = big_program(SHUFFLE);
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    clear_outputs(dir.path());

    let args = [
        "run",
        &p,
        "--workers",
        "2",
        "--channel",
        "storage",
        "--store",
        &store,
    ];
    run_ok(
        &args,
        &env(&vars, &[("FLOW_FAULTS", "kill@shuffle")]),
        "kill@shuffle",
    );
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
    clear_outputs(dir.path());

    let run = flowc(&args, &env(&vars, &[("FLOW_FAULTS", "fail@shuffle")]));
    assert_failed_cleanly(&run, dir.path(), s3.keys());
}

#[test]
fn a_store_url_without_a_bucket_or_with_an_unknown_scheme_is_refused() {
    let (_dir, files) = examples_copy();
    let p = files[0].to_str().unwrap();
    for (store, says) in [
        ("s3://", "names no bucket"),
        ("ftp://host/x", "a run store is a folder"),
    ] {
        let run = flowc(&["run", p, "--workers", "2", "--store", store], &[]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{store}: {stderr}");
        assert!(stderr.contains(says), "{store}: {stderr}");
    }
}

/// `flowc calibrate --store` measures the storage figures in the store it names (here a
/// bucket on moto) and leaves nothing there; a store it cannot reach is a user error naming
/// it, and no profile is written.
#[test]
fn calibrate_measures_the_store_it_is_given_and_leaves_nothing_there() {
    let s3 = S3Server::start("flow-calibrate");
    let vars = s3.env();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("moto.toml");
    let store = format!("s3://{}/runs", s3.bucket);
    let args = [
        "calibrate",
        "--quick",
        "--store",
        &store,
        "--output",
        output.to_str().unwrap(),
    ];
    let run = run_ok(&args, &env(&vars, &[]), "calibrate against moto");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("storage latency (the store named, per request)"),
        "{stdout}"
    );
    let profile = std::fs::read_to_string(&output).unwrap();
    let storage = &profile[profile.find("[storage]").expect("a storage section")..];
    let latency: f64 = storage
        .lines()
        .find_map(|l| l.strip_prefix("latency_s = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the storage latency");
    // A request to an HTTP server costs more than one to a local folder.
    assert!(latency > 1e-4 && latency < 1.0, "{latency}");
    assert_eq!(
        s3.keys(),
        Vec::<String>::new(),
        "calibration leaves nothing"
    );

    let missing = dir.path().join("missing.toml");
    let args = [
        "calibrate",
        "--quick",
        "--store",
        "s3://no-such-bucket/runs",
        "--output",
        missing.to_str().unwrap(),
    ];
    let run = flowc(&args, &env(&vars, &[]));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("s3://no-such-bucket/runs"), "{stderr}");
    assert!(!missing.exists(), "no profile written");
}
