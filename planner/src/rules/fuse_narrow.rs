//! `fuse_narrow`: forms stages. Operators joined by an edge without an exchange run in the
//! same stage, one task per function, rows streaming from one to the next.
//!
//! Every operator has an exchange depth (the most exchanges on a path from a source to it).
//! Only operators of equal depth fuse; an edge that would fuse across depths (a union of a
//! shuffled and an unshuffled input) becomes a `repartition` instead. Exchanges therefore
//! always lead to a deeper stage, so the stages form a DAG whatever the program.

use super::{Planning, Rule};

use crate::options::PlanError;
use crate::ops::{Channel, OpKind};
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
        let mut depth = vec![0u32; n];
        let mut parent: Vec<usize> = (0..n).collect();
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
                if depth[*input] < depth[id] {
                    p.cuts[id][k] = Some(Pattern::Repartition);
                } else {
                    let (a, b) = (find(&mut parent, id), find(&mut parent, *input));
                    parent[a.max(b)] = a.min(b);
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
                let op = &p.graph.ops[*id];
                !matches!(
                    op.kind,
                    OpKind::Values { .. } | OpKind::ModelLoad { .. } | OpKind::Opaque { .. }
                ) && !p.cuts[*id].contains(&Some(Pattern::Gather))
            });
        }
        let mut exchanges = Vec::new();
        for id in 0..n {
            for (k, cut) in p.cuts[id].iter().enumerate() {
                let Some(pattern) = cut else { continue };
                let input = p.graph.ops[id].inputs[k];
                let keys = match (&p.graph.ops[id].kind, pattern) {
                    (OpKind::Join { keys, .. } | OpKind::Aggregate { keys }, Pattern::HashShuffle) => {
                        Some(*keys)
                    }
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
        p.plan.stages = stages;
        p.plan.exchanges = exchanges;
        Ok(())
    }
}

fn empty_stage(id: usize) -> Stage {
    Stage {
        id,
        ops: Vec::new(),
        functions: 0,
        memory_mb: 0,
        vcpus: 0.0,
        partitioned: true,
        predicted_s: 0.0,
        predicted_usd: 0.0,
        start_s: 0.0,
        finish_s: 0.0,
        needs_mb: 0.0,
        forced: false,
        reason: String::new(),
        collective: None,
        batching: None,
    }
}
