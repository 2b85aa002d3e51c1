//! `flowc run --target lambda` against Lambda and S3 emulated on loopback
//! (`scripts/lambda-emulator.py`: moto, cargo-lambda's Invoke and Runtime APIs, `flowc`
//! processes as function instances): the same rows as the single-process engine, requests
//! that are not the deployment's refused, and the faults Lambda brings — an instance killed
//! mid-task, a task failing on every attempt, throttling — survived or reported cleanly.

mod cluster;

use cluster::{
    LambdaEmulator, SHUFFLE, assert_failed_cleanly, big_matches, big_program, clear_outputs,
    examples_match, flowc, http_request, on_1_2_4_8_functions, run_ok, saved,
};
use flow_lambda::request::{Request, Run};
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::protocol::{AttemptId, ToWorker};
use std::time::{Duration, SystemTime};

#[test]
fn examples_and_a_million_rows_match_the_single_process_engine_on_lambda() {
    let lambda = LambdaEmulator::start(&[], &[]);
    let store = lambda.store();
    let variants = on_1_2_4_8_functions(&["--target", "lambda", "--store", &store]);
    examples_match(&variants, &lambda.vars(&[]));
    big_matches(&variants, &lambda.vars(&[]));
    assert_eq!(
        lambda.keys(),
        Vec::<String>::new(),
        "runs leave no objects behind"
    );
}

/// Invokes the 1,769 MB function with `payload` as it is; the whole HTTP reply.
fn invoke(lambda: &LambdaEmulator, payload: &str) -> String {
    http_request(
        lambda.var("AWS_ENDPOINT_URL_LAMBDA"),
        "POST",
        "/2015-03-31/functions/flowc-1769mb/invocations",
        payload,
    )
    .unwrap()
}

#[test]
fn a_request_not_signed_with_the_deployment_key_is_refused() {
    let lambda = LambdaEmulator::start(&[], &[]);
    let task = || {
        Request::new(
            Run {
                store: lambda.store(),
                prefix: "run-forged".into(),
                compression: "none".into(),
                secret: Secret::generate().unwrap().to_hex(),
            },
            ToWorker::Task {
                id: AttemptId {
                    job: 0,
                    stage: 0,
                    task: 0,
                    attempt: 0,
                },
                outputs: Vec::new(),
            },
            &[],
            SystemTime::now() + Duration::from_secs(60),
        )
    };
    let stranger = Secret::generate().unwrap();
    let forged = String::from_utf8(task().sign(&stranger).unwrap()).unwrap();
    let key = Secret::from_hex(lambda.var("FLOW_LAMBDA_KEY")).unwrap();
    let signed = String::from_utf8(task().sign(&key).unwrap()).unwrap();
    let altered = signed.replace("run-forged", "run-altered");
    for (what, payload) in [
        ("signed with another key", forged.as_str()),
        ("altered after signing", altered.as_str()),
        ("unsigned", r#"{"message": "Shutdown"}"#),
    ] {
        let reply = invoke(&lambda, payload);
        assert!(
            reply.to_lowercase().contains("x-amz-function-error"),
            "{what}: {reply}"
        );
        assert!(!reply.contains("\"Done\""), "{what}: {reply}");
    }
    // The deployment's own request is answered: a task with no outputs is done at once.
    let reply = invoke(&lambda, &signed);
    assert!(reply.contains("\"Done\""), "{reply}");
}

#[test]
fn a_killed_instance_is_retried_after_its_deadline_and_a_permanent_failure_leaves_nothing() {
    let (dir, p) = big_program(SHUFFLE);
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    clear_outputs(dir.path());

    let killed = LambdaEmulator::start(&[], &[("FLOW_FAULTS", "kill@shuffle")]);
    let store = killed.store();
    let args = [
        "run",
        &p,
        "--target",
        "lambda",
        "--store",
        &store,
        "--workers",
        "2",
        "--task-timeout",
        "5",
    ];
    run_ok(&args, &killed.vars(&[]), "kill@shuffle");
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
    clear_outputs(dir.path());
    drop(killed);

    let failing = LambdaEmulator::start(&[], &[("FLOW_FAULTS", "fail@shuffle")]);
    let store = failing.store();
    let args = ["run", &p, "--target", "lambda", "--store", &store];
    let run = flowc(&args, &failing.vars(&[]));
    assert_failed_cleanly(&run, dir.path(), failing.keys());
}

#[test]
fn throttled_invocations_are_retried_with_backoff_and_counted() {
    let (dir, p) = big_program(SHUFFLE);
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    clear_outputs(dir.path());
    let lambda = LambdaEmulator::start(&["--throttle-every", "2"], &[]);
    let store = lambda.store();
    let report = dir.path().join("run.json");
    let args = [
        "run",
        &p,
        "--target",
        "lambda",
        "--store",
        &store,
        "--workers",
        "4",
        "--report",
        report.to_str().unwrap(),
    ];
    let run = run_ok(&args, &lambda.vars(&[]), "throttled");
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("throttled") && stderr.contains("retried"),
        "{stderr}"
    );
    // The report counts the throttling and prices each stage as billed, beside the plan.
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(report["throttled"].as_u64().unwrap() > 0, "{report}");
    let ran: Vec<&serde_json::Value> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["attempts"].as_u64().unwrap() > 0)
        .collect();
    assert!(!ran.is_empty(), "{report}");
    // Every exchange goes through S3: its writes and reads are counted and priced.
    let requests = |kind: &str| -> u64 {
        ran.iter()
            .map(|s| s["store_requests"][kind].as_u64().unwrap())
            .sum()
    };
    assert!(requests("puts") > 0 && requests("gets") > 0, "{report}");
    for stage in ran {
        let asked = stage["store_requests"]["puts"].as_u64().unwrap()
            + stage["store_requests"]["gets"].as_u64().unwrap();
        assert_eq!(
            stage["store_usd"].as_f64().unwrap() > 0.0,
            asked > 0,
            "{stage}"
        );
        assert!(stage["measured_usd"].as_f64().unwrap() > 0.0, "{stage}");
        assert!(stage["predicted_usd"].as_f64().is_some(), "{stage}");
        assert!(stage["billed_gb_s"].as_f64().unwrap() > 0.0, "{stage}");
        if cfg!(target_os = "linux") {
            assert!(stage["peak_mb"].as_f64().unwrap() > 1.0, "{stage}");
        }
    }
}

/// Runs `flowc` with only `env` set (and PATH), as on a machine without AWS settings.
fn flowc_alone(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"));
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir().join("flow-no-home"))
        .env("NO_COLOR", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn deploy_creates_changes_nothing_the_second_time_and_updates_changed_code() {
    let lambda = LambdaEmulator::start(&[], &[]);
    let env = lambda.undeployed_vars();
    let role = lambda.var("FLOW_LAMBDA_ROLE").to_string();
    let bucket = lambda.bucket.clone();
    let deploy = |more: &[&str]| {
        let mut args = vec![
            "deploy",
            "--role",
            &role,
            "--bucket",
            &bucket,
            "--memory-mb",
            "1769",
        ];
        args.extend(more);
        flowc_alone(&args, &env)
    };

    let dry = deploy(&["--dry-run"]);
    let (out, err) = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{err}");
    assert!(out.contains("would create flowc-1769mb"), "{out}");

    let first = deploy(&[]);
    let (out, err) = text(&first);
    assert_eq!(first.status.code(), Some(0), "{err}");
    assert!(out.contains("created flowc-1769mb (1769 MB"), "{out}");

    let second = deploy(&[]);
    let (out, err) = text(&second);
    assert_eq!(second.status.code(), Some(0), "{err}");
    assert!(out.contains("flowc-1769mb is up to date"), "{out}");
    assert!(
        !out.contains("created") && !out.contains("updated"),
        "{out}"
    );

    // Other code: a package of its own.
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("bootstrap.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    zip.start_file("bootstrap", zip::write::SimpleFileOptions::default())
        .unwrap();
    std::io::Write::write_all(&mut zip, b"#!/bin/sh\nexec flowc\n").unwrap();
    zip.finish().unwrap();
    let changed = deploy(&["--package", zip_path.to_str().unwrap()]);
    let (out, err) = text(&changed);
    assert_eq!(changed.status.code(), Some(0), "{err}");
    assert!(
        out.contains("updated the code of flowc-1769mb and published version"),
        "{out}"
    );

    // The run finds the deployment (its sizes and key) by listing the functions.
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("p.flow");
    std::fs::write(dir.path().join("t.csv"), "n\n1\n2\n3\n").unwrap();
    std::fs::write(
        &program,
        "let t = load \"t.csv\"\nshow t | derive m = n * 2\n",
    )
    .unwrap();
    let store = lambda.store();
    let run = flowc_alone(
        &[
            "run",
            program.to_str().unwrap(),
            "--target",
            "lambda",
            "--store",
            &store,
        ],
        &env,
    );
    let (out, err) = text(&run);
    assert_eq!(run.status.code(), Some(0), "{err}");
    assert!(out.contains("| 3 | 6 "), "{out}");
}

#[test]
fn deploy_errors_name_the_setting_and_create_nothing() {
    let lambda = LambdaEmulator::start(&[], &[]);
    let env = lambda.undeployed_vars();
    let role = lambda.var("FLOW_LAMBDA_ROLE").to_string();
    let listed = || {
        http_request(
            lambda.var("AWS_ENDPOINT_URL_LAMBDA"),
            "GET",
            "/2015-03-31/functions/",
            "",
        )
        .unwrap()
    };

    let missing_bucket = flowc_alone(
        &["deploy", "--role", &role, "--bucket", "no-such-bucket"],
        &env,
    );
    let (_, err) = text(&missing_bucket);
    assert_eq!(missing_bucket.status.code(), Some(1), "{err}");
    assert!(err.contains("--bucket no-such-bucket"), "{err}");
    assert!(!listed().contains("flowc-"), "nothing created");

    let bad_role = "arn:aws:iam::123456789012:role/no-such-role";
    let refused = flowc_alone(
        &["deploy", "--role", bad_role, "--bucket", &lambda.bucket],
        &env,
    );
    let (_, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("--role {bad_role}")), "{err}");
    assert!(!listed().contains("flowc-"), "nothing created");
    assert_eq!(
        lambda.keys(),
        Vec::<String>::new(),
        "no package left behind"
    );

    let no_credentials: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"))
        .collect();
    let anonymous = flowc_alone(
        &["deploy", "--role", &role, "--bucket", &lambda.bucket],
        &no_credentials,
    );
    let (_, err) = text(&anonymous);
    assert_eq!(anonymous.status.code(), Some(1), "{err}");
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert!(!listed().contains("flowc-"), "nothing created");

    let usage = flowc_alone(
        &[
            "deploy",
            "--role",
            &role,
            "--bucket",
            &lambda.bucket,
            "--memory-mb",
            "64",
        ],
        &env,
    );
    assert_eq!(usage.status.code(), Some(2));
}

/// The `flowc` lines of the README's "Run on AWS Lambda" block, split into words, with
/// `$VAR` taken from `vars`.
fn readme_lambda_commands(vars: &[(&str, &str)]) -> Vec<Vec<String>> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("## Run on AWS Lambda")
        .nth(1)
        .expect("the README has a section \"Run on AWS Lambda\"");
    let block = section
        .split("```sh")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    block
        .lines()
        .filter(|l| l.starts_with("flowc "))
        .map(|line| {
            let mut line = line.to_string();
            for (k, v) in vars {
                line = line.replace(&format!("${k}"), v);
            }
            line.split_whitespace()
                .skip(1)
                .map(|w| w.trim_matches('"').to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_readmes_lambda_commands_work_against_the_emulators() {
    let lambda = LambdaEmulator::start(&[], &[]);
    let env = lambda.undeployed_vars();
    let commands = readme_lambda_commands(&env);
    let names: Vec<&str> = commands.iter().map(|c| c[0].as_str()).collect();
    assert_eq!(names, ["deploy", "plan", "run"], "{commands:?}");
    // The examples' paths are relative to the repository; they run in a copy of its examples.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    cluster::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"),
        &root.join("examples"),
    );
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"));
        c.args(&args).current_dir(root).env("NO_COLOR", "1");
        for (k, v) in &env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "flowc {args:?}: {stderr}");
        if args[0] == "run" {
            assert!(stdout.contains("rows"), "{stdout}");
        }
    }
}

#[test]
fn a_request_over_six_megabytes_travels_through_the_store() {
    // Each of two training members gets 200,000 rows: about 6.5 MB of request.
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("a,b,y\n");
    for i in 0..400_000u64 {
        let (a, b) = ((i * 7919) % 1000, (i * 31) % 997);
        rows.push_str(&format!("{a},{b},{}\n", 2 * a + b));
    }
    std::fs::write(dir.path().join("rows.csv"), rows).unwrap();
    let program = dir.path().join("p.flow");
    std::fs::write(
        &program,
        "let rows = load \"rows.csv\"\n\
         let model = rows | train linear(label = y, features = [a, b], epochs = 1, sync = \"average\")\n\
         show rows | infer model | evaluate y\n",
    )
    .unwrap();
    let lambda = LambdaEmulator::start(&[], &[]);
    let store = lambda.store();
    let p = program.to_str().unwrap();
    let args = [
        "run",
        p,
        "--target",
        "lambda",
        "--store",
        &store,
        "--workers",
        "2",
        "-v",
    ];
    let run = run_ok(&args, &lambda.vars(&[]), "a 6.5 MB training request");
    let (out, err) = text(&run);
    assert!(out.contains("r2"), "{out}");
    assert!(err.contains("through the run's store"), "{err}");
    assert_eq!(
        lambda.keys(),
        Vec::<String>::new(),
        "spilled requests are removed"
    );
}

#[test]
fn a_reply_over_six_megabytes_travels_through_the_store() {
    // A network of about 2.1 million parameters: each member's reply (its parameters as
    // JSON) is some 40 MB.
    let dir = tempfile::tempdir().unwrap();
    let mut rows = String::from("a,b,y\n");
    for i in 0..40u64 {
        rows.push_str(&format!("{},{},{}\n", i % 7, i % 5, i % 2));
    }
    std::fs::write(dir.path().join("rows.csv"), rows).unwrap();
    let program = dir.path().join("p.flow");
    std::fs::write(
        &program,
        "let rows = load \"rows.csv\"\n\
         let model = rows | train mlp(label = y, features = [a, b], hidden = [2048, 1024], epochs = 1, sync = \"average\")\n\
         save model to \"big.model\"\n",
    )
    .unwrap();
    let p = program.to_str().unwrap();
    // Forty rows would train in the coordinator: the plan is edited to train on two
    // functions of a deployed size, in a stage of its own.
    let planned = run_ok(
        &["plan", p, "--target", "lambda", "--format", "json"],
        &[],
        "planning",
    );
    let mut plan: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    let train = plan["ops"]
        .as_array()
        .unwrap()
        .iter()
        .position(|o| o["kind"]["op"] == "train")
        .unwrap();
    for stage in plan["stages"].as_array_mut().unwrap() {
        stage["memory_mb"] = 1769.into();
        stage["runs_in"] = stage["id"].clone();
        if stage["ops"].as_array().unwrap().contains(&train.into()) {
            stage["functions"] = 2.into();
        }
    }
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let lambda = LambdaEmulator::start(&[], &[]);
    let store = lambda.store();
    let args = [
        "run",
        p,
        "--target",
        "lambda",
        "--store",
        &store,
        "--plan",
        plan_path.to_str().unwrap(),
        "-v",
    ];
    let run = run_ok(&args, &lambda.vars(&[]), "40 MB training replies");
    let (_, err) = text(&run);
    assert!(err.contains("came through the run's store"), "{err}");
    assert!(dir.path().join("big.model").exists());
    assert_eq!(
        lambda.keys(),
        Vec::<String>::new(),
        "spilled replies are removed"
    );
}

#[test]
#[cfg(target_os = "linux")]
fn ctrl_c_stops_a_lambda_run_and_leaves_nothing_behind() {
    let (dir, program) = big_program(SHUFFLE);
    let lambda = LambdaEmulator::start(&[], &[("FLOW_FAULTS", "stall@last")]);
    let store = lambda.store();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flowc"));
    command
        .args(["run", &program, "--target", "lambda", "--store", &store])
        .args(["--workers", "2", "--task-timeout", "120"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in lambda.vars(&[]) {
        command.env(k, v);
    }
    let child = command.spawn().unwrap();
    // A function instance started for this run: a task was invoked, and its last stage
    // stalls.
    let key = format!("FLOW_LAMBDA_KEY={}", lambda.var("FLOW_LAMBDA_KEY"));
    let instance_running = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read(p.path().join("environ")).is_ok_and(|e| {
                let env = String::from_utf8_lossy(&e);
                env.split('\0').any(|v| v == key)
                    && env
                        .split('\0')
                        .any(|v| v.starts_with("AWS_LAMBDA_FUNCTION_NAME="))
            })
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !instance_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never invoked a function"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    cluster::interrupt(child);
    assert_eq!(
        lambda.keys(),
        Vec::<String>::new(),
        "temporary objects left"
    );
    assert!(
        !dir.path().join("out/joined.csv").exists(),
        "partial output left"
    );
}

#[test]
fn a_plan_for_lambda_uses_the_deployed_sizes_it_is_told() {
    let plan = |sizes: &str| {
        flowc_alone(
            &[
                "plan",
                "../examples/analytics.flow",
                "--target",
                "lambda",
                "--format",
                "json",
            ],
            &[("FLOW_LAMBDA_MEMORY_MB", sizes)],
        )
    };
    let told = plan("1769,3538");
    assert_eq!(told.status.code(), Some(0), "{told:?}");
    let json: serde_json::Value = serde_json::from_slice(&told.stdout).unwrap();
    for stage in json["stages"].as_array().unwrap() {
        let mb = stage["memory_mb"].as_u64().unwrap();
        assert!(mb == 1769 || mb == 3538, "{stage}");
    }
    let bad = plan("big");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("FLOW_LAMBDA_MEMORY_MB=big"));
}
