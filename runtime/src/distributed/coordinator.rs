//! The coordinator: starts the run's workers through a [`Backend`], runs the planner's stages
//! as [`super::lowering`] made them — each with the plan's number of tasks, each output over
//! the plan's channel — shipping every task to an idle worker with the locations of its
//! inputs' committed outputs, and reads back what sinks, trainings and evaluations need. A
//! stage runs once per run, whichever sink needs it first. It tracks attempts: a failed task
//! is retried (on another worker when there is one) up to a limit, a dead worker is
//! replaced, and direct-channel outputs that died with their worker are computed again.

use super::auth::Secret;
use super::backend::{Backend, Launch};
use super::channels::StoreRequests;
use super::channels::{Channels, Compression, Location, lost_peer};
use super::codec;
use super::exchange::{ExchangeReadExec, ReadKind};
use super::lowering::{self, Stage, task_plan};
use super::protocol::{AttemptId, TaskOutput, ToCoordinator, ToWorker, receive, send, write_frame};
use super::punched::{COORDINATOR, Links, PunchOptions, Punching};
use super::record::{RunRecord, StageRecord, TaskRecord, Watch};
use super::store::{open_store, remove_prefix};
use crate::interrupt::{Registered, on_interrupt};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use flow_planner::{Channel, PhysicalPlan};
use std::collections::{BTreeSet, HashMap, HashSet};
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
    /// The plan the run executes, stage by stage.
    pub plan: Arc<PhysicalPlan>,
    /// The channel `--channel` forced on every exchange, for the run's record.
    pub forced: Option<Channel>,
    /// The run store's URL.
    pub store: String,
    /// Attempts a task gets before the run fails.
    pub max_attempts: u32,
    /// Compression of channel data.
    pub compression: Compression,
    /// The `RUST_LOG` filter workers log with (none: theirs).
    pub log: Option<String>,
    /// Whether functions can reach each other directly (worker processes here can; Lambda
    /// functions without a rendezvous host cannot, so all they exchange goes through storage).
    pub direct: bool,
    /// Where the coordinator listens for its workers (`host:port`; port 0 picks one).
    pub listen: String,
    /// The rendezvous host workers reach each other through when none can listen for the
    /// others (each sits behind its own NAT); none: workers listen for each other.
    pub punch: Option<PunchOptions>,
}

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

/// What a committed attempt left, for its stage's readers.
#[derive(Debug, Clone)]
struct Output {
    worker: usize,
    addr: String,
    id: AttemptId,
    /// Rows per bucket, per output.
    rows: Vec<Vec<u64>>,
    /// The channel of each output.
    channels: Vec<Channel>,
}

struct StageRun {
    committed: Vec<Option<Output>>,
    running: Vec<Option<(usize, u32)>>,
    next_attempt: Vec<u32>,
    failures: Vec<u32>,
    last_error: Vec<String>,
    /// The job that first needed the stage.
    job: usize,
}

impl StageRun {
    fn new(tasks: usize, job: usize) -> StageRun {
        StageRun {
            job,
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

    /// The attempt at task `task` of stage `stage` whose output readers are sent to: the
    /// committed one, else the one running.
    fn current(&self, stage: usize, task: usize) -> Option<AttemptId> {
        match (&self.committed[task], self.running[task]) {
            (Some(o), _) => Some(o.id),
            (None, Some((_, attempt))) => Some(AttemptId {
                job: self.job,
                stage,
                task,
                attempt,
            }),
            (None, None) => None,
        }
    }
}

/// The coordinator of one run.
pub struct Coordinator {
    backend: Box<dyn Backend>,
    secret: Secret,
    launch: Launch,
    channels: Arc<Channels>,
    /// The run's connection to its rendezvous host: the run is open there while it lasts.
    _rendezvous: Option<TcpStream>,
    events: Receiver<Event>,
    slots: Vec<Option<Slot>>,
    want: usize,
    plan: Arc<PhysicalPlan>,
    /// Every stage lowered so far, by the plan's id.
    stages: HashMap<usize, Arc<Stage>>,
    /// What each stage of the plan outputs ([`lowering::outputs`]).
    outputs: Vec<Vec<lowering::OutputOf>>,
    /// Every stage started so far.
    runs: HashMap<usize, StageRun>,
    /// How many times the coordinator has read each output, by `(stage, output)`.
    read: HashMap<(usize, usize), usize>,
    max_attempts: u32,
    /// [`ClusterOptions::direct`].
    direct: bool,
    next_job: usize,
    clock: Instant,
    /// When the last worker was started.
    launched: Instant,
    sent: HashMap<AttemptId, (f64, Channel)>,
    /// Attempts still running whose output is no longer wanted: a task that took part of it
    /// as it was written failed, so the producer runs again from the start.
    abandoned: HashSet<AttemptId>,
    /// Per running attempt, the producing attempts whose consumed outputs it takes.
    takes: HashMap<AttemptId, Vec<AttemptId>>,
    record: RunRecord,
    watch: Option<Arc<dyn Watch>>,
    _interrupt: Registered,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("workers", &self.want)
            .field("stages", &self.plan.stages.len())
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
        let listener = TcpListener::bind(&options.listen).map_err(|e| {
            error(format!(
                "cannot open the control port on {}: {e}",
                options.listen
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| error(e.to_string()))?
            .to_string();
        let (tx, rx) = channel();
        let joining = Arc::new(Joining {
            secret: secret.clone(),
            events: tx,
            next: AtomicUsize::new(0),
        });
        accept_workers(listener, joining.clone());
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
            punch: options.punch.clone(),
        };
        let (rendezvous, punching) = match &options.punch {
            Some(punch) => {
                let reach = |e: std::io::Error| {
                    error(format!(
                        "cannot open the run at the rendezvous host {}: {e}",
                        punch.rendezvous
                    ))
                };
                let punching = Punching::new(punch, &secret, COORDINATOR.into(), None)
                    .map(Arc::new)
                    .map_err(reach)?;
                let open = punching.rendezvous().open().map_err(reach)?;
                // Workers that cannot reach the control port punch to it instead.
                punching
                    .answer_workers(move |conn| joining.join(conn))
                    .map_err(reach)?;
                (Some(open), Some(punching))
            }
            None => (None, None),
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
                punching,
                requests: Default::default(),
            }),
            _rendezvous: rendezvous,
            events: rx,
            slots: Vec::new(),
            want: workers,
            plan: options.plan.clone(),
            outputs: lowering::outputs(&options.plan),
            stages: HashMap::new(),
            runs: HashMap::new(),
            read: HashMap::new(),
            max_attempts: options.max_attempts.max(1),
            direct: options.direct,
            next_job: 0,
            clock,
            launched: Instant::now(),
            sent: HashMap::new(),
            abandoned: HashSet::new(),
            takes: HashMap::new(),
            record: RunRecord {
                workers,
                channel: options
                    .forced
                    .map_or("as planned", Channel::name)
                    .to_string(),
                compression: options.compression,
                store: options.store.clone(),
                seconds: 0.0,
                stages: Vec::new(),
                tasks: Vec::new(),
                throttled: 0,
                links: Links::default(),
                store_requests: StoreRequests::default(),
            },
            watch,
            _interrupt: interrupt,
        };
        // Workers join while the first job is planned; tasks go to whichever have joined.
        Ok(c)
    }

    /// The session configuration a stage's task plans are made with: one partition (a task
    /// is one function's share), no file stealing between partitions, nothing that waits for
    /// sibling partitions, and the run's channels for the readers.
    pub fn stage_config(&self) -> SessionConfig {
        let mut config = SessionConfig::new().with_target_partitions(1);
        config
            .options_mut()
            .optimizer
            .enable_round_robin_repartition = false;
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = false;
        config
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
        config.with_extension(self.channels.clone())
    }

    /// The plan the run executes.
    pub fn plan(&self) -> &Arc<PhysicalPlan> {
        &self.plan
    }

    /// What each stage of the plan outputs ([`lowering::outputs`]).
    pub fn outputs(&self) -> &[Vec<lowering::OutputOf>] {
        &self.outputs
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

    /// Whether stage `id` has been lowered.
    pub fn lowered(&self, id: usize) -> bool {
        self.stages.contains_key(&id)
    }

    /// Adds a lowered stage.
    pub fn add_stage(&mut self, stage: Stage) {
        self.stages.insert(stage.id, Arc::new(stage));
    }

    /// The stages that must run, producers first, before stage `id`'s outputs can be read:
    /// it and every stage upstream whose outputs are not all committed.
    pub fn needed(&self, id: usize) -> Vec<usize> {
        let mut out = BTreeSet::new();
        let mut pending = vec![id];
        while let Some(s) = pending.pop() {
            if out.contains(&s) || self.runs.get(&s).is_some_and(StageRun::complete) {
                continue;
            }
            out.insert(s);
            pending.extend(lowering::input_stages(&self.plan, &self.outputs, s));
        }
        out.into_iter().collect()
    }

    /// Runs stage `id` and what it needs (all lowered), then reads its output `output` whole:
    /// the rows of that operator, for a sink, a training or an evaluation.
    pub async fn read(&mut self, id: usize, output: usize) -> Result<Vec<RecordBatch>> {
        let job = self.next_job;
        self.next_job += 1;
        loop {
            // Driving waits on the workers' messages, which arrive on threads of their own:
            // the one blocking part, kept off the runtime's other tasks.
            tokio::task::block_in_place(|| self.drive(job, id))?;
            match self.read_whole(id, output).await {
                Ok(batches) => {
                    if let Some(watch) = &self.watch {
                        watch.job_done(job);
                    }
                    *self.read.entry((id, output)).or_default() += 1;
                    self.release_finished();
                    return Ok(batches);
                }
                Err(e) => {
                    let Some(peer) = lost_peer(&e) else {
                        return Err(e);
                    };
                    tokio::task::block_in_place(|| self.peer_lost(&peer))?;
                }
            }
        }
    }

    /// Starts the stages `target` needs that have not started, and records them.
    fn start_stages(&mut self, job: usize, target: usize) -> Result<()> {
        let mut records = Vec::new();
        for id in self.needed(target) {
            if self.runs.contains_key(&id) {
                continue;
            }
            let stage = self
                .stages
                .get(&id)
                .cloned()
                .ok_or_else(|| error(format!("internal error: stage {id} was not lowered")))?;
            for o in &stage.outputs {
                tracing::debug!(
                    "stage {id} output {:?}, {} tasks:\n{}",
                    o.of,
                    stage.tasks,
                    datafusion::physical_plan::displayable(o.plan.as_ref()).indent(false)
                );
            }
            records.push(StageRecord::of(job, &stage, &self.plan, |o| {
                self.consumed(o)
            }));
            self.runs.insert(id, StageRun::new(stage.tasks, job));
        }
        if !records.is_empty() {
            if let Some(watch) = &self.watch {
                watch.stages(&records);
            }
            self.record.stages.extend(records);
        }
        Ok(())
    }

    fn drive(&mut self, job: usize, target: usize) -> Result<()> {
        loop {
            self.start_stages(job, target)?;
            let active = self.needed(target);
            // A consumer that read its producers while they ran may finish before they
            // report: the job waits for them, so each task's report lands in its job.
            if active.is_empty() && !self.any_running() {
                tracing::debug!(
                    "job {job}: stage {target} done {:.1} ms into the run",
                    self.elapsed_ms()
                );
                return Ok(());
            }
            self.dispatch(&active)?;
            let event = self.wait()?;
            self.handle(event)?;
        }
    }

    fn any_running(&self) -> bool {
        self.runs
            .values()
            .any(|r| r.running.iter().any(Option::is_some))
    }

    /// The next event from the workers, or why none will come.
    fn wait(&mut self) -> Result<Event> {
        let starting = self.live() == 0;
        let wait = if starting {
            STARTUP.saturating_sub(self.launched.elapsed())
        } else {
            SILENCE
        };
        match self.events.recv_timeout(wait) {
            Ok(event) => Ok(event),
            Err(RecvTimeoutError::Timeout) if starting => Err(error(format!(
                "no worker joined within {} s of being started",
                STARTUP.as_secs()
            ))),
            Err(RecvTimeoutError::Timeout) => Err(error("no worker has answered for five minutes")),
            Err(RecvTimeoutError::Disconnected) => {
                Err(error("the coordinator lost its control port"))
            }
        }
    }

    fn handle(&mut self, event: Event) -> Result<()> {
        match event {
            Event::Message(
                w,
                ToCoordinator::Done {
                    id,
                    rows,
                    bytes,
                    seconds,
                    peak_mb,
                    cpu_s,
                    links,
                    store_requests,
                    billed_s,
                },
            ) => {
                self.heard(links, store_requests);
                self.done(w, id, (rows, bytes), seconds);
                if let Some(task) = self.record.tasks.last_mut().filter(|t| t.id == id) {
                    task.peak_mb = peak_mb;
                    task.cpu_s = cpu_s;
                    task.store_requests = store_requests;
                    task.billed_s = billed_s;
                }
            }
            Event::Message(
                w,
                ToCoordinator::Failed {
                    id,
                    error: message,
                    lost_peer,
                    failed_producer,
                },
            ) => {
                let Some(slot) = self.slot(w) else {
                    return Ok(());
                };
                slot.busy = None;
                self.note(id, w, 0.0, 0, 0, Some(message.clone()));
                if self.abandoned.remove(&id) {
                    return Ok(());
                }
                let Some(run) = self.runs.get_mut(&id.stage) else {
                    return Ok(());
                };
                if run.running[id.task] != Some((w, id.attempt)) {
                    return Ok(());
                }
                run.running[id.task] = None;
                self.reader_failed(id);
                match (lost_peer, failed_producer) {
                    // Not this task's fault: its input died with a peer.
                    (Some(peer), _) => self.peer_lost(&peer)?,
                    // Nor this: it was reading a producer that failed.
                    (None, Some(producer)) => self.producer_failed(producer, message)?,
                    (None, None) => self.failed(id, message)?,
                }
            }
            Event::Message(
                _,
                ToCoordinator::Hello { .. }
                | ToCoordinator::Trained { .. }
                | ToCoordinator::TrainFailed { .. },
            ) => {}
            Event::Lost(w) => self.worker_lost(w)?,
            joined @ Event::Joined { .. } => self.handle_setup(joined),
        }
        Ok(())
    }

    /// A task finished: its outputs are committed if this is the attempt still running it.
    fn done(
        &mut self,
        w: usize,
        id: AttemptId,
        (rows, bytes): (Vec<Vec<u64>>, Vec<Vec<u64>>),
        seconds: f64,
    ) {
        tracing::debug!("task {} done on worker {w}: rows {rows:?}", id.key());
        let Some(slot) = self.slot(w) else {
            return;
        };
        slot.busy = None;
        let addr = slot.data_addr.clone();
        self.takes.remove(&id);
        if self.abandoned.remove(&id) {
            let why = "abandoned: a task reading it as it was written failed, so it ran again";
            self.note(id, w, seconds, 0, 0, Some(why.to_string()));
            return;
        }
        // What a task shares among its outputs stays in it: only the others moved.
        let moved: Vec<bool> = self.stages.get(&id.stage).map_or_else(Vec::new, |s| {
            s.outputs
                .iter()
                .map(|o| o.of.to != lowering::Destination::Shared)
                .collect()
        });
        let total = |v: &[Vec<u64>]| -> u64 {
            v.iter()
                .enumerate()
                .filter(|(k, _)| moved.get(*k).copied().unwrap_or(true))
                .map(|(_, b)| b.iter().sum::<u64>())
                .sum()
        };
        self.note(id, w, seconds, total(&rows), total(&bytes), None);
        let channels = self
            .stages
            .get(&id.stage)
            .map(|s| s.outputs.iter().map(|o| o.channel).collect())
            .unwrap_or_default();
        let Some(run) = self.runs.get_mut(&id.stage) else {
            return;
        };
        if run.running[id.task] == Some((w, id.attempt)) {
            run.running[id.task] = None;
            run.committed[id.task] = Some(Output {
                worker: w,
                addr,
                id,
                rows,
                channels,
            });
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
            peak_mb: None,
            cpu_s: None,
            store_requests: StoreRequests::default(),
            billed_s: None,
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

    fn failed(&mut self, id: AttemptId, message: String) -> Result<()> {
        let Some(run) = self.runs.get_mut(&id.stage) else {
            return Ok(());
        };
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

    /// The producing attempts whose consumed outputs a task of stage `stage` sent now
    /// takes: every task of each producing stage feeding it so.
    fn sources_taken(&self, stage: usize) -> Vec<AttemptId> {
        let mut taken = Vec::new();
        let Some(consumer) = self.stages.get(&stage) else {
            return taken;
        };
        for p in &consumer.inputs {
            let feeds = self.feeding(*p, stage).any(|o| self.consumed(o));
            let Some(run) = self.runs.get(p).filter(|_| feeds) else {
                continue;
            };
            taken.extend((0..run.committed.len()).filter_map(|t| run.current(*p, t)));
        }
        taken
    }

    /// A task failed: what it had taken of consumed outputs as they were written is gone, so
    /// each producing attempt it took from runs again — a committed one is forgotten, a
    /// running one abandoned (its late report counts for nothing).
    fn reader_failed(&mut self, reader: AttemptId) {
        for p in self.takes.remove(&reader).unwrap_or_default() {
            let Some(run) = self.runs.get_mut(&p.stage) else {
                continue;
            };
            if run.committed[p.task].as_ref().is_some_and(|o| o.id == p) {
                run.committed[p.task] = None;
            } else if run.running[p.task].is_some_and(|(_, a)| a == p.attempt) {
                run.running[p.task] = None;
                self.abandoned.insert(p);
            } else {
                continue;
            }
            tracing::debug!(
                "task {} of stage {} runs again: its reader {} failed",
                p.task,
                p.stage,
                reader.key()
            );
        }
    }

    /// A reader learnt that the producer it followed failed, perhaps before the producer's own
    /// report arrives: the producer's attempt is over, so no other reader is sent to it.
    fn producer_failed(&mut self, producer: AttemptId, message: String) -> Result<()> {
        let Some(run) = self.runs.get_mut(&producer.stage) else {
            return Ok(());
        };
        if run.running[producer.task].is_none_or(|(_, a)| a != producer.attempt) {
            // Its own report came first and was counted.
            return Ok(());
        }
        run.running[producer.task] = None;
        self.failed(producer, message)
    }

    fn peer_lost(&mut self, peer: &str) -> Result<()> {
        let found = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.alive && s.data_addr == peer));
        match found {
            Some(w) => self.worker_lost(w),
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

    fn worker_lost(&mut self, w: usize) -> Result<()> {
        let busy = self.slot(w).and_then(|s| s.busy);
        let Some(pid) = self.retire(w) else {
            return Ok(());
        };
        for run in self.runs.values_mut() {
            for t in 0..run.committed.len() {
                if run.committed[t].as_ref().is_some_and(|o| {
                    o.worker == w && o.channels.iter().any(|c| *c != Channel::Storage)
                }) {
                    run.committed[t] = None;
                }
            }
        }
        if let Some(id) = busy
            && let Some(run) = self.runs.get_mut(&id.stage)
            && run.running[id.task] == Some((w, id.attempt))
        {
            run.running[id.task] = None;
            self.reader_failed(id);
            let message = format!("worker {pid} died while running it");
            self.note(id, w, 0.0, 0, 0, Some(message.clone()));
            self.failed(id, message)?;
        }
        self.replace()
    }

    /// Whether functions and the coordinator reach each other directly ([`ClusterOptions::direct`]).
    pub fn direct(&self) -> bool {
        self.direct
    }

    /// Workers the run asked for.
    pub fn workers(&self) -> usize {
        self.want
    }

    /// Adds what a worker's punched channels did, and its store requests, to the run's
    /// record.
    pub(super) fn heard(&mut self, links: Links, requests: StoreRequests) {
        self.record.links.extend(links);
        self.record.store_requests.puts += requests.puts;
        self.record.store_requests.gets += requests.gets;
    }

    pub(super) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The planned stage that trains the model of DAG node `node`: found through the
    /// operator the planner made of that node, never by kind.
    pub(super) fn planned_training_stage(&self, node: usize) -> Option<&flow_planner::Stage> {
        self.plan
            .ops
            .iter()
            .find(|o| {
                o.op.origin.node == node
                    && matches!(o.op.kind, flow_planner::ops::OpKind::Train { .. })
            })
            .and_then(|o| self.plan.stages.get(o.stage))
    }

    /// The channel a training's members reach each other over when the plan says nothing.
    pub(super) fn default_channel(&self) -> Channel {
        if self.direct {
            Channel::Direct
        } else {
            Channel::Storage
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
        self.forget(&format!("j{job}/"));
    }

    /// Tells the workers to forget every output kept under keys starting with `prefix`.
    fn forget(&mut self, prefix: &str) {
        for slot in self.slots.iter_mut().flatten().filter(|s| s.alive) {
            let _ = send(
                &mut slot.conn,
                &ToWorker::Release {
                    prefix: prefix.to_string(),
                },
            );
        }
    }

    /// Forgets the outputs of every stage whose readers are all done — each stage reading it
    /// committed, each output for the coordinator read — so a long program does not keep
    /// every stage's rows in its workers to the end. A stage forgotten and needed again (a
    /// reader's worker died, say) runs again, as any stage whose outputs are lost does.
    fn release_finished(&mut self) {
        let done: Vec<usize> = self
            .runs
            .iter()
            .filter(|(id, run)| run.complete() && self.readers_done(**id))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let Some(run) = self.runs.get_mut(&id) else {
                continue;
            };
            let prefix = format!("j{}/s{id}/", run.job);
            run.committed.iter_mut().for_each(|c| *c = None);
            tracing::debug!("stage {id}: every reader is done; its outputs are forgotten");
            self.forget(&prefix);
        }
    }

    fn readers_done(&self, id: usize) -> bool {
        let Some(stage) = self.stages.get(&id) else {
            return false;
        };
        let read = |k: usize| self.read.get(&(id, k)).copied().unwrap_or(0);
        stage
            .outputs
            .iter()
            .enumerate()
            .all(|(k, o)| match o.of.to {
                lowering::Destination::Shared => true,
                // Every operator the coordinator runs on these rows here (a `show` and a `save`
                // of one table, say) reads them once.
                lowering::Destination::Coordinator => {
                    let readers = self
                        .plan
                        .ops
                        .iter()
                        .filter(|r| {
                            r.stage == id
                                && r.op.inputs.contains(&o.of.op)
                                && !lowering::computes(&r.op.kind)
                        })
                        .count();
                    read(k) >= readers.max(1)
                }
                _ if self.read_back(o) => read(k) >= 1,
                lowering::Destination::Exchange(x) => self
                    .runs
                    .get(&self.plan.exchanges[x].to)
                    .is_some_and(StageRun::complete),
            })
    }

    /// Whether stage `consumer` may start reading stage `producer`: every task of it has
    /// committed, or the plan pipelines `consumer`, every producing task has started and
    /// everything it sends `consumer` moves over direct channels, which a reader follows
    /// while its producer writes.
    fn input_ready(&self, producer: usize, consumer: usize) -> bool {
        let Some(run) = self.runs.get(&producer) else {
            return false;
        };
        if run.complete() {
            return true;
        }
        let started = run
            .committed
            .iter()
            .zip(&run.running)
            .all(|(c, r)| c.is_some() || r.is_some());
        let pipelined = self.plan.stages.get(consumer).is_some_and(|s| s.pipelined);
        started && pipelined && self.streams_to(producer, consumer)
    }

    /// Whether everything stage `producer` sends stage `consumer` goes over direct channels
    /// to the consumer's workers.
    fn streams_to(&self, producer: usize, consumer: usize) -> bool {
        let mut feeding = self.feeding(producer, consumer).peekable();
        feeding.peek().is_some()
            && feeding.all(|o| o.channel == Channel::Direct && !self.read_back(o))
    }

    /// The outputs of stage `producer` that go to stage `consumer`.
    fn feeding(&self, producer: usize, consumer: usize) -> impl Iterator<Item = &lowering::Output> {
        self.stages
            .get(&producer)
            .into_iter()
            .flat_map(|s| s.outputs.iter())
            .filter(move |o| {
                matches!(o.of.to, lowering::Destination::Exchange(x)
                    if self.plan.exchanges[x].to == consumer)
            })
    }

    /// Whether an output is consumed as it is written ([`super::outbox`]): a shuffle or
    /// scatter over a direct channel into a stage the plan pipelines — so its one reader per
    /// bucket always drains it — whose inputs are independent: no two from one stage, none
    /// made from another. A reader may drain its inputs one after another (a join its build
    /// side first); holding a producer to that reader's pace then waits only on producers
    /// that run apart from it, never on anything the held producer itself must make.
    fn consumed(&self, output: &lowering::Output) -> bool {
        let lowering::Destination::Exchange(x) = output.of.to else {
            return false;
        };
        let x = &self.plan.exchanges[x];
        output.channel == Channel::Direct
            && !self.read_back(output)
            && ReadKind::of(x.pattern) == ReadKind::Share
            && self.plan.stages.get(x.to).is_some_and(|s| s.pipelined)
            && independent_inputs(&self.plan, x.to)
    }

    /// Sends every task of `active` whose inputs are ready to an idle worker.
    fn dispatch(&mut self, active: &[usize]) -> Result<()> {
        for id in active {
            let stage = self.stages[id].clone();
            if !stage.inputs.iter().all(|i| self.input_ready(*i, *id)) {
                continue;
            }
            for task in 0..stage.tasks {
                let run = &self.runs[id];
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
                let run = &self.runs[id];
                let attempt_id = AttemptId {
                    job: run.job,
                    stage: *id,
                    task,
                    attempt: run.next_attempt[task],
                };
                let mut frames = Vec::with_capacity(stage.outputs.len());
                for output in &stage.outputs {
                    let plan = task_plan(output, task, stage.tasks)?;
                    frames.push(codec::encode(self.fill(plan, task, attempt_id)?)?);
                }
                let outputs: Vec<TaskOutput> = stage
                    .outputs
                    .iter()
                    .map(|o| TaskOutput {
                        channel: o.channel,
                        back: self.read_back(o),
                        shared: o.of.to == lowering::Destination::Shared,
                        consumed: self.consumed(o),
                    })
                    .collect();
                let taken = self.sources_taken(*id);
                if !taken.is_empty() {
                    self.takes.insert(attempt_id, taken);
                }
                let run = self.runs.get_mut(id).expect("started above");
                run.next_attempt[task] += 1;
                run.running[task] = Some((w, attempt_id.attempt));
                let channel = outputs
                    .iter()
                    .find(|o| !o.shared)
                    .map_or(Channel::Direct, |o| o.channel);
                let Some(slot) = self.slot(w) else { continue };
                let mut sent = send(
                    &mut slot.conn,
                    &ToWorker::Task {
                        id: attempt_id,
                        outputs,
                    },
                );
                for frame in &frames {
                    sent = sent.and_then(|()| write_frame(&mut slot.conn, frame));
                }
                slot.busy = Some(attempt_id);
                self.sent
                    .insert(attempt_id, (self.clock.elapsed().as_secs_f64(), channel));
                if sent.is_err() {
                    self.worker_lost(w)?;
                }
            }
        }
        Ok(())
    }

    /// Whether the coordinator reads an output: its own, or an exchange's into a stage the
    /// coordinator runs itself.
    fn read_back(&self, output: &lowering::Output) -> bool {
        match output.of.to {
            lowering::Destination::Coordinator => true,
            lowering::Destination::Shared => false,
            lowering::Destination::Exchange(x) => {
                let consumer = &self.plan.ops[self.plan.exchanges[x].consumer].op.kind;
                !lowering::computes(consumer)
            }
        }
    }

    fn location(&self, output: &Output, k: usize, bucket: usize) -> Location {
        let key = output.id.output_key(k);
        match output.channels.get(k).copied().unwrap_or(Channel::Direct) {
            Channel::Direct | Channel::Fused => Location::Direct {
                addr: output.addr.clone(),
                key,
                bucket,
                producer: None,
            },
            Channel::Storage => Location::Storage {
                path: self.channels.object_path(&key, bucket),
            },
        }
    }

    /// Where task `task`'s share of one output of a stage is: its bucket of every producing
    /// task, or everything. A producer still running is read where it writes.
    fn locations(&self, stage: usize, k: usize, kind: ReadKind, task: usize) -> Vec<Location> {
        let Some(run) = self.runs.get(&stage) else {
            return Vec::new();
        };
        let mine = |bucket: usize| match kind {
            ReadKind::Share => bucket == task,
            ReadKind::Whole => true,
            ReadKind::Own => false,
        };
        let buckets = self
            .stages
            .get(&stage)
            .and_then(|s| s.outputs.get(k))
            .map_or(1, |o| lowering::bucket_count(&o.plan));
        let mut out = Vec::new();
        for (t, (committed, running)) in run.committed.iter().zip(&run.running).enumerate() {
            if let Some(o) = committed {
                let rows = o.rows.get(k).map(Vec::as_slice).unwrap_or_default();
                for (bucket, n) in rows.iter().enumerate() {
                    if mine(bucket) && *n > 0 {
                        out.push(self.location(o, k, bucket));
                    }
                }
            } else if let (Some((w, _)), Some(producer)) = (*running, run.current(stage, t)) {
                for bucket in (0..buckets).filter(|b| mine(*b)) {
                    out.push(Location::Direct {
                        addr: self.data_addr(w),
                        key: producer.output_key(k),
                        bucket,
                        producer: Some(producer),
                    });
                }
            }
        }
        out
    }

    /// The plan of task `task` (attempt `attempt`) with every exchange reader told where its
    /// rows are.
    fn fill(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        task: usize,
        attempt: AttemptId,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(reader) = node.downcast_ref::<ExchangeReadExec>() else {
                return Ok(Transformed::no(node));
            };
            let locations = match reader.kind {
                ReadKind::Own => vec![Location::Here {
                    key: attempt.output_key(reader.output),
                }],
                kind => self.locations(reader.stage, reader.output, kind, task),
            };
            Ok(Transformed::yes(
                Arc::new(reader.with_locations(vec![locations])) as Arc<dyn ExecutionPlan>,
            ))
        })
        .map(|t| t.data)
    }

    /// All of output `k` of stage `stage`, read here.
    async fn read_whole(&self, stage: usize, k: usize) -> Result<Vec<RecordBatch>> {
        let schema = self.stages[&stage].outputs[k].plan.schema();
        let reader: Arc<dyn ExecutionPlan> = Arc::new(ExchangeReadExec::new(
            (stage, k),
            ReadKind::Whole,
            1,
            schema.clone(),
            EquivalenceProperties::new(schema),
        ));
        let nobody = AttemptId {
            job: 0,
            stage,
            task: 0,
            attempt: 0,
        };
        let plan = self.fill(reader, 0, nobody)?;
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_extension(self.channels.clone()),
        );
        let stream = plan.execute(0, ctx.task_ctx())?;
        datafusion::physical_plan::common::collect(stream).await
    }

    /// Stops the workers, removes the run's temporary objects and returns what happened.
    pub async fn finish(mut self) -> RunRecord {
        // Stages with no task plans (training, evaluation, sinks reading what others sent)
        // were the coordinator's own work.
        for stage in &self.plan.stages {
            if !self.runs.contains_key(&stage.id) {
                self.record
                    .stages
                    .push(StageRecord::not_run(stage, &self.plan, &self.outputs));
            }
        }
        self.record.stages.sort_by_key(|s| s.stage);
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
        let removed = remove_prefix(store.as_ref(), &url, &prefix).await;
        if let Err(e) = removed {
            tracing::warn!(
                "could not remove the run's temporary objects under {url}/{prefix}: {e}"
            );
        }
        self.record.seconds = self.clock.elapsed().as_secs_f64();
        self.record.throttled = self.backend.throttled();
        let links = self
            .channels
            .punching
            .as_ref()
            .map(|p| p.take_links())
            .unwrap_or_default();
        let own = self.channels.requests.take();
        self.heard(links, own);
        tracing::debug!(
            "workers dismissed {:.1} ms into the run",
            self.record.seconds * 1e3
        );
        std::mem::take(&mut self.record)
    }
}

/// How a worker's control connection joins the run: it must answer the run's challenge,
/// then say hello; the rest of its messages are forwarded as events.
struct Joining {
    secret: Secret,
    events: Sender<Event>,
    next: AtomicUsize,
}

impl Joining {
    /// Serves one control connection for as long as it lasts.
    fn join(&self, mut conn: TcpStream) {
        let _ = conn.set_nodelay(true);
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        if self.secret.challenge(&mut conn).is_err() {
            return;
        }
        let Ok(ToCoordinator::Hello { data_addr, pid }) = receive(&mut conn) else {
            return;
        };
        let _ = conn.set_read_timeout(None);
        let Ok(writer) = conn.try_clone() else { return };
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let joined = Event::Joined {
            id,
            conn: writer,
            data_addr,
            pid,
        };
        if self.events.send(joined).is_err() {
            return;
        }
        while let Ok(message) = receive::<ToCoordinator>(&mut conn) {
            if self.events.send(Event::Message(id, message)).is_err() {
                return;
            }
        }
        let _ = self.events.send(Event::Lost(id));
    }
}

/// Accepts worker connections on `listener`, each on a thread of its own.
fn accept_workers(listener: TcpListener, joining: Arc<Joining>) {
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let joining = joining.clone();
            std::thread::spawn(move || joining.join(conn));
        }
    });
}

/// Whether the exchanges into `stage` come from stages apart from each other: no stage feeds
/// it twice, and none of its producers is upstream of another.
fn independent_inputs(plan: &PhysicalPlan, stage: usize) -> bool {
    let producers: Vec<usize> = plan.inputs_of(stage).map(|x| x.from).collect();
    let upstream = |of: usize| {
        let mut seen = vec![false; plan.stages.len()];
        let mut pending = vec![of];
        while let Some(s) = pending.pop() {
            for x in plan.inputs_of(s) {
                if !std::mem::replace(&mut seen[x.from], true) {
                    pending.push(x.from);
                }
            }
        }
        seen
    };
    producers.iter().enumerate().all(|(i, p)| {
        let above = upstream(*p);
        producers
            .iter()
            .enumerate()
            .all(|(j, q)| i == j || (p != q && !above[*q]))
    })
}
