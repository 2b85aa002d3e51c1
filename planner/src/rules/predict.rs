//! `predict`: the final timeline and bill. Every stage starts when its inputs have arrived
//! (stages after the first are started early, so only the first pays a cold start on the
//! critical path) and finishes one task later — or, when it is pipelined, starts with its
//! producers and finishes when the pipeline the sizing priced drains. The runtime runs each sink's job on its own,
//! one after another — a job computes the stages its sink needs that no earlier job ran
//! (what sinks share runs once and is kept until its last reader has it; a model, trained
//! or loaded once, is kept too) — so the plan takes the
//! cold start, each job's longest chain of stages and exchanges plus the job's own overhead
//! (a fixed part and planning, per node of the operators and expressions it computes), and
//! the teardown; each task of the first job pays once more for code run for the first time.
//! A stage that only gathers what its one function holds goes on in that function's task.
//! The cost adds every function's GB-seconds and requests, every exchange, and, when any
//! channel is direct, the rendezvous host once per job (not per message) for as long as
//! peers are being introduced, at least a minute.

use super::{Planning, Rule};
use crate::ops::{Channel, OpId, OpKind};
use crate::options::PlanError;
use crate::physical::{Exchange, TimeSpent, continues_task};

/// EC2 bills at least a minute per start.
pub const RENDEZVOUS_MIN_S: f64 = 60.0;

pub struct Predict;

impl Rule for Predict {
    fn name(&self) -> &'static str {
        "predict"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        let mut usd = 0.0;
        let mut end: f64 = 0.0;
        for (stage, c) in p.chosen.iter().enumerate() {
            usd += c.usd;
            end = end.max(c.finish_s);
            p.plan.stages[stage].predicted_usd = c.compute_usd;
        }
        // The rendezvous host only introduces peers: it runs from the first direct
        // exchange's producers starting to the last one's consumers starting (and through
        // training that exchanges over direct channels), billed for at least a minute.
        let stages = &p.plan.stages;
        let mut window: Option<(f64, f64)> = None;
        let mut widen = |from: f64, to: f64| {
            window = Some(window.map_or((from, to), |(a, b)| (a.min(from), b.max(to))));
        };
        for x in p
            .plan
            .exchanges
            .iter()
            .filter(|x| x.channel == Channel::Direct)
        {
            widen(stages[x.from].start_s, stages[x.to].start_s);
        }
        for s in stages {
            if s.collective
                .as_ref()
                .is_some_and(|c| c.channel == Channel::Direct)
            {
                widen(s.start_s, s.finish_s);
            }
        }
        p.plan.rendezvous_usd = window.map_or(0.0, |(a, b)| {
            p.profile.direct.rendezvous_usd_per_hour * (b - a).max(RENDEZVOUS_MIN_S) / 3600.0
        });
        let time = jobs_in_turn(p);
        p.plan.predicted_s = time.as_ref().map_or(end, TimeSpent::total);
        p.plan.time = time;
        p.plan.predicted_usd = usd + p.plan.rendezvous_usd;
        Ok(())
    }
}

/// Where a run's time goes, with the sinks' jobs in program order, one after another, as
/// the runtime runs them; `None` when the graph has no sink. Each job is planned before it
/// starts, in time growing with the operators it computes and their expressions. Before a
/// sink's own job, each model it needs that is not trained yet costs two: one computing the
/// training table (what the model's input stages compute again later for other sinks), one
/// training. A sink that shows an evaluation costs one more, printing the metrics' table.
fn jobs_in_turn(p: &Planning) -> Option<TimeSpent> {
    let plan = &p.plan;
    let c = &p.profile.compute;
    let n = plan.stages.len();
    let kind_in = |s: usize, f: fn(&OpKind) -> bool| {
        plan.stages[s]
            .ops
            .iter()
            .any(|id| f(&p.graph.ops[*id].kind))
    };
    let sinks: Vec<(usize, OpId)> = p
        .graph
        .ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.kind, OpKind::Save { .. } | OpKind::Show { .. }))
        .map(|(id, _)| (plan.stage_of(id), id))
        .collect();
    if sinks.is_empty() {
        return None;
    }
    // Each stage's inputs, found once: every job walks them, and a program has hundreds.
    let mut inputs: Vec<Vec<&Exchange>> = vec![Vec::new(); n];
    for x in &plan.exchanges {
        inputs[x.to].push(x);
    }
    let continues: Vec<bool> = inputs
        .iter()
        .map(|xs| continues_task(xs.iter().map(|x| (x.pattern, x.channel))))
        .collect();
    let trains: Vec<bool> = (0..n)
        .map(|s| kind_in(s, |k| matches!(k, OpKind::Train { .. })))
        .collect();
    let keeps: Vec<bool> = (0..n)
        .map(|s| {
            kind_in(s, |k| {
                matches!(k, OpKind::Train { .. } | OpKind::ModelLoad { .. })
            })
        })
        .collect();
    let evaluates: Vec<bool> = (0..n)
        .map(|s| kind_in(s, |k| matches!(k, OpKind::Evaluate)))
        .collect();
    // The stages `roots` need, through exchanges, stopping at `kept` ones when asked to.
    let upstream = |roots: &[usize], kept: &[bool]| {
        let mut needed = vec![false; n];
        let mut todo = roots.to_vec();
        while let Some(s) = todo.pop() {
            if needed[s] || kept[s] {
                continue;
            }
            needed[s] = true;
            todo.extend(inputs[s].iter().map(|x| x.from));
        }
        needed
    };
    // The nodes the coordinator plans for a job computing `ops`: those operators, their
    // expressions, and everything they read, but for a model kept from an earlier job.
    let planned_nodes = |ops: &[OpId], kept: &[bool]| {
        let mut seen = vec![false; p.graph.ops.len()];
        let mut todo = ops.to_vec();
        let mut nodes = 0.0;
        while let Some(id) = todo.pop() {
            let op = &p.graph.ops[id];
            if seen[id] || (op.kind.is_model() && kept[plan.stage_of(id)]) {
                continue;
            }
            seen[id] = true;
            nodes += op.planning_nodes();
            todo.extend(&op.inputs);
        }
        nodes
    };
    // One job computing `ops`, in stages `roots`: its planning, then its longest chain of
    // stages and exchanges. Stages are listed producers first, so one pass sees every input
    // before its reader. The first job's tasks are each worker's first: they pay for
    // running code paths for the first time.
    let mut warm = false;
    let mut job = |roots: &[usize], ops: &[OpId], kept: &mut Vec<bool>, ran: &mut Vec<bool>| {
        let planning = planned_nodes(ops, kept) * c.plan_s_per_node;
        let held: Vec<bool> = kept.iter().zip(ran.iter()).map(|(k, r)| *k || *r).collect();
        let needed = upstream(roots, &held);
        let mut started = vec![0.0_f64; n];
        let mut finish = vec![0.0_f64; n];
        let mut longest: f64 = 0.0;
        for (s, stage) in plan.stages.iter().enumerate().filter(|(s, _)| needed[*s]) {
            let first_time = if warm || continues[s] {
                0.0
            } else {
                c.first_task_s
            };
            // A pipelined stage overlaps its producers only when they run in this job too.
            let streams = stage.pipelined && inputs[s].iter().all(|x| needed[x.from]);
            if streams {
                started[s] = inputs[s]
                    .iter()
                    .map(|x| started[x.from])
                    .fold(0.0, f64::max);
                finish[s] = started[s] + (stage.finish_s - stage.start_s) + first_time;
            } else {
                started[s] = inputs[s]
                    .iter()
                    .filter(|x| needed[x.from])
                    .map(|x| finish[x.from] + x.predicted_s)
                    .fold(0.0, f64::max);
                finish[s] = started[s] + stage.predicted_s + first_time;
            }
            longest = longest.max(finish[s]);
        }
        warm = warm || needed.iter().any(|n| *n);
        for s in (0..n).filter(|s| needed[*s]) {
            ran[s] = true;
            kept[s] |= keeps[s];
        }
        ((c.job_overhead_s + planning, longest), needed)
    };
    let mut kept = vec![false; n];
    let mut ran = vec![false; n];
    let mut time = TimeSpent {
        start_up_s: c.cold_start_s,
        teardown_s: c.teardown_s,
        ..TimeSpent::default()
    };
    for (sink, sink_op) in sinks {
        let reach = upstream(&[sink], &kept);
        for t in (0..n).filter(|s| reach[*s] && trains[*s]) {
            if kept[t] {
                continue;
            }
            let producers: Vec<usize> = inputs[t].iter().map(|x| x.from).collect();
            let table: Vec<OpId> = plan.stages[t]
                .ops
                .iter()
                .filter(|id| matches!(p.graph.ops[**id].kind, OpKind::Train { .. }))
                .flat_map(|id| p.graph.ops[*id].inputs.iter().copied())
                .collect();
            let ((fixed, work), _) = job(&producers, &table, &mut kept, &mut ran);
            time.add_job(fixed, work);
            time.add_job(c.job_overhead_s, plan.stages[t].predicted_s);
            kept[t] = true;
        }
        if kept[sink] {
            // A model saved: written from what training kept, no job.
            continue;
        }
        let ((fixed, work), needed) = job(&[sink], &[sink_op], &mut kept, &mut ran);
        time.add_job(fixed, work);
        if (0..n).any(|s| needed[s] && evaluates[s]) {
            time.add_job(c.job_overhead_s, c.task_overhead_s);
        }
    }
    Some(time)
}
