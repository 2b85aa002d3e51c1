//! Evaluating one candidate configuration of a stage: its functions and memory, the channel
//! of each exchange feeding it, its training collective; when it would start and finish and
//! what it would cost. The sizing rule compares candidates; the later rules re-evaluate the
//! chosen one to record its reasons and the final figures.

use crate::cost::{self, Side, Training, TrainingWork, Transfer};
use crate::ops::{Channel, OpKind};
use crate::options::PlanError;
use crate::physical::{CHUNK_BYTES, Exchange, Pattern};
use crate::rules::Planning;
use crate::units;
use crate::work::{StageWork, aggregate_row_s};

/// The channel picked for one exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct PricedChannel {
    pub channel: Channel,
    pub bytes: f64,
    pub transfer: Transfer,
    pub alternative: Option<(Channel, Transfer)>,
    pub forced: bool,
    pub reason: String,
    /// Whether the producers aggregate partially before sending ([`pre_aggregates`]).
    pub partial: bool,
}

/// A stage configured and priced.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub functions: u32,
    pub memory_mb: u32,
    /// Seconds of one task (training included).
    pub task_s: f64,
    pub start_s: f64,
    pub finish_s: f64,
    /// The stage's functions plus the exchanges feeding it.
    pub usd: f64,
    /// The stage's functions alone.
    pub compute_usd: f64,
    /// The stage whose functions run this one (itself unless fused into a producer).
    pub runs_in: usize,
    pub needs_mb: f64,
    /// One per exchange feeding the stage, in exchange order.
    pub inputs: Vec<(usize, PricedChannel)>,
    pub training: Option<(Training, bool)>,
    /// Whether it starts with its producers and reads them as they write ([`pipelined`]).
    pub pipelined: bool,
    /// Seconds of its task that miss the caches, at a function's speed alone.
    pub cache_s: f64,
}

/// Bytes an exchange moves when the functions of `from` produce it: partial aggregates
/// (when they pay, [`pre_aggregates`]) and local top-k shrink what leaves each producer.
pub fn moved_bytes(p: &Planning, x: &Exchange, from: Side) -> f64 {
    let input = p.sizes[x.producer];
    let out = p.sizes[x.consumer];
    let per_row = input.bytes / input.rows.max(1.0);
    let n = f64::from(from.functions.max(1));
    let bound = match &p.graph.ops[x.consumer].kind {
        OpKind::Aggregate { .. } if pre_aggregates(p, x, from) => {
            out.bytes / out.rows.max(1.0) * kept_groups(p, x, from.functions)
        }
        OpKind::Sort { fetch: Some(k) } | OpKind::Limit { fetch: k } => *k as f64 * per_row * n,
        OpKind::Show { limit } => (*limit as f64 + 1.0) * per_row * n,
        _ => f64::INFINITY,
    };
    input.bytes.min(bound)
}

/// Rows that leave the producers of a grouping's exchange after each aggregates its share
/// partially: each of `producers` shares of `rows` rows holds the distinct keys that many
/// draws from the grouping's `groups` find, `groups · (1 − e^(−share / groups))`.
fn kept_groups(p: &Planning, x: &Exchange, producers: u32) -> f64 {
    let rows = p.sizes[x.producer].rows;
    let groups = p.sizes[x.consumer].rows.max(1.0);
    let n = f64::from(producers.max(1));
    (n * groups * (1.0 - (-(rows / n) / groups).exp())).min(rows)
}

/// What pre-aggregating moves between the two sides of a grouping's exchange, in CPU
/// seconds over all functions.
pub struct PartialWork {
    /// The producers' partial aggregates of every row, each into its share of the keys.
    pub producers_s: f64,
    /// Of the grouping's own work as [`stage_work`](crate::work::stage_work) prices it (over
    /// every row), what it no longer spends reading the producers' groups instead...
    pub saved_s: f64,
    /// ...and of that, the seconds it would have waited for memory.
    pub saved_waiting_s: f64,
}

/// [`PartialWork`] of exchange `x` into a grouping, made by `producers` functions (when
/// [`pre_aggregates`] says they pre-aggregate).
pub fn partial_work(p: &Planning, x: &Exchange, producers: u32) -> PartialWork {
    let rows = p.sizes[x.producer].rows;
    let groups = p.sizes[x.consumer].rows;
    let kept = kept_groups(p, x, producers);
    let grouping = &p.graph.ops[x.consumer];
    let n = f64::from(producers.max(1));
    let (own, _) = aggregate_row_s(p.profile, grouping, (kept / n).max(1.0));
    let (per_row, waiting) = aggregate_row_s(p.profile, grouping, groups);
    let spared = (rows - kept).max(0.0);
    PartialWork {
        producers_s: rows * own,
        saved_s: spared * per_row,
        saved_waiting_s: spared * waiting,
    }
}

/// Whether each producer of the exchange into a grouping aggregates its rows partially
/// before they move: when the rows it saves moving and combining again are worth more than
/// aggregating every row once more. Saving a fraction `s` of the rows pays when
/// `s · (move + aggregate) > aggregate` per row, moving at the direct channel's speed (the
/// faster channel: a storage hop only makes it pay more). A grouping with no keys always
/// pays (one row per producer); a grouping whose keys are nearly all distinct never does:
/// DataFusion's own probe stops pre-aggregating at 80 % distinct keys, and on a fast channel
/// the planner stops well before.
pub fn pre_aggregates(p: &Planning, x: &Exchange, from: Side) -> bool {
    let OpKind::Aggregate { keys, .. } = &p.graph.ops[x.consumer].kind else {
        return false;
    };
    if !matches!(x.pattern, Pattern::HashShuffle | Pattern::Gather) {
        return false;
    }
    if *keys == 0 {
        return true;
    }
    let input = p.sizes[x.producer];
    let rows = input.rows.max(1.0);
    let saved = 1.0 - kept_groups(p, x, from.functions) / rows;
    let aggregate = p.profile.aggregate_s_per_row(p.sizes[x.consumer].rows);
    let moving = input.bytes / rows / p.profile.direct_bandwidth(from.memory_mb)
        + input.bytes / rows * p.profile.kernels.write_s_per_byte;
    saved * (moving + aggregate) > aggregate
}

/// Whether the data of this exchange must outlive the functions that make it.
fn durable(p: &Planning, x: &Exchange) -> bool {
    p.graph.ops[x.producer].kind.is_model()
}

/// The channel the user asked for on this exchange, and where they asked.
fn requested(p: &Planning, x: &Exchange) -> Option<(Channel, String, Option<flow_lang::Span>)> {
    let hints = &p.graph.ops[x.consumer].hints;
    if let Some(c) = hints.channel {
        return Some((c, "the `channel` hint asks".into(), Some(hints.span)));
    }
    // `--channel` is for the rows; a model that must outlive its functions stays in storage.
    p.options
        .channel
        .filter(|_| !durable(p, x))
        .map(|c| (c, "--channel asks".to_string(), None))
}

/// Picks the channel of one exchange between sized sides.
pub fn choose_channel(
    p: &Planning,
    x: &Exchange,
    from: Side,
    to: Side,
    overlap_s: f64,
    allow_fuse: bool,
) -> Result<PricedChannel, String> {
    let profile = p.profile;
    let bytes = moved_bytes(p, x, from);
    let partial = pre_aggregates(p, x, from);
    let price = |c| cost::transfer(profile, x.pattern, c, bytes, from, to, overlap_s);
    let gate = cost::direct_gate(profile, from, to, durable(p, x));
    // A producer with other outputs runs apart from its consumer's task: where functions
    // cannot reach each other, what it keeps for that task must go through storage.
    let alone = profile.direct.unreachable.is_none() || p.stage_outputs[x.from].len() <= 1;
    let fusable = allow_fuse && alone && cost::can_fuse(profile, x.pattern, from, to);
    if let Some((channel, why, _)) = requested(p, x) {
        if channel == Channel::Direct
            && let Some(gate) = &gate
        {
            return Err(format!("a direct channel is impossible here: {gate}"));
        }
        let other = if channel == Channel::Direct {
            Channel::Storage
        } else {
            Channel::Direct
        };
        let t = price(channel);
        let alternative =
            (gate.is_none() || other == Channel::Storage).then(|| (other, price(other)));
        let reason = match &alternative {
            Some((o, a)) => format!(
                "{} because {why} ({} would take {})",
                channel.name(),
                o.name(),
                units::seconds(a.seconds)
            ),
            None => format!("{} because {why}", channel.name()),
        };
        return Ok(PricedChannel {
            partial,
            channel,
            bytes,
            transfer: t,
            alternative,
            forced: true,
            reason,
        });
    }
    if fusable {
        // Only a producer whose one output this is runs inside its consumer's task; one with
        // other outputs keeps this one encoded in the function for the consumer to decode.
        let shares = p
            .plan
            .exchanges
            .iter()
            .any(|y| y.from == x.from && y.id != x.id);
        let (transfer, reason) = if shares {
            (
                cost::kept_in_function(p.profile, x.pattern, bytes, from, to),
                "producer and consumer are the same function: nothing moves, but the producer's other outputs keep it encoded there",
            )
        } else {
            (
                Transfer::default(),
                "producer and consumer are the same function: nothing moves",
            )
        };
        return Ok(PricedChannel {
            partial,
            channel: Channel::Fused,
            bytes,
            transfer,
            alternative: None,
            forced: false,
            reason: reason.into(),
        });
    }
    let storage = price(Channel::Storage);
    if let Some(gate) = gate {
        return Ok(PricedChannel {
            partial,
            channel: Channel::Storage,
            bytes,
            transfer: storage,
            alternative: None,
            forced: false,
            reason: format!("storage: {gate}"),
        });
    }
    let direct = price(Channel::Direct);
    let pick_direct = p
        .score
        .better((direct.seconds, direct.usd), (storage.seconds, storage.usd))
        || !p
            .score
            .better((storage.seconds, storage.usd), (direct.seconds, direct.usd));
    let (channel, t, other, a) = if pick_direct {
        (Channel::Direct, direct, Channel::Storage, storage)
    } else {
        (Channel::Storage, storage, Channel::Direct, direct)
    };
    let reason = format!(
        "{}: {} and {} against {} and {} through {}",
        channel.name(),
        units::seconds(t.seconds),
        units::usd(t.usd),
        units::seconds(a.seconds),
        units::usd(a.usd),
        other.name()
    );
    Ok(PricedChannel {
        partial,
        channel,
        bytes,
        transfer: t,
        alternative: Some((other, a)),
        forced: false,
        reason,
    })
}

/// Prices `stage` on `functions` functions of `memory_mb`, its producers already sized.
/// `Err` says why the configuration is infeasible.
pub fn evaluate(
    p: &Planning,
    stage: usize,
    work: &StageWork,
    functions: u32,
    memory_mb: u32,
) -> Result<Candidate, String> {
    let profile = p.profile;
    let c = &profile.compute;
    let needs_mb = work.needs_mb(profile, functions);
    if needs_mb > f64::from(memory_mb) {
        return Err(format!(
            "each function would need {needs_mb:.0} MB, more than its {memory_mb} MB"
        ));
    }
    if let Some(total) = c.shared_memory_mb
        && u64::from(functions) * u64::from(memory_mb) > u64::from(total)
    {
        return Err(format!(
            "{functions} functions of {memory_mb} MB would need more than the {total} MB the machine has"
        ));
    }
    let to = Side {
        functions,
        memory_mb,
    };
    // Groupings this stage feeds that it pre-aggregates for: its functions do that work.
    let mut work = work.clone();
    for x in p.stage_outputs[stage]
        .iter()
        .map(|id| &p.plan.exchanges[*id])
    {
        if pre_aggregates(p, x, to) {
            work.cpu_s += partial_work(p, x, functions).producers_s;
        }
    }
    let mut start: f64 = 0.0;
    let mut usd = 0.0;
    let mut inputs = Vec::new();
    let mut fused_into: Option<usize> = None;
    let mut feeding: Vec<&crate::physical::Exchange> = p.stage_inputs[stage]
        .iter()
        .map(|id| &p.plan.exchanges[*id])
        .collect();
    // The largest input is the one worth fusing with, when one can be.
    feeding.sort_by(|a, b| b.bytes.total_cmp(&a.bytes).then(a.id.cmp(&b.id)));
    for x in &feeding {
        let producer = &p.plan.stages[x.from];
        let from = Side {
            functions: producer.functions,
            memory_mb: producer.memory_mb,
        };
        let allow_fuse = fused_into.is_none_or(|g| g == producer.runs_in);
        // Consumers launched early pair with the producers while those work.
        let overlap = (producer.finish_s - c.cold_start_s).max(0.0);
        let choice = choose_channel(p, x, from, to, overlap, allow_fuse)?;
        start = start.max(producer.finish_s + choice.transfer.seconds);
        usd += choice.transfer.usd;
        if choice.channel == Channel::Fused {
            fused_into = Some(producer.runs_in);
        }
        // A grouping reading partial aggregates combines the producers' groups, not rows.
        if choice.partial {
            let partial = partial_work(p, x, from.functions);
            work.cpu_s = (work.cpu_s - partial.saved_s).max(0.0);
            work.cache_cpu_s = (work.cache_cpu_s - partial.saved_waiting_s).max(0.0);
        }
        inputs.push((x.id, choice));
    }
    inputs.sort_by_key(|(id, _)| *id);
    let has_inputs = !feeding.is_empty();
    if !has_inputs {
        start = c.cold_start_s;
    }
    // Stages fused into one function run one after another.
    if let Some(g) = fused_into {
        start = start.max(p.busy_until[g]);
    }
    // A stage that only gathers what its one function already holds is no task of its own.
    let goes_on = crate::physical::continues_task(
        inputs
            .iter()
            .map(|(id, choice)| (p.plan.exchanges[*id].pattern, choice.channel)),
    );
    let overhead = if goes_on { 0.0 } else { c.task_overhead_s };
    let base = work.task_seconds(profile, functions, memory_mb) + overhead;
    let mut task_s = base;
    let mut training_usd = 0.0;
    let training = match work.training {
        Some(t) => {
            let chosen = choose_training(p, stage, t, functions, memory_mb)?;
            task_s += chosen.0.seconds;
            training_usd = chosen.0.usd;
            Some(chosen)
        }
        None => None,
    };
    if task_s > cost::SAFE_FRACTION * c.max_duration_s {
        return Err(format!(
            "each task would run {}, over half the {} limit of one function (a task past the limit is lost, and predictions can be off)",
            units::seconds(task_s),
            units::seconds(c.max_duration_s)
        ));
    }
    let start_up = if fused_into.is_some() {
        0.0
    } else {
        c.cold_start_s
    };
    let bill = |alive_s: f64| {
        cost::function_usd(profile, functions, memory_mb, alive_s + start_up)
            + training_usd
            + if start_up > 0.0 {
                f64::from(functions) * c.usd_per_request
            } else {
                0.0
            }
    };
    let mut chosen = Candidate {
        functions,
        memory_mb,
        task_s,
        start_s: start,
        finish_s: start + task_s,
        usd: usd + bill(base),
        compute_usd: bill(base),
        runs_in: fused_into.unwrap_or(stage),
        needs_mb,
        inputs,
        training,
        pipelined: false,
        cache_s: work.cache_seconds(profile, functions, memory_mb),
    };
    // A stage fused into its producer's functions, or going on in its one task, runs after
    // it there: nothing to overlap.
    if fused_into.is_none()
        && !goes_on
        && chosen.training.is_none()
        && let Some((launch, finish)) = pipelined(p, &chosen)
    {
        // Its functions are alive, and billed, from their launch, waiting included.
        let compute_usd = bill(finish - launch - task_s + base);
        if p.score
            .better((finish, usd + compute_usd), (chosen.finish_s, chosen.usd))
        {
            chosen.start_s = launch;
            chosen.finish_s = finish;
            chosen.usd = usd + compute_usd;
            chosen.compute_usd = compute_usd;
            chosen.pipelined = true;
        }
    }
    Ok(chosen)
}

/// When a stage reading every input over direct channels would start and finish if it were
/// launched with its producers and read them as they write: each producer, its transfer
/// and the stage's own task then overlap as a pipeline of [`CHUNK_BYTES`] chunks — the
/// slowest of the three, plus one chunk's worth of the other two. On a shared machine the
/// overlap is no faster than the cores the producers and the stage occupy allow. `None` when
/// an input moves otherwise or is read by a sort or the coordinator, or the target (or the
/// workers asked for) cannot run producers and consumers at once.
fn pipelined(p: &Planning, stage: &Candidate) -> Option<(f64, f64)> {
    let profile = p.profile;
    // A sort does its work once its input has all arrived, and the coordinator runs a
    // sink once its rows have: nothing of either overlaps.
    let streams = |(id, choice): &(usize, PricedChannel)| {
        let reader = &p.graph.ops[p.plan.exchanges[*id].consumer].kind;
        choice.channel == Channel::Direct
            && !matches!(reader, OpKind::Sort { .. })
            && reader.runs_in_task()
    };
    if stage.inputs.is_empty() || !stage.inputs.iter().all(streams) {
        return None;
    }
    let producers = |id: usize| &p.plan.stages[p.plan.exchanges[id].from];
    let at_once: u32 = stage.functions
        + stage
            .inputs
            .iter()
            .map(|(id, _)| producers(*id).functions)
            .sum::<u32>();
    // Functions asked for are processes started: a pipelined stage and its producers must
    // fit in them together, or the stage would wait for a free one after all. The search's
    // bounds mean the same, so each plan it tries is the plan that bound asks for.
    let most = p
        .options
        .workers
        .map_or(profile.compute.max_concurrency, |asked| {
            asked.min(profile.compute.max_concurrency)
        });
    // On a shared machine the other stages running then (independent scans, say) take cores
    // too, which the timeline does not count: overlap only what fits in the cores alone.
    let fits = profile
        .compute
        .shared_vcpus
        .is_none_or(|cores| f64::from(at_once) <= cores);
    if at_once > most || !fits {
        return None;
    }
    // The share of a shared machine's cores a stage's functions occupy.
    let occupies = |functions: u32, memory_mb: u32| match profile.compute.shared_vcpus {
        Some(total) => {
            (f64::from(functions) * profile.vcpus_when(memory_mb, functions) / total).min(1.0)
        }
        None => 0.0,
    };
    let mine = occupies(stage.functions, stage.memory_mb);
    // Work that misses the caches slows when producers and consumers share the machine, as
    // it does within a stage of several functions (where it is already counted).
    let crowded = 1.0 / profile.cache_speed(at_once) - 1.0;
    let slowed = |cache_s: f64, functions: u32| {
        if functions == 1 {
            cache_s * crowded
        } else {
            0.0
        }
    };
    let mut launch: f64 = 0.0;
    let mut finish: f64 = 0.0;
    for (id, choice) in &stage.inputs {
        let from = producers(*id);
        let made = (from.finish_s - from.start_s).max(0.0)
            + p.chosen
                .get(from.id)
                .map_or(0.0, |c| slowed(c.cache_s, c.functions));
        let moved = choice.transfer.seconds;
        let work = stage.task_s + slowed(stage.cache_s, stage.functions);
        let per_consumer = choice.bytes / f64::from(stage.functions.max(1));
        let chunks = (per_consumer / CHUNK_BYTES as f64).floor().max(1.0);
        let slowest = made.max(moved).max(work);
        let piped = slowest + (made + moved + work - slowest) / chunks;
        let theirs = occupies(from.functions, from.memory_mb);
        // Moving bytes between processes of one machine takes its cores too.
        let cores = made * theirs + moved * theirs.max(mine) + work * mine;
        launch = launch.max(from.start_s);
        finish = finish.max(from.start_s + piped.max(cores));
    }
    Some((launch, finish.max(launch + stage.task_s)))
}

/// The training collective of a stage: the program's `sync` if it names one, else the best
/// by the objective. The flag says whether the program chose.
fn choose_training(
    p: &Planning,
    stage: usize,
    work: TrainingWork,
    functions: u32,
    memory_mb: u32,
) -> Result<(Training, bool), String> {
    let options = cost::training_options(p.profile, work, functions, memory_mb);
    let sync = p.plan.stages[stage]
        .ops
        .iter()
        .find_map(|id| match &p.graph.ops[*id].kind {
            OpKind::Train { sync, .. } => *sync,
            _ => None,
        });
    if let Some(sync) = sync
        && functions > 1
    {
        return options
            .into_iter()
            .find(|o| o.sync == Some(sync))
            .map(|o| (o, true))
            .ok_or_else(|| {
                format!("`sync = \"{}\"` needs direct channels between all {functions} workers, which this target cannot open", sync.name())
            });
    }
    let mut best: Option<Training> = None;
    for o in options {
        if best
            .as_ref()
            .is_none_or(|b| p.score.better((o.seconds, o.usd), (b.seconds, b.usd)))
        {
            best = Some(o);
        }
    }
    best.map(|b| (b, false))
        .ok_or_else(|| "no way to combine the workers' updates".to_string())
}

/// Turns an infeasible configuration into the user's error.
pub fn unplannable(p: &Planning, stage: usize, why: &str, forced: bool) -> PlanError {
    let what = describe_stage(p, stage);
    let message = format!("stage {stage} ({what}) cannot be planned: {why}");
    let span = p.plan.stages[stage]
        .ops
        .iter()
        .map(|id| &p.graph.ops[*id].hints)
        .find(|h| !h.is_empty())
        .map(|h| h.span);
    if forced {
        PlanError::override_(message, span)
            .with_help("remove or change the hint or flag, or let the planner choose")
    } else {
        PlanError::constraint(message).with_help(format!(
            "the `{}` target allows {} functions of at most {} MB for {} each",
            p.profile.name,
            p.profile.compute.max_concurrency,
            p.profile.compute.memory_max_mb,
            units::seconds(p.profile.compute.max_duration_s)
        ))
    }
}

/// The operators of a stage, for people: `scan → filter → aggregate`.
pub fn describe_stage(p: &Planning, stage: usize) -> String {
    let names: Vec<&str> = p.plan.stages[stage]
        .ops
        .iter()
        .map(|id| p.graph.ops[*id].kind.name())
        .collect();
    if names.len() > 6 {
        format!(
            "{} … {}",
            names[..3].join(" → "),
            names[names.len() - 2..].join(" → ")
        )
    } else {
        names.join(" → ")
    }
}

/// Records a stage's chosen candidate on the timeline: stages fused into the same functions
/// later start after it. Rules that evaluate stages in order call this after each one.
pub fn commit(p: &mut Planning, candidate: &Candidate) {
    let g = candidate.runs_in;
    p.busy_until[g] = p.busy_until[g].max(candidate.finish_s);
}
