//! The work inside a stage: CPU seconds, bytes read and written, memory held, and how each
//! divides between the stage's tasks. From it, the time and memory of one task on `n`
//! functions of `m` MB.

use crate::cost::{MB, TrainingWork};
use crate::ops::{OpGraph, OpId, OpKind, Size, model_bytes};
use crate::physical::Pattern;
use crate::profile::{Kernels, Profile};
use crate::stats::ColumnBytes;

/// Memory a task keeps for batches in flight, besides what its operators hold.
pub const BUFFER_MB: f64 = 16.0;
/// A sort holds at most this much in memory and spills the rest to local disk.
pub const SORT_MEMORY_BYTES: f64 = 512.0 * MB;
/// A fair share of rows for one task, for the function count sizing always tries...
pub const MIN_ROWS_PER_TASK: f64 = 50_000.0;
/// ...or of CPU work, when each row is expensive.
pub const MIN_CPU_S_PER_TASK: f64 = 1.0;

/// What a stage does, in units the profile prices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageWork {
    /// CPU seconds on one vCPU that divide between tasks.
    pub cpu_s: f64,
    /// Of `cpu_s`, the seconds spent missing the caches (a hash table larger than them):
    /// they slow down when functions share a machine's memory.
    pub cache_cpu_s: f64,
    /// CPU seconds every task spends whatever the split (building a broadcast side).
    pub cpu_per_task_s: f64,
    /// Bytes read from storage (sources), divided between tasks.
    pub read_bytes: f64,
    /// Bytes every task reads (a model file).
    pub read_per_task_bytes: f64,
    /// Files read (each costs a request).
    pub files: f64,
    /// Bytes the stage writes as output (`save`).
    pub write_bytes: f64,
    /// Bytes held in memory, divided between tasks.
    pub state_bytes: f64,
    /// Bytes every task holds (a broadcast side, a model).
    pub state_per_task_bytes: f64,
    /// Rows entering the stage.
    pub rows_in: f64,
    /// What it trains, when it trains.
    pub training: Option<TrainingWork>,
    /// Rows to infer and their width, when the stage runs inference.
    pub inference: Option<(f64, f64)>,
}

/// Seconds per row of the values the operator's expressions compute.
fn computing_row_s(k: &Kernels, op: &crate::ops::Op) -> f64 {
    f64::from(op.computes.plain) * k.narrow_s_per_row
        + f64::from(op.computes.decimal) * k.decimal_s_per_row
        + f64::from(op.computes.tokenize) * k.tokenize_s_per_row
}

/// Seconds a grouping spends on each row it reads into a table of `groups` groups, and of
/// them the seconds spent waiting for memory (what it costs beyond a table in cache). The
/// same price holds for a partial aggregate in a producer and for the grouping combining
/// what the producers sent.
pub fn aggregate_row_s(profile: &Profile, op: &crate::ops::Op, groups: f64) -> (f64, f64) {
    let k = &profile.kernels;
    let computing = computing_row_s(k, op);
    match op.kind {
        // Without keys there is no hash table: each row is added into one accumulator per
        // aggregate, as cheaply as any value is computed.
        OpKind::Aggregate { keys: 0, .. } => (computing.max(k.narrow_s_per_row), 0.0),
        _ => {
            let per_row = profile.aggregate_s_per_row(groups);
            (
                per_row + computing,
                (per_row - k.aggregate_s_per_row).max(0.0),
            )
        }
    }
}

/// Sums the work of `ops`; `cuts[op][k]` is the exchange on input `k` of `op` (if any).
pub fn stage_work(
    profile: &Profile,
    graph: &OpGraph,
    sizes: &[Size],
    ops: &[OpId],
    cuts: &[Vec<Option<Pattern>>],
) -> StageWork {
    let k = &profile.kernels;
    let mut w = StageWork::default();
    for &id in ops {
        let op = &graph.ops[id];
        let input = |i: usize| op.inputs.get(i).map_or(Size::default(), |o| sizes[*o]);
        let rows_in: f64 = op.inputs.iter().map(|o| sizes[*o].rows).sum();
        let bytes_in: f64 = op.inputs.iter().map(|o| sizes[*o].bytes).sum();
        let computing = computing_row_s(k, op);
        for (i, cut) in cuts[id].iter().enumerate() {
            if cut.is_some() && !graph.ops[op.inputs[i]].kind.is_model() {
                w.rows_in += sizes[op.inputs[i]].rows;
            }
        }
        match &op.kind {
            OpKind::Scan {
                stats, files, read, ..
            } => {
                match read {
                    Some(read) => {
                        w.read_bytes += read.stored as f64;
                        w.cpu_s += decode_seconds(k, read);
                    }
                    None => {
                        w.read_bytes += stats.bytes as f64;
                        w.cpu_s += stats.bytes as f64 * k.scan_s_per_byte;
                    }
                }
                w.files += f64::from(*files);
                w.rows_in += stats.rows as f64;
            }
            OpKind::ModelLoad { bytes, .. } => w.read_per_task_bytes += *bytes as f64,
            OpKind::Filter { .. } => {
                let keeps = if rows_in > 0.0 {
                    sizes[id].rows / rows_in
                } else {
                    1.0
                };
                w.cpu_s += rows_in * (profile.filter_s_per_row(keeps) + computing);
            }
            // Naming and choosing columns is free; each computed value costs.
            OpKind::Project => w.cpu_s += rows_in * computing,
            OpKind::Split { .. } | OpKind::Limit { .. } | OpKind::Union | OpKind::Show { .. } => {
                w.cpu_s += rows_in * k.narrow_s_per_row
            }
            OpKind::Values { rows } => w.cpu_per_task_s += *rows as f64 * k.narrow_s_per_row,
            OpKind::Join { .. } => {
                let (left, right) = (input(0), input(1));
                let cut = |i: usize| cuts[id].get(i).copied().flatten();
                if cut(1) == Some(Pattern::Broadcast) {
                    w.cpu_per_task_s += right.rows * k.join_s_per_row;
                    w.cpu_s += left.rows * k.join_s_per_row;
                    w.state_per_task_bytes += 2.0 * right.bytes;
                } else if cut(0) == Some(Pattern::Broadcast) {
                    w.cpu_per_task_s += left.rows * k.join_s_per_row;
                    w.cpu_s += right.rows * k.join_s_per_row;
                    w.state_per_task_bytes += 2.0 * left.bytes;
                } else {
                    w.cpu_s += (left.rows + right.rows) * k.join_s_per_row;
                    w.state_bytes += 2.0 * right.bytes;
                }
                w.cpu_s += sizes[id].rows * k.join_output_s_per_row;
            }
            OpKind::Aggregate { .. } => {
                let (per_row, waiting) = aggregate_row_s(profile, op, sizes[id].rows);
                w.cpu_s += rows_in * per_row;
                w.cache_cpu_s += rows_in * waiting;
                w.state_bytes += 2.0 * sizes[id].bytes;
            }
            OpKind::Sort { fetch } => {
                let kept = fetch.map_or(rows_in, |n| (n as f64).min(rows_in));
                if kept < rows_in {
                    // A top-k looks at each row once, as a filter does, against the top of a
                    // heap of `k` rows; the few that enter cost a sort of `k`.
                    w.cpu_s += rows_in * k.narrow_s_per_row
                        + kept * kept.max(2.0).log2() * k.sort_s_per_row;
                } else {
                    w.cpu_s += rows_in * rows_in.max(2.0).log2() * k.sort_s_per_row;
                }
                let held = if rows_in > 0.0 {
                    bytes_in * kept / rows_in
                } else {
                    0.0
                };
                w.state_per_task_bytes += (2.0 * held).min(SORT_MEMORY_BYTES);
            }
            OpKind::Opaque { .. } => {
                w.cpu_s += rows_in * k.aggregate_s_per_row;
                w.state_per_task_bytes += bytes_in;
            }
            OpKind::Train {
                params,
                inputs,
                epochs,
                batch_size,
                ..
            } => {
                w.training = Some(TrainingWork {
                    rows: rows_in,
                    params: *params,
                    inputs: *inputs,
                    epochs: epochs.unwrap_or_else(|| {
                        let rows = rows_in.max(1.0).min(usize::MAX as f64) as usize;
                        let default = flow_stdlib::spec::default_epochs(rows, *batch_size as usize);
                        u32::try_from(default).unwrap_or(u32::MAX)
                    }),
                    batch_size: *batch_size,
                });
                // The shard stays in memory for every epoch; the model, its gradient and
                // the optimiser's two moments beside it.
                w.state_bytes += bytes_in;
                w.state_per_task_bytes += 4.0 * model_bytes(*params);
            }
            OpKind::Infer { tokens, padded, .. } => {
                let model = input(0).bytes;
                let table = input(1);
                let loaded = op.inputs.first().map(|m| &graph.ops[*m].kind);
                let onnx = matches!(loaded, Some(OpKind::ModelLoad { path, .. }) if is_onnx(path));
                if let Some(OpKind::ModelLoad {
                    transformer: Some(shape),
                    ..
                }) = loaded
                {
                    // Sequences run padded to a few lengths (`padded_length`); a sample of
                    // the text says how many run at each. Unmeasured, every one is priced
                    // at the cut, or at the model's longest without one.
                    let per_row = if padded.is_empty() {
                        let longest = shape.max_length as f64;
                        shape.flops(tokens.map_or(longest, |t| (t as f64).min(longest)))
                    } else {
                        padded
                            .iter()
                            .map(|(length, share)| share * shape.flops(*length as f64))
                            .sum()
                    };
                    w.cpu_s += table.rows * per_row * k.transformer_s_per_flop;
                    w.cpu_per_task_s += k.onnx_load_s;
                } else if onnx {
                    w.cpu_s += table.rows * model * k.onnx_infer_s_per_byte;
                    w.cpu_per_task_s += k.onnx_load_s;
                } else {
                    w.cpu_s += table.rows * model / 8.0 * k.infer_s_per_value;
                }
                w.state_per_task_bytes += 2.0 * model;
                w.inference = Some((table.rows, graph.ops[id].width));
            }
            OpKind::Evaluate => {
                w.cpu_s += rows_in * k.narrow_s_per_row;
                w.state_per_task_bytes += rows_in * 16.0;
            }
            OpKind::Save { .. } => {
                w.cpu_s += bytes_in * k.write_s_per_byte;
                w.write_bytes += bytes_in;
            }
        }
    }
    w
}

/// Seconds on one vCPU to decode the columns a Parquet scan reads: a price per value and
/// per decompressed byte, plus inflating what is compressed at its codec's rate.
fn decode_seconds(k: &Kernels, read: &ColumnBytes) -> f64 {
    read.values as f64 * k.parquet_s_per_value
        + read.decoded as f64 * k.parquet_s_per_byte
        + read.fast_codec as f64 * k.fast_codec_s_per_byte
        + read.entropy_codec as f64 * k.entropy_codec_s_per_byte
}

/// Whether a model file is ONNX (which every function loads into tract before scoring);
/// anything else is a model flow trained.
fn is_onnx(path: &str) -> bool {
    std::path::Path::new(path)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

impl StageWork {
    /// Seconds one task takes on `functions` functions of `memory_mb` (training excluded:
    /// its time depends on the collective).
    pub fn task_seconds(&self, profile: &Profile, functions: u32, memory_mb: u32) -> f64 {
        let n = f64::from(functions.max(1));
        let v = profile.vcpus_when(memory_mb, functions);
        let slowed = self.cache_cpu_s / n * (1.0 / profile.cache_speed(functions) - 1.0);
        let cpu = (self.cpu_s / n + slowed + self.cpu_per_task_s) / v;
        // Where functions share a machine's cores, copying bytes from its page cache or to
        // its files is a core's work too: a function with part of a core moves them at that
        // part of its speed alone.
        let share = v / profile.vcpus(memory_mb);
        let bw = profile.storage_bandwidth(memory_mb) * share;
        let lat = profile.storage.latency_s;
        let reads = self.read_bytes / n + self.read_per_task_bytes;
        // Reading the page cache streams through memory, which functions sharing a machine
        // share as they share its last cache.
        let read_bw =
            profile.storage_read_bandwidth(memory_mb) * share * profile.cache_speed(functions);
        let io = if reads > 0.0 || self.files > 0.0 {
            reads / read_bw + (self.files / n).ceil().max(1.0) * lat
        } else {
            0.0
        };
        let write = if self.write_bytes > 0.0 {
            lat + self.write_bytes / n / bw
        } else {
            0.0
        };
        cpu.max(io) + write
    }

    /// Seconds of one task's work that miss the caches, at the speed of a function alone:
    /// what slows when other functions share the machine.
    pub fn cache_seconds(&self, profile: &Profile, functions: u32, memory_mb: u32) -> f64 {
        let n = f64::from(functions.max(1));
        self.cache_cpu_s / n / profile.vcpus_when(memory_mb, functions)
    }

    /// Memory one task needs, in MB.
    pub fn needs_mb(&self, profile: &Profile, functions: u32) -> f64 {
        let n = f64::from(functions.max(1));
        f64::from(profile.compute.runtime_overhead_mb)
            + BUFFER_MB
            + (self.state_bytes / n + self.state_per_task_bytes) / MB
    }

    /// The function count that gives each function at least [`MIN_ROWS_PER_TASK`] rows or
    /// [`MIN_CPU_S_PER_TASK`] of work: a size worth trying besides the powers of two (it
    /// bounds nothing; the cost model prices every count).
    pub fn useful_functions(&self, profile: &Profile) -> u32 {
        let training = self.training.map_or(0.0, |t| {
            t.rows * t.params as f64 * f64::from(t.epochs) * profile.kernels.train_s_per_value
        });
        let by_rows = self.rows_in / MIN_ROWS_PER_TASK;
        let by_work = (self.cpu_s + training) / MIN_CPU_S_PER_TASK;
        let n = by_rows.max(by_work).ceil().max(1.0);
        if n >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            n as u32
        }
    }
}
