//! The predicted time of a whole run follows how the runtime runs a program: the sinks' jobs
//! one after another (what they share run once), a model trained once, the fixed costs
//! of the profile counted where the runtime pays them.

use flow_planner::{Op, OpGraph, OpKind, Options, PhysicalPlan, Profile, SourceStats, plan_graph};

fn op(g: &mut OpGraph, kind: OpKind, inputs: Vec<usize>) -> usize {
    g.push(Op::new(kind, inputs, 40.0))
}

fn scan(g: &mut OpGraph) -> usize {
    let kind = OpKind::Scan {
        source: "t.parquet".into(),
        format: "parquet".into(),
        files: 1,
        stats: SourceStats {
            bytes: 4_000_000,
            rows: 100_000,
            exact: true,
        },
        read: None,
    };
    op(g, kind, vec![])
}

fn show(g: &mut OpGraph, input: usize) -> usize {
    op(g, OpKind::Show { limit: 20 }, vec![input])
}

/// `sinks` sinks reading one scan; with `model`, each scores the scan with one model
/// trained on it (and the last evaluates when `evaluate`).
fn program(sinks: usize, model: bool, evaluate: bool) -> OpGraph {
    let mut g = OpGraph::default();
    let table = scan(&mut g);
    let trained = model.then(|| {
        let kind = OpKind::Train {
            model: "logistic".into(),
            params: 2_000,
            inputs: 1_999,
            epochs: Some(50),
            batch_size: 32,
            sync: None,
        };
        op(&mut g, kind, vec![table])
    });
    for i in 0..sinks {
        let mut rows = match trained {
            Some(m) => op(
                &mut g,
                OpKind::Infer {
                    batch: None,
                    tokens: None,
                    padded: Vec::new(),
                },
                vec![m, table],
            ),
            None => op(&mut g, OpKind::Filter { keeps: None }, vec![table]),
        };
        if evaluate && i + 1 == sinks {
            rows = op(&mut g, OpKind::Evaluate, vec![rows]);
        }
        show(&mut g, rows);
    }
    g
}

fn profile(edit: impl Fn(&mut Profile)) -> Profile {
    let mut p = Profile::builtin("local").unwrap();
    edit(&mut p);
    p
}

fn plan(g: OpGraph, p: &Profile) -> PhysicalPlan {
    let options = Options {
        workers: Some(1),
        ..Options::default()
    };
    plan_graph(g, p, &options).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * a.abs().max(1.0)
}

#[test]
fn the_start_up_and_the_teardown_are_paid_once() {
    let base = profile(|_| ());
    let later = profile(|p| {
        p.compute.cold_start_s += 1.0;
        p.compute.teardown_s += 2.0;
    });
    for sinks in [1, 3] {
        let a = plan(program(sinks, false, false), &base).predicted_s;
        let b = plan(program(sinks, false, false), &later).predicted_s;
        // Exactly 3 s but for what the later start shifts in the channels' pairing overlap.
        assert!((b - a - 3.0).abs() < 1e-3, "{sinks} sinks: {a} → {b}");
    }
}

#[test]
fn each_sink_is_a_job_of_its_own() {
    let base = profile(|_| ());
    let slow_jobs = profile(|p| p.compute.job_overhead_s += 1.0);
    for sinks in [1, 2, 4] {
        let a = plan(program(sinks, false, false), &base).predicted_s;
        let b = plan(program(sinks, false, false), &slow_jobs).predicted_s;
        assert!(close(b - a, sinks as f64), "{sinks} sinks: {a} → {b}");
    }
    // What sinks share runs once (the runtime keeps a stage's output until its last reader
    // has it): a second sink over the same scan costs its own job's overhead and the stages
    // of its own, not the scan again.
    let one = plan(program(1, false, false), &base).predicted_s;
    let two = plan(program(2, false, false), &base).predicted_s;
    let job = one - base.compute.cold_start_s - base.compute.teardown_s;
    assert!(two - one < 0.9 * job, "{one} → {two}, a job is {job}");
    assert!(two - one >= base.compute.job_overhead_s, "{one} → {two}");
}

#[test]
fn a_model_is_trained_once_in_jobs_of_its_own() {
    let base = profile(|_| ());
    let slow_jobs = profile(|p| p.compute.job_overhead_s += 1.0);
    // The training table and the training are two jobs; each sink one more.
    for sinks in [1, 2] {
        let a = plan(program(sinks, true, false), &base).predicted_s;
        let b = plan(program(sinks, true, false), &slow_jobs).predicted_s;
        assert!(close(b - a, 2.0 + sinks as f64), "{sinks} sinks: {a} → {b}");
    }
    let planned = plan(program(1, true, false), &base);
    let training = planned
        .stages
        .iter()
        .find(|s| {
            s.ops
                .iter()
                .any(|id| matches!(planned.ops[*id].op.kind, OpKind::Train { .. }))
        })
        .map(|s| s.predicted_s)
        .unwrap();
    let one = planned.predicted_s;
    let two = plan(program(2, true, false), &base).predicted_s;
    assert!(training > 0.0);
    assert!(
        two - one < training,
        "the second sink trained again: {one} → {two}, training {training}"
    );
}

#[test]
fn an_evaluation_adds_the_job_that_prints_its_metrics() {
    let slow_jobs = profile(|p| p.compute.job_overhead_s += 1.0);
    let base = profile(|_| ());
    let a = plan(program(1, true, true), &base).predicted_s;
    let b = plan(program(1, true, true), &slow_jobs).predicted_s;
    assert!(close(b - a, 4.0), "{a} → {b}");
}

#[test]
fn every_task_pays_the_task_overhead() {
    let base = profile(|_| ());
    let slow_tasks = profile(|p| p.compute.task_overhead_s += 1.0);
    let a = plan(program(1, false, false), &base);
    let b = plan(program(1, false, false), &slow_tasks);
    for (x, y) in a.stages.iter().zip(&b.stages) {
        // A stage that goes on in its producer's task is no task of its own.
        let tasks = if a.continues_task(x.id) { 0.0 } else { 1.0 };
        assert!(
            close(y.predicted_s - x.predicted_s, tasks),
            "{x:?} vs {y:?}"
        );
    }
    assert!(
        b.predicted_s - a.predicted_s >= 1.0 - 1e-9,
        "{} → {}: {a:?} vs {b:?}",
        a.predicted_s,
        b.predicted_s
    );
}

#[test]
fn the_first_job_pays_for_its_tasks_running_for_the_first_time() {
    let base = profile(|_| ());
    let cold_code = profile(|p| p.compute.first_task_s += 1.0);
    for sinks in [1, 3] {
        let a = plan(program(sinks, false, false), &base);
        let b = plan(program(sinks, false, false), &cold_code);
        // One task in a row in the first job (a scan, filtered; the show goes on in it),
        // whatever the jobs after it.
        assert!(
            close(b.predicted_s - a.predicted_s, 1.0),
            "{sinks} sinks: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn a_stage_that_gathers_what_its_function_holds_goes_on_in_its_task() {
    // scan → sort → show on one function: the sort's gather moves nothing, and the runtime
    // sorts in the task that scanned (one partition needs no exchange).
    let mut g = OpGraph::default();
    let table = scan(&mut g);
    let sorted = op(&mut g, OpKind::Sort { fetch: None }, vec![table]);
    show(&mut g, sorted);
    let base = profile(|_| ());
    let slow_tasks = profile(|p| p.compute.task_overhead_s += 1.0);
    let a = plan(g.clone(), &base);
    let b = plan(g, &slow_tasks);
    assert!(a.stages.len() >= 2, "the sort is a stage of its own: {a:?}");
    let paying = a
        .stages
        .iter()
        .zip(&b.stages)
        .filter(|(x, y)| close(y.predicted_s - x.predicted_s, 1.0))
        .count();
    assert_eq!(paying, 1, "only the scan's stage is a task: {a:?} vs {b:?}");
    assert!(
        close(b.predicted_s - a.predicted_s, 1.0),
        "{} → {}",
        a.predicted_s,
        b.predicted_s
    );
}

#[test]
fn planning_a_job_grows_with_its_operators_and_their_expressions() {
    // scan (no expressions), a filter of 10 expression nodes, a show: 13 nodes a job.
    let graph = |sinks: usize| {
        let mut g = OpGraph::default();
        let table = scan(&mut g);
        for _ in 0..sinks {
            let kept = g.push(Op {
                exprs: 10,
                ..Op::new(OpKind::Filter { keeps: None }, vec![table], 40.0)
            });
            show(&mut g, kept);
        }
        g
    };
    let base = profile(|_| ());
    let slow_planning = profile(|p| p.compute.plan_s_per_node += 1.0);
    for sinks in [1, 2] {
        let a = plan(graph(sinks), &base).predicted_s;
        let b = plan(graph(sinks), &slow_planning).predicted_s;
        // Each job plans the scan it shares with the others again.
        assert!(
            close(b - a, 13.0 * sinks as f64),
            "{sinks} sinks: {a} → {b}"
        );
    }
}
