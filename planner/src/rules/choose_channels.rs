//! `choose_channels`: decides, for every exchange, whether rows move `fused` (producer and
//! consumer are one function), `direct` (TCP between functions) or through `storage`.
//!
//! Feasibility first: direct needs producers and consumers alive at once (within the
//! concurrency limit and, on a shared machine, its memory), and data that must outlive the
//! functions (a trained model) goes to storage. Among what is feasible the objective decides,
//! from the cost model's time and dollars of each (see [`crate::cost`]). A `channel` hint or
//! `--channel` overrides the choice and the reason says so; a direct channel that cannot
//! exist is an error. `--channel` leaves a trained model's exchange in storage, where it must
//! be.

use super::{Planning, Rule};
use crate::options::PlanError;
use crate::physical::Alternative;

pub struct ChooseChannels;

impl Rule for ChooseChannels {
    fn name(&self) -> &'static str {
        "choose_channels"
    }

    fn apply(&self, p: &mut Planning) -> Result<(), PlanError> {
        for chosen in &p.chosen {
            for (id, choice) in chosen.inputs.iter().cloned() {
                let x = &mut p.plan.exchanges[id];
                x.channel = choice.channel;
                x.bytes = choice.bytes;
                x.predicted_s = choice.transfer.seconds;
                x.predicted_usd = choice.transfer.usd;
                x.alternative = choice.alternative.map(|(channel, t)| Alternative {
                    channel,
                    predicted_s: t.seconds,
                    predicted_usd: t.usd,
                });
                x.forced = choice.forced;
                x.partial = choice.partial;
                x.reason = choice.reason;
            }
        }
        Ok(())
    }
}
