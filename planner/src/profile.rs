//! Target profiles: the prices, limits, latencies and bandwidths the cost model reads. They
//! are data (`planner/profiles/*.toml`, each figure with its source) so that a calibration
//! or a new region changes numbers, not code.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Everything the cost model knows about one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The profile's name (`aws`, `local`), shown in plans.
    pub name: String,
    /// Where the figures come from (a calibration run, a price list), shown in plans.
    #[serde(default)]
    pub origin: String,
    /// Functions: prices and limits.
    pub compute: Compute,
    /// Direct TCP channels between functions.
    pub direct: Direct,
    /// The storage hop.
    pub storage: Storage,
    /// The work itself, per unit.
    pub kernels: Kernels,
}

/// Functions: prices and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    /// Dollars per GB-second of an x86 function.
    pub usd_per_gb_s_x86: f64,
    /// Dollars per GB-second of an arm64 function.
    pub usd_per_gb_s_arm64: f64,
    /// Dollars per invocation.
    pub usd_per_request: f64,
    /// The least memory a function can have, in MB.
    pub memory_min_mb: u32,
    /// The most memory a function can have, in MB.
    pub memory_max_mb: u32,
    /// Memory that buys one vCPU, in MB.
    pub mb_per_vcpu: u32,
    /// The most vCPUs a function gets.
    pub max_vcpus: u32,
    /// The longest a function may run, in seconds.
    pub max_duration_s: f64,
    /// The largest synchronous request or response, in MB.
    pub max_sync_payload_mb: u32,
    /// Seconds from invocation to the first line of the worker running.
    pub cold_start_s: f64,
    /// Seconds every task spends besides its work: sent, its plan decoded, its sources
    /// opened, its answer back.
    #[serde(default)]
    pub task_overhead_s: f64,
    /// Seconds more each task of the run's first job takes: every worker runs the stage's
    /// code paths for the first time (later jobs find them warm).
    #[serde(default)]
    pub first_task_s: f64,
    /// Seconds each sink's job spends before its first task: the coordinator plans it and
    /// cuts it into stages (sinks run one after another).
    #[serde(default)]
    pub job_overhead_s: f64,
    /// Seconds the coordinator spends planning a job per node of its plan (an operator or
    /// a node of one of its expressions) on top of `job_overhead_s`: planning grows with
    /// the plan, and every job plans all the operators its sink needs.
    #[serde(default = "Compute::default_plan_per_node")]
    pub plan_s_per_node: f64,
    /// Seconds from the last task's answer to the run's end: workers stopped, the run's
    /// temporary objects removed.
    #[serde(default)]
    pub teardown_s: f64,
    /// The fewest vCPUs a function gets, whatever its memory.
    pub min_vcpus: f64,
    /// How many functions may run at once (the account's concurrency quota).
    pub max_concurrency: u32,
    /// Memory the worker itself needs before it holds any data.
    pub runtime_overhead_mb: u32,
    /// On a shared machine: the cores all functions running at once divide between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_vcpus: Option<f64>,
    /// On a shared machine: the memory all functions running at once divide between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_memory_mb: Option<u32>,
    /// On a shared machine: the speed of work that misses the caches (hash tables larger
    /// than them) in each of several functions running at once, as a fraction of one
    /// running alone — they share the last cache and the memory bandwidth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_efficiency: Option<f64>,
    /// The memory sizes functions exist with, when only those can run (Lambda functions
    /// as deployed): the planner sizes stages among them alone. Set by whoever knows the
    /// deployment, not written in profiles.
    #[serde(default, skip)]
    pub deployed_mb: Option<Vec<u32>>,
}

/// Direct TCP channels between functions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Direct {
    /// One-way latency of a small message, in seconds (FMI's alpha).
    pub latency_s: f64,
    /// `[memory_mb, bytes_per_s]` points, by increasing memory.
    pub bandwidth_by_memory: Vec<(u32, f64)>,
    /// What one sender sending to many at once pushes in total, in bytes per second.
    pub flat_fanout_bytes_per_s: f64,
    /// A fresh connection reaches full rate only after about `slow_start_bytes`; sending
    /// that much costs up to `slow_start_s` more than bandwidth alone explains.
    pub slow_start_s: f64,
    /// Bytes after which a fresh connection runs at full rate.
    pub slow_start_bytes: f64,
    /// Seconds to introduce one pair of functions through the rendezvous (hole punching).
    pub pairing_s: f64,
    /// Dollars per hour of the rendezvous host.
    pub rendezvous_usd_per_hour: f64,
    /// The chance that a pair cannot punch a connection (a NAT that changes ports per
    /// destination, a firewall) and moves its share through storage instead, after trying
    /// for `punch_timeout_s`. Zero unless measured where the functions run.
    #[serde(default)]
    pub fallback_chance: f64,
    /// How long a pair tries to punch before it falls back (`flowc run --punch-timeout`).
    #[serde(default = "default_punch_timeout_s")]
    pub punch_timeout_s: f64,
    /// Why functions cannot reach each other directly, when they cannot (Lambda functions
    /// accept no connections: without a rendezvous host every exchange goes through
    /// storage). Set by whoever knows the run's setting, not written in profiles.
    #[serde(default, skip)]
    pub unreachable: Option<String>,
}

fn default_punch_timeout_s() -> f64 {
    3.0
}

/// The storage hop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Latency of one request (PUT or GET) of a small object.
    pub latency_s: f64,
    /// Bandwidth of one stream to or from storage.
    pub bandwidth_bytes_per_s: f64,
    /// Bandwidth of one stream reading from storage, where reading is faster than writing
    /// (a local folder reads back from the page cache, at memory speed); when absent, reads
    /// go at `bandwidth_bytes_per_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bandwidth_bytes_per_s: Option<f64>,
    /// Streams one function keeps open at once (multipart writes, ranged reads).
    pub streams_per_function: u32,
    /// Dollars per PUT request.
    pub usd_per_put: f64,
    /// Dollars per GET request.
    pub usd_per_get: f64,
    /// PUT requests per second one prefix sustains.
    pub puts_per_s_per_prefix: u32,
    /// GET requests per second one prefix sustains.
    pub gets_per_s_per_prefix: u32,
    /// Concurrent readers of one object before it slows down.
    pub max_readers_per_object: u32,
    /// Seconds between a consumer's checks for an object.
    pub poll_interval_s: f64,
}

/// What the work itself costs: seconds per unit on one vCPU, measured by `flowc calibrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernels {
    /// Parsing a text source (CSV, JSON) or reading an Arrow file, per byte stored.
    pub scan_s_per_byte: f64,
    /// Decoding a Parquet column, per value (rows times columns read)...
    #[serde(default = "Kernels::default_parquet_value")]
    pub parquet_s_per_value: f64,
    /// ...and per byte of its pages once decompressed...
    #[serde(default = "Kernels::default_parquet_byte")]
    pub parquet_s_per_byte: f64,
    /// ...plus inflating its pages, per byte they yield, for byte-oriented codecs (Snappy,
    /// LZ4)...
    #[serde(default = "Kernels::default_fast_codec")]
    pub fast_codec_s_per_byte: f64,
    /// ...and for entropy codecs (Zstandard, gzip, Brotli).
    #[serde(default = "Kernels::default_entropy_codec")]
    pub entropy_codec_s_per_byte: f64,
    /// Computing one node of an expression (an operator, a call, an aggregate function),
    /// per row; also a limit or a union passing a row on.
    pub narrow_s_per_row: f64,
    /// The same for a node whose result is a decimal.
    #[serde(default = "Kernels::default_decimal")]
    pub decimal_s_per_row: f64,
    /// A filter selecting rows, per row, besides computing its predicate, when it keeps
    /// almost all rows or almost none (long runs)...
    #[serde(default = "Kernels::default_filter")]
    pub filter_s_per_row: f64,
    /// ...and what it adds per row when it keeps half of them scattered, the costliest
    /// selection: a filter keeping `s` of its rows costs `filter_s_per_row +
    /// filter_mixed_s_per_row · 4s(1 − s)` per row.
    #[serde(default = "Kernels::default_filter_mixed")]
    pub filter_mixed_s_per_row: f64,
    /// A hash join, per input row (build and probe), besides what it outputs.
    pub join_s_per_row: f64,
    /// ...and per row it outputs (gathering the matched rows of both sides). Profiles
    /// before it priced output within `join_s_per_row`: 0 there.
    #[serde(default)]
    pub join_output_s_per_row: f64,
    /// A hash aggregation, per input row, into few groups (its table in cache), besides
    /// computing its keys and aggregates.
    pub aggregate_s_per_row: f64,
    /// The same into more groups: pairs of [groups, seconds per input row], in increasing
    /// order of groups, interpolated on the logarithm of the groups; past the last point
    /// the last segment's slope goes on, up to twice the last price. Empty: every grouping
    /// costs `aggregate_s_per_row`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregate_by_groups: Vec<(f64, f64)>,
    /// A sort, per row and per doubling of the rows (`n log2 n`).
    pub sort_s_per_row: f64,
    /// Training, per row of a gradient step and model parameter.
    pub train_s_per_value: f64,
    /// Making a training table ready for the steps — encoding its features, putting its rows
    /// in their canonical order, fitting and applying the scaler — per row and model input.
    #[serde(default = "Kernels::default_prepare")]
    pub prepare_s_per_value: f64,
    /// Inference with a model flow trained, per row and model parameter, the encoding of
    /// the row's features included.
    pub infer_s_per_value: f64,
    /// Turning an ONNX file into a runnable plan (decoding, optimising), once per function
    /// that scores with it.
    #[serde(default = "Kernels::default_onnx_load")]
    pub onnx_load_s: f64,
    /// Scoring with an ONNX model, per row and byte of its file (its weights, mostly).
    #[serde(default = "Kernels::default_onnx_infer")]
    pub onnx_infer_s_per_byte: f64,
    /// Scoring with an ONNX transformer, per floating-point operation of a sequence
    /// ([`flow_compiler::TransformerShape::flops`] at the lengths the sequences are padded to).
    #[serde(default = "Kernels::default_transformer")]
    pub transformer_s_per_flop: f64,
    /// Turning a text into token ids (`tokenize`), per row: priced by the row, not by the
    /// text's length, which the planner does not know.
    #[serde(default = "Kernels::default_tokenize")]
    pub tokenize_s_per_row: f64,
    /// Encoding output as Parquet (`save`), per byte of rows in memory.
    pub write_s_per_byte: f64,
    /// Dealing rows into an exchange's buckets and encoding them as Arrow IPC, per byte of
    /// rows in memory...
    #[serde(default = "Kernels::default_encode")]
    pub encode_s_per_byte: f64,
    /// ...and decoding them on the other side.
    #[serde(default = "Kernels::default_decode")]
    pub decode_s_per_byte: f64,
}

impl Compute {
    /// What the development machine measured, for profiles calibrated before the figure
    /// existed.
    fn default_plan_per_node() -> f64 {
        PLAN_S_PER_NODE
    }
}

const PLAN_S_PER_NODE: f64 = 4.0e-5;

impl Kernels {
    /// What the development machine measured, for profiles calibrated before the figure
    /// existed.
    fn default_prepare() -> f64 {
        PREPARE_S_PER_VALUE
    }

    fn default_onnx_load() -> f64 {
        ONNX_LOAD_S
    }

    fn default_decimal() -> f64 {
        DECIMAL_S_PER_ROW
    }

    fn default_encode() -> f64 {
        ENCODE_S_PER_BYTE
    }

    fn default_decode() -> f64 {
        DECODE_S_PER_BYTE
    }

    fn default_filter() -> f64 {
        FILTER_S_PER_ROW
    }

    fn default_filter_mixed() -> f64 {
        FILTER_MIXED_S_PER_ROW
    }

    fn default_parquet_value() -> f64 {
        PARQUET_S_PER_VALUE
    }

    fn default_parquet_byte() -> f64 {
        PARQUET_S_PER_BYTE
    }

    fn default_fast_codec() -> f64 {
        FAST_CODEC_S_PER_BYTE
    }

    fn default_entropy_codec() -> f64 {
        ENTROPY_CODEC_S_PER_BYTE
    }

    fn default_onnx_infer() -> f64 {
        ONNX_INFER_S_PER_BYTE
    }

    fn default_transformer() -> f64 {
        TRANSFORMER_S_PER_FLOP
    }

    fn default_tokenize() -> f64 {
        TOKENIZE_S_PER_ROW
    }
}

const PREPARE_S_PER_VALUE: f64 = 8.8e-9;
const ONNX_LOAD_S: f64 = 4.3e-3;
const ONNX_INFER_S_PER_BYTE: f64 = 2.4e-11;
const TRANSFORMER_S_PER_FLOP: f64 = 1.15e-11;
const TOKENIZE_S_PER_ROW: f64 = 2.7e-4;
const DECIMAL_S_PER_ROW: f64 = 4.7e-9;
const ENCODE_S_PER_BYTE: f64 = 7.0e-10;
const DECODE_S_PER_BYTE: f64 = 1.5e-10;
const FILTER_S_PER_ROW: f64 = 2.0e-9;
const FILTER_MIXED_S_PER_ROW: f64 = 4.3e-10;
const PARQUET_S_PER_VALUE: f64 = 1.5e-9;
const PARQUET_S_PER_BYTE: f64 = 2.6e-10;
const FAST_CODEC_S_PER_BYTE: f64 = 8.5e-10;
const ENTROPY_CODEC_S_PER_BYTE: f64 = 1.2e-9;

/// Why a profile was rejected.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError(pub String);

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProfileError {}

const BUILTIN: [(&str, &str); 2] = [
    ("aws", include_str!("../profiles/aws.toml")),
    ("local", include_str!("../profiles/local.toml")),
];

impl Profile {
    /// The names of the profiles shipped with flow.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// A profile shipped with flow (`aws`, `local`).
    pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
        let (_, text) = BUILTIN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            ProfileError(format!(
                "no built-in profile `{name}`; profiles: {}",
                Self::builtin_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        Profile::from_toml(text)
    }

    /// Reads and validates a profile written as TOML.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile =
            toml::from_str(text).map_err(|e| ProfileError(format!("invalid profile: {e}")))?;
        profile.validate()?;
        Ok(profile)
    }

    pub(crate) fn validate(&self) -> Result<(), ProfileError> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let c = &self.compute;
        let fail = |what: &str| Err(ProfileError(format!("profile `{}`: {what}", self.name)));
        let non_negative = [
            c.usd_per_gb_s_x86,
            c.usd_per_gb_s_arm64,
            c.usd_per_request,
            c.cold_start_s,
            c.task_overhead_s,
            c.first_task_s,
            c.job_overhead_s,
            c.plan_s_per_node,
            c.teardown_s,
            self.direct.latency_s,
            self.direct.pairing_s,
            self.direct.rendezvous_usd_per_hour,
            self.direct.punch_timeout_s,
            self.storage.latency_s,
            self.storage.usd_per_put,
            self.storage.usd_per_get,
            self.storage.poll_interval_s,
            self.direct.slow_start_s,
            self.direct.slow_start_bytes,
            self.kernels.scan_s_per_byte,
            self.kernels.parquet_s_per_value,
            self.kernels.parquet_s_per_byte,
            self.kernels.fast_codec_s_per_byte,
            self.kernels.entropy_codec_s_per_byte,
            self.kernels.narrow_s_per_row,
            self.kernels.decimal_s_per_row,
            self.kernels.filter_s_per_row,
            self.kernels.filter_mixed_s_per_row,
            self.kernels.join_s_per_row,
            self.kernels.aggregate_s_per_row,
            self.kernels.sort_s_per_row,
            self.kernels.train_s_per_value,
            self.kernels.prepare_s_per_value,
            self.kernels.infer_s_per_value,
            self.kernels.onnx_load_s,
            self.kernels.onnx_infer_s_per_byte,
            self.kernels.transformer_s_per_flop,
            self.kernels.tokenize_s_per_row,
            self.kernels.write_s_per_byte,
            self.kernels.encode_s_per_byte,
            self.kernels.decode_s_per_byte,
        ];
        if non_negative.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return fail("prices, latencies and intervals must be finite and not negative");
        }
        if c.memory_min_mb == 0 || c.memory_min_mb > c.memory_max_mb {
            return fail("memory_min_mb must be positive and at most memory_max_mb");
        }
        if c.mb_per_vcpu == 0
            || c.max_vcpus == 0
            || c.max_concurrency == 0
            || self.storage.streams_per_function == 0
            || !positive(c.max_duration_s)
            || !positive(c.min_vcpus)
        {
            return fail(
                "mb_per_vcpu, max_vcpus, min_vcpus, max_concurrency, streams_per_function and \
                 max_duration_s must be positive",
            );
        }
        if c.min_vcpus > f64::from(c.max_vcpus) {
            return fail("min_vcpus must be at most max_vcpus");
        }
        if c.runtime_overhead_mb >= c.memory_max_mb {
            return fail("runtime_overhead_mb must leave room below memory_max_mb");
        }
        if c.shared_efficiency
            .is_some_and(|e| !(positive(e) && e <= 1.0))
        {
            return fail("shared_efficiency must be above 0 and at most 1");
        }
        if !(0.0..=1.0).contains(&self.direct.fallback_chance) {
            return fail("direct.fallback_chance must be between 0 and 1");
        }
        if c.shared_vcpus.is_some_and(|v| !positive(v))
            || c.shared_memory_mb.is_some_and(|m| m < c.memory_min_mb)
        {
            return fail(
                "shared_vcpus must be positive and shared_memory_mb at least memory_min_mb",
            );
        }
        let points = &self.direct.bandwidth_by_memory;
        if points.is_empty() || points.iter().any(|(_, b)| !positive(*b)) {
            return fail(
                "direct.bandwidth_by_memory needs at least one point with a positive bandwidth",
            );
        }
        if points.windows(2).any(|w| w[0].0 >= w[1].0) {
            return fail("direct.bandwidth_by_memory must list memories in increasing order");
        }
        let curve = &self.kernels.aggregate_by_groups;
        if curve
            .iter()
            .any(|(g, s)| !(positive(*g) && s.is_finite() && *s >= 0.0))
            || curve.windows(2).any(|w| w[0].0 >= w[1].0)
        {
            return fail(
                "kernels.aggregate_by_groups must list positive group counts in increasing order, \
                 each with a price that is not negative",
            );
        }
        if !positive(self.storage.bandwidth_bytes_per_s)
            || !positive(self.direct.flat_fanout_bytes_per_s)
            || self
                .storage
                .read_bandwidth_bytes_per_s
                .is_some_and(|b| !positive(b))
        {
            return fail("bandwidths must be positive");
        }
        Ok(())
    }

    /// vCPUs a function of this memory gets: memory buys compute.
    pub fn vcpus(&self, memory_mb: u32) -> f64 {
        (f64::from(memory_mb) / f64::from(self.compute.mb_per_vcpu))
            .clamp(self.compute.min_vcpus, f64::from(self.compute.max_vcpus))
    }

    /// vCPUs each of `functions` functions of this memory gets when they run at once: on a
    /// shared machine they divide its cores.
    pub fn vcpus_when(&self, memory_mb: u32, functions: u32) -> f64 {
        let own = self.vcpus(memory_mb);
        match self.compute.shared_vcpus {
            Some(total) => own.min(total / f64::from(functions.max(1))),
            None => own,
        }
    }

    /// The speed of work that misses the caches in each of `functions` functions running
    /// at once, as a fraction of one alone: below one where they share a machine's memory.
    pub fn cache_speed(&self, functions: u32) -> f64 {
        match (self.compute.shared_vcpus, self.compute.shared_efficiency) {
            (Some(_), Some(efficiency)) if functions > 1 => efficiency,
            _ => 1.0,
        }
    }

    /// Bandwidth one function gets writing to storage: its streams, within its network.
    pub fn storage_bandwidth(&self, memory_mb: u32) -> f64 {
        self.streams_within_network(self.storage.bandwidth_bytes_per_s, memory_mb)
    }

    /// Bandwidth one function gets reading from storage (sources, storage hops).
    pub fn storage_read_bandwidth(&self, memory_mb: u32) -> f64 {
        let stream = self
            .storage
            .read_bandwidth_bytes_per_s
            .unwrap_or(self.storage.bandwidth_bytes_per_s);
        self.streams_within_network(stream, memory_mb)
    }

    fn streams_within_network(&self, stream: f64, memory_mb: u32) -> f64 {
        let streams = f64::from(self.storage.streams_per_function) * stream;
        streams.min(self.direct_bandwidth(memory_mb).max(stream))
    }

    /// Memory sizes worth considering: powers of two and whole vCPUs, within the limits.
    pub fn memory_candidates(&self) -> Vec<u32> {
        let c = &self.compute;
        if let Some(deployed) = &c.deployed_mb {
            let mut sizes = deployed.clone();
            sizes.retain(|m| (c.memory_min_mb..=c.memory_max_mb).contains(m));
            sizes.sort_unstable();
            sizes.dedup();
            return sizes;
        }
        let mut sizes: Vec<u32> = Vec::new();
        let mut m = c.memory_min_mb;
        while m < c.memory_max_mb {
            sizes.push(m);
            m = m.saturating_mul(2);
        }
        for v in 1..=c.max_vcpus {
            sizes.push(v.saturating_mul(c.mb_per_vcpu));
        }
        sizes.push(c.memory_max_mb);
        sizes.retain(|m| (c.memory_min_mb..=c.memory_max_mb).contains(m));
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Direct-channel bandwidth of a function with this memory, in bytes per second:
    /// linear between the measured points, flat outside them.
    pub fn direct_bandwidth(&self, memory_mb: u32) -> f64 {
        let points = &self.direct.bandwidth_by_memory;
        let m = f64::from(memory_mb);
        let first = points[0];
        let last = points[points.len() - 1];
        if m <= f64::from(first.0) {
            return first.1;
        }
        if m >= f64::from(last.0) {
            return last.1;
        }
        let i = points.partition_point(|(pm, _)| f64::from(*pm) <= m);
        let (m0, b0) = points[i - 1];
        let (m1, b1) = points[i];
        b0 + (b1 - b0) * (m - f64::from(m0)) / f64::from(m1 - m0)
    }

    /// Seconds per input row of a hash aggregation into `groups` groups.
    pub fn aggregate_s_per_row(&self, groups: f64) -> f64 {
        let k = &self.kernels;
        let curve = &k.aggregate_by_groups;
        if curve.is_empty() {
            return k.aggregate_s_per_row;
        }
        // Below the first point the table shrinks towards one group, priced at
        // `aggregate_s_per_row`; past the last, the last segment goes on.
        let i = curve
            .partition_point(|(g, _)| *g <= groups)
            .min(curve.len() - 1);
        let (g0, s0) = if i == 0 {
            (1.0, k.aggregate_s_per_row)
        } else {
            curve[i - 1]
        };
        let (g1, s1) = curve[i];
        let at = (groups.max(1.0).ln() - g0.ln()) / (g1.ln() - g0.ln()).max(f64::EPSILON);
        (s0 + (s1 - s0) * at.max(0.0)).clamp(0.0, 2.0 * s1.max(s0))
    }

    /// Seconds per input row of a filter keeping `keeps` of its rows.
    pub fn filter_s_per_row(&self, keeps: f64) -> f64 {
        let s = keeps.clamp(0.0, 1.0);
        self.kernels.filter_s_per_row + self.kernels.filter_mixed_s_per_row * 4.0 * s * (1.0 - s)
    }

    /// Dollars for `seconds` of one function with this memory (x86 prices).
    pub fn compute_usd(&self, memory_mb: u32, seconds: f64) -> f64 {
        f64::from(memory_mb) / 1024.0 * seconds * self.compute.usd_per_gb_s_x86
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_load_and_validate() {
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap();
            assert_eq!(p.name, name);
        }
        assert!(
            Profile::builtin("gcp")
                .unwrap_err()
                .0
                .contains("aws, local")
        );
    }

    #[test]
    fn aws_figures_follow_the_public_prices() {
        let aws = Profile::builtin("aws").unwrap();
        // 1,024 MB for one second costs the GB-second price.
        assert!((aws.compute_usd(1024, 1.0) - 0.0000166667).abs() < 1e-12);
        assert_eq!(aws.vcpus(1769), 1.0);
        let most = aws.vcpus(10240);
        assert!(most > 5.7 && most <= 6.0, "{most}");
        assert_eq!(aws.vcpus(20_000), 6.0);
        assert!(aws.vcpus(128) < 0.1);
    }

    #[test]
    fn an_aggregation_costs_more_per_row_as_its_groups_outgrow_the_cache() {
        let mut p = Profile::builtin("local").unwrap();
        p.kernels.aggregate_s_per_row = 5e-9;
        p.kernels.aggregate_by_groups = vec![(1e3, 6e-9), (1e6, 6e-8)];
        assert_eq!(p.aggregate_s_per_row(1.0), 5e-9);
        assert_eq!(p.aggregate_s_per_row(1e3), 6e-9);
        let mid = p.aggregate_s_per_row(31_623.0);
        assert!((mid - 3.3e-8).abs() < 1e-10, "{mid}");
        // Past the last point the last segment goes on, to twice the last price at most.
        let beyond = p.aggregate_s_per_row(1e7);
        assert!((beyond - 7.8e-8).abs() < 1e-10, "{beyond}");
        assert_eq!(p.aggregate_s_per_row(1e12), 1.2e-7);
        p.kernels.aggregate_by_groups.clear();
        assert_eq!(p.aggregate_s_per_row(1e9), 5e-9);
    }

    #[test]
    fn a_filter_costs_most_when_it_keeps_half_its_rows() {
        let mut p = Profile::builtin("local").unwrap();
        p.kernels.filter_s_per_row = 1e-9;
        p.kernels.filter_mixed_s_per_row = 4e-9;
        assert_eq!(p.filter_s_per_row(0.0), 1e-9);
        assert_eq!(p.filter_s_per_row(1.0), 1e-9);
        assert_eq!(p.filter_s_per_row(0.5), 5e-9);
        assert!(p.filter_s_per_row(0.1) < p.filter_s_per_row(0.3));
    }

    #[test]
    fn direct_bandwidth_interpolates_between_points() {
        let aws = Profile::builtin("aws").unwrap();
        assert_eq!(aws.direct_bandwidth(128), 165e6);
        assert_eq!(aws.direct_bandwidth(256), 165e6);
        assert_eq!(aws.direct_bandwidth(4096), 470e6);
        let mid = aws.direct_bandwidth(1152);
        assert!((mid - (165e6 + 305e6 / 2.0)).abs() < 1.0, "{mid}");
    }

    #[test]
    fn bad_profiles_are_rejected_with_a_reason() {
        let good = include_str!("../profiles/local.toml");
        let negative = good.replace("usd_per_request = 0.0", "usd_per_request = -1.0");
        assert!(
            Profile::from_toml(&negative)
                .unwrap_err()
                .0
                .contains("not negative")
        );
        let unknown = good.replace("[storage]", "[storage]\nwhatever = 1");
        assert!(
            Profile::from_toml(&unknown)
                .unwrap_err()
                .0
                .contains("whatever")
        );
        let unordered = good.replace("[[128, 2.35e9]]", "[[256, 1e9], [128, 2e9]]");
        assert!(
            Profile::from_toml(&unordered)
                .unwrap_err()
                .0
                .contains("increasing")
        );
    }
}
