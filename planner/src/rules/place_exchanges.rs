//! `place_exchanges`: marks every edge where rows must move between functions, and how.
//!
//! - a join needs both inputs hash-partitioned on its keys (`hash-shuffle`);
//! - a grouping shuffles its partial aggregates by the group keys, or gathers them into one
//!   function when there are no keys;
//! - a sort, a `take`, a `save`, a `show`, an `evaluate` and anything flow does not
//!   distribute read everything in one function (`gather`);
//! - training spreads its rows over the training workers (`repartition`); inference scatters
//!   batches of rows over its functions (`scatter`) and receives the model (`broadcast`);
//! - filters, projections, splits and unions run where their input is.

use super::{Planning, Rule};
use crate::ops::OpKind;
use crate::options::PlanError;
use crate::physical::Pattern;

pub struct PlaceExchanges;

impl Rule for PlaceExchanges {
    fn name(&self) -> &'static str {
        "place_exchanges"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        // Whether an operator's output is already in one function, so gathering it again
        // would move nothing.
        let mut single = vec![false; p.graph.ops.len()];
        for (id, op) in p.graph.ops.iter().enumerate() {
            p.cuts[id] = op
                .inputs
                .iter()
                .map(|input| {
                    let gather = |already: bool| (!already).then_some(Pattern::Gather);
                    if p.graph.ops[*input].kind.is_model() {
                        return Some(match op.kind {
                            OpKind::Infer { .. } => Pattern::Broadcast,
                            _ => Pattern::Gather,
                        });
                    }
                    match &op.kind {
                        OpKind::Join { .. } => Some(Pattern::HashShuffle),
                        OpKind::Aggregate { keys: 0, .. } => gather(single[*input]),
                        OpKind::Aggregate { .. } => Some(Pattern::HashShuffle),
                        OpKind::Sort { .. }
                        | OpKind::Limit { .. }
                        | OpKind::Save { .. }
                        | OpKind::Show { .. }
                        | OpKind::Evaluate
                        | OpKind::Opaque { .. } => gather(single[*input]),
                        OpKind::Train { .. } => Some(Pattern::Repartition),
                        OpKind::Infer { .. } => Some(Pattern::Scatter),
                        _ => None,
                    }
                })
                .collect();
            single[id] = match &op.kind {
                k if k.is_single() => true,
                OpKind::Filter { .. } | OpKind::Project | OpKind::Split { .. } | OpKind::Union => {
                    op.inputs.iter().all(|i| single[*i])
                }
                _ => false,
            };
        }
        Ok(())
    }
}
