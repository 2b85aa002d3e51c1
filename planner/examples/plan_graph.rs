//! Using the planner as a library: build an operator graph by hand (a program compiled with
//! `flow_compiler` works the same through `flow_planner::plan`), plan it for AWS Lambda under
//! two objectives, read the choices, and keep the plan as JSON.
//!
//! `cargo run -p flow-planner --example plan_graph`

use flow_planner::{
    Objective, Op, OpGraph, OpKind, Options, PhysicalPlan, Profile, SourceStats, units,
};

fn main() {
    let mut graph = OpGraph::default();
    let events = graph.push(Op::new(
        OpKind::Scan {
            source: "events/*.parquet".into(),
            format: "parquet".into(),
            files: 40,
            stats: SourceStats {
                bytes: 8_000_000_000,
                rows: 200_000_000,
                exact: true,
            },
            read: None,
        },
        vec![],
        64.0,
    ));
    let purchases = graph.push(Op::new(OpKind::Filter { keeps: None }, vec![events], 64.0));
    let per_customer = graph.push(Op::new(
        OpKind::Aggregate {
            keys: 1,
            groups: None,
        },
        vec![purchases],
        24.0,
    ));
    graph.push(Op::new(
        OpKind::Save {
            path: "spend.parquet".into(),
            format: "parquet".into(),
        },
        vec![per_customer],
        24.0,
    ));

    let aws = Profile::builtin("aws").expect("the built-in profile");
    for objective in [Objective::Latency, Objective::Cost] {
        let options = Options {
            objective,
            ..Options::default()
        };
        let plan = match flow_planner::plan_graph(graph.clone(), &aws, &options) {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!("no plan: {e}");
                std::process::exit(1);
            }
        };
        println!(
            "objective {}: {} for {}",
            objective.describe(),
            units::seconds(plan.predicted_s),
            units::usd(plan.predicted_usd)
        );
        for stage in &plan.stages {
            println!(
                "  stage {}: {} × {} MB — {}",
                stage.id, stage.functions, stage.memory_mb, stage.reason
            );
        }
        for x in &plan.exchanges {
            println!("  {} {} → {}: {}", x.pattern.name(), x.from, x.to, x.reason);
        }
        let json = plan.to_json();
        let back = PhysicalPlan::from_json(&json).expect("a plan reads back");
        assert_eq!(back, plan);
    }
    println!();
    println!(
        "{}",
        flow_planner::render::text(
            &flow_planner::plan_graph(graph, &aws, &Options::default()).expect("plans")
        )
    );
}
