//! The cost model: predicted seconds and dollars of moving data between functions, of the
//! work inside a stage, and of training collectives, from a [`Profile`].
//!
//! The exchange model starts from FMI's (`ceil(log2(P + C)) * alpha + bytes / beta`) and fixes
//! what is known to be wrong with it: one unit system (seconds, bytes, dollars); direct
//! bandwidth depends on the function's memory; a fresh connection ramps up (slow start);
//! one-to-many over direct uses trees or pipelined chains, never a flat fan-out beyond
//! what one sender can push; pairing costs per pair and is hidden behind the producers' work
//! when both sides are co-scheduled; producers kept alive while consumers start are charged;
//! storage pays per request, adds half a polling interval and slows past its reader and
//! per-prefix request limits. The rendezvous host is charged once per job, while peers are
//! introduced (see the `predict` rule).

use crate::ops::Channel;
use crate::physical::{Algorithm, Pattern};
use crate::profile::Profile;
use flow_stdlib::SyncMode;

/// Bytes in a megabyte of function memory (Lambda counts memory in MiB).
pub const MB: f64 = 1_048_576.0;

/// One side of an exchange: how many functions, with how much memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Side {
    /// Functions on this side.
    pub functions: u32,
    /// Memory of each function, MB.
    pub memory_mb: u32,
}

/// Predicted time and cost of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transfer {
    /// Seconds from the first byte sent to the last byte read.
    pub seconds: f64,
    /// Dollars: requests, and functions kept alive for it.
    pub usd: f64,
}

/// Dollars for `functions` functions of `memory_mb` alive for `seconds`.
pub fn function_usd(profile: &Profile, functions: u32, memory_mb: u32, seconds: f64) -> f64 {
    f64::from(functions) * profile.compute_usd(memory_mb, seconds.max(0.0))
}

fn log2_ceil(n: f64) -> f64 {
    n.max(1.0).log2().ceil().max(1.0)
}

/// Extra time a fresh connection needs to send `bytes` (TCP slow start).
fn ramp(profile: &Profile, bytes: f64) -> f64 {
    profile.direct.slow_start_s * (bytes / profile.direct.slow_start_bytes).min(1.0)
}

/// Why a direct channel cannot carry an exchange, if it cannot.
pub fn direct_gate(profile: &Profile, from: Side, to: Side, durable: bool) -> Option<String> {
    if durable {
        return Some("the data must outlive the functions (a model is kept for retries), so it goes to storage".into());
    }
    if let Some(why) = &profile.direct.unreachable {
        return Some(why.clone());
    }
    let alive = u64::from(from.functions) + u64::from(to.functions);
    if alive > u64::from(profile.compute.max_concurrency) {
        return Some(format!(
            "{} producers and {} consumers cannot be alive at once under the limit of {} concurrent functions",
            from.functions, to.functions, profile.compute.max_concurrency
        ));
    }
    if let Some(total) = profile.compute.shared_memory_mb {
        let need = u64::from(from.functions) * u64::from(from.memory_mb)
            + u64::from(to.functions) * u64::from(to.memory_mb);
        if need > u64::from(total) {
            return Some(format!(
                "producers and consumers alive at once would need {need} MB, more than the {total} MB the machine has"
            ));
        }
    }
    None
}

/// The most of a function's time limit a task may be predicted to take: predictions of work
/// they were not fitted to are off by up to a third (docs/benchmarks.md), and a task that
/// reaches the limit is stopped and lost.
pub const SAFE_FRACTION: f64 = 0.5;

/// Whether producer and consumer can be one function, so that nothing moves. Where
/// functions cannot reach each other directly (and so cannot hand rows from one task to the
/// next in the same function), only one function feeding one, which the runtime runs as one
/// task, can.
pub fn can_fuse(profile: &Profile, pattern: Pattern, from: Side, to: Side) -> bool {
    let one_to_one = from.functions == 1 && to.functions == 1;
    if profile.direct.unreachable.is_some() {
        return from.memory_mb == to.memory_mb && one_to_one;
    }
    from.memory_mb == to.memory_mb
        && (one_to_one
            || (matches!(pattern, Pattern::Scatter | Pattern::Repartition)
                && from.functions == to.functions))
}

/// Time and cost of moving `bytes` from `from` to `to` in `pattern` over `channel`.
/// `overlap_s` is how long the producers compute before sending: pairing for a direct
/// channel happens meanwhile when the consumers are started early (co-scheduled).
pub fn transfer(
    profile: &Profile,
    pattern: Pattern,
    channel: Channel,
    bytes: f64,
    from: Side,
    to: Side,
    overlap_s: f64,
) -> Transfer {
    let b = bytes.max(0.0);
    let moved = match channel {
        Channel::Fused => return Transfer::default(),
        Channel::Direct => punched(profile, pattern, b, from, to, overlap_s),
        Channel::Storage => storage(profile, pattern, b, from, to),
    };
    let (encode, decode) = coding(profile, pattern, b, from, to);
    Transfer {
        seconds: moved.seconds + encode + decode,
        usd: moved.usd
            + function_usd(profile, from.functions, from.memory_mb, encode)
            + function_usd(profile, to.functions, to.memory_mb, decode),
    }
}

/// Seconds each producer spends dealing its rows into buckets and encoding them as Arrow
/// IPC, and each consumer decoding what it reads, whichever channel carries the bytes.
/// Time and cost of an exchange fused into one function whose producer has other outputs
/// too: the runtime runs such a producer as a task of its own, which keeps its rows encoded
/// for the consumer to decode in the same function. Nothing moves; the coding is paid.
pub fn kept_in_function(
    profile: &Profile,
    pattern: Pattern,
    bytes: f64,
    from: Side,
    to: Side,
) -> Transfer {
    let (encode, decode) = coding(profile, pattern, bytes.max(0.0), from, to);
    Transfer {
        seconds: encode + decode,
        usd: function_usd(profile, from.functions, from.memory_mb, encode + decode),
    }
}

fn coding(profile: &Profile, pattern: Pattern, b: f64, from: Side, to: Side) -> (f64, f64) {
    let k = &profile.kernels;
    let p = f64::from(from.functions.max(1));
    let c = f64::from(to.functions.max(1));
    let read = match pattern {
        Pattern::HashShuffle | Pattern::Repartition | Pattern::Scatter => b / c,
        Pattern::Gather | Pattern::Broadcast => b,
    };
    (
        b / p * k.encode_s_per_byte / profile.vcpus_when(from.memory_mb, from.functions),
        read * k.decode_s_per_byte / profile.vcpus_when(to.memory_mb, to.functions),
    )
}

/// A direct exchange where a pair may fail to punch: with `fallback_chance` a pair tries for
/// `punch_timeout_s`, then moves its share through storage. An exchange among many pairs
/// takes as long as its slowest, so the time is that of the likeliest worst case: if any
/// pair of the exchange falls back (one minus the chance that none does), the exchange waits
/// out the timeout and a storage hop for that share; the dollars are the expected ones.
fn punched(
    profile: &Profile,
    pattern: Pattern,
    b: f64,
    from: Side,
    to: Side,
    overlap_s: f64,
) -> Transfer {
    let q = profile.direct.fallback_chance;
    let fine = direct(profile, pattern, b, from, to, overlap_s);
    if q <= 0.0 {
        return fine;
    }
    let pairs = f64::from(from.functions.max(1)) * f64::from(to.functions.max(1));
    let any = 1.0 - (1.0 - q).powf(pairs);
    let share = Side {
        functions: 1,
        ..from
    };
    let hop = storage(
        profile,
        pattern,
        b / pairs,
        share,
        Side { functions: 1, ..to },
    );
    let slowest = fine
        .seconds
        .max(profile.direct.punch_timeout_s + hop.seconds);
    Transfer {
        seconds: (1.0 - any) * fine.seconds + any * slowest,
        usd: fine.usd + q * pairs * hop.usd,
    }
}

fn direct(
    profile: &Profile,
    pattern: Pattern,
    b: f64,
    from: Side,
    to: Side,
    overlap_s: f64,
) -> Transfer {
    let d = &profile.direct;
    let alpha = d.latency_s;
    let p = f64::from(from.functions.max(1));
    let c = f64::from(to.functions.max(1));
    let bw_p = profile.direct_bandwidth(from.memory_mb);
    let bw_c = profile.direct_bandwidth(to.memory_mb);
    let rounds = log2_ceil(p + c);
    let (moving, peers) = match pattern {
        Pattern::HashShuffle | Pattern::Repartition => (
            rounds * alpha + (b / p / bw_p).max(b / c / bw_c) + ramp(profile, b / (p * c)),
            p.max(c),
        ),
        Pattern::Gather => (
            rounds * alpha + (b / p / bw_p).max(b / bw_c) + ramp(profile, b / p),
            p,
        ),
        Pattern::Scatter => {
            let send = bw_p.min(d.flat_fanout_bytes_per_s);
            (
                rounds * alpha + (b / p / send).max(b / c / bw_c) + ramp(profile, b / c),
                (c / p).ceil(),
            )
        }
        Pattern::Broadcast => {
            let bw = bw_p.min(bw_c);
            let depth = log2_ceil(c + 1.0);
            // A binomial tree re-sends the whole message per level; a pipelined chain
            // (scatter then allgather) sends it about twice. Small messages take the tree.
            let tree = depth * (alpha + b / bw + ramp(profile, b));
            let chain =
                2.0 * log2_ceil(p + c) * alpha + b / bw_c + b / p / bw_p + ramp(profile, b / c);
            let tree = if p > 1.0 {
                tree + b / bw_c + b / p / bw_p
            } else {
                tree
            };
            (tree.min(chain), p + depth)
        }
    };
    // Each consumer pairs with its peers side by side; where functions share cores (one
    // machine), every pair of the exchange is punched at once on those cores.
    let pairing = match profile.compute.shared_vcpus {
        Some(cores) if cores > 0.0 => (peers * d.pairing_s).max(p * c * d.pairing_s / cores),
        _ => peers * d.pairing_s,
    };
    let exposed = (pairing - overlap_s.max(0.0)).max(0.0);
    let seconds = moving + exposed;
    // Producers stay alive while they send and while the consumers start; consumers are
    // alive from pairing to the last byte.
    let usd = function_usd(
        profile,
        from.functions,
        from.memory_mb,
        seconds + profile.compute.cold_start_s,
    ) + function_usd(profile, to.functions, to.memory_mb, moving + pairing);
    Transfer { seconds, usd }
}

fn storage(profile: &Profile, pattern: Pattern, b: f64, from: Side, to: Side) -> Transfer {
    let s = &profile.storage;
    let lat = s.latency_s;
    let poll = s.poll_interval_s / 2.0;
    let streams = f64::from(s.streams_per_function);
    let p = f64::from(from.functions.max(1));
    let c = f64::from(to.functions.max(1));
    let sw = profile.storage_bandwidth(from.memory_mb);
    let sr = profile.storage_read_bandwidth(to.memory_mb);
    let (puts, gets, write, read) = match pattern {
        Pattern::HashShuffle | Pattern::Repartition => (
            p,
            p * c,
            lat + b / p / sw,
            (p / streams).ceil() * lat + b / c / sr,
        ),
        Pattern::Gather => (p, p, lat + b / p / sw, (p / streams).ceil() * lat + b / sr),
        Pattern::Scatter => (
            c.max(p),
            c.max(p),
            (c / p / streams).ceil() * lat + b / p / sw,
            lat + b / c / sr,
        ),
        Pattern::Broadcast => {
            let copies = (c / f64::from(s.max_readers_per_object)).ceil().max(1.0);
            (
                p * copies,
                p * c,
                copies * (lat + b / p / sw),
                (p / streams).ceil() * lat + b / sr,
            )
        }
    };
    let write = write.max(puts / f64::from(s.puts_per_s_per_prefix));
    let read = read.max(gets / f64::from(s.gets_per_s_per_prefix));
    let seconds = write + poll + read;
    // Every consumer polls at least once.
    let requests = puts * s.usd_per_put + (gets + c) * s.usd_per_get;
    let usd = requests
        + function_usd(profile, from.functions, from.memory_mb, write)
        + function_usd(profile, to.functions, to.memory_mb, poll + read);
    Transfer { seconds, usd }
}

/// One point-to-point message: what FMI measured (one function to one other, connection
/// already established).
pub fn point_to_point(profile: &Profile, channel: Channel, bytes: f64, memory_mb: u32) -> f64 {
    let one = Side {
        functions: 1,
        memory_mb,
    };
    match channel {
        Channel::Direct => {
            profile.direct.latency_s
                + bytes / profile.direct_bandwidth(memory_mb)
                + ramp(profile, bytes)
        }
        Channel::Storage => storage(profile, Pattern::Gather, bytes.max(0.0), one, one).seconds,
        Channel::Fused => 0.0,
    }
}

/// The way a training stage combines its workers' updates.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    /// The language's `sync` mode; `None` for one worker.
    pub sync: Option<SyncMode>,
    /// How the model moves.
    pub algorithm: Algorithm,
    /// The channel the updates move over.
    pub channel: Channel,
    /// Exchange every this many steps.
    pub every: u32,
    /// Gradient steps each worker takes.
    pub steps: u64,
    /// Time of one exchange of the model.
    pub exchange_s: f64,
    /// Time of the whole training stage.
    pub seconds: f64,
    /// Cost of the whole training stage.
    pub usd: f64,
}

/// What a training stage trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingWork {
    /// Rows trained on.
    pub rows: f64,
    /// Parameters of the model.
    pub params: u64,
    /// Inputs of each row once its features are encoded.
    pub inputs: u64,
    /// Passes over the rows.
    pub epochs: u32,
    /// Rows per gradient step.
    pub batch_size: u32,
}

/// The most local steps model averaging takes between exchanges.
pub const MAX_AVERAGING_INTERVAL: u32 = 16;

/// Every way `workers` functions of `memory_mb` can train `work`, each with its time (the
/// whole training, from the coordinator preparing the table to the last step) and the cost
/// of its functions and exchanges. With one worker there is nothing to combine.
pub fn training_options(
    profile: &Profile,
    work: TrainingWork,
    workers: u32,
    memory_mb: u32,
) -> Vec<Training> {
    let n = f64::from(workers.max(1));
    let v = profile.vcpus_when(memory_mb, workers);
    let batch = f64::from(work.batch_size.max(1));
    let steps_per_epoch = (work.rows / (batch * n)).ceil().max(1.0);
    let steps = steps_per_epoch * f64::from(work.epochs.max(1));
    let step_s =
        batch.min(work.rows.max(1.0)) * work.params as f64 * profile.kernels.train_s_per_value / v;
    let compute = steps * step_s;
    // The coordinator encodes and scales the whole table on one core before any step.
    let prepare = work.rows * work.inputs as f64 * profile.kernels.prepare_s_per_value;
    let m = crate::ops::model_bytes(work.params);
    let alone = |sync: Option<SyncMode>,
                 algorithm: Algorithm,
                 channel,
                 every,
                 exchange_s: f64,
                 requests_usd: f64| {
        let exchanges = (steps / f64::from(every)).ceil();
        let busy = compute + exchanges * exchange_s;
        Training {
            sync,
            algorithm,
            channel,
            every,
            steps: steps as u64,
            exchange_s,
            seconds: prepare + busy,
            usd: function_usd(profile, workers, memory_mb, busy) + exchanges * requests_usd,
        }
    };
    if workers <= 1 {
        return vec![alone(
            None,
            Algorithm::SingleWorker,
            Channel::Fused,
            1,
            0.0,
            0.0,
        )];
    }
    let d = &profile.direct;
    let bw = profile.direct_bandwidth(memory_mb);
    let ring = 2.0 * (n - 1.0) * d.latency_s + 2.0 * (n - 1.0) / n * m / bw;
    let doubling = log2_ceil(n) * (d.latency_s + m / bw);
    let (direct_s, direct_name) = if ring <= doubling {
        (ring, Algorithm::Ring)
    } else {
        (doubling, Algorithm::RecursiveDoubling)
    };
    let s = &profile.storage;
    let sbw = profile.storage_bandwidth(memory_mb);
    let streams = f64::from(s.streams_per_function);
    // Scatter-reduce through storage: each worker writes its chunks, reduces the shard it
    // owns from everyone's chunks, writes the reduced shard, and reads everyone's shards.
    let phase = s.latency_s
        + s.poll_interval_s / 2.0
        + ((n - 1.0) / streams).ceil() * s.latency_s
        + 2.0 * (m * (n - 1.0) / n) / sbw;
    let storage_s = 2.0 * phase;
    let storage_requests = 2.0 * n * s.usd_per_put + 2.0 * n * (n - 1.0) * s.usd_per_get;
    let mut options = Vec::new();
    let direct_ok = direct_gate(
        profile,
        Side {
            functions: workers,
            memory_mb,
        },
        Side {
            functions: 0,
            memory_mb,
        },
        false,
    )
    .is_none();
    if direct_ok {
        options.push(alone(
            Some(SyncMode::Allreduce),
            direct_name,
            Channel::Direct,
            1,
            direct_s,
            0.0,
        ));
    }
    options.push(alone(
        Some(SyncMode::ScatterReduce),
        Algorithm::Storage,
        Channel::Storage,
        1,
        storage_s,
        storage_requests,
    ));
    // Averaging: exchange about as rarely as makes the exchange no slower than the steps
    // between, at most every MAX_AVERAGING_INTERVAL steps.
    let (avg_s, avg_channel, avg_name, avg_requests) = if direct_ok {
        (direct_s, Channel::Direct, direct_name, 0.0)
    } else {
        (
            storage_s,
            Channel::Storage,
            Algorithm::Storage,
            storage_requests,
        )
    };
    let every = ((avg_s / step_s.max(1e-12)).ceil() as u32).clamp(2, MAX_AVERAGING_INTERVAL);
    options.push(alone(
        Some(SyncMode::Average),
        avg_name,
        avg_channel,
        every,
        avg_s,
        avg_requests,
    ));
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aws() -> Profile {
        Profile::builtin("aws").unwrap()
    }

    /// `functions` functions of 2 GB, the size FMI measured.
    fn side(functions: u32) -> Side {
        Side {
            functions,
            memory_mb: 2048,
        }
    }

    #[test]
    fn point_to_point_reproduces_fmi_within_20_percent() {
        // FMI (Copik et al. 2023), 2 GB functions: direct vs S3.
        let p = aws();
        let cases = [
            (1.0, 0.00041, 0.0375),
            (10e6, 0.058, 0.269),
            (100e6, 0.214, 1.854),
        ];
        for (bytes, direct, s3) in cases {
            let d = point_to_point(&p, Channel::Direct, bytes, 2048);
            let s = point_to_point(&p, Channel::Storage, bytes, 2048);
            assert!(
                (d / direct - 1.0).abs() <= 0.2,
                "direct {bytes} B: {d} s vs {direct} s"
            );
            assert!(
                (s / s3 - 1.0).abs() <= 0.2,
                "storage {bytes} B: {s} s vs {s3} s"
            );
        }
    }

    #[test]
    fn moving_rows_costs_their_encoding_on_every_channel_but_fused() {
        let p = aws();
        let move_ = |channel, bytes| {
            transfer(
                &p,
                Pattern::HashShuffle,
                channel,
                bytes,
                side(4),
                side(4),
                0.0,
            )
        };
        for channel in [Channel::Direct, Channel::Storage] {
            let (small, large) = (move_(channel, 1e6), move_(channel, 1e9));
            let (enc, dec) = coding(&p, Pattern::HashShuffle, 1e9, side(4), side(4));
            assert!(enc > 0.0 && dec > 0.0);
            assert!(
                large.seconds - small.seconds > enc + dec - 1e-9,
                "{channel:?}"
            );
        }
        assert_eq!(move_(Channel::Fused, 1e9), Transfer::default());
        // A gather's one consumer decodes everything; a shuffle's consumers a share each.
        let (_, gather) = coding(&p, Pattern::Gather, 1e9, side(4), side(1));
        let (_, shuffle) = coding(&p, Pattern::HashShuffle, 1e9, side(4), side(4));
        assert!(gather > 3.9 * shuffle, "{gather} {shuffle}");
    }

    #[test]
    fn a_chance_of_falling_back_costs_the_timeout_and_a_storage_hop_for_its_share() {
        let mut p = aws();
        let shuffle = |p: &Profile| {
            transfer(
                p,
                Pattern::HashShuffle,
                Channel::Direct,
                100e6,
                side(8),
                side(8),
                0.0,
            )
        };
        let sure = shuffle(&p);
        let mut last = sure;
        for q in [0.001, 0.01, 0.1, 1.0] {
            p.direct.fallback_chance = q;
            let t = shuffle(&p);
            assert!(
                t.seconds > last.seconds && t.usd > last.usd,
                "{q}: {t:?} vs {last:?}"
            );
            last = t;
        }
        // Every pair falling back waits out the timeout, then a storage hop.
        assert!(last.seconds > p.direct.punch_timeout_s);
        p.direct.fallback_chance = 1.5;
        assert!(p.validate().is_err());
    }

    #[test]
    fn on_shared_cores_every_pair_of_an_exchange_is_punched_on_them() {
        let mut p = aws();
        p.direct.pairing_s = 0.001;
        let pairing = |p: &Profile, n: u32| {
            let t = |pairing_s: f64| {
                let mut p = p.clone();
                p.direct.pairing_s = pairing_s;
                direct(&p, Pattern::HashShuffle, 1.0, side(n), side(n), 0.0).seconds
            };
            t(0.001) - t(0.0)
        };
        // Functions of their own: each consumer pairs with its n peers.
        assert!((pairing(&p, 16) - 0.016).abs() < 1e-9);
        // Two shared cores: all 256 pairs at once on them.
        p.compute.shared_vcpus = Some(2.0);
        assert!((pairing(&p, 16) - 0.128).abs() < 1e-9);
        assert!((pairing(&p, 2) - 0.002).abs() < 1e-9);
    }

    #[test]
    fn pairing_hides_behind_work_only_when_there_is_work() {
        let p = aws();
        let busy = transfer(
            &p,
            Pattern::HashShuffle,
            Channel::Direct,
            1e6,
            side(64),
            side(64),
            10.0,
        );
        let idle = transfer(
            &p,
            Pattern::HashShuffle,
            Channel::Direct,
            1e6,
            side(64),
            side(64),
            0.0,
        );
        assert!(idle.seconds > busy.seconds + 0.4, "{idle:?} {busy:?}");
        assert!(idle.usd > 0.0 && busy.usd > 0.0);
    }

    #[test]
    fn broadcast_over_direct_is_not_a_flat_fanout() {
        let p = aws();
        let one = side(1);
        let many = side(64);
        let t = transfer(
            &p,
            Pattern::Broadcast,
            Channel::Direct,
            100e6,
            one,
            many,
            10.0,
        );
        let flat = 64.0 * 100e6 / p.direct.flat_fanout_bytes_per_s;
        assert!(t.seconds < flat / 10.0, "{t:?} vs flat {flat}");
    }

    #[test]
    fn storage_readers_past_the_limit_cost_copies() {
        let p = aws();
        let one = side(1);
        let few = transfer(
            &p,
            Pattern::Broadcast,
            Channel::Storage,
            1e8,
            one,
            side(64),
            0.0,
        );
        let many = transfer(
            &p,
            Pattern::Broadcast,
            Channel::Storage,
            1e8,
            one,
            side(65),
            0.0,
        );
        assert!(many.seconds > few.seconds * 1.3, "{few:?} {many:?}");
    }

    #[test]
    fn training_offers_every_sync_mode() {
        let p = aws();
        let work = TrainingWork {
            rows: 1e6,
            params: 1_000_000,
            inputs: 999_999,
            epochs: 5,
            batch_size: 256,
        };
        let options = training_options(&p, work, 8, 3008);
        let modes: Vec<_> = options.iter().map(|o| o.sync).collect();
        assert_eq!(
            modes,
            [
                Some(SyncMode::Allreduce),
                Some(SyncMode::ScatterReduce),
                Some(SyncMode::Average)
            ]
        );
        let avg = &options[2];
        assert!(avg.every >= 2 && avg.every <= MAX_AVERAGING_INTERVAL);
        assert!(
            options[0].seconds < options[1].seconds,
            "direct allreduce beats storage"
        );
        assert_eq!(training_options(&p, work, 1, 3008)[0].sync, None);
    }
}
