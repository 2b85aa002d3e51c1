//! `fuse_narrow`: forms stages. Operators joined by an edge without an exchange run in the
//! same stage, one task per function, rows streaming from one to the next.
//!
//! Every operator has an exchange depth: deeper than every operator it reads through an
//! exchange, equal to every operator it fuses with. A fused input that is shallower is
//! raised to its reader's depth when nothing it already feeds forbids it (a scan joined with
//! a broadcast side); otherwise the edge becomes a `repartition`. Exchanges therefore always
//! lead to a deeper stage, so the stages form a DAG whatever the program.

use super::{Planning, Rule};

use crate::ops::{Channel, OpKind};
use crate::options::PlanError;
use crate::physical::{Exchange, Pattern, Stage};

pub struct FuseNarrow;

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

impl Rule for FuseNarrow {
    fn name(&self) -> &'static str {
        "fuse_narrow"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        let n = p.graph.ops.len();
        let readers = p.graph.readers();
        let mut depth = vec![0u32; n];
        let mut parent: Vec<usize> = (0..n).collect();
        let mut members: Vec<Vec<usize>> = (0..n).map(|id| vec![id]).collect();
        for id in 0..n {
            let inputs = p.graph.ops[id].inputs.clone();
            depth[id] = inputs
                .iter()
                .zip(&p.cuts[id])
                .map(|(i, cut)| depth[*i] + u32::from(cut.is_some()))
                .max()
                .unwrap_or(0);
            for (k, input) in inputs.iter().enumerate() {
                if p.cuts[id][k].is_some() {
                    continue;
                }
                let group = find(&mut parent, *input);
                let target = depth[id];
                if depth[*input] < target
                    && !lift(
                        &mut depth,
                        &members[group],
                        target,
                        id,
                        &readers,
                        &p.cuts,
                        &p.graph,
                    )
                {
                    p.cuts[id][k] = Some(Pattern::Repartition);
                    continue;
                }
                let (a, b) = (find(&mut parent, id), group);
                if a != b {
                    let (keep, gone) = (a.min(b), a.max(b));
                    parent[gone] = keep;
                    let moved = std::mem::take(&mut members[gone]);
                    members[keep].extend(moved);
                }
            }
        }
        // Stages in order of depth, then of their first operator: producers come first.
        let mut roots: Vec<(u32, usize)> = (0..n)
            .filter(|id| find(&mut parent, *id) == *id)
            .map(|id| (depth[id], id))
            .collect();
        roots.sort_unstable();
        let mut stage_of_root = vec![usize::MAX; n];
        for (stage, (_, root)) in roots.iter().enumerate() {
            stage_of_root[*root] = stage;
        }
        let mut stages: Vec<Stage> = (0..roots.len()).map(empty_stage).collect();
        for id in 0..n {
            let stage = stage_of_root[find(&mut parent, id)];
            p.plan.ops[id].stage = stage;
            stages[stage].ops.push(id);
        }
        for stage in &mut stages {
            stage.partitioned = stage.ops.iter().all(|id| {
                !p.graph.ops[*id].kind.is_single() && !p.cuts[*id].contains(&Some(Pattern::Gather))
            });
        }
        let mut exchanges = Vec::new();
        for id in 0..n {
            for (k, cut) in p.cuts[id].iter().enumerate() {
                let Some(pattern) = cut else { continue };
                let input = p.graph.ops[id].inputs[k];
                let keys = match (&p.graph.ops[id].kind, pattern) {
                    (
                        OpKind::Join { keys, .. } | OpKind::Aggregate { keys, .. },
                        Pattern::HashShuffle,
                    ) => Some(*keys),
                    _ => None,
                };
                exchanges.push(Exchange {
                    id: exchanges.len(),
                    from: p.plan.ops[input].stage,
                    to: p.plan.ops[id].stage,
                    producer: input,
                    consumer: id,
                    pattern: *pattern,
                    keys,
                    partial: false,
                    channel: Channel::Storage,
                    bytes: p.sizes[input].bytes,
                    predicted_s: 0.0,
                    predicted_usd: 0.0,
                    alternative: None,
                    forced: false,
                    reason: String::new(),
                });
            }
        }
        p.stage_inputs = vec![Vec::new(); stages.len()];
        p.stage_outputs = vec![Vec::new(); stages.len()];
        for x in &exchanges {
            p.stage_inputs[x.to].push(x.id);
            p.stage_outputs[x.from].push(x.id);
        }
        p.plan.stages = stages;
        p.plan.exchanges = exchanges;
        Ok(())
    }
}

/// Raises a group of fused operators to `to`, so that a deeper reader can fuse with it (a
/// scan joined with a broadcast side stays where it is instead of being repartitioned).
/// Refused when an operator of the group already feeds, through an exchange, an operator
/// (`reader` included) that is not deeper than `to`.
fn lift(
    depth: &mut [u32],
    group: &[usize],
    to: u32,
    reader: usize,
    readers: &[Vec<usize>],
    cuts: &[Vec<Option<Pattern>>],
    graph: &crate::ops::OpGraph,
) -> bool {
    for &op in group {
        for &r in &readers[op] {
            // Readers after this one are not placed yet; this one counts (it may read the
            // group through an exchange on another input).
            if r > reader {
                continue;
            }
            let through_exchange = graph.ops[r]
                .inputs
                .iter()
                .zip(&cuts[r])
                .any(|(i, c)| *i == op && c.is_some());
            if through_exchange && depth[r] <= to {
                return false;
            }
        }
    }
    for &op in group {
        depth[op] = to;
    }
    true
}

fn empty_stage(id: usize) -> Stage {
    Stage {
        id,
        ops: Vec::new(),
        functions: 0,
        memory_mb: 0,
        runs_in: id,
        vcpus: 0.0,
        partitioned: true,
        predicted_s: 0.0,
        predicted_usd: 0.0,
        start_s: 0.0,
        finish_s: 0.0,
        pipelined: false,
        needs_mb: 0.0,
        forced: false,
        reason: String::new(),
        collective: None,
        batching: None,
    }
}
