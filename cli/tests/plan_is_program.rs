//! The plan is the program: a distributed run executes exactly the stages, tasks and channels
//! of the plan `flowc plan` prints — for every example and for generated programs — and a
//! channel edited in a saved plan moves exactly that exchange, with the rows of the
//! single-process engine.

mod cluster;

use cluster::{
    assert_close, big_program, clear_outputs, examples_copy, flowc, lines, run_ok, saved,
};
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;

/// Writes `program`'s plan for `--workers workers` as JSON and returns it.
fn plan(program: &str, workers: &str, path: &Path) -> Value {
    let out = run_ok(
        &["plan", program, "--workers", workers, "--format", "json"],
        &[],
        &format!("plan {program}"),
    );
    std::fs::write(path, &out.stdout).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `program` with the saved plan `plan_path`, returns the run's output and report.
fn run_plan(program: &str, plan_path: &Path, report: &Path) -> (std::process::Output, Value) {
    let out = run_ok(
        &[
            "run",
            program,
            "--plan",
            plan_path.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
        &format!("run {program} as planned"),
    );
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (out, report)
}

/// Whether tasks compute an operator's rows (the coordinator trains, evaluates, loads models
/// and writes sinks itself).
fn computed_by_tasks(plan: &Value, op: u64) -> bool {
    let kind = plan["ops"][op as usize]["kind"]["op"].as_str().unwrap();
    !matches!(kind, "train" | "model_load" | "evaluate" | "save" | "show")
}

/// Whether the runtime moved an exchange the plan gave `planned` over `ran`: a fused one runs
/// inside its consumer's task (`fused`), or, where its producer stage has other outputs,
/// moves between the one function's tasks like a direct one.
fn moved_as_planned(planned: &str, ran: &str) -> bool {
    planned == ran || (planned == "fused" && ran == "direct")
}

/// The report has the plan's stages, one for one, with the plan's tasks, and every exchange
/// tasks compute moved once, over the plan's channel.
fn assert_follows(plan: &Value, report: &Value, what: &str) {
    let planned = plan["stages"].as_array().unwrap();
    let ran = report["stages"].as_array().unwrap();
    let ids = |v: &[Value], key: &str| {
        v.iter()
            .map(|s| s[key].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(ran, "stage"), ids(planned, "id"), "{what}: stages");
    for (p, r) in planned.iter().zip(ran) {
        assert_eq!(
            r["tasks"], p["functions"],
            "{what}: tasks of stage {}",
            p["id"]
        );
    }
    let moved: Vec<(u64, String)> = ran
        .iter()
        .flat_map(|s| s["exchanges"].as_array().unwrap().iter())
        .map(|x| {
            (
                x["id"].as_u64().unwrap(),
                x["channel"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(u64, String)> = plan["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| computed_by_tasks(plan, x["producer"].as_u64().unwrap()))
        .map(|x| {
            let channel = x["channel"].as_str().unwrap().to_string();
            (x["id"].as_u64().unwrap(), channel)
        })
        .collect();
    let mut moved_sorted = moved.clone();
    moved_sorted.sort();
    let ids = |v: &[(u64, String)]| v.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    assert_eq!(ids(&moved_sorted), ids(&expected), "{what}: exchanges");
    for ((id, ran), (_, planned)) in moved_sorted.iter().zip(&expected) {
        assert!(
            moved_as_planned(planned, ran),
            "{what}: exchange {id} planned {planned}, moved {ran}"
        );
    }
}

#[test]
fn every_example_runs_exactly_its_plan() {
    let (dir, files) = examples_copy();
    for file in &files {
        let p = file.to_str().unwrap();
        for workers in ["1", "2"] {
            let plan_path = dir.path().join("plan.json");
            let planned = plan(p, workers, &plan_path);
            let (_, report) = run_plan(p, &plan_path, &dir.path().join("run.json"));
            assert_follows(&planned, &report, &format!("{p} on {workers} workers"));
        }
    }
}

/// The million-row program in a folder of its own, what one process saves from it, and
/// where its plan is to be written.
fn big_with_expected() -> (
    tempfile::TempDir,
    String,
    Vec<Vec<String>>,
    std::path::PathBuf,
) {
    let (dir, p) = big_program(cluster::BIG);
    run_ok(&["run", &p], &[], "one process");
    let expected = cluster::big_outputs(dir.path());
    clear_outputs(dir.path());
    let plan_path = dir.path().join("plan.json");
    (dir, p, expected, plan_path)
}

/// A million rows give stages of several functions: each runs as that many tasks, each over
/// its share of the scan, and a binding three sinks share is computed once.
#[test]
fn a_program_of_many_functions_runs_exactly_its_plan_and_shares_its_work() {
    let (dir, p, expected, plan_path) = big_with_expected();
    let planned = plan(&p, "4", &plan_path);
    assert!(
        planned["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["functions"].as_u64().unwrap() > 1),
        "the plan divides some stage"
    );
    let (_, report) = run_plan(&p, &plan_path, &dir.path().join("run.json"));
    assert_follows(&planned, &report, "the million-row program");
    assert_eq!(cluster::big_outputs(dir.path()), expected);
    // The scan every sink reads ran in one stage, once per task.
    let tasks = report["tasks"].as_array().unwrap();
    for s in report["stages"].as_array().unwrap() {
        let done = tasks
            .iter()
            .filter(|t| t["id"]["stage"] == s["stage"] && t["error"].is_null())
            .count();
        if s["runs_in"] == "workers" {
            assert_eq!(done as u64, s["tasks"].as_u64().unwrap(), "{s}");
        }
    }
}

/// Runs `program` (written into a copy of the examples, beside `files`) on 2 workers by its
/// saved plan, asserts the run followed the plan and printed what one process prints, and
/// returns the plan and the run's report.
fn runs_as_planned_and_as_one_process(
    name: &str,
    program: &str,
    files: &[(&str, String)],
) -> (Value, Value) {
    let (dir, _) = examples_copy();
    for (file, text) in files {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let p = dir.path().join(format!("{name}.flow"));
    std::fs::write(&p, program).unwrap();
    let p = p.to_str().unwrap();
    let plan_path = dir.path().join("plan.json");
    let planned = plan(p, "2", &plan_path);
    let (out, report) = run_plan(p, &plan_path, &dir.path().join("run.json"));
    assert_follows(&planned, &report, name);
    let one = flowc(&["run", p], &[]);
    let printed = |o: &std::process::Output| -> Vec<String> {
        lines(o)
            .into_iter()
            .filter(|l| !l.starts_with("wrote the run's report"))
            .collect()
    };
    assert_close(&printed(&out), &printed(&one), 1e-9, name);
    (planned, report)
}

/// Three sinks over one join: the join's stage runs once, whichever sink needs it first.
#[test]
fn three_sinks_over_a_shared_join_compute_it_once() {
    let (planned, report) = runs_as_planned_and_as_one_process(
        "three sinks",
        r#"let customers = load "data/customers.csv"
let orders = load "data/orders.csv"
let joined = orders | join customers on customer_id
show joined | group country { n = count() } | sort country
save joined | filter amount > 100 to "out/big.csv"
show joined | group { total = sum(amount) }
"#,
        &[],
    );
    let join = planned["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"]["op"] == "join")
        .expect("a join");
    let stage = join["stage"].as_u64().unwrap();
    let runs = report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["id"]["stage"] == stage && t["error"].is_null())
        .count() as u64;
    let functions = planned["stages"][stage as usize]["functions"]
        .as_u64()
        .unwrap();
    assert_eq!(
        runs, functions,
        "the join ran once per task, not once per sink"
    );
}

/// Rows a task keeps for several of its outputs carry only the columns those outputs read,
/// and each reads its own columns of them: two groupings over one filtered table, each
/// reading different columns, give the one-process answer.
#[test]
fn rows_kept_for_several_outputs_serve_each_its_columns() {
    let (_, report) = runs_as_planned_and_as_one_process(
        "kept rows",
        r#"let orders = load "data/orders.csv"
let big = orders | filter amount > 20
show big | group kind { n = count(), spend = sum(amount) } | sort kind
show big | group customer_id { last = max(day) } | sort customer_id | take 5
"#,
        &[],
    );
    let kept = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["output"].as_str().unwrap_or("").starts_with("kept for"));
    assert!(kept, "no stage kept rows for its other outputs: {report}");
}

/// A stage of two tasks that deals its rows round-robin to the next (a scan re-divided for a
/// join with a broadcast side) deals from each task's own bucket: the second task's first
/// batch once went to a bucket past the last, and the worker panicked.
#[test]
fn rows_dealt_round_robin_by_several_tasks_reach_their_consumers() {
    // Enough rows (2.5 MB) that the scan is planned over two functions.
    let mut data = String::from("id,name,score,day\n");
    for i in 0..60_000 {
        let day = format!("2024-0{}-1{}", i % 9 + 1, i % 10);
        data.push_str(&format!("{i},n{},{}.5,{day}\n", i % 31, i % 100));
    }
    let (planned, _) = runs_as_planned_and_as_one_process(
        "dealt",
        r#"let d = load "dealt.csv"
let e = load "empty.csv"
show d | filter score > 90 | group name { n = count() } | sort name
show d | join e on id | group d.name { n = count() }
"#,
        &[
            ("dealt.csv", data),
            ("empty.csv", "id,name,score,day\n".to_string()),
        ],
    );
    let dealt = planned["exchanges"].as_array().unwrap().iter().any(|x| {
        x["pattern"] == "repartition"
            && planned["stages"][x["from"].as_u64().unwrap() as usize]["functions"] == 2
    });
    assert!(dealt, "no stage of two functions deals rows: {planned}");
}

/// The generated programs of the property test: a join, a grouping, a sort and a union over
/// the examples' data, each a different shape of exchanges.
const PROGRAMS: [&str; 3] = [
    r#"let customers = load "data/customers.csv"
let orders = load "data/orders.csv"
save orders | join customers on customer_id | group country { n = count(), spend = sum(amount) } to "out/r.csv"
"#,
    r#"let orders = load "data/orders.csv"
save orders | filter amount > 50 | sort amount desc, order_id | take 100 to "out/r.csv"
"#,
    r#"let events = load "data/events/*.parquet"
let reviews = load "data/reviews.json"
let active = (events | select customer_id) | union (reviews | select customer_id) | distinct
save active to "out/r.csv"
"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Any one exchange of a saved plan set to another channel moves over that channel, and
    /// only it; the rows are the single-process engine's.
    #[test]
    fn an_exchange_edited_in_a_saved_plan_moves_over_the_edited_channel(
        program in 0..PROGRAMS.len(),
        pick in 0usize..16,
        storage in any::<bool>(),
    ) {
        let (dir, _) = examples_copy();
        let p = dir.path().join("generated.flow");
        std::fs::write(&p, PROGRAMS[program]).unwrap();
        let p = p.to_str().unwrap();
        run_ok(&["run", p], &[], "one process");
        let expected = saved(dir.path(), "r.csv", false);
        clear_outputs(dir.path());
        let plan_path = dir.path().join("plan.json");
        let mut planned = plan(p, "2", &plan_path);
        let movable: Vec<usize> = planned["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, x)| computed_by_tasks(&planned, x["producer"].as_u64().unwrap()))
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!movable.is_empty());
        let edited = movable[pick % movable.len()];
        let channel = if storage { "storage" } else { "direct" };
        planned["exchanges"][edited]["channel"] = Value::from(channel);
        std::fs::write(&plan_path, serde_json::to_string(&planned).unwrap()).unwrap();
        let (_, report) = run_plan(p, &plan_path, &dir.path().join("run.json"));
        let what = format!("program {program}, exchange {edited} over {channel}");
        assert_follows(&planned, &report, &what);
        // Sums of floats may differ in their last digits with the order rows arrive in.
        let fields = |lines: Vec<String>| -> Vec<String> {
            lines.iter().map(|l| l.replace(',', " ")).collect()
        };
        let got = fields(saved(dir.path(), "r.csv", false));
        assert_close(&got, &fields(expected), 1e-9, &what);
    }
}

/// On the examples, as on generated graphs (`planner/tests/properties.rs`): no plan with a
/// worker bound or a memory size forced by flag beats the plan chosen without, on the
/// objective's own measure beyond what the planner counts as the same; and a worker bound
/// the chosen plan already keeps (every stage at most that wide) gives a plan as fast — the
/// bound narrows the search, it does not change what the search prices. A program whose
/// `config` sets a bound is planned under it as asked and is left out.
#[test]
fn no_forced_worker_count_or_memory_beats_the_chosen_plan_on_the_examples() {
    let (_dir, files) = examples_copy();
    let predicted = |args: &[&str]| -> Option<(f64, f64, u64)> {
        let out = flowc(args, &[]);
        let plan: Value = serde_json::from_slice(&out.stdout).ok()?;
        // The most functions alive at once: a stage, with its producers when it reads
        // them as they write.
        let stages = plan["stages"].as_array()?;
        let functions = |s: &Value| s["functions"].as_u64().unwrap_or(1);
        let widest = stages
            .iter()
            .map(|s| {
                let producers: u64 = plan["exchanges"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|x| s["pipelined"] == true && x["to"] == s["id"])
                    .filter_map(|x| stages.get(x["from"].as_u64()? as usize))
                    .map(functions)
                    .sum();
                functions(s) + producers
            })
            .max()?;
        Some((
            plan["predicted_s"].as_f64()?,
            plan["predicted_usd"].as_f64()?,
            widest,
        ))
    };
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if text.contains("workers =") || text.contains("memory_mb =") {
            continue;
        }
        let p = file.to_str().unwrap();
        for target in ["local", "lambda"] {
            let base = ["plan", p, "--target", target, "--format", "json"];
            let chosen = predicted(&base).expect("the example plans");
            let mut forced: Vec<Vec<String>> = ["1", "2", "3", "4", "8", "16", "64"]
                .iter()
                .map(|n| vec!["--workers".to_string(), n.to_string()])
                .collect();
            forced.extend(
                ["128", "512", "2048", "10240"]
                    .iter()
                    .map(|m| vec!["--memory-mb".to_string(), m.to_string()]),
            );
            for flags in forced {
                let mut args: Vec<&str> = base.to_vec();
                args.extend(flags.iter().map(String::as_str));
                let Some(plan) = predicted(&args) else {
                    continue;
                };
                let slack = 0.001_f64.max(0.02 * chosen.0);
                assert!(
                    plan.0 >= chosen.0 - slack,
                    "{p} on {target} with {flags:?}: {plan:?} against the chosen {chosen:?}"
                );
                let kept =
                    flags[0] == "--workers" && flags[1].parse::<u64>().is_ok_and(|n| n >= chosen.2);
                assert!(
                    !kept || plan.0 <= chosen.0 + slack,
                    "{p} on {target} with {flags:?}, a bound the chosen plan keeps: {plan:?} against the chosen {chosen:?}"
                );
            }
        }
    }
}

/// A person may edit a saved plan's functions: each stage runs as many tasks as it says, the
/// shuffles divide into the new counts, and the rows stay the single-process engine's.
#[test]
fn functions_edited_in_a_saved_plan_are_the_tasks_that_run() {
    let (dir, p, expected, plan_path) = big_with_expected();
    let mut planned = plan(&p, "2", &plan_path);
    for (i, stage) in planned["stages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        // Only stages that can be split take more functions (a sort or a save cannot).
        if stage["partitioned"].as_bool().unwrap() {
            stage["functions"] = Value::from(3 + i % 2);
        }
    }
    std::fs::write(&plan_path, serde_json::to_string(&planned).unwrap()).unwrap();
    let (_, report) = run_plan(&p, &plan_path, &dir.path().join("run.json"));
    assert_follows(&planned, &report, "edited functions");
    assert!(
        report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["tasks"] == 4)
    );
    assert_eq!(cluster::big_outputs(dir.path()), expected);
}

/// Every row of a million crosses a hash shuffle into a grouping: enough bytes per consumer
/// that reading them as they are written pays.
const WIDE: &str = r#"let facts = load "facts.csv"
save facts | group id { total = sum(value) } | group { keys = count(), total = sum(total) } to "out/sums.csv"
"#;

/// The local profile as if every function had a core of its own (no cores shared between
/// functions running at once), written into `dir`: there pipelining a consumer with its
/// producers pays, as it does on Lambda.
fn a_core_per_function(dir: &Path) -> String {
    let local = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../planner/profiles/local.toml"
    ))
    .unwrap();
    let own: String = local
        .lines()
        .filter(|l| !l.starts_with("shared_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("cores.toml");
    std::fs::write(&path, own).unwrap();
    path.to_str().unwrap().to_string()
}

/// `program`'s plan on [`a_core_per_function`], each stage cut to at most two functions
/// (enough to see a pipeline on a machine of two cores), `edit` applied to each stage, saved
/// in `dir`: the plan and where it is.
fn two_function_plan(dir: &Path, program: &str, edit: impl Fn(&mut Value)) -> (Value, String) {
    let profile = a_core_per_function(dir);
    let out = run_ok(
        &["plan", program, "--profile", &profile, "--format", "json"],
        &[],
        "plan on a core per function",
    );
    let mut planned: Value = serde_json::from_slice(&out.stdout).unwrap();
    for stage in planned["stages"].as_array_mut().unwrap() {
        let functions = stage["functions"].as_u64().unwrap().min(2);
        stage["functions"] = Value::from(functions);
        edit(stage);
    }
    let path = dir.join("plan.json");
    std::fs::write(&path, serde_json::to_string(&planned).unwrap()).unwrap();
    (planned, path.to_str().unwrap().to_string())
}

/// Runs `program` in `dir` with the saved plan at `plan` and `FLOW_FAULTS` set to `fault`;
/// checks that the run followed the plan and saved `expected` as `sums.csv`; the report.
fn run_faulted(
    dir: &Path,
    (program, plan): (&str, &str),
    planned: &Value,
    fault: &str,
    expected: &[String],
) -> Value {
    clear_outputs(dir);
    let what = format!("pipelined, faults `{fault}`");
    let report_path = dir.join("run.json");
    let report_arg = report_path.to_str().unwrap();
    run_ok(
        &["run", program, "--plan", plan, "--report", report_arg],
        &[("FLOW_FAULTS", fault)],
        &what,
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_follows(planned, &report, &what);
    assert_eq!(saved(dir, "sums.csv", false), expected, "{what}");
    report
}

/// A stage the plan pipelines starts with its producers and reads them as they write: its
/// tasks are sent before its producers' tasks end, and the rows are one process's — also when
/// a producer fails or its worker dies under its readers, who take the shuffle as it is
/// written (nothing of it is kept): they and the producers they took from run again.
#[test]
fn a_pipelined_stage_reads_its_producers_while_they_run_and_outlives_their_failure() {
    let (dir, p) = cluster::big_program(WIDE);
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "sums.csv", false);
    let (planned, plan_path) = two_function_plan(dir.path(), &p, |_| {});
    let piped: Vec<u64> = planned["stages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["pipelined"] == true)
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert!(!piped.is_empty(), "no stage is pipelined: {planned}");
    for fault in ["", "err@shuffle", "kill@shuffle"] {
        let what = format!("pipelined, faults `{fault}`");
        let report = run_faulted(
            dir.path(),
            (p.as_str(), plan_path.as_str()),
            &planned,
            fault,
            &expected,
        );
        let tasks = report["tasks"].as_array().unwrap();
        let of = |stage: u64| tasks.iter().filter(move |t| t["id"]["stage"] == stage);
        for s in &piped {
            let first_sent = of(*s)
                .map(|t| t["start_s"].as_f64().unwrap())
                .fold(f64::INFINITY, f64::min);
            let producers_done = planned["exchanges"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["to"] == *s)
                .flat_map(|x| of(x["from"].as_u64().unwrap()))
                .map(|t| t["end_s"].as_f64().unwrap())
                .fold(0.0, f64::max);
            assert!(
                first_sent < producers_done,
                "{what}: stage {s} was sent at {first_sent} s, after its producers ended at {producers_done} s"
            );
        }
        // A reader meets its producer's failure only if it was reading by then: on a loaded
        // machine the failure (after the producer's first batch) can come before any reader
        // was sent, and then there is no reader to blame it.
        let failed_at = tasks
            .iter()
            .filter(|t| {
                t["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("injected transient failure"))
            })
            .map(|t| t["end_s"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min);
        let reading_by_then = piped
            .iter()
            .flat_map(|s| of(*s))
            .any(|t| t["start_s"].as_f64().unwrap() < failed_at);
        if fault == "err@shuffle" && reading_by_then {
            let blamed_on_producer = tasks.iter().any(|t| {
                t["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("whose output this task was reading"))
            });
            assert!(
                blamed_on_producer,
                "{what}: no reader met its producer's failure: {report}"
            );
        }
    }
}

/// Two shuffles from stages apart from each other into one pipelined join: both are taken as
/// they are written, each producer held to its reader's pace (the report says `paced`), the
/// join starts before its producers end, and the rows are one process's — also when a
/// producer fails under its reader or its worker dies, and they run again.
#[test]
fn a_pipelined_join_paces_both_of_its_producers() {
    let (dir, p) = big_program(
        "let facts = load \"facts.csv\"\nlet more = load \"more.csv\"\n\
         save facts | join more on id | group key { n = count(), total = sum(extra) } to \"out/sums.csv\"\n",
    );
    let mut more = String::from("id,extra\n");
    for i in 0..1_000_000u64 {
        more.push_str(&format!("{},{}\n", i * 7 % 1_000_000, i % 97));
    }
    std::fs::write(dir.path().join("more.csv"), more).unwrap();
    run_ok(&["run", &p], &[], "one process");
    let expected = saved(dir.path(), "sums.csv", false);
    // The stage reading two exchanges: the join.
    let (planned, _) = two_function_plan(dir.path(), &p, |_| {});
    let exchanges = planned["exchanges"].as_array().unwrap().clone();
    let reads = |s: &Value| exchanges.iter().filter(|x| x["to"] == s["id"]).count();
    let join = planned["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| reads(s) == 2)
        .expect("a stage reads two exchanges")["id"]
        .as_u64()
        .unwrap();
    // Started with its producers (the planner does not pipeline it here: it must wait for
    // its build side, which costs its functions' time).
    let (planned, plan_path) = two_function_plan(dir.path(), &p, |stage| {
        if stage["id"] == join {
            stage["pipelined"] = Value::from(true);
        }
    });
    let inputs: Vec<u64> = exchanges
        .iter()
        .filter(|x| x["to"] == join)
        .map(|x| x["id"].as_u64().unwrap())
        .collect();
    for fault in ["", "err@shuffle", "kill@shuffle"] {
        let what = format!("pipelined join, faults `{fault}`");
        let report = run_faulted(
            dir.path(),
            (p.as_str(), plan_path.as_str()),
            &planned,
            fault,
            &expected,
        );
        let paced: Vec<u64> = report["stages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["exchanges"].as_array().unwrap().iter())
            .filter(|x| x["paced"] == true)
            .map(|x| x["id"].as_u64().unwrap())
            .collect();
        assert_eq!(
            paced, inputs,
            "{what}: the join's two inputs, and only they, are paced"
        );
        let tasks = report["tasks"].as_array().unwrap();
        let first_sent = tasks
            .iter()
            .filter(|t| t["id"]["stage"] == join)
            .map(|t| t["start_s"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min);
        let producers_done = tasks
            .iter()
            .filter(|t| t["id"]["stage"] != join && t["id"]["stage"].as_u64() < Some(join))
            .map(|t| t["end_s"].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(
            first_sent < producers_done,
            "{what}: the join was sent at {first_sent} s, after its producers ended at {producers_done} s"
        );
    }
}

/// The batch size the plan gives an `infer` is the one its functions score with: edited in a
/// saved plan, the edited size runs.
#[test]
fn the_batch_size_of_a_saved_plan_is_the_one_that_scores() {
    let dir = tempfile::tempdir().unwrap();
    let p = &cluster::sentiment_program(dir.path(), 64, "", "  | select id, prediction\n");
    let plan_path = dir.path().join("plan.json");
    let mut planned = plan(p, "2", &plan_path);
    let stage = planned["stages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| !s["batching"].is_null())
        .expect("a stage scores");
    assert_eq!(
        stage["batching"]["batch"], 1,
        "a transformer scores one at a time"
    );
    stage["batching"]["batch"] = Value::from(5);
    std::fs::write(&plan_path, serde_json::to_string(&planned).unwrap()).unwrap();
    let out = run_ok(
        &["run", p, "--plan", plan_path.to_str().unwrap(), "-vv"],
        &[],
        "run with an edited batch",
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("InferExec: model=onnx transformer, batch=5"),
        "{log}"
    );
    assert!(!log.contains("batch=1\n"), "{log}");
}
