//! How many workers a run of a plan needs: the most functions its timeline runs at once.

use flow_planner::{Op, OpGraph, OpKind, Options, Profile, SourceStats, plan_graph};

fn op(g: &mut OpGraph, kind: OpKind, inputs: Vec<usize>) -> usize {
    g.push(Op::new(kind, inputs, 16.0))
}

fn scan(g: &mut OpGraph, name: &str, rows: u64) -> usize {
    let stats = SourceStats {
        bytes: rows * 16,
        rows,
        exact: true,
    };
    let kind = OpKind::Scan {
        source: name.into(),
        format: "parquet".into(),
        files: 1,
        stats,
        read: None,
    };
    op(g, kind, vec![])
}

fn planned(g: OpGraph, workers: u32) -> flow_planner::PhysicalPlan {
    let options = Options {
        workers: Some(workers),
        ..Options::default()
    };
    plan_graph(g, &Profile::builtin("local").unwrap(), &options).unwrap()
}

#[test]
fn a_chain_of_stages_needs_its_widest_stage() {
    let mut g = OpGraph::default();
    let facts = scan(&mut g, "facts", 10_000_000);
    let groups = Some(10_000_000);
    let grouped = op(&mut g, OpKind::Aggregate { keys: 1, groups }, vec![facts]);
    op(&mut g, OpKind::Show { limit: 20 }, vec![grouped]);
    let plan = planned(g, 4);
    let widest = plan.stages.iter().map(|s| s.functions).max().unwrap();
    assert_eq!(plan.peak_functions(), widest, "{}", plan.to_text());
}

#[test]
fn stages_that_run_at_once_need_their_functions_together() {
    let mut g = OpGraph::default();
    let left = scan(&mut g, "left", 20_000_000);
    let right = scan(&mut g, "right", 20_000_000);
    let join = OpKind::Join {
        join: "Inner".into(),
        keys: 1,
        distinct: None,
    };
    let joined = op(&mut g, join, vec![left, right]);
    op(&mut g, OpKind::Show { limit: 20 }, vec![joined]);
    let plan = planned(g, 2);
    let scans: Vec<_> = plan
        .stages
        .iter()
        .filter(|s| s.runs_in == s.id && s.start_s == plan.stages[0].start_s)
        .collect();
    assert!(scans.len() >= 2, "{}", plan.to_text());
    let together: u32 = scans.iter().map(|s| s.functions).sum();
    assert_eq!(plan.peak_functions(), together, "{}", plan.to_text());
}
