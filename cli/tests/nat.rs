//! Direct channels between workers that can reach each other only through punched
//! connections: each worker runs in a private host behind a NAT of its own, with a stateful
//! firewall (`scripts/nat-testbed`, network namespaces this test creates and removes; needs
//! root and nft). The coordinator and the rendezvous host are on the public segment.
//! `--strict-channels` makes any pair that falls back to storage an error, so a run that
//! succeeds with it moved every direct exchange over punched connections.

mod cluster;

use cluster::{
    NAT_FLAGS, SHUFFLE, Via, big_matches_via, big_program, examples_match_via, flowc_via, run_ok,
    run_ok_via, saved,
};
use serde_json::Value;

/// `--workers N --channel direct` through the test bed's rendezvous host, for 2, 4 and 8
/// workers, each followed by `more`.
fn punched_on_2_4_8(more: &[&str]) -> Vec<Vec<String>> {
    ["2", "4", "8"]
        .iter()
        .map(|n| {
            ["--workers", n, "--channel", "direct"]
                .iter()
                .chain(&NAT_FLAGS)
                .chain(more)
                .map(|s| s.to_string())
                .collect()
        })
        .collect()
}

const EIGHT_OPEN_NATS: Via = Via::Nat {
    hosts: 8,
    symmetric: 0,
};

#[test]
fn a_plain_connection_between_two_private_hosts_fails() {
    // Host 2 listens; host 1 connects to host 2's NAT (198.18.0.12) and must not get in,
    // while it does reach the public host.
    let probe = r#"
set -- $FLOW_NAT_HOSTS
ip netns exec "$2" python3 -c '
import socket, sys
s = socket.socket(); s.bind(("0.0.0.0", 9000)); s.listen(); s.settimeout(3)
try:
    s.accept(); print("host 2 accepted a connection")
except OSError:
    pass
' &
sleep 0.5
ip netns exec "$1" python3 -c '
import socket
for target in [("198.18.0.12", 9000), ("198.18.0.1", 7400)]:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect(target); print("reached", target[0])
    except OSError:
        print("could not reach", target[0])
'
wait
"#;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nat-testbed");
    let out = std::process::Command::new(script)
        .args(["run", "--hosts", "2", "--", "sh", "-c", probe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(text.contains("could not reach 198.18.0.12"), "{text}");
    assert!(text.contains("reached 198.18.0.1\n"), "{text}");
    assert!(!text.contains("accepted"), "{text}");
}

#[test]
fn every_example_gives_the_same_rows_through_punched_channels() {
    examples_match_via(
        &EIGHT_OPEN_NATS,
        &punched_on_2_4_8(&["--strict-channels"]),
        &[],
    );
}

#[test]
fn a_million_rows_match_through_punched_channels() {
    big_matches_via(
        &EIGHT_OPEN_NATS,
        &punched_on_2_4_8(&["--strict-channels"]),
        &[],
    );
}

/// SHUFFLE's folder and program, and the rows it saves in one process (removed again, for
/// the run under test to write).
fn shuffle_in_one_process() -> (tempfile::TempDir, String, Vec<String>) {
    let (dir, p) = big_program(SHUFFLE);
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "joined.csv", true);
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    (dir, p, expected)
}

/// Runs SHUFFLE on four workers in four private hosts, the first `symmetric` behind
/// port-randomising NATs, and checks its rows; returns the report's `punched`. The plan is
/// edited to run its shuffle on four functions, so every host takes part.
fn shuffle_through(symmetric: usize) -> Value {
    let (dir, p, expected) = shuffle_in_one_process();
    let planned = run_ok(
        &["plan", &p, "--channel", "direct", "--format", "json"],
        &[],
        "planning",
    );
    let mut plan: Value = serde_json::from_slice(&planned.stdout).unwrap();
    for stage in plan["stages"].as_array_mut().unwrap() {
        if stage["partitioned"] == true {
            stage["functions"] = 4.into();
        }
    }
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let report = dir.path().join("report.json");
    let mut args = vec!["run", &p, "--plan", plan_path.to_str().unwrap()];
    args.extend(NAT_FLAGS);
    // Long enough that a pair that can punch does, even with the other tests running.
    args.extend([
        "--punch-timeout",
        "1.5",
        "--report",
        report.to_str().unwrap(),
    ]);
    let via = Via::Nat {
        hosts: 4,
        symmetric,
    };
    run_ok_via(&via, &args, &[], "through the NATs");
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["workers"], 4, "{report:#}");
    report["punched"].clone()
}

fn fell_back(punched: &Value) -> Vec<String> {
    punched["fell_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn behind_port_randomising_nats_every_pair_falls_back_and_the_rows_are_right() {
    let punched = shuffle_through(4);
    // A NAT that picks a random port for every connection can still, by a rare chance,
    // pick the one the other side dials: under load, one pair in tens has punched. Nearly
    // every pair must fall back, and the rows must be right.
    let connections = punched["connections"].as_u64().unwrap();
    let fell = fell_back(&punched).len() as u64;
    assert!(fell > 0 && connections * 10 <= fell, "{punched:#}");
}

#[test]
fn one_port_randomising_nat_among_four_sends_only_its_pairs_through_storage() {
    let punched = shuffle_through(1);
    let reasons = fell_back(&punched);
    assert!(punched["connections"].as_u64().unwrap() > 0, "{punched:#}");
    assert!(punched["p50_s"].as_f64().unwrap() > 0.0, "{punched:#}");
    assert!(!reasons.is_empty(), "{punched:#}");
    // Host 1's NAT is 198.18.0.11: every pair that fell back has it on one side.
    for reason in reasons {
        assert!(reason.contains("198.18.0.11:"), "{reason}");
    }
}

#[test]
fn strict_channels_turn_a_fallback_into_an_error_that_leaves_no_output() {
    let (dir, p) = big_program(SHUFFLE);
    let mut args = vec!["run", &p, "--workers", "2", "--channel", "direct"];
    args.extend(NAT_FLAGS);
    args.extend(["--punch-timeout", "0.5", "--strict-channels"]);
    let via = Via::Nat {
        hosts: 2,
        symmetric: 2,
    };
    let run = flowc_via(&via, &args, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    // The message is wrapped to the terminal's width.
    let words: Vec<&str> = stderr.split_whitespace().filter(|w| *w != "│").collect();
    assert!(
        words
            .join(" ")
            .contains("--strict-channels forbids falling back to storage"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").join("joined.csv").exists());
}

#[test]
fn on_lambda_function_instances_in_private_hosts_punch_their_direct_channels() {
    let (dir, p, expected) = shuffle_in_one_process();
    let report = dir.path().join("report.json");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nat-lambda.sh");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nat-testbed");
    let exe = env!("CARGO_BIN_EXE_flowc");
    // One host more than instances: the test bed's count of placements then says how many
    // instances it placed.
    let run = std::process::Command::new(root)
        .args(["run", "--hosts", "3", "--flowc", exe, "--", "bash"])
        .arg(script)
        .args([exe, &p, report.to_str().unwrap(), "2"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("placed 2 instances"), "{stdout}");
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
    let report: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    let punched = &report["punched"];
    assert!(punched["connections"].as_u64().unwrap() > 0, "{punched:#}");
    assert!(fell_back(punched).is_empty(), "{punched:#}");
}

/// The test bed, running `command` with `sh -c` on 2 hosts; stdout is piped.
fn test_bed(command: &str) -> std::process::Command {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/nat-testbed");
    let mut c = std::process::Command::new(script);
    c.args(["run", "--hosts", "2", "--", "sh", "-c", command])
        .stdout(std::process::Stdio::piped());
    c
}

/// Whether any of `names` is still a network namespace.
fn left_behind(names: &str) -> Vec<String> {
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    names
        .split_whitespace()
        .filter(|n| list.contains(n))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_test_bed_passes_the_status_on_and_leaves_nothing_after_failure_or_ctrl_c() {
    let failed = test_bed("echo $FLOW_NAT_HOSTS; exit 3").output().unwrap();
    assert_eq!(failed.status.code(), Some(3));
    let hosts = String::from_utf8_lossy(&failed.stdout).to_string();
    assert_eq!(hosts.split_whitespace().count(), 2, "{hosts}");
    assert!(left_behind(&hosts).is_empty());

    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut running = test_bed("echo $FLOW_NAT_HOSTS; sleep 60")
        .process_group(0)
        .spawn()
        .unwrap();
    let mut hosts = String::new();
    std::io::BufReader::new(running.stdout.take().unwrap())
        .read_line(&mut hosts)
        .unwrap();
    assert!(left_behind(&hosts).len() == 2, "{hosts}");
    // Ctrl-C in a terminal signals the whole foreground process group.
    let sent = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", running.id())])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(running.wait().unwrap().code(), Some(130));
    assert!(left_behind(&hosts).is_empty(), "{hosts}");
}

#[test]
fn workers_that_cannot_reach_the_coordinator_punch_their_control_connection() {
    // Without --listen the coordinator listens on the public host's loopback, which no
    // private host reaches: the workers join through the rendezvous host.
    let (dir, p, expected) = shuffle_in_one_process();
    let args = [
        "run",
        &p,
        "--workers",
        "2",
        "--channel",
        "direct",
        "--rendezvous",
        "198.18.0.1:7400",
        "--strict-channels",
    ];
    let via = Via::Nat {
        hosts: 2,
        symmetric: 0,
    };
    run_ok_via(&via, &args, &[], "a coordinator on loopback");
    assert_eq!(saved(dir.path(), "joined.csv", true), expected);
}
