//! Planning time of a generated 10,000-operator graph (target: under one second), on the
//! `aws` profile with the default objective.
//!
//! `cargo bench -p flow-planner --bench plan`

use criterion::{Criterion, criterion_group, criterion_main};
use flow_planner::{Op, OpGraph, OpKind, Options, Profile, SourceStats};
use std::hint::black_box;

/// Blocks of scan → filter → project, a second scan, a join of the two (and of the previous
/// block's output), a grouping and a save: 10,000 operators that read like real pipelines.
pub fn generated(ops: usize) -> OpGraph {
    let mut g = OpGraph::default();
    let mut previous: Option<usize> = None;
    let mut i = 0u64;
    let push =
        |g: &mut OpGraph, kind, inputs: Vec<usize>, width| g.push(Op::new(kind, inputs, width));
    while g.len() + 9 <= ops {
        i += 1;
        let rows = 100_000 * (1 + i % 97);
        let scan = |name: String, rows: u64| OpKind::Scan {
            source: name,
            format: "parquet".into(),
            files: 1 + (rows / 1_000_000) as u32,
            stats: SourceStats {
                bytes: rows * 40,
                rows,
                exact: true,
            },
            read: None,
        };
        let a = push(&mut g, scan(format!("facts-{i}"), rows), vec![], 80.0);
        let a = push(&mut g, OpKind::Filter { keeps: None }, vec![a], 80.0);
        let a = push(&mut g, OpKind::Project, vec![a], 48.0);
        let b = push(&mut g, scan(format!("dims-{i}"), rows / 20), vec![], 64.0);
        let j = push(
            &mut g,
            OpKind::Join {
                join: "Inner".into(),
                keys: 1,
                distinct: None,
            },
            vec![a, b],
            100.0,
        );
        let j = match previous {
            Some(p) => push(
                &mut g,
                OpKind::Join {
                    join: "Left".into(),
                    keys: 1,
                    distinct: None,
                },
                vec![j, p],
                120.0,
            ),
            None => push(&mut g, OpKind::Project, vec![j], 100.0),
        };
        let agg = push(
            &mut g,
            OpKind::Aggregate {
                keys: 2,
                groups: None,
            },
            vec![j],
            32.0,
        );
        let out = push(&mut g, OpKind::Project, vec![agg], 32.0);
        push(
            &mut g,
            OpKind::Save {
                path: format!("out-{i}.parquet"),
                format: "parquet".into(),
            },
            vec![out],
            32.0,
        );
        previous = Some(out);
    }
    while g.len() < ops {
        let last = g.len() - 1;
        push(&mut g, OpKind::Show { limit: 20 }, vec![last], 32.0);
    }
    g
}

fn planning(c: &mut Criterion) {
    let graph = generated(10_000);
    assert_eq!(graph.len(), 10_000);
    let aws = Profile::builtin("aws").unwrap();
    let options = Options::default();
    let mut group = c.benchmark_group("planner");
    group.sample_size(10);
    group.bench_function("plan 10,000 operators (aws, latency)", |b| {
        b.iter(|| flow_planner::plan_graph(black_box(graph.clone()), &aws, &options).unwrap())
    });
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
