//! The planner's rules, in the order they run. Each rule is one module with a name and a doc
//! comment saying what it decides; `flowc plan --verbose` prints the plan after each one.

mod broadcast_join;
pub use broadcast_join::BROADCAST_MAX_BYTES;
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

/// Predicted times closer than this are the same to a person.
pub const SAME_TIME_S: f64 = 0.001;
/// Predicted times within this fraction of each other are the same.
pub const SAME_TIME_RATIO: f64 = 0.02;
/// Predicted costs within this fraction of each other are the same.
pub const SAME_COST_RATIO: f64 = 0.01;

/// One measure of a plan's `(seconds, usd)`.
type Measure = fn(&(f64, f64)) -> f64;

/// How candidates are compared: the objective, or a weighted sum when the planner searches
/// for the plan that meets a budget or a deadline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Score {
    /// Fastest; cost breaks ties.
    Latency,
    /// Cheapest; time breaks ties.
    Cost,
    /// Seconds plus this many seconds per dollar.
    Weighted(f64),
}

impl Score {
    /// Whether `(seconds, usd)` `a` is better than `b`. Under `latency`, times within
    /// [`SAME_TIME_S`] or [`SAME_TIME_RATIO`] of each other count as equal and cost decides:
    /// nobody should pay for a microsecond. Under `cost`, costs within [`SAME_COST_RATIO`]
    /// are equal and time decides. Ties go to the earlier candidate, so plans are
    /// deterministic.
    pub fn better(self, a: (f64, f64), b: (f64, f64)) -> bool {
        let lt = |x: f64, y: f64, slack: f64| x < y - slack;
        let time_slack = SAME_TIME_S.max(SAME_TIME_RATIO * a.0.max(b.0));
        let cost_slack = 1e-15_f64.max(SAME_COST_RATIO * a.1.max(b.1));
        match self {
            Score::Latency => {
                lt(a.0, b.0, time_slack) || (!lt(b.0, a.0, time_slack) && lt(a.1, b.1, cost_slack))
            }
            Score::Cost => {
                lt(a.1, b.1, cost_slack) || (!lt(b.1, a.1, cost_slack) && lt(a.0, b.0, time_slack))
            }
            Score::Weighted(l) => {
                let (x, y) = (a.0 + l * a.1, b.0 + l * b.1);
                lt(x, y, 1e-9 * y.abs())
            }
        }
    }

    /// The best of `candidates` (`(seconds, usd)` each), first by the objective's own
    /// measure and then, among those no worse than the best of it by more than what
    /// [`Score::better`] counts as equal, by the other, then by `resources` (the memory the
    /// plan holds: where money does not tell, as on a machine of one's own, less is better).
    /// Unlike keeping the better of each pair in turn, ties cannot drift: nothing left out
    /// is better by the objective's measure.
    pub fn best_of(self, candidates: &[(f64, f64)], resources: &[f64]) -> Option<usize> {
        let (first, second): (Measure, Measure) = match self {
            Score::Latency => (|c| c.0, |c| c.1),
            Score::Cost => (|c| c.1, |c| c.0),
            Score::Weighted(l) => {
                let weighted = |c: &(f64, f64)| c.0 + l * c.1;
                return (0..candidates.len()).min_by(|a, b| {
                    weighted(&candidates[*a]).total_cmp(&weighted(&candidates[*b]))
                });
            }
        };
        let least = candidates.iter().map(first).min_by(f64::total_cmp)?;
        let slack = |x: f64| match self {
            Score::Cost => 1e-15_f64.max(SAME_COST_RATIO * x),
            _ => SAME_TIME_S.max(SAME_TIME_RATIO * x),
        };
        (0..candidates.len())
            .filter(|i| {
                let x = first(&candidates[*i]);
                // Within the slack of the least, as `better` reckons it for that pair.
                least >= x - slack(x)
            })
            .min_by(|a, b| {
                let held = |i: usize| resources.get(i).copied().unwrap_or(0.0);
                second(&candidates[*a])
                    .total_cmp(&second(&candidates[*b]))
                    .then(held(*a).total_cmp(&held(*b)))
                    .then(a.cmp(b))
            })
    }

    /// The comparison as a word for reasons (`fastest`).
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
    /// Prices and limits of the target.
    pub profile: &'a Profile,
    /// What the user asked for.
    pub options: &'a Options,
    /// How candidates are compared.
    pub score: Score,
    /// The operators being planned.
    pub graph: OpGraph,
    /// Estimated output of each operator.
    pub sizes: Vec<Size>,
    /// For each operator and each of its inputs, the exchange on that edge (`None`: the two
    /// operators run in the same stage).
    pub cuts: Vec<Vec<Option<Pattern>>>,
    /// The plan as far as it is decided.
    pub plan: PhysicalPlan,
    /// The exchanges feeding each stage (filled by stage formation).
    pub stage_inputs: Vec<Vec<usize>>,
    /// The exchanges each stage feeds (filled by stage formation).
    pub stage_outputs: Vec<Vec<usize>>,
    /// When each stage's functions are free again, for the stages fused into them; sizing
    /// resets it and fills it stage by stage.
    pub busy_until: Vec<f64>,
    /// The configuration `size_stages` chose for each stage, priced; later rules record
    /// its parts rather than pricing it again.
    pub chosen: Vec<crate::candidate::Candidate>,
    /// Per stage, a size `size_stages` gives it (when feasible) instead of choosing one, so
    /// that a consumer can run in the same function(s); see [`Pin`].
    pub pins: Vec<Option<Pin>>,
}

/// A producing stage sized like its consumer. Sizing stage by stage picks each stage's best
/// size on its own — the cheapest, say, 128 MB — and a consumer needing 256 MB then cannot
/// run in the producer's function and pays for a function and a transfer of its own. The
/// planner plans a second time with such producers pinned to their consumer's size and keeps
/// whichever whole plan is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pin {
    /// Functions the producer runs on.
    pub functions: u32,
    /// Memory of each, MB.
    pub memory_mb: u32,
    /// The consuming stage that could then run in them.
    pub consumer: usize,
}

impl Planning<'_> {
    /// Starts a walk over the timeline from the first stage.
    pub fn reset_timeline(&mut self) {
        self.busy_until = vec![0.0; self.plan.stages.len()];
    }
}

/// One planning rule.
pub trait Rule: Sync {
    /// The rule's name, as `--verbose` prints it.
    fn name(&self) -> &'static str;
    /// Applies the rule, or says why no plan exists.
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
