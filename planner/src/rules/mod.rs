//! The planner's rules, in the order they run. Each rule is one module with a name and a doc
//! comment saying what it decides; `flowc plan --verbose` prints the plan after each one.

mod broadcast_join;
mod choose_channels;
mod fuse_narrow;
mod inference_batches;
mod place_exchanges;
pub(crate) mod predict;
mod size_stages;
mod training_collective;

use crate::ops::{OpGraph, Size};
use crate::options::{Options, PlanError};
use crate::physical::{Pattern, PhysicalPlan};
use crate::profile::Profile;

/// How candidates are compared: the objective, or a weighted sum when the planner searches
/// for the plan that meets a budget or a deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    Latency,
    Cost,
    /// Seconds plus this many seconds per dollar.
    Weighted(f64),
}

impl Score {
    /// Whether `(seconds, usd)` `a` is better than `b`. Ties (within a part in a billion)
    /// go to the earlier candidate, so plans are deterministic.
    pub fn better(self, a: (f64, f64), b: (f64, f64)) -> bool {
        let lt = |x: f64, y: f64| x < y - 1e-9 * y.abs().max(1e-12);
        let eq = |x: f64, y: f64| !lt(x, y) && !lt(y, x);
        match self {
            Score::Latency => lt(a.0, b.0) || (eq(a.0, b.0) && lt(a.1, b.1)),
            Score::Cost => lt(a.1, b.1) || (eq(a.1, b.1) && lt(a.0, b.0)),
            Score::Weighted(l) => lt(a.0 + l * a.1, b.0 + l * b.1),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Score::Latency => "fastest",
            Score::Cost => "cheapest",
            Score::Weighted(_) => "best trade-off",
        }
    }
}

/// The state rules work on: the operator graph with its estimates, where it is cut, and
/// the physical plan as far as it is decided.
pub struct Planning<'a> {
    pub profile: &'a Profile,
    pub options: &'a Options,
    pub score: Score,
    pub graph: OpGraph,
    pub sizes: Vec<Size>,
    /// For each operator and each of its inputs, the exchange on that edge (`None`: the two
    /// operators run in the same stage).
    pub cuts: Vec<Vec<Option<Pattern>>>,
    pub plan: PhysicalPlan,
}

/// One planning rule.
pub trait Rule: Sync {
    fn name(&self) -> &'static str;
    fn apply(&self, planning: &mut Planning) -> Result<(), PlanError>;
}

/// Every rule, in order.
pub const RULES: &[&dyn Rule] = &[
    &place_exchanges::PlaceExchanges,
    &broadcast_join::BroadcastJoin,
    &fuse_narrow::FuseNarrow,
    &size_stages::SizeStages,
    &choose_channels::ChooseChannels,
    &training_collective::TrainingCollective,
    &inference_batches::InferenceBatches,
    &predict::Predict,
];
