//! `flowc run --target lambda` against Lambda and S3 emulated on loopback
//! (`scripts/lambda-emulator.py`: moto, cargo-lambda's Invoke and Runtime APIs, `flowc`
//! processes as function instances): the same rows as the single-process engine, requests
//! that are not the deployment's refused, and the faults Lambda brings — an instance killed
//! mid-task, a task failing on every attempt, throttling — survived or reported cleanly.

mod cluster;

use cluster::{
    LambdaEmulator, SHUFFLE, big_matches, big_program, clear_outputs, examples_match, flowc,
    http_request, on_1_2_4_8_workers, run_ok, saved,
};
use flow_lambda::request::{Request, Run};
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::protocol::{AttemptId, ToWorker};
use std::time::{Duration, SystemTime};

#[test]
fn examples_and_a_million_rows_match_the_single_process_engine_on_lambda() {
    let lambda = LambdaEmulator::start(&[], &[]);
    let store = lambda.store();
    let variants = on_1_2_4_8_workers(&["--target", "lambda", "--store", &store]);
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
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed 4 times"), "{stderr}");
    assert!(
        !dir.path().join("out/joined.csv").exists(),
        "no partial output"
    );
    assert_eq!(
        failing.keys(),
        Vec::<String>::new(),
        "a failed run leaves no objects"
    );
}

#[test]
fn throttled_invocations_are_retried_with_backoff_and_counted() {
    let (dir, p) = big_program(SHUFFLE);
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    clear_outputs(dir.path());
    let lambda = LambdaEmulator::start(&["--throttle-every", "2"], &[]);
    let store = lambda.store();
    let args = [
        "run",
        &p,
        "--target",
        "lambda",
        "--store",
        &store,
        "--workers",
        "4",
    ];
    let run = run_ok(&args, &lambda.vars(&[]), "throttled");
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("throttled") && stderr.contains("retried"),
        "{stderr}"
    );
}
