//! Where producers aggregate partially before a grouping's shuffle: the planner decides, from
//! how much the pre-aggregation shrinks what moves, and the plan records it for the runtime.

use flow_planner::{Op, OpGraph, OpKind, Options, Profile, SourceStats, plan_graph};

/// Ten million rows of 16 bytes grouped into `groups` groups by `keys` keys, on two workers.
fn grouping(keys: u32, groups: u64) -> flow_planner::PhysicalPlan {
    let mut g = OpGraph::default();
    let mut op = |kind, inputs, width| g.push(Op::new(kind, inputs, width));
    let scan = op(
        OpKind::Scan {
            source: "facts.parquet".into(),
            format: "parquet".into(),
            files: 1,
            stats: SourceStats {
                bytes: 120_000_000,
                rows: 10_000_000,
                exact: true,
            },
            read: None,
        },
        vec![],
        16.0,
    );
    let grouped = op(
        OpKind::Aggregate {
            keys,
            groups: Some(groups),
        },
        vec![scan],
        16.0,
    );
    op(OpKind::Show { limit: 20 }, vec![grouped], 16.0);
    let options = Options {
        workers: Some(2),
        ..Options::default()
    };
    plan_graph(g, &Profile::builtin("local").unwrap(), &options).unwrap()
}

fn into_grouping(plan: &flow_planner::PhysicalPlan) -> &flow_planner::physical::Exchange {
    plan.exchanges
        .iter()
        .find(|x| matches!(plan.ops[x.consumer].op.kind, OpKind::Aggregate { .. }))
        .expect("an exchange into the grouping")
}

#[test]
fn few_groups_are_pre_aggregated_and_move_as_partial_states() {
    let plan = grouping(1, 100);
    let x = into_grouping(&plan);
    assert!(x.partial, "{}", plan.to_text());
    assert!(x.bytes < 10_000.0, "{} bytes move", x.bytes);
    assert!(plan.to_text().contains("of partial aggregates"));
    assert!(into_grouping(&grouping(0, 1)).partial);
}

#[test]
fn nearly_distinct_keys_move_as_rows() {
    // A key column (every value distinct, as a sample of ids says): each worker's share
    // would keep nearly all its rows, and a hash table of millions of groups costs more
    // than moving them.
    let plan = grouping(1, 10_000_000);
    let x = into_grouping(&plan);
    assert!(!x.partial, "{}", plan.to_text());
    assert_eq!(x.bytes, 160_000_000.0);
    assert!(!plan.to_text().contains("of partial aggregates"));
}
