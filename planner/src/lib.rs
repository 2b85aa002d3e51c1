//! The flow planner: partitions a compiled pipeline across serverless functions and decides,
//! for every exchange between them, whether rows move over a direct TCP channel, through a
//! storage hop, or stay inside one function — with the predicted time and cost of every part
//! and the reason for every choice.
//!
//! The planner is pure: sizes come through the [`Statistics`] trait, prices and limits from a
//! [`Profile`]. It is a library first; `flowc plan` is one caller.
//!
//! ```no_run
//! use flow_planner::{Options, Profile, plan_graph};
//! # fn graph() -> flow_planner::OpGraph { unimplemented!() }
//! let profile = Profile::builtin("aws").unwrap();
//! let plan = plan_graph(graph(), &profile, &Options::default()).unwrap();
//! println!("{}", flow_planner::render::text(&plan));
//! let json = plan.to_json();
//! ```
//!
//! Pipeline: [`ops::lower`] turns the compiler's DAG into an operator graph, [`ops::estimate`]
//! sizes it, then the [`rules`] run in order (exchanges, broadcast joins, stage formation,
//! sizing, channels, training collectives, inference batches, prediction).

#![deny(missing_docs)]

mod candidate;
pub mod cost;
pub mod fingerprint;
mod needs;
pub mod ops;
mod options;
pub mod physical;
pub mod profile;
pub mod render;
pub mod rules;
pub mod stats;
pub mod sweep;
mod trace;
pub mod units;
pub mod work;

pub use fingerprint::Fingerprint;
pub use ops::{Channel, Op, OpGraph, OpHints, OpId, OpKind, Origin, Size};
pub use options::{Options, PlanError, Unmet};
pub use physical::{Exchange, Objective, PLAN_VERSION, Pattern, PhysicalPlan, Stage};
pub use profile::{Profile, ProfileError};
pub use stats::{ColumnBytes, NoStatistics, SourceStats, Statistics};

use flow_compiler::Dag;
use physical::PlannedOp;
use rules::{Planning, RULES, Score};

/// Plans a compiled program; the plan carries the program's [`Fingerprint`].
pub fn plan(
    dag: &Dag,
    stats: &dyn Statistics,
    profile: &Profile,
    options: &Options,
) -> Result<PhysicalPlan, PlanError> {
    let mut plan = plan_graph(ops::lower(dag, stats), profile, options)?;
    plan.program = Some(Fingerprint::of(dag));
    Ok(plan)
}

/// Plans an operator graph (for callers that build one without the compiler).
pub fn plan_graph(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
) -> Result<PhysicalPlan, PlanError> {
    plan_traced(graph, profile, options).map(|(plan, _)| plan)
}

/// A rule's name and the plan as it stood after the rule ran.
pub type Trace = Vec<(&'static str, PhysicalPlan)>;

/// Plans an operator graph and keeps the plan after each rule (`flowc plan --verbose`).
pub fn plan_traced(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
) -> Result<(PhysicalPlan, Trace), PlanError> {
    match options.objective {
        Objective::Latency => run(graph, profile, options, Score::Latency),
        Objective::Cost => run(graph, profile, options, Score::Cost),
        Objective::Budget(limit) => constrained(
            graph,
            profile,
            options,
            |p| p.predicted_usd <= limit,
            |p| p.predicted_usd,
            Score::Latency,
        )?
        .map_err(|cheapest| {
            PlanError::constraint(format!(
                "no plan meets the budget of {}: the cheapest plan found costs {}",
                units::usd(limit),
                units::usd(cheapest.predicted_usd)
            ))
            .with_help("raise `budget_usd`, or plan with `objective = \"cost\"` to see where the money goes")
        }),
        Objective::Deadline(limit) => constrained(
            graph,
            profile,
            options,
            |p| p.predicted_s <= limit,
            |p| p.predicted_s,
            Score::Cost,
        )?
        .map_err(|fastest| {
            PlanError::constraint(format!(
                "no plan meets the deadline of {}: the fastest plan found takes {}",
                units::seconds(limit),
                units::seconds(fastest.predicted_s)
            ))
            .with_help("raise `deadline_s`, allow more `workers`, or plan with `objective = \"latency\"`")
        }),
    }
}

/// Seconds per dollar tried when searching for a plan under a budget or deadline, from
/// "time is all that matters" to "money is all that matters".
const TRADE_OFFS: [f64; 12] = [
    1e-3, 1e-1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e10, 1e12,
];

/// Among the plans the trade-offs produce (each with the search's own bounds, as [`run`]
/// makes them), the best by `rank` of those that satisfy `ok`; when none does, `Err` with
/// the one that comes closest by `distance` (the cheapest for a budget, the fastest for a
/// deadline).
fn constrained(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
    ok: impl Fn(&PhysicalPlan) -> bool,
    distance: impl Fn(&PhysicalPlan) -> f64,
    rank: Score,
) -> Result<Result<(PhysicalPlan, Trace), PhysicalPlan>, PlanError> {
    let mut scores = vec![Score::Latency];
    scores.extend(TRADE_OFFS.iter().map(|l| Score::Weighted(*l)));
    scores.push(Score::Cost);
    let mut best: Option<Found> = None;
    let mut closest: Option<PhysicalPlan> = None;
    let key = |p: &PhysicalPlan| (p.predicted_s, p.predicted_usd);
    for score in scores {
        for found in search(graph.clone(), profile, options, score)? {
            let plan = &found.0.0;
            if ok(plan) {
                if best
                    .as_ref()
                    .is_none_or(|b| rank.better(key(plan), key(&b.0.0)))
                {
                    best = Some(found);
                }
            } else if closest
                .as_ref()
                .is_none_or(|c| distance(plan) < distance(c))
            {
                closest = Some(found.0.0);
            }
        }
    }
    match (best, closest) {
        (Some(found), _) => Ok(Ok(noted(found, options))),
        (None, Some(closest)) => Ok(Err(closest)),
        (None, None) => Err(PlanError::constraint("there is nothing to plan")),
    }
}

/// A plan the search found, with its trace, and the note that says which of the search's
/// bounds found it (`None`: the rules' plan under the options as asked).
type Found = ((PhysicalPlan, Trace), Option<String>);

/// The plan of a search, with the note of the bound that found it.
fn noted(((mut plan, trace), why): Found, options: &Options) -> (PhysicalPlan, Trace) {
    if let Some(why) = why {
        plan.notes.clear();
        notes(&mut plan, options);
        plan.notes.push(why);
    }
    (plan, trace)
}

/// The best plan by `score` of the rules' plan and the plans they make under the search's
/// own bounds ([`bounds`]). Sizing decides stage by stage and cannot see that fewer, larger
/// or smaller functions everywhere would finish sooner or cost less as a whole; a forced
/// bound must never beat the plan the planner chooses (`tests/properties.rs`).
///
/// A worker bound by hand (`--workers N`) is the same search kept to the plans that never
/// run more than N functions at once, plus the rules' plan under N: so a bound the
/// unbounded plan already keeps gives that plan, and a sweep's row is the flag's plan.
fn run(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
    score: Score,
) -> Result<(PhysicalPlan, Trace), PlanError> {
    let mut found = search(graph, profile, options, score)?;
    let keys: Vec<(f64, f64)> = found
        .iter()
        .map(|((p, _), _)| (p.predicted_s, p.predicted_usd))
        .collect();
    let held: Vec<f64> = found
        .iter()
        .map(|((p, _), _)| {
            p.stages
                .iter()
                .map(|s| f64::from(s.functions) * f64::from(s.memory_mb))
                .sum()
        })
        .collect();
    let best = score.best_of(&keys, &held).unwrap_or(0);
    Ok(noted(found.swap_remove(best), options))
}

/// The rules' plan under the options as asked (first), and the plans they make under each
/// of the search's bounds that keep a worker bound asked for.
fn search(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
    score: Score,
) -> Result<Vec<Found>, PlanError> {
    let mut found = vec![(run_fused(graph.clone(), profile, options, score)?, None)];
    let keeps = |plan: &PhysicalPlan| {
        options
            .workers
            .is_none_or(|most| plan.peak_functions() <= most)
    };
    for (bounded, why) in bounds(profile, options) {
        if let Ok(plan) = run_fused(graph.clone(), profile, &bounded, score)
            && keeps(&plan.0)
        {
            found.push((plan, Some(why)));
        }
    }
    Ok(found)
}

/// The bounds [`run`] also plans with, each with the note that says it was chosen: none, at
/// most N functions per stage (1 to 8, then powers of two below the profile's concurrency),
/// or every function at one of the profile's memory sizes. The same list whether or not a
/// worker bound is asked for ([`run`] keeps the plans within it). An exact count or a
/// memory size by hand is honoured as given: its plan is the rules' plan under it.
fn bounds(profile: &Profile, options: &Options) -> Vec<(Options, String)> {
    if options.exact_workers || options.memory_mb.is_some() {
        return Vec::new();
    }
    let open = Options {
        workers: None,
        ..options.clone()
    };
    let mut out = Vec::new();
    if options.workers.is_some() {
        out.push((
            open.clone(),
            "the search found this plan with no bound, and it runs within the one asked for"
                .to_string(),
        ));
    }
    let most = profile.compute.max_concurrency.max(1);
    let mut n = 1u32;
    while n < most {
        out.push((
            Options {
                workers: Some(n),
                searched: true,
                ..open.clone()
            },
            format!("the search found this plan with at most {n} functions per stage"),
        ));
        n = if n < 8 { n + 1 } else { n.saturating_mul(2) };
    }
    for memory in profile.memory_candidates() {
        out.push((
            Options {
                memory_mb: Some(memory),
                searched: true,
                ..open.clone()
            },
            format!("the search found this plan with {memory} MB in every function"),
        ));
    }
    out
}

/// Plans `graph` by the rules; then, when a consumer could have run in its producer's
/// function(s) had the producer been sized like it, plans again with those producers pinned
/// to their consumers' sizes ([`rules::Pin`]) and keeps the better whole plan by `score`.
fn run_fused(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
    score: Score,
) -> Result<(PhysicalPlan, Trace), PlanError> {
    let first = run_pinned(graph.clone(), profile, options, score, Vec::new())?;
    let pins = fusion_pins(&first.0, profile);
    if pins.iter().all(Option::is_none) {
        return Ok(first);
    }
    let key = |p: &PhysicalPlan| (p.predicted_s, p.predicted_usd);
    match run_pinned(graph, profile, options, score, pins) {
        Ok(second) if score.better(key(&second.0), key(&first.0)) => Ok(second),
        _ => Ok(first),
    }
}

/// For each stage, its consumer's size when that consumer reads it through an exchange that
/// would be fused had the two the same size. A consumer runs in one producer's functions at
/// most, so only its largest such input is pinned, as sizing fuses the largest input; pins
/// do not chain (a stage is either pinned or fused into, not both), or the second would
/// undo the first.
fn fusion_pins(plan: &PhysicalPlan, profile: &Profile) -> Vec<Option<rules::Pin>> {
    let mut pins = vec![None; plan.stages.len()];
    let mut claimed = vec![false; plan.stages.len()];
    let mut exchanges: Vec<&Exchange> = plan.exchanges.iter().collect();
    exchanges.sort_by(|a, b| b.bytes.total_cmp(&a.bytes).then(a.id.cmp(&b.id)));
    for x in exchanges {
        let (from, to) = (&plan.stages[x.from], &plan.stages[x.to]);
        let consumer = cost::Side {
            functions: to.functions,
            memory_mb: to.memory_mb,
        };
        let same = from.functions == to.functions && from.memory_mb == to.memory_mb;
        if x.channel != Channel::Fused
            && !same
            && to.runs_in == to.id
            && cost::can_fuse(profile, x.pattern, consumer, consumer)
            && pins[x.from].is_none()
            && !claimed[x.to]
            // A stage fusing into its producer keeps its size for that; a stage pinned to
            // its consumer's size cannot also take in its own producer at another.
            && !claimed[x.from]
            && pins[x.to].is_none()
        {
            claimed[x.to] = true;
            pins[x.from] = Some(rules::Pin {
                functions: to.functions,
                memory_mb: to.memory_mb,
                consumer: to.id,
            });
        }
    }
    pins
}

fn run_pinned(
    graph: OpGraph,
    profile: &Profile,
    options: &Options,
    score: Score,
    pins: Vec<Option<rules::Pin>>,
) -> Result<(PhysicalPlan, Trace), PlanError> {
    let sizes = ops::estimate(&graph);
    let cuts = graph
        .ops
        .iter()
        .map(|op| vec![None; op.inputs.len()])
        .collect();
    let ops = graph
        .ops
        .iter()
        .enumerate()
        .map(|(id, op)| PlannedOp {
            id,
            op: op.clone(),
            rows: sizes[id].rows,
            bytes: sizes[id].bytes,
            stage: 0,
            ends: graph.ends_of(id).collect(),
        })
        .collect();
    let plan = PhysicalPlan {
        version: PLAN_VERSION,
        profile: profile.name.clone(),
        profile_origin: profile.origin.clone(),
        objective: options.objective,
        predicted_s: 0.0,
        predicted_usd: 0.0,
        rendezvous_usd: 0.0,
        ops,
        stages: Vec::new(),
        exchanges: Vec::new(),
        notes: Vec::new(),
        time: None,
        program: None,
    };
    let mut planning = Planning {
        profile,
        options,
        score,
        graph,
        sizes,
        cuts,
        plan,
        stage_inputs: Vec::new(),
        stage_outputs: Vec::new(),
        busy_until: Vec::new(),
        chosen: Vec::new(),
        pins,
    };
    let mut trace = Vec::with_capacity(RULES.len());
    for rule in RULES {
        rule.apply(&mut planning)?;
        trace.push((rule.name(), planning.plan.clone()));
    }
    let mut plan = planning.plan;
    notes(&mut plan, options);
    Ok((plan, trace))
}

fn notes(plan: &mut PhysicalPlan, options: &Options) {
    if let Some(c) = options.channel {
        plan.notes.push(format!(
            "every exchange between functions uses the {} channel, as --channel asks",
            c.name()
        ));
    }
    if let Some(m) = options.memory_mb {
        plan.notes
            .push(format!("every function has {m} MB, as asked"));
    }
    if options.exact_workers {
        plan.notes.push(format!(
            "every stage that can be split runs on exactly {} functions (sweep)",
            options.workers.unwrap_or(1)
        ));
    } else if let Some(w) = options.workers {
        plan.notes
            .push(format!("at most {w} functions per stage, as asked"));
    }
    let unknown = plan.ops.iter().any(
        |op| matches!(&op.op.kind, OpKind::Scan { stats, .. } if *stats == stats::UNKNOWN_SOURCE),
    );
    if unknown {
        plan.notes.push("some sources could not be measured; they are assumed to hold a million rows of 100 bytes".into());
    }
}

impl PhysicalPlan {
    /// The plan as text for people (see [`render::text`]).
    pub fn to_text(&self) -> String {
        render::text(self)
    }
}
