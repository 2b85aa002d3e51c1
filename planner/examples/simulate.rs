//! The planner's cost model on the `aws` profile against the published results it must
//! reproduce: FMI's point-to-point latencies, the shape of parallel batch inference, and a
//! shuffle join at 2–64 functions over direct channels and through storage.
//!
//! `cargo run --release -p flow-planner --example simulate` (or `bench/planner-simulation.sh`,
//! which keeps the output in `bench/planner-simulation.txt`).

use flow_planner::cost::point_to_point;
use flow_planner::{
    Channel, Objective, Op, OpGraph, OpKind, Options, PhysicalPlan, Profile, SourceStats, units,
};

fn op(kind: OpKind, inputs: Vec<usize>, width: f64) -> Op {
    Op::new(kind, inputs, width)
}

fn scan(name: &str, rows: u64, bytes: u64) -> OpKind {
    OpKind::Scan {
        source: name.into(),
        format: "parquet".into(),
        files: 1 + (bytes / 256_000_000) as u32,
        stats: SourceStats {
            bytes,
            rows,
            exact: true,
        },
        read: None,
    }
}

fn plan(graph: &OpGraph, profile: &Profile, options: &Options) -> Result<PhysicalPlan, String> {
    flow_planner::plan_graph(graph.clone(), profile, options).map_err(|e| e.message)
}

/// Which published figures set the profile's constants and which only check them.
#[derive(Clone, Copy)]
enum Role {
    Fitted,
    Checked,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Fitted => "fitted",
            Role::Checked => "checked",
        }
    }
}

fn point_to_point_table(aws: &Profile) {
    println!("## 1. Point-to-point latency, 2 GB functions (FMI, Copik et al. 2023)\n");
    println!(
        "Fitted points set the profile's constants (direct and storage latency on 1 B, TCP slow \
         start and storage streams on 10 MB); checked points were held out.\n"
    );
    println!(
        "| message | role | direct (model) | direct (FMI) | error | storage (model) | S3 (FMI) | error |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let measured = [
        (1.0, Some((Role::Fitted, 0.00041, 0.0375))),
        (1e3, None),
        (1e6, None),
        (10e6, Some((Role::Fitted, 0.058, 0.269))),
        (100e6, Some((Role::Checked, 0.214, 1.854))),
    ];
    for (bytes, fmi) in measured {
        let d = point_to_point(aws, Channel::Direct, bytes, 2048);
        let s = point_to_point(aws, Channel::Storage, bytes, 2048);
        let (role, fd, fs, ed, es) = match fmi {
            Some((role, fd, fs)) => (
                role.name(),
                units::seconds(fd),
                units::seconds(fs),
                format!("{:+.0}%", (d / fd - 1.0) * 100.0),
                format!("{:+.0}%", (s / fs - 1.0) * 100.0),
            ),
            None => ("", "".into(), "".into(), "".into(), "".into()),
        };
        println!(
            "| {} | {role} | {} | {fd} | {ed} | {} | {fs} | {es} |",
            units::bytes(bytes),
            units::seconds(d),
            units::seconds(s)
        );
    }
    println!();
}

/// The profile's storage figures against measurements it was not fitted to: Skyrise's S3
/// figures from Lambda. (FMI's direct bandwidths at 256 MB and 2 GB are the profile's
/// `bandwidth_by_memory` itself, so they cannot check it.)
fn held_out_table(aws: &Profile) {
    println!("## 2. Held-out figures\n");
    println!("| figure | model | published | error |");
    println!("|---|---|---|---|");
    let rate = |b: f64| format!("{:.0} MB/s", b / 1e6);
    let skyrise_nic = 0.63e9 / 8.0;
    let s3 = aws.storage_bandwidth(2048);
    println!(
        "| S3 bandwidth per function, sustained (Skyrise: 0.63 Gbit/s NIC) | {} | {} | {:+.0}% |",
        rate(s3),
        rate(skyrise_nic),
        (s3 / skyrise_nic - 1.0) * 100.0
    );
    let gets = f64::from(aws.storage.gets_per_s_per_prefix);
    println!(
        "| S3 GET requests per second per prefix (Skyrise) | {gets:.0} | 5500 | {:+.0}% |",
        (gets / 5500.0 - 1.0) * 100.0
    );
    println!();
}

fn inference(aws: &Profile) {
    // DistilBERT on the IMDb test set, as in the serverless batch-inference study: 25,000
    // reviews, a 255 MB model, about 0.84 s per review on one vCPU (325–375 minutes
    // monolithic). The kernel price is set so the model costs that per row.
    let rows = 25_000u64;
    let model_bytes = 255_000_000u64;
    let per_row_s = 0.84;
    let mut profile = aws.clone();
    profile.kernels.onnx_infer_s_per_byte = per_row_s / model_bytes as f64;
    let memory = 3008;
    let mut g = OpGraph::default();
    let model = g.push(op(
        OpKind::ModelLoad {
            path: "distilbert.onnx".into(),
            bytes: model_bytes,
            transformer: None,
        },
        vec![],
        1.0,
    ));
    let reviews = g.push(op(
        scan("imdb_test.parquet", rows, 33_000_000),
        vec![],
        1300.0,
    ));
    let scored = g.push(op(
        OpKind::Infer {
            batch: None,
            tokens: None,
            padded: Vec::new(),
        },
        vec![model, reviews],
        1316.0,
    ));
    g.push(op(
        OpKind::Save {
            path: "scores.parquet".into(),
            format: "parquet".into(),
        },
        vec![scored],
        1316.0,
    ));

    // One function processing everything in sequence: no time limit, same memory.
    let mut unlimited = profile.clone();
    unlimited.compute.max_duration_s = 1e9;
    let alone = Options {
        workers: Some(1),
        exact_workers: true,
        memory_mb: Some(memory),
        ..Options::default()
    };
    let mono = plan(&g, &unlimited, &alone).expect("the monolithic plan");
    println!("## 3. Parallel batch inference (DistilBERT on IMDb, {memory} MB functions)\n");
    println!(
        "One function in sequence (time limit lifted): {}, {}.\n",
        units::seconds(mono.predicted_s),
        units::usd(mono.predicted_usd)
    );
    println!("| fan-out | predicted time | time cut | cost | extra cost |");
    println!("|---|---|---|---|---|");
    for n in [1u32, 4, 16, 32, 64, 128, 256, 512, 1000] {
        let o = Options {
            workers: Some(n),
            exact_workers: true,
            memory_mb: Some(memory),
            ..Options::default()
        };
        match plan(&g, &profile, &o) {
            Ok(p) => println!(
                "| {n} | {} | {:.1}% | {} | {:+.1}% |",
                units::seconds(p.predicted_s),
                (1.0 - p.predicted_s / mono.predicted_s) * 100.0,
                units::usd(p.predicted_usd),
                (p.predicted_usd / mono.predicted_usd - 1.0) * 100.0
            ),
            Err(e) => println!("| {n} | no plan: {e} | | | |"),
        }
    }
    let budget = Options {
        objective: Objective::Budget(mono.predicted_usd * 1.10),
        memory_mb: Some(memory),
        ..Options::default()
    };
    match plan(&g, &profile, &budget) {
        Ok(p) => {
            let fan_out = p.stages.iter().map(|s| s.functions).max().unwrap_or(1);
            println!(
                "\nThe planner's choice within 10% over the monolithic cost ({}): {fan_out} functions, {} ({:.1}% less time), {} ({:+.1}%).\n",
                units::usd(mono.predicted_usd * 1.10),
                units::seconds(p.predicted_s),
                (1.0 - p.predicted_s / mono.predicted_s) * 100.0,
                units::usd(p.predicted_usd),
                (p.predicted_usd / mono.predicted_usd - 1.0) * 100.0
            );
        }
        Err(e) => println!("\nNo plan within the budget: {e}\n"),
    }
}

fn shuffle_join(aws: &Profile) {
    // 60 M orders lines against 15 M orders (TPC-H scale 10 sizes), joined on the order key
    // and grouped by customer.
    let mut g = OpGraph::default();
    let lines = g.push(op(
        scan("lineitem", 60_000_000, 2_300_000_000),
        vec![],
        140.0,
    ));
    let orders = g.push(op(scan("orders", 15_000_000, 550_000_000), vec![], 110.0));
    let joined = g.push(op(
        OpKind::Join {
            join: "Inner".into(),
            keys: 1,
            distinct: None,
        },
        vec![lines, orders],
        250.0,
    ));
    let grouped = g.push(op(
        OpKind::Aggregate {
            keys: 1,
            groups: None,
        },
        vec![joined],
        24.0,
    ));
    g.push(op(
        OpKind::Save {
            path: "by_customer.parquet".into(),
            format: "parquet".into(),
        },
        vec![grouped],
        24.0,
    ));
    println!("## 4. Shuffle join (60 M × 15 M rows, 2 GB functions), direct vs storage\n");
    println!("| functions | direct time | direct cost | storage time | storage cost |");
    println!("|---|---|---|---|---|");
    for n in [2u32, 4, 8, 16, 32, 64] {
        let run = |channel| {
            let o = Options {
                workers: Some(n),
                exact_workers: true,
                memory_mb: Some(2048),
                channel: Some(channel),
                ..Options::default()
            };
            match plan(&g, aws, &o) {
                Ok(p) => (units::seconds(p.predicted_s), units::usd(p.predicted_usd)),
                Err(e) => (format!("no plan ({e})"), String::new()),
            }
        };
        let (dt, dc) = run(Channel::Direct);
        let (st, sc) = run(Channel::Storage);
        println!("| {n} | {dt} | {dc} | {st} | {sc} |");
    }
    println!();
}

fn main() {
    let aws = Profile::builtin("aws").expect("the built-in aws profile");
    println!("# Planner simulation on the `aws` profile\n");
    point_to_point_table(&aws);
    held_out_table(&aws);
    inference(&aws);
    shuffle_join(&aws);
}
