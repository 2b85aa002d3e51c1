//! The physical plan: what the planner decides and the runtime executes as it is. Stages of
//! operators, the functions (count, memory) each stage runs on, the exchanges between stages
//! with their pattern and channel, and for every part its predicted time, its predicted cost
//! and the reason it was chosen. Serialised as versioned JSON ([`PLAN_VERSION`]).

use crate::ops::{Channel, Op, OpId, Size};
use serde::{Deserialize, Serialize};

/// Version of the JSON form; bumped when a field changes meaning or disappears.
pub const PLAN_VERSION: u32 = 1;

/// How rows move between two stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Every producer sends each consumer the rows whose key hashes to it.
    HashShuffle,
    /// Every consumer receives all of the data.
    Broadcast,
    /// One consumer receives everything.
    Gather,
    /// One producer's rows are divided between consumers (batches for inference).
    Scatter,
    /// Rows are rebalanced to the consumers without regard to keys (training shards).
    Repartition,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::HashShuffle => "hash-shuffle",
            Pattern::Broadcast => "broadcast",
            Pattern::Gather => "gather",
            Pattern::Scatter => "scatter",
            Pattern::Repartition => "repartition",
        }
    }
}

/// The objective a plan optimises.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "limit")]
pub enum Objective {
    /// Finish as soon as possible (cost breaks ties).
    Latency,
    /// Spend as little as possible (time breaks ties).
    Cost,
    /// The fastest plan that costs at most this many dollars.
    Budget(f64),
    /// The cheapest plan that finishes within this many seconds.
    Deadline(f64),
}

impl Objective {
    pub fn describe(&self) -> String {
        match self {
            Objective::Latency => "latency".into(),
            Objective::Cost => "cost".into(),
            Objective::Budget(usd) => {
                format!("latency within a budget of {}", crate::units::usd(*usd))
            }
            Objective::Deadline(s) => {
                format!("cost within a deadline of {}", crate::units::seconds(*s))
            }
        }
    }
}

/// How data-parallel training workers combine their updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collective {
    /// `allreduce`, `scatter_reduce` or `average` (the language's `sync` values).
    pub sync: String,
    /// `ring`, `recursive-doubling` or `storage`.
    pub algorithm: String,
    pub channel: Channel,
    /// Exchange every this many steps (1 except for model averaging).
    pub every: u32,
    /// Gradient steps each worker takes.
    pub steps: u64,
    /// Time of one exchange of the model.
    pub exchange_s: f64,
    pub forced: bool,
    pub reason: String,
}

/// How inference is batched inside a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batching {
    /// Rows per inference call.
    pub batch: u64,
    /// Functions the rows are spread over.
    pub fan_out: u32,
    pub forced: bool,
    pub reason: String,
}

/// A stage: operators fused into one task per function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub id: usize,
    /// Its operators, inputs first.
    pub ops: Vec<OpId>,
    /// Functions running the stage (one task each); 0 until sized.
    pub functions: u32,
    pub memory_mb: u32,
    pub vcpus: f64,
    /// The stage whose functions run this one: itself, or a producer it is fused into (its
    /// tasks then run after the producer's, in the same functions).
    pub runs_in: usize,
    /// Whether the stage can be split into more tasks (a global sort or a save cannot).
    pub partitioned: bool,
    /// Time of one task, inputs received, from start to output ready.
    pub predicted_s: f64,
    /// Compute cost of all its functions (exchanges are counted on the exchanges).
    pub predicted_usd: f64,
    /// When the stage starts and finishes on the predicted timeline.
    pub start_s: f64,
    pub finish_s: f64,
    /// Memory one task needs.
    pub needs_mb: f64,
    pub forced: bool,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<Collective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<Batching>,
}

/// Data moving from one stage to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub id: usize,
    pub from: usize,
    pub to: usize,
    /// The operator whose output moves and the operator that reads it.
    pub producer: OpId,
    pub consumer: OpId,
    pub pattern: Pattern,
    /// Key columns of a hash shuffle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u32>,
    pub channel: Channel,
    pub bytes: f64,
    pub predicted_s: f64,
    pub predicted_usd: f64,
    /// What the other channel would have predicted, seconds and dollars, if it was feasible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<Alternative>,
    pub forced: bool,
    pub reason: String,
}

/// The channel not taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    pub channel: Channel,
    pub predicted_s: f64,
    pub predicted_usd: f64,
}

/// An operator as planned: the operator, its estimated output and its stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedOp {
    pub id: OpId,
    #[serde(flatten)]
    pub op: Op,
    pub rows: f64,
    pub bytes: f64,
    pub stage: usize,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalPlan {
    pub version: u32,
    /// The profile planned for and where its figures come from.
    pub profile: String,
    pub profile_origin: String,
    pub objective: Objective,
    /// Finish time of the last stage.
    pub predicted_s: f64,
    /// Everything: functions, exchanges, requests, the rendezvous host.
    pub predicted_usd: f64,
    /// The rendezvous host's share, when any exchange is direct.
    pub rendezvous_usd: f64,
    pub ops: Vec<PlannedOp>,
    pub stages: Vec<Stage>,
    pub exchanges: Vec<Exchange>,
    /// Decisions the planner wants a person to know about (overrides, assumptions).
    pub notes: Vec<String>,
}

impl PhysicalPlan {
    /// The plan as versioned JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Reads a plan written by [`PhysicalPlan::to_json`] of the same version.
    pub fn from_json(text: &str) -> Result<PhysicalPlan, String> {
        let plan: PhysicalPlan = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if plan.version != PLAN_VERSION {
            return Err(format!(
                "plan version {} is not {PLAN_VERSION}, the version this planner reads",
                plan.version
            ));
        }
        Ok(plan)
    }

    /// The stage an operator runs in.
    pub fn stage_of(&self, op: OpId) -> usize {
        self.ops[op].stage
    }

    /// Estimated output of an operator.
    pub fn size(&self, op: OpId) -> Size {
        Size {
            rows: self.ops[op].rows,
            bytes: self.ops[op].bytes,
        }
    }

    /// Exchanges that feed a stage.
    pub fn inputs_of(&self, stage: usize) -> impl Iterator<Item = &Exchange> {
        self.exchanges.iter().filter(move |e| e.to == stage)
    }
}
