//! The physical plan: what the planner decides and the runtime executes as it is. Stages of
//! operators, the functions (count, memory) each stage runs on, the exchanges between stages
//! with their pattern and channel, and for every part its predicted time, its predicted cost
//! and the reason it was chosen. Serialised as versioned JSON ([`PLAN_VERSION`]).

use crate::fingerprint::Fingerprint;
use crate::ops::{Channel, Op, OpId, Size};
use flow_stdlib::SyncMode;
use serde::{Deserialize, Serialize};

/// Version of the JSON form; bumped when a field changes meaning or disappears.
pub const PLAN_VERSION: u32 = 3;

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
    /// The name plans print.
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
    /// The objective as a phrase (`latency within a budget of $0.10`).
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

/// How a collective moves the model between training workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// Around a ring of direct channels (bandwidth-optimal for large models).
    Ring,
    /// Pairs at doubling distances over direct channels (fewer rounds for small models).
    RecursiveDoubling,
    /// Objects in storage, each worker reducing one shard.
    Storage,
    /// One worker: nothing moves.
    SingleWorker,
}

impl Algorithm {
    /// The name plans print.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ring => "ring",
            Algorithm::RecursiveDoubling => "recursive-doubling",
            Algorithm::Storage => "storage",
            Algorithm::SingleWorker => "single worker",
        }
    }
}

/// The name of a sync mode as plans print it; `none` when one worker has nothing to combine.
pub fn sync_name(sync: Option<SyncMode>) -> &'static str {
    sync.map_or("none", SyncMode::name)
}

/// How data-parallel training workers combine their updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Collective {
    /// The language's `sync` mode; `None` when one worker has nothing to combine.
    pub sync: Option<SyncMode>,
    /// How the model moves.
    pub algorithm: Algorithm,
    /// The channel the updates move over.
    pub channel: Channel,
    /// Exchange every this many steps (1 except for model averaging).
    pub every: u32,
    /// Gradient steps each worker takes.
    pub steps: u64,
    /// Time of one exchange of the model.
    pub exchange_s: f64,
    /// Whether a hint or flag chose it.
    pub forced: bool,
    /// Why it was chosen, in one line.
    pub reason: String,
}

/// How inference is batched inside a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batching {
    /// Rows per inference call.
    pub batch: u64,
    /// Functions the rows are spread over.
    pub fan_out: u32,
    /// Whether a hint or flag chose it.
    pub forced: bool,
    /// Why it was chosen, in one line.
    pub reason: String,
}

/// What a producer hands a consumer reading it as it writes at a time, over a direct channel:
/// the runtime cuts each bucket of a task's output into chunks of this size, and the planner
/// prices pipelined stages by it.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// A stage: operators fused into one task per function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Index in [`PhysicalPlan::stages`].
    pub id: usize,
    /// Its operators, inputs first.
    pub ops: Vec<OpId>,
    /// Functions running the stage (one task each); 0 until sized.
    pub functions: u32,
    /// Memory of each function.
    pub memory_mb: u32,
    /// vCPUs that memory brings.
    pub vcpus: f64,
    /// The stage whose functions run this one: itself, or a producer it is fused into (its
    /// tasks then run after the producer's, in the same functions).
    pub runs_in: usize,
    /// Whether the stage can be split into more tasks (a global sort or a save cannot).
    pub partitioned: bool,
    /// Whether its functions start with its producers' and read their direct channels while
    /// they write ([`CHUNK_BYTES`] at a time), rather than after them.
    #[serde(default)]
    pub pipelined: bool,
    /// Time of one task, inputs received, from start to output ready.
    pub predicted_s: f64,
    /// Compute cost of all its functions (exchanges are counted on the exchanges).
    pub predicted_usd: f64,
    /// When the stage starts and finishes on the predicted timeline.
    pub start_s: f64,
    /// When it finishes, seconds after the run starts.
    pub finish_s: f64,
    /// Memory one task needs.
    pub needs_mb: f64,
    /// Whether a hint or flag chose its size.
    pub forced: bool,
    /// Why this size, in one line.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// How its workers train together, when it trains.
    pub collective: Option<Collective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// How it batches inference, when it infers.
    pub batching: Option<Batching>,
}

/// Data moving from one stage to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Index in [`PhysicalPlan::exchanges`].
    pub id: usize,
    /// The producing stage.
    pub from: usize,
    /// The consuming stage.
    pub to: usize,
    /// The operator whose output moves and the operator that reads it.
    pub producer: OpId,
    /// The operator that reads it.
    pub consumer: OpId,
    /// How rows are divided between consumers.
    pub pattern: Pattern,
    /// Key columns of a hash shuffle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u32>,
    /// Whether each producer aggregates its rows partially before they move (into a
    /// grouping, when that shrinks them enough to pay: `candidate::pre_aggregates`).
    #[serde(default)]
    pub partial: bool,
    /// How the data moves.
    pub channel: Channel,
    /// Estimated bytes moved.
    pub bytes: f64,
    /// Predicted time of the exchange.
    pub predicted_s: f64,
    /// Predicted cost of the exchange.
    pub predicted_usd: f64,
    /// What the other channel would have predicted, seconds and dollars, if it was feasible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternative: Option<Alternative>,
    /// Whether a hint or flag chose the channel.
    pub forced: bool,
    /// Why this channel, in one line.
    pub reason: String,
}

/// The channel not taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alternative {
    /// The other channel.
    pub channel: Channel,
    /// Its predicted time.
    pub predicted_s: f64,
    /// Its predicted cost.
    pub predicted_usd: f64,
}

/// An operator as planned: the operator, its estimated output and its stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedOp {
    /// Index in [`PhysicalPlan::ops`].
    pub id: OpId,
    #[serde(flatten)]
    /// The operator.
    pub op: Op,
    /// Estimated output rows.
    pub rows: f64,
    /// Estimated output bytes.
    pub bytes: f64,
    /// The stage it runs in.
    pub stage: usize,
    /// The DAG nodes whose whole output it computes ([`crate::OpGraph::ends`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends: Vec<usize>,
}

/// Where a plan's predicted time goes: the workers' start-up, the jobs run one after
/// another (each a fixed part — the coordinator's overhead and planning — and the work of its
/// longest chain of stages and exchanges), and the teardown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeSpent {
    /// Until the first task can start.
    pub start_up_s: f64,
    /// Jobs run, one after another (a sink's, a model's training table, its training, an
    /// evaluation's metrics).
    pub jobs: u32,
    /// The jobs' fixed parts: the coordinator's overhead and planning of each.
    pub jobs_fixed_s: f64,
    /// The jobs' stages and exchanges on their longest chains.
    pub jobs_work_s: f64,
    /// After the last task.
    pub teardown_s: f64,
}

impl TimeSpent {
    /// The run's predicted time.
    pub fn total(&self) -> f64 {
        self.start_up_s + self.jobs_fixed_s + self.jobs_work_s + self.teardown_s
    }

    /// One more job.
    pub fn add_job(&mut self, fixed_s: f64, work_s: f64) {
        self.jobs += 1;
        self.jobs_fixed_s += fixed_s;
        self.jobs_work_s += work_s;
    }
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhysicalPlan {
    /// Format version of the JSON; [`PhysicalPlan::from_json`] reads only its own.
    pub version: u32,
    /// The profile planned for and where its figures come from.
    pub profile: String,
    /// Where the profile's figures come from.
    pub profile_origin: String,
    /// What the plan optimises.
    pub objective: Objective,
    /// Finish time of the last stage.
    pub predicted_s: f64,
    /// Everything: functions, exchanges, requests, the rendezvous host.
    pub predicted_usd: f64,
    /// The rendezvous host's share, when any exchange is direct.
    pub rendezvous_usd: f64,
    /// Every operator, in the graph's order.
    pub ops: Vec<PlannedOp>,
    /// Stages, producers first.
    pub stages: Vec<Stage>,
    /// Exchanges between stages.
    pub exchanges: Vec<Exchange>,
    /// Decisions the planner wants a person to know about (overrides, assumptions).
    pub notes: Vec<String>,
    /// Where the predicted time goes, when the plan has sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeSpent>,
    /// The program and inputs the plan was made for; a saved plan runs only with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Fingerprint>,
}

impl PhysicalPlan {
    /// The plan as versioned JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Reads a plan written by [`PhysicalPlan::to_json`] of the same version. The version is
    /// read first, so a plan of another version is named as such rather than as bad JSON.
    pub fn from_json(text: &str) -> Result<PhysicalPlan, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("it is not JSON: {e}"))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(PLAN_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "it is a plan of version {v}, and this flowc reads version {PLAN_VERSION}"
                ));
            }
            None => return Err("it has no `version`: it is not a plan flowc wrote".into()),
        }
        serde_json::from_value(value).map_err(|e| format!("it is not a plan flowc wrote: {e}"))
    }

    /// SHA-256 of the plan's JSON: names the plan a run followed.
    pub fn hash(&self) -> String {
        use sha2::Digest;
        crate::fingerprint::hex(&sha2::Sha256::digest(self.to_json().as_bytes()))
    }

    /// The operator that computes the whole output of DAG node `node`.
    pub fn op_of_node(&self, node: usize) -> Option<OpId> {
        self.ops
            .iter()
            .find(|o| o.ends.contains(&node))
            .map(|o| o.id)
    }

    /// The most functions the plan runs at once on its timeline: the stages that run in
    /// functions of their own, counted while their runs overlap (at least one). What a run
    /// of the plan needs started, whatever bound it was planned under.
    pub fn peak_functions(&self) -> u32 {
        let own: Vec<&Stage> = self.stages.iter().filter(|s| s.runs_in == s.id).collect();
        own.iter()
            .map(|s| {
                own.iter()
                    .filter(|t| t.start_s <= s.start_s && s.start_s < t.finish_s.max(t.start_s))
                    .map(|t| t.functions)
                    .sum::<u32>()
                    .max(s.functions)
            })
            .max()
            .unwrap_or(1)
            .max(1)
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

    /// Whether `stage` goes on in its producer's task rather than being a task of its own
    /// (see [`continues_task`]).
    pub fn continues_task(&self, stage: usize) -> bool {
        continues_task(self.inputs_of(stage).map(|x| (x.pattern, x.channel)))
    }
}

/// Whether a stage fed by `inputs` (pattern and channel of each) only gathers what its one
/// function already holds: one partition needs no exchange, so the runtime goes on in the
/// task that produced it, and the stage pays no task overhead of its own.
pub fn continues_task(inputs: impl IntoIterator<Item = (Pattern, Channel)>) -> bool {
    let mut any = false;
    for (pattern, channel) in inputs {
        if pattern != Pattern::Gather || channel != Channel::Fused {
            return false;
        }
        any = true;
    }
    any
}
