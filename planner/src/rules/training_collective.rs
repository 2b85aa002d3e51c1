//! `training_collective`: decides how the workers of a training stage combine their updates.
//!
//! - `allreduce` over direct channels, as a ring (bandwidth-optimal for large models) or by
//!   recursive doubling (fewer rounds for small ones);
//! - `scatter_reduce` through storage: each worker reduces one shard of everyone's gradients;
//! - `average`: workers step alone and average their models every k steps, k chosen so the
//!   exchange takes no longer than the steps between (at most 16); fewer exchanges at some
//!   risk to convergence.
//!
//! The program's `sync = ...` argument fixes the mode; otherwise the objective decides from
//! the model's size, the number of workers and the channels the target offers.

use super::{Planning, Rule};
use crate::ops::OpKind;
use crate::options::PlanError;
use crate::physical::{Collective, sync_name};
use crate::units;

pub struct TrainingCollective;

impl Rule for TrainingCollective {
    fn name(&self) -> &'static str {
        "training_collective"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        for stage in 0..p.plan.stages.len() {
            let Some((t, forced)) = p.chosen[stage].training.clone() else {
                continue;
            };
            let s = &p.plan.stages[stage];
            let reason = if s.functions <= 1 {
                "one worker: nothing to combine".to_string()
            } else if forced {
                format!("`sync = \"{}\"` as the program asks", sync_name(t.sync))
            } else {
                let per = match t.every {
                    1 => "every step".to_string(),
                    k => format!("every {k} steps"),
                };
                let model = s
                    .ops
                    .iter()
                    .find(|id| matches!(p.graph.ops[**id].kind, OpKind::Train { .. }))
                    .map_or(0.0, |id| p.sizes[*id].bytes);
                format!(
                    "the {} way for {} workers to combine a {} model: {} per exchange, {per}",
                    p.score.describe(),
                    s.functions,
                    units::bytes(model),
                    units::seconds(t.exchange_s),
                )
            };
            p.plan.stages[stage].collective = Some(Collective {
                sync: t.sync,
                algorithm: t.algorithm,
                channel: t.channel,
                every: t.every,
                steps: t.steps,
                exchange_s: t.exchange_s,
                forced,
                reason,
            });
        }
        Ok(())
    }
}
