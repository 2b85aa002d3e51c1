//! The coordinator: starts the run's workers through a [`Backend`], cuts each job's physical
//! plan into stages, ships every task to an idle worker with the locations of its inputs'
//! committed outputs, and reads the last stage's output back. It tracks attempts: a failed
//! task is retried (on another worker when there is one) up to a limit, a dead worker is
//! replaced, and direct-channel outputs that died with their worker are computed again.

use super::auth::Secret;
use super::backend::{Backend, Launch};
use super::channels::{Channels, Compression, Location, lost_peer};
use super::co_located::co_locate;
use super::codec;
use super::exchange::{ExchangeReadExec, ReadKind};
use super::pairing::planned_channel;
use super::protocol::{AttemptId, ToCoordinator, ToWorker, receive, send, write_frame};
use super::record::{RunRecord, StageRecord, TaskRecord, Watch};
use super::row_groups::RowGroups;
use super::stages::{StagePlan, cut};
use super::store::{open_store, remove_prefix};
use crate::interrupt::{Registered, on_interrupt};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::prelude::{SessionConfig, SessionContext};
use flow_planner::rules::BROADCAST_MAX_BYTES;
use flow_planner::{Channel, PhysicalPlan};
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// How a distributed run is set up.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Workers (functions) to run.
    pub workers: u32,
    /// How stage outputs move.
    pub channel: ChannelChoice,
    /// The run store's URL.
    pub store: String,
    /// Attempts a task gets before the run fails.
    pub max_attempts: u32,
    /// Compression of channel data.
    pub compression: Compression,
    /// The `RUST_LOG` filter workers log with (none: theirs).
    pub log: Option<String>,
}

/// How stage outputs move.
#[derive(Clone)]
pub enum ChannelChoice {
    /// Every stage's output over this channel (`--channel`).
    All(Channel),
    /// Each stage's output over the channel the planner chose for the planner stage it pairs
    /// with ([`super::pairing`]); direct where the plan says nothing.
    Planned(Arc<PhysicalPlan>),
}

impl ChannelChoice {
    /// The choice as reports name it: `direct`, `storage` or `as planned`.
    pub fn name(&self) -> &'static str {
        match self {
            ChannelChoice::All(kind) => kind.name(),
            ChannelChoice::Planned(_) => "as planned",
        }
    }

    fn of(&self, stage: &StageRecord) -> Channel {
        match self {
            ChannelChoice::All(kind) => *kind,
            ChannelChoice::Planned(plan) => match planned_channel(stage, plan) {
                Some(Channel::Storage) => Channel::Storage,
                _ => Channel::Direct,
            },
        }
    }
}

impl std::fmt::Debug for ChannelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows of a join side small enough to broadcast (with [`BROADCAST_MAX_BYTES`]): a million
/// narrow rows are a few tens of MB, what the planner's limit allows.
const BROADCAST_MAX_ROWS: usize = 1 << 20;

/// Longest wait for a started worker to join when none is running.
const STARTUP: Duration = Duration::from_secs(60);

/// Longest wait for any sign of life from the workers before the run gives up.
pub(super) const SILENCE: Duration = Duration::from_secs(300);

pub(super) enum Event {
    Joined {
        id: usize,
        conn: TcpStream,
        data_addr: String,
        pid: u32,
    },
    Message(usize, ToCoordinator),
    Lost(usize),
}

struct Slot {
    conn: TcpStream,
    data_addr: String,
    pid: u32,
    alive: bool,
    busy: Option<AttemptId>,
}

#[derive(Debug, Clone)]
struct Output {
    worker: usize,
    addr: String,
    key: String,
    rows: Vec<u64>,
    channel: Channel,
}

struct StageRun {
    committed: Vec<Option<Output>>,
    running: Vec<Option<(usize, u32)>>,
    next_attempt: Vec<u32>,
    failures: Vec<u32>,
    last_error: Vec<String>,
    channel: Channel,
}

impl StageRun {
    fn new(tasks: usize, channel: Channel) -> StageRun {
        StageRun {
            channel,
            committed: vec![None; tasks],
            running: vec![None; tasks],
            next_attempt: vec![0; tasks],
            failures: vec![0; tasks],
            last_error: vec![String::new(); tasks],
        }
    }

    fn complete(&self) -> bool {
        self.committed.iter().all(Option::is_some)
    }
}

/// The coordinator of one run.
pub struct Coordinator {
    backend: Box<dyn Backend>,
    secret: Secret,
    launch: Launch,
    channels: Arc<Channels>,
    events: Receiver<Event>,
    slots: Vec<Option<Slot>>,
    want: usize,
    channel: ChannelChoice,
    max_attempts: u32,
    next_job: usize,
    clock: Instant,
    /// When the last worker was started.
    launched: Instant,
    sent: HashMap<AttemptId, (f64, Channel)>,
    record: RunRecord,
    watch: Option<Arc<dyn Watch>>,
    _interrupt: Registered,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("workers", &self.want)
            .field("channel", &self.channel)
            .finish()
    }
}

pub(super) fn error(message: impl Into<String>) -> DataFusionError {
    DataFusionError::Execution(message.into())
}

impl Coordinator {
    /// Starts the workers (they join while the caller plans its first job). `watch` hears of
    /// every stage and attempt.
    pub fn start(
        options: &ClusterOptions,
        mut backend: Box<dyn Backend>,
        watch: Option<Arc<dyn Watch>>,
    ) -> Result<Coordinator> {
        let clock = Instant::now();
        let secret = Secret::generate().map_err(|e| error(format!("no randomness: {e}")))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| error(format!("cannot open the control port: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| error(e.to_string()))?
            .to_string();
        let (tx, rx) = channel();
        accept_workers(listener, secret.clone(), tx);
        let prefix = format!(
            "run-{}",
            &Secret::generate()
                .map_err(|e| error(e.to_string()))?
                .to_hex()[..16]
        );
        let store = open_store(&options.store).map_err(error)?;
        let interrupt = on_interrupt({
            let (store, url, prefix) = (store.clone(), options.store.clone(), prefix.clone());
            move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(remove_prefix(store.as_ref(), &url, &prefix));
                }
            }
        });
        let launch = Launch {
            coordinator: addr,
            store: options.store.clone(),
            prefix: prefix.clone(),
            compression: options.compression,
            log: options.log.clone(),
        };
        let workers = options.workers.max(1) as usize;
        for _ in 0..workers {
            backend
                .launch(&launch, &secret)
                .map_err(|e| error(format!("cannot start a worker: {e}")))?;
        }
        let c = Coordinator {
            backend,
            secret: secret.clone(),
            launch,
            channels: Arc::new(Channels {
                secret,
                store,
                prefix,
                compression: options.compression,
            }),
            events: rx,
            slots: Vec::new(),
            want: workers,
            channel: options.channel.clone(),
            max_attempts: options.max_attempts.max(1),
            next_job: 0,
            clock,
            launched: Instant::now(),
            sent: HashMap::new(),
            record: RunRecord {
                workers,
                channel: options.channel.name().to_string(),
                compression: options.compression,
                store: options.store.clone(),
                seconds: 0.0,
                stages: Vec::new(),
                tasks: Vec::new(),
            },
            watch,
            _interrupt: interrupt,
        };
        // Workers join while the first job is planned; tasks go to whichever have joined.
        Ok(c)
    }

    /// The session configuration physical plans for this cluster are made with: one target
    /// partition per worker, no round-robin repartitions (they would make every task read
    /// every input partition), and nothing that makes one partition wait for its siblings.
    pub fn session_config(&self) -> SessionConfig {
        let mut config = SessionConfig::new().with_target_partitions(self.want);
        config
            .options_mut()
            .optimizer
            .enable_round_robin_repartition = false;
        config.options_mut().optimizer.repartition_file_min_size = 256 * 1024;
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = false;
        // A join's dynamic filter waits until every partition of the join has built its side;
        // a task runs one partition, so it would wait for ever.
        config
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
        // A join side under the planner's broadcast limit is sent whole to every task of the
        // other side (a gather under the join's build side) rather than both sides shuffled.
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = BROADCAST_MAX_BYTES as usize;
        optimizer.hash_join_single_partition_threshold_rows = BROADCAST_MAX_ROWS;
        config.with_extension(self.channels.clone())
    }

    /// Milliseconds since the coordinator started, for the `-vv` lines on the run's phases.
    fn elapsed_ms(&self) -> f64 {
        self.clock.elapsed().as_secs_f64() * 1e3
    }

    fn live(&self) -> usize {
        self.slots.iter().flatten().filter(|s| s.alive).count()
    }

    pub(super) fn handle_setup(&mut self, event: Event) {
        match event {
            Event::Joined {
                id,
                conn,
                data_addr,
                pid,
            } => {
                tracing::debug!(
                    "worker {id} (pid {pid}) joined, seen {:.1} ms into the run",
                    self.elapsed_ms()
                );
                if self.slots.len() <= id {
                    self.slots.resize_with(id + 1, || None);
                }
                self.slots[id] = Some(Slot {
                    conn,
                    data_addr,
                    pid,
                    alive: true,
                    busy: None,
                });
            }
            Event::Lost(id) => {
                if let Some(Some(slot)) = self.slots.get_mut(id) {
                    slot.alive = false;
                }
            }
            Event::Message(..) => {}
        }
    }

    /// Runs a physical plan across the workers and returns its output, partitions in order.
    /// Its Parquet scans are divided into tasks by `row_groups` (those of the files it scans).
    pub fn execute(
        &mut self,
        plan: Arc<dyn ExecutionPlan>,
        row_groups: &RowGroups,
    ) -> Result<Vec<RecordBatch>> {
        let job = self.next_job;
        self.next_job += 1;
        tracing::debug!("job {job} planned {:.1} ms into the run", self.elapsed_ms());
        let mut stages = cut(co_locate(plan, row_groups)?, row_groups)?;
        // A last stage that only merges what the others computed runs here: sending it to a
        // worker would cost a round trip and a second copy of the rows for no work.
        let merge = match stages.last() {
            Some(last) if stages.len() > 1 && merges_only(&last.plan) => stages.pop(),
            _ => None,
        };
        if let Some(merge) = &merge {
            tracing::info!("job {job} stage {}: merged by the coordinator", merge.id);
        }
        for s in &stages {
            tracing::info!(
                "job {job} stage {}: {} tasks, output {:?}, reads stages {:?}",
                s.id,
                s.tasks,
                s.output,
                s.inputs
            );
            tracing::debug!(
                "job {job} stage {} plan:\n{}",
                s.id,
                datafusion::physical_plan::displayable(s.plan.as_ref()).indent(false)
            );
        }
        let records: Vec<StageRecord> = stages.iter().map(|s| s.record(job)).collect();
        if let Some(watch) = &self.watch {
            watch.stages(&records);
        }
        let mut runs: Vec<StageRun> = stages
            .iter()
            .zip(&records)
            .map(|(s, r)| StageRun::new(s.tasks, self.channel.of(r)))
            .collect();
        if let Some(merge) = &merge {
            // What the coordinator reads comes back the way the plan has the last stage's
            // output come back.
            let back = self.channel.of(&merge.record(job));
            for input in &merge.inputs {
                runs[*input].channel = back;
            }
        }
        self.record.stages.extend(records);
        let result = self.drive(job, &stages, &mut runs, merge.as_ref());
        if let (Ok(_), Some(watch)) = (&result, &self.watch) {
            watch.job_done(job);
        }
        self.release(job);
        result
    }

    fn drive(
        &mut self,
        job: usize,
        stages: &[StagePlan],
        runs: &mut [StageRun],
        merge: Option<&StagePlan>,
    ) -> Result<Vec<RecordBatch>> {
        loop {
            if runs.iter().all(StageRun::complete) {
                tracing::debug!(
                    "job {job}: every stage done {:.1} ms into the run",
                    self.elapsed_ms()
                );
                let read = match merge {
                    Some(merge) => self.run_here(merge, runs),
                    None => self.read_last(stages, runs),
                };
                match read {
                    Ok(batches) => return Ok(batches),
                    Err(e) => {
                        let Some(peer) = lost_peer(&e) else {
                            return Err(e);
                        };
                        self.peer_lost(&peer, runs)?;
                        continue;
                    }
                }
            }
            self.dispatch(job, stages, runs)?;
            let starting = self.live() == 0;
            let wait = if starting {
                STARTUP.saturating_sub(self.launched.elapsed())
            } else {
                SILENCE
            };
            let event = match self.events.recv_timeout(wait) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) if starting => {
                    return Err(error(format!(
                        "no worker joined within {} s of being started",
                        STARTUP.as_secs()
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(error("no worker has answered for five minutes"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(error("the coordinator lost its control port"));
                }
            };
            match event {
                Event::Message(
                    w,
                    ToCoordinator::Done {
                        id,
                        rows,
                        bytes,
                        seconds,
                    },
                ) => {
                    tracing::debug!("task {} done on worker {w}: rows {rows:?}", id.key());
                    let Some(slot) = self.slot(w) else { continue };
                    slot.busy = None;
                    let addr = slot.data_addr.clone();
                    self.note(id, w, seconds, rows.iter().sum(), bytes.iter().sum(), None);
                    if id.job != job {
                        continue;
                    }
                    let run = &mut runs[id.stage];
                    if run.running[id.task] == Some((w, id.attempt)) {
                        run.running[id.task] = None;
                        run.committed[id.task] = Some(Output {
                            worker: w,
                            addr,
                            key: id.key(),
                            rows,
                            channel: run.channel,
                        });
                    }
                }
                Event::Message(
                    w,
                    ToCoordinator::Failed {
                        id,
                        error: message,
                        lost_peer,
                    },
                ) => {
                    let Some(slot) = self.slot(w) else { continue };
                    slot.busy = None;
                    self.note(id, w, 0.0, 0, 0, Some(message.clone()));
                    if id.job != job || runs[id.stage].running[id.task] != Some((w, id.attempt)) {
                        continue;
                    }
                    runs[id.stage].running[id.task] = None;
                    match lost_peer {
                        // Not this task's fault: its input died with a peer.
                        Some(peer) => self.peer_lost(&peer, runs)?,
                        None => self.failed(runs, id, message)?,
                    }
                }
                Event::Message(
                    _,
                    ToCoordinator::Hello { .. }
                    | ToCoordinator::Trained { .. }
                    | ToCoordinator::TrainFailed { .. },
                ) => {}
                Event::Lost(w) => self.worker_lost(w, job, runs)?,
                joined @ Event::Joined { .. } => self.handle_setup(joined),
            }
        }
    }

    /// Records how an attempt ended and tells the watcher.
    fn note(
        &mut self,
        id: AttemptId,
        worker: usize,
        busy_s: f64,
        rows: u64,
        bytes: u64,
        error: Option<String>,
    ) {
        let pid = self.slot(worker).map_or(0, |s| s.pid);
        let (start_s, channel) = self.sent.remove(&id).unwrap_or((0.0, Channel::Direct));
        let record = TaskRecord {
            id,
            worker,
            pid,
            channel,
            start_s,
            end_s: self.clock.elapsed().as_secs_f64(),
            busy_s,
            rows,
            bytes,
            error,
        };
        if let Some(watch) = &self.watch {
            watch.task(&record);
        }
        self.record.tasks.push(record);
    }

    fn slot(&mut self, w: usize) -> Option<&mut Slot> {
        self.slots.get_mut(w).and_then(Option::as_mut)
    }

    fn failed(&mut self, runs: &mut [StageRun], id: AttemptId, message: String) -> Result<()> {
        let run = &mut runs[id.stage];
        run.failures[id.task] += 1;
        run.last_error[id.task] = message;
        if run.failures[id.task] >= self.max_attempts {
            return Err(error(format!(
                "task {} of stage {} failed {} times; the last error: {}",
                id.task, id.stage, run.failures[id.task], run.last_error[id.task]
            )));
        }
        Ok(())
    }

    fn peer_lost(&mut self, peer: &str, runs: &mut [StageRun]) -> Result<()> {
        let found = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.alive && s.data_addr == peer));
        match found {
            Some(w) => self.worker_lost(w, self.next_job - 1, runs),
            // Already known dead: its outputs are being computed again.
            None => Ok(()),
        }
    }

    /// Marks worker `w` dead and kills what is left of it; its process id if it was alive.
    pub(super) fn retire(&mut self, w: usize) -> Option<u32> {
        let slot = self.slot(w)?;
        if !slot.alive {
            return None;
        }
        slot.alive = false;
        let pid = slot.pid;
        self.backend.kill(pid);
        if !crate::interrupt::interrupted() {
            tracing::warn!("worker {pid} was lost; starting another");
        }
        Some(pid)
    }

    /// Starts a worker in place of a lost one.
    pub(super) fn replace(&mut self) -> Result<()> {
        self.launched = Instant::now();
        self.backend
            .launch(&self.launch, &self.secret)
            .map_err(|e| error(format!("cannot start a replacement worker: {e}")))
    }

    fn worker_lost(&mut self, w: usize, job: usize, runs: &mut [StageRun]) -> Result<()> {
        let busy = self.slot(w).and_then(|s| s.busy);
        let Some(pid) = self.retire(w) else {
            return Ok(());
        };
        for run in runs.iter_mut() {
            for t in 0..run.committed.len() {
                if run.committed[t]
                    .as_ref()
                    .is_some_and(|o| o.worker == w && o.channel != Channel::Storage)
                {
                    run.committed[t] = None;
                }
            }
        }
        if let Some(id) = busy
            && id.job == job
            && runs[id.stage].running[id.task] == Some((w, id.attempt))
        {
            runs[id.stage].running[id.task] = None;
            let message = format!("worker {pid} died while running it");
            self.note(id, w, 0.0, 0, 0, Some(message.clone()));
            self.failed(runs, id, message)?;
        }
        self.replace()
    }

    /// Workers the run asked for.
    pub fn workers(&self) -> usize {
        self.want
    }

    pub(super) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The planned stage that trains the model of DAG node `node`, when the run follows a
    /// plan: found through the operator the planner made of that node, never by kind.
    pub(super) fn planned_training_stage(&self, node: usize) -> Option<&flow_planner::Stage> {
        let ChannelChoice::Planned(plan) = &self.channel else {
            return None;
        };
        plan.ops
            .iter()
            .find(|o| {
                o.op.origin.node == node
                    && matches!(o.op.kind, flow_planner::ops::OpKind::Train { .. })
            })
            .and_then(|o| plan.stages.get(o.stage))
    }

    /// The channel stage outputs take when the plan says nothing.
    pub(super) fn default_channel(&self) -> Channel {
        match &self.channel {
            ChannelChoice::All(kind) => *kind,
            ChannelChoice::Planned(_) => Channel::Direct,
        }
    }

    /// Waits until as many workers as the run asked for have joined.
    pub(super) fn wait_for_workers(&mut self) -> Result<()> {
        while self.live() < self.want {
            let wait = STARTUP.saturating_sub(self.launched.elapsed());
            match self.events.recv_timeout(wait) {
                Ok(Event::Lost(w)) => {
                    if self.retire(w).is_some() {
                        self.replace()?;
                    }
                }
                Ok(event) => self.handle_setup(event),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(error(format!(
                        "only {} of {} workers joined within {} s of being started",
                        self.live(),
                        self.want,
                        STARTUP.as_secs()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(error("the coordinator lost its control port"));
                }
            }
        }
        Ok(())
    }

    pub(super) fn new_job(&mut self) -> usize {
        self.next_job += 1;
        self.next_job - 1
    }

    /// The live workers, in the order they joined.
    pub(super) fn live_workers(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.alive))
            .map(|(w, _)| w)
            .collect()
    }

    pub(super) fn data_addr(&self, w: usize) -> String {
        self.slots[w]
            .as_ref()
            .map(|s| s.data_addr.clone())
            .unwrap_or_default()
    }

    /// The control connection of a live worker.
    pub(super) fn connection(&mut self, w: usize) -> &mut TcpStream {
        &mut self.slots[w].as_mut().expect("a live worker").conn
    }

    pub(super) fn next_event(
        &self,
        wait: Duration,
    ) -> std::result::Result<Event, RecvTimeoutError> {
        self.events.recv_timeout(wait)
    }

    /// Tells the workers to forget what a finished job kept.
    pub(super) fn release(&mut self, job: usize) {
        for slot in self.slots.iter_mut().flatten().filter(|s| s.alive) {
            let _ = send(&mut slot.conn, &ToWorker::Release { job });
        }
    }

    fn dispatch(&mut self, job: usize, stages: &[StagePlan], runs: &mut [StageRun]) -> Result<()> {
        let last = stages.len() - 1;
        for stage in stages {
            if !stage.inputs.iter().all(|i| runs[*i].complete()) {
                continue;
            }
            let mut bytes = None;
            for task in 0..stage.tasks {
                let run = &runs[stage.id];
                if run.committed[task].is_some() || run.running[task].is_some() {
                    continue;
                }
                let Some(w) = self
                    .slots
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|s| s.alive && s.busy.is_none()))
                else {
                    return Ok(());
                };
                if bytes.is_none() {
                    bytes = Some(codec::encode(self.fill(stage.plan.clone(), runs)?)?);
                }
                let attempt = runs[stage.id].next_attempt[task];
                runs[stage.id].next_attempt[task] += 1;
                let id = AttemptId {
                    job,
                    stage: stage.id,
                    task,
                    attempt,
                };
                let channel = runs[stage.id].channel;
                let Some(slot) = self.slot(w) else { continue };
                let sent = send(
                    &mut slot.conn,
                    &ToWorker::Task {
                        id,
                        channel,
                        last: stage.id == last,
                    },
                )
                .and_then(|()| write_frame(&mut slot.conn, bytes.as_deref().unwrap_or_default()));
                slot.busy = Some(id);
                runs[stage.id].running[task] = Some((w, attempt));
                self.sent
                    .insert(id, (self.clock.elapsed().as_secs_f64(), channel));
                if sent.is_err() {
                    self.worker_lost(w, job, runs)?;
                }
            }
        }
        Ok(())
    }

    fn location(&self, output: &Output, bucket: usize) -> Location {
        match output.channel {
            Channel::Direct | Channel::Fused => Location::Direct {
                addr: output.addr.clone(),
                key: output.key.clone(),
                bucket,
            },
            Channel::Storage => Location::Storage {
                path: self.channels.object_path(&output.key, bucket),
            },
        }
    }

    /// The plan with every exchange reader told where its inputs' committed outputs are.
    fn fill(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        runs: &[StageRun],
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(reader) = node.downcast_ref::<ExchangeReadExec>() else {
                return Ok(Transformed::no(node));
            };
            let outputs: Vec<&Output> = runs[reader.stage].committed.iter().flatten().collect();
            let locations = match reader.kind {
                ReadKind::Bucket => (0..reader.partitions())
                    .map(|j| {
                        outputs
                            .iter()
                            .filter(|o| o.rows.get(j).copied().unwrap_or(0) > 0)
                            .map(|o| self.location(o, j))
                            .collect()
                    })
                    .collect(),
                ReadKind::Task => outputs
                    .iter()
                    .map(|o| {
                        if o.rows.first().copied().unwrap_or(0) > 0 {
                            vec![self.location(o, 0)]
                        } else {
                            Vec::new()
                        }
                    })
                    .collect(),
            };
            Ok(Transformed::yes(
                Arc::new(reader.with_locations(locations)) as Arc<dyn ExecutionPlan>
            ))
        })
        .map(|t| t.data)
    }

    /// The last stage's output, read from wherever its tasks put it.
    fn read_last(&self, stages: &[StagePlan], runs: &[StageRun]) -> Result<Vec<RecordBatch>> {
        let last = &stages[stages.len() - 1];
        let schema = last.plan.schema();
        let reader: Arc<dyn ExecutionPlan> = Arc::new(ExchangeReadExec::new(
            last.id,
            ReadKind::Task,
            last.tasks,
            schema.clone(),
            EquivalenceProperties::new(schema),
        ));
        self.run_plan(reader, last.tasks, runs)
    }

    /// Runs a merging stage ([`merges_only`]) in this process.
    fn run_here(&self, merge: &StagePlan, runs: &[StageRun]) -> Result<Vec<RecordBatch>> {
        self.run_plan(merge.plan.clone(), merge.tasks, runs)
    }

    /// Every partition of a plan that reads stage outputs, in order.
    fn run_plan(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        partitions: usize,
        runs: &[StageRun],
    ) -> Result<Vec<RecordBatch>> {
        let plan = self.fill(plan, runs)?;
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_extension(self.channels.clone()),
        );
        let task_ctx = ctx.task_ctx();
        let streams = (0..partitions)
            .map(|p| plan.execute(p, task_ctx.clone()))
            .collect::<Result<Vec<_>>>()?;
        // Side by side: each partition spends most of its time waiting for other processes'
        // rows, and what it waits for is ready on every worker at once.
        let collected =
            tokio::runtime::Handle::current().block_on(futures::future::try_join_all(
                streams
                    .into_iter()
                    .map(datafusion::physical_plan::common::collect),
            ))?;
        Ok(collected.into_iter().flatten().collect())
    }

    /// Stops the workers, removes the run's temporary objects and returns what happened.
    pub fn finish(mut self) -> RunRecord {
        tracing::debug!(
            "the run's jobs ended {:.1} ms into the run",
            self.elapsed_ms()
        );
        for slot in self.slots.iter_mut().flatten().filter(|s| s.alive) {
            let _ = send(&mut slot.conn, &ToWorker::Shutdown);
        }
        // A worker still running a task (a failed run) may be writing under the run's prefix:
        // it must be gone before the prefix is removed. Idle ones need not be waited for.
        if self
            .slots
            .iter()
            .flatten()
            .any(|s| s.alive && s.busy.is_some())
        {
            self.backend.shutdown();
        } else {
            self.backend.dismiss();
        }
        let (store, url, prefix) = (
            self.channels.store.clone(),
            self.launch.store.clone(),
            self.channels.prefix.clone(),
        );
        let removed = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(async { remove_prefix(store.as_ref(), &url, &prefix).await })
        });
        if let Err(e) = removed {
            tracing::warn!(
                "could not remove the run's temporary objects under {url}/{prefix}: {e}"
            );
        }
        self.record.seconds = self.clock.elapsed().as_secs_f64();
        tracing::debug!(
            "workers dismissed {:.1} ms into the run",
            self.record.seconds * 1e3
        );
        std::mem::take(&mut self.record)
    }
}

/// Whether a plan only merges, limits or gathers the outputs of other stages.
fn merges_only(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let merging = plan.downcast_ref::<SortPreservingMergeExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<GlobalLimitExec>().is_some();
    if plan.downcast_ref::<ExchangeReadExec>().is_some() {
        return true;
    }
    merging && plan.children().into_iter().all(merges_only)
}

/// Accepts worker connections: each must answer the run's challenge, then say hello; the
/// rest of its messages are forwarded as events.
fn accept_workers(listener: TcpListener, secret: Secret, events: Sender<Event>) {
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let secret = secret.clone();
            let events = events.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let _ = conn.set_nodelay(true);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                if secret.challenge(&mut conn).is_err() {
                    return;
                }
                let Ok(ToCoordinator::Hello { data_addr, pid }) = receive(&mut conn) else {
                    return;
                };
                let _ = conn.set_read_timeout(None);
                let Ok(writer) = conn.try_clone() else { return };
                let id = next.fetch_add(1, Ordering::SeqCst);
                if events
                    .send(Event::Joined {
                        id,
                        conn: writer,
                        data_addr,
                        pid,
                    })
                    .is_err()
                {
                    return;
                }
                while let Ok(message) = receive::<ToCoordinator>(&mut conn) {
                    if events.send(Event::Message(id, message)).is_err() {
                        return;
                    }
                }
                let _ = events.send(Event::Lost(id));
            });
        }
    });
}
