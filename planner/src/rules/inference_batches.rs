//! `inference_batches`: decides the rows per inference call (`batch`) and records the
//! fan-out of every inference stage.
//!
//! The fan-out is the stage's function count, chosen by `size_stages`: the parallel-versus-
//! monolithic trade-off of serverless batch inference. Every function pays its start-up and
//! loads the model, so past the point where computing dominates start-up, more functions
//! cut the time while the cost stays nearly flat; a deadline or the cost objective stops the
//! fan-out earlier. The batch is the program's `batch N` if given, else the largest that fits
//! beside the model in the function's memory, at most [`MAX_BATCH`] rows and no more than a
//! function's share of the rows. A transformer's batch is [`TransformerShape::BATCH`]
//! sequences: on a CPU, more per call score fewer per second, and need more memory.

use super::{Planning, Rule};
use crate::cost::MB;
use crate::ops::OpKind;
use crate::options::PlanError;
use crate::physical::Batching;
use crate::work::stage_work;
use flow_compiler::TransformerShape;

/// The largest batch the planner picks by itself.
pub const MAX_BATCH: u64 = 8192;

pub struct InferenceBatches;

impl Rule for InferenceBatches {
    fn name(&self) -> &'static str {
        "inference_batches"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        for stage in 0..p.plan.stages.len() {
            let s = &p.plan.stages[stage];
            let Some((given, infer)) = s.ops.iter().find_map(|id| match p.graph.ops[*id].kind {
                OpKind::Infer { batch, .. } => Some((batch, *id)),
                _ => None,
            }) else {
                continue;
            };
            let transformer = p.graph.ops[infer].inputs.first().is_some_and(|m| {
                matches!(
                    p.graph.ops[*m].kind,
                    OpKind::ModelLoad {
                        transformer: Some(_),
                        ..
                    }
                )
            });
            let work = stage_work(p.profile, &p.graph, &p.sizes, &s.ops, &p.cuts);
            let (rows, width) = work.inference.unwrap_or((1.0, 1.0));
            let share = (rows / f64::from(s.functions.max(1))).ceil().max(1.0);
            let spare =
                (f64::from(s.memory_mb) - work.needs_mb(p.profile, s.functions)).max(0.0) * MB;
            // Input rows, output rows and the model's activations: about four copies.
            let fits = (spare / (4.0 * width.max(1.0))).floor().max(1.0);
            let batching = match given {
                Some(b) => Batching {
                    batch: b,
                    fan_out: s.functions,
                    forced: true,
                    reason: format!("batch {b} as the program asks; {} function(s)", s.functions),
                },
                None if transformer => {
                    let batch = (TransformerShape::BATCH as f64).min(share) as u64;
                    Batching {
                        batch: batch.max(1),
                        fan_out: s.functions,
                        forced: false,
                        reason: format!(
                            "batch {batch}: a transformer's sequences, grouped by length, one \
                             call each scores the most per second on a CPU; {} function(s)",
                            s.functions
                        ),
                    }
                }
                None => {
                    let batch = (MAX_BATCH as f64).min(fits).min(share) as u64;
                    let why = if batch as f64 == share {
                        "each function's whole share of the rows"
                    } else if batch == MAX_BATCH {
                        "the most the planner batches"
                    } else {
                        "the most that fits beside the model"
                    };
                    Batching {
                        batch: batch.max(1),
                        fan_out: s.functions,
                        forced: false,
                        reason: format!("batch {batch}: {why}; {} function(s)", s.functions),
                    }
                }
            };
            p.plan.stages[stage].batching = Some(batching);
        }
        Ok(())
    }
}
