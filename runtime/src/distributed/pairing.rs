//! Pairing the stages the runtime cuts from DataFusion's physical plan with the stages of the
//! planner's physical plan. They are not one-to-one — the planner forms stages on the logical
//! DAG, DataFusion adds partial aggregations and its own exchanges — so a runtime stage is
//! paired with the planner stage that shares most of its character: the files it scans, then
//! join, aggregate, sort and union. Reports put predicted times beside measured ones through
//! it, and the coordinator takes each stage's channel from it.

use super::record::StageRecord;
use flow_planner::{Channel, OpKind, PhysicalPlan};

/// What gives a stage its character, for pairing runtime and planner stages.
#[derive(Default)]
struct Character {
    files: Vec<String>,
    join: bool,
    aggregate: bool,
    sort: bool,
    union: bool,
}

impl Character {
    fn score(&self, other: &Character) -> usize {
        let shared_file = self.files.iter().any(|f| {
            other
                .files
                .iter()
                .any(|g| f.ends_with(g.as_str()) || g.ends_with(f.as_str()))
        });
        3 * usize::from(shared_file)
            + usize::from(self.join && other.join)
            + usize::from(self.aggregate && other.aggregate)
            + usize::from(self.sort && other.sort)
            + usize::from(self.union && other.union)
    }
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The planner stage a runtime stage does the work of, if any shares its character.
pub fn planner_stage(stage: &StageRecord, plan: &PhysicalPlan) -> Option<usize> {
    let has = |name: &str| stage.operators.iter().any(|o| o.contains(name));
    let ours = Character {
        files: stage.sources.iter().map(|s| file_name(s)).collect(),
        join: has("Join"),
        aggregate: has("AggregateExec"),
        sort: has("SortExec"),
        union: has("UnionExec"),
    };
    plan.stages
        .iter()
        .map(|s| {
            let mut theirs = Character::default();
            for op in s.ops.iter().filter_map(|id| plan.ops.get(*id)) {
                match &op.op.kind {
                    OpKind::Scan { source, .. } => {
                        // A glob or folder names no single file; its stem still pairs.
                        let name = file_name(source.trim_end_matches('/'));
                        theirs.files.push(name.replace('*', ""));
                    }
                    OpKind::Join { .. } => theirs.join = true,
                    OpKind::Aggregate { .. } => theirs.aggregate = true,
                    OpKind::Sort { .. } => theirs.sort = true,
                    OpKind::Union => theirs.union = true,
                    _ => {}
                }
            }
            (s.id, ours.score(&theirs))
        })
        .filter(|(_, score)| *score > 0)
        .max_by_key(|(id, score)| (*score, std::cmp::Reverse(*id)))
        .map(|(id, _)| id)
}

/// The channel the planner chose for what `stage` sends on: storage when any exchange out of
/// its paired planner stage goes through storage, else direct (fused exchanges move nothing
/// the runtime could put in storage).
pub fn planned_channel(stage: &StageRecord, plan: &PhysicalPlan) -> Option<Channel> {
    let paired = planner_stage(stage, plan)?;
    let out: Vec<Channel> = plan
        .exchanges
        .iter()
        .filter(|x| x.from == paired)
        .map(|x| x.channel)
        .collect();
    if out.contains(&Channel::Storage) {
        Some(Channel::Storage)
    } else if out.is_empty() {
        None
    } else {
        Some(Channel::Direct)
    }
}
