//! `flowc worker`: one function of a run. It connects to the coordinator, proves the run's
//! secret, serves its outputs to peers over direct channels, and runs the tasks it is sent
//! one at a time with DataFusion held to one partition (the one vCPU of its function).

use super::auth::Secret;
use super::bucket::Bucket;
use super::channels::{Channels, Compression, failed_producer, lost_peer};
use super::codec;
use super::collective::{DirectMailbox, Group, Mailbox, StoreMailbox};
use super::dealer::Dealer;
use super::faults::{Faults, Role};
use super::outbox::Outbox;
use super::protocol::{
    AttemptId, TaskOutput, ToCoordinator, ToWorker, TrainHeader, f64_values, read_frame, receive,
    send,
};
use super::punched::{Links, PunchOptions, Punching};
use super::store::open_store;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::physical_expr::Partitioning;
use datafusion::prelude::{SessionConfig, SessionContext};
use flow_planner::Channel;
use flow_planner::physical::Algorithm;
use flow_stdlib::MlError;
use flow_stdlib::SyncMode;
use flow_stdlib::ml::Matrix;
use flow_stdlib::ml::parallel::{self, Combine, Member};
use futures::StreamExt;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Instant;

/// What `flowc worker` needs to start.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The coordinator's control address.
    pub connect: String,
    /// The run's store (`file:///...` or `s3://...`).
    pub store: String,
    /// The run's prefix in the store.
    pub prefix: String,
    /// Compression of channel data.
    pub compression: Compression,
    /// The rendezvous host peers are reached through, when they cannot listen.
    pub punch: Option<PunchOptions>,
}

/// One function's state: the run's channels, what it keeps for its peers, the DataFusion
/// session its tasks run in and the runtime their I/O runs on. A `flowc worker` process keeps
/// one for the life of the run; a Lambda sandbox keeps one per run it serves.
pub struct Function {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    channels: Arc<Channels>,
    outbox: Arc<Outbox>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("prefix", &self.channels.prefix)
            .finish()
    }
}

impl Function {
    /// A function of the run whose objects live under `prefix` in `store`.
    pub fn new(
        store: &str,
        prefix: &str,
        compression: Compression,
        secret: Secret,
        punching: Option<Arc<Punching>>,
    ) -> std::result::Result<Function, String> {
        let store = open_store(store)?;
        let channels = Arc::new(Channels {
            secret,
            store,
            prefix: prefix.to_string(),
            compression,
            punching,
            requests: Default::default(),
        });
        let outbox = Arc::new(Outbox::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut state = flow_compiler::session_state();
        let mut config = SessionConfig::new().with_target_partitions(1);
        // A scan partition would otherwise steal the files of its sibling partitions, which in
        // a distributed run are other workers' tasks: every file would be read once per task.
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = false;
        *state.config_mut() = config
            .with_extension(channels.clone())
            .with_extension(outbox.clone());
        Ok(Function {
            runtime,
            ctx: SessionContext::new_with_state(state),
            channels,
            outbox,
            faults: Arc::new(Faults::from_env()),
        })
    }

    /// What this function's punched channels did since it last said (nothing without a
    /// rendezvous host).
    fn links(&self) -> Links {
        self.channels
            .punching
            .as_ref()
            .map(|p| p.take_links())
            .unwrap_or_default()
    }

    /// Serves what this function keeps to its peers over direct channels, on `listener`.
    pub fn serve_outbox(&self, listener: TcpListener) {
        self.outbox.serve(listener, self.channels.clone());
    }

    /// Does what one message asks, with the frames that came with it (a task's plans, a
    /// training member's header and rows); the answer for the coordinator, if it wants one.
    pub fn handle(&self, message: ToWorker, frames: Vec<Vec<u8>>) -> Option<ToCoordinator> {
        self.handle_until(message, frames, None)
    }

    /// [`Function::handle`], with a task stopping with an error once `deadline` passes
    /// (Lambda may let a timed-out invocation run on: a function keeps its own deadline).
    pub fn handle_until(
        &self,
        message: ToWorker,
        frames: Vec<Vec<u8>>,
        deadline: Option<Instant>,
    ) -> Option<ToCoordinator> {
        match message {
            ToWorker::Shutdown => None,
            ToWorker::Release { prefix } => {
                self.outbox.release(&prefix);
                None
            }
            ToWorker::Train {
                key,
                stage: _,
                attempt,
                member,
                peers,
                mailbox,
                algorithm,
            } => Some(self.train(key, attempt, member, peers, mailbox, algorithm, frames)),
            ToWorker::Task { id, outputs } => {
                let started = Instant::now();
                let task = Task {
                    ctx: &self.ctx,
                    channels: &self.channels,
                    outbox: &self.outbox,
                    faults: &self.faults,
                    id,
                    deadline,
                };
                super::peak::reset();
                let cpu = super::cpu::seconds();
                Some(match self.runtime.block_on(task.run(&outputs, &frames)) {
                    Ok((rows, bytes)) => ToCoordinator::Done {
                        id,
                        rows,
                        bytes,
                        seconds: started.elapsed().as_secs_f64(),
                        peak_mb: super::peak::read_mb(),
                        cpu_s: cpu.zip(super::cpu::seconds()).map(|(a, b)| b - a),
                        links: self.links(),
                        store_requests: self.channels.requests.take(),
                        billed_s: None,
                    },
                    Err(e) => ToCoordinator::Failed {
                        id,
                        lost_peer: lost_peer(&e),
                        failed_producer: failed_producer(&e),
                        error: e.to_string(),
                    },
                })
            }
        }
    }

    /// Trains as one member of a data-parallel group.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        key: String,
        attempt: u32,
        member: Member,
        peers: Vec<String>,
        mailbox: Channel,
        algorithm: Algorithm,
        frames: Vec<Vec<u8>>,
    ) -> ToCoordinator {
        let started = Instant::now();
        let rank = member.rank;
        let kept = (mailbox != Channel::Storage).then(|| self.outbox.clone());
        let mailbox: Box<dyn Mailbox> = match mailbox {
            Channel::Direct | Channel::Fused => Box::new(DirectMailbox {
                channels: self.channels.clone(),
                outbox: self.outbox.clone(),
                peers,
                handle: self.runtime.handle().clone(),
            }),
            Channel::Storage => Box::new(StoreMailbox {
                channels: self.channels.clone(),
                rank,
                handle: self.runtime.handle().clone(),
            }),
        };
        let fault = (self.faults.clone(), attempt);
        let name = key.clone();
        // On a blocking thread while this thread drives the runtime the mailbox's I/O runs on.
        let trained = self.runtime.block_on(async move {
            tokio::task::spawn_blocking(move || {
                train_member(&name, member, mailbox, algorithm, &frames, fault, kept)
            })
            .await
            .unwrap_or_else(|e| Err(TrainingFailure::from(format!("training stopped: {e}"))))
        });
        match trained {
            Ok(params) => ToCoordinator::Trained {
                key,
                rank,
                params,
                seconds: started.elapsed().as_secs_f64(),
                links: self.links(),
                store_requests: self.channels.requests.take(),
            },
            Err(failure) => ToCoordinator::TrainFailed {
                key,
                rank,
                error: failure.error,
                lost_peer: failure.lost_peer,
            },
        }
    }
}

/// Runs a worker until the coordinator says stop or goes away.
pub fn serve(args: &WorkerArgs, secret: Secret) -> std::result::Result<(), String> {
    // The data server: peers' connections when they can reach it, this worker's own reads
    // of what it keeps when they cannot.
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let own = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    let punching = match &args.punch {
        Some(options) => {
            let name = Punching::fresh_name().map_err(|e| e.to_string())?;
            let punching =
                Punching::new(options, &secret, name, Some(own.clone())).map_err(|e| {
                    format!(
                        "cannot reach the rendezvous host {}: {e}",
                        options.rendezvous
                    )
                })?;
            Some(Arc::new(punching))
        }
        None => None,
    };
    let function = Function::new(
        &args.store,
        &args.prefix,
        args.compression,
        secret.clone(),
        punching.clone(),
    )?;
    function.serve_outbox(listener);
    // Peers reach this worker by its name through the rendezvous host, or at its data server.
    let data_addr = match &punching {
        Some(punching) => {
            punching
                .serve(function.channels.clone(), function.outbox.clone())
                .map_err(|e| format!("cannot register with the rendezvous host: {e}"))?;
            punching.me().to_string()
        }
        None => own,
    };
    let mut control = match &punching {
        Some(punching) => punching.reach_coordinator(&args.connect),
        None => TcpStream::connect(&args.connect),
    }
    .map_err(|e| format!("cannot reach the coordinator at {}: {e}", args.connect))?;
    let _ = control.set_nodelay(true);
    secret.answer(&mut control).map_err(|e| e.to_string())?;
    send(
        &mut control,
        &ToCoordinator::Hello {
            data_addr,
            pid: std::process::id(),
        },
    )
    .map_err(|e| e.to_string())?;
    loop {
        // The coordinator closing the connection is the normal way a worker learns the run is
        // over (or that the coordinator died): either way, exit.
        let Ok(message) = receive::<ToWorker>(&mut control) else {
            return Ok(());
        };
        if matches!(message, ToWorker::Shutdown) {
            return Ok(());
        }
        let frames: std::io::Result<Vec<Vec<u8>>> = (0..message.frames())
            .map(|_| read_frame(&mut control))
            .collect();
        let Ok(frames) = frames else {
            return Ok(());
        };
        if let Some(reply) = function.handle(message, frames)
            && send(&mut control, &reply).is_err()
        {
            return Ok(());
        }
    }
}

/// Adds vectors across the training group with the runtime's collectives (in `f32`, the
/// precision gradients travel in).
struct GroupCombine {
    group: Group,
    key: String,
    allreduce: fn(&Group, &str, &mut [f32]) -> Result<()>,
    /// Injected faults and the attempt they apply to.
    fault: (Arc<Faults>, u32),
    /// Where this member's direct-channel messages wait for its peers, and the tags of the
    /// last sums: a sum's messages are dropped two sums later, when every peer has read them.
    outbox: Option<Arc<Outbox>>,
    recent: std::collections::VecDeque<String>,
    /// The peer a failed sum could not reach.
    lost_peer: Option<String>,
}

impl Combine for GroupCombine {
    fn sum(&mut self, tag: &str, values: &mut [f64]) -> std::result::Result<(), MlError> {
        let epoch = tag
            .strip_prefix('e')
            .and_then(|t| t.split('s').next())
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        self.fault
            .0
            .during_training(self.group.rank, self.fault.1, epoch);
        let mut wire: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        let full = format!("{}/{tag}", self.key);
        if let Err(e) = (self.allreduce)(&self.group, &full, &mut wire) {
            self.lost_peer = lost_peer(&e);
            return Err(MlError::data(e.to_string()));
        }
        if let Some(outbox) = &self.outbox {
            self.recent.push_back(full);
            if self.recent.len() > 2
                && let Some(old) = self.recent.pop_front()
            {
                outbox.release(&format!("{old}/"));
            }
        }
        for (v, w) in values.iter_mut().zip(&wire) {
            *v = f64::from(*w);
        }
        Ok(())
    }
}

/// Why a member's training failed, and the peer it lost, if that was why.
struct TrainingFailure {
    error: String,
    lost_peer: Option<String>,
}

impl From<String> for TrainingFailure {
    fn from(error: String) -> TrainingFailure {
        TrainingFailure {
            error,
            lost_peer: None,
        }
    }
}

/// One member's training, from the frames that came with its message.
fn train_member(
    key: &str,
    member: Member,
    mailbox: Box<dyn Mailbox>,
    algorithm: Algorithm,
    frames: &[Vec<u8>],
    fault: (Arc<Faults>, u32),
    outbox: Option<Arc<Outbox>>,
) -> std::result::Result<Vec<f64>, TrainingFailure> {
    let header: TrainHeader =
        serde_json::from_slice(&frames[0]).map_err(|e| TrainingFailure::from(e.to_string()))?;
    let data = f64_values(&frames[1]);
    let targets = f64_values(&frames[2]);
    let x = Matrix {
        rows: data.len().checked_div(header.inputs).unwrap_or(0),
        cols: header.inputs,
        data,
    };
    let group = Group::new(member.rank, member.size, mailbox)
        .map_err(|e| TrainingFailure::from(e.to_string()))?;
    let allreduce: fn(&Group, &str, &mut [f32]) -> Result<()> = match (member.sync, algorithm) {
        (SyncMode::ScatterReduce, _) => Group::scatter_reduce,
        (_, Algorithm::RecursiveDoubling) if member.size.is_power_of_two() => {
            Group::allreduce_doubling
        }
        _ => Group::allreduce_ring,
    };
    let mut combine = GroupCombine {
        group,
        key: key.to_string(),
        allreduce,
        fault,
        outbox,
        recent: Default::default(),
        lost_peer: None,
    };
    let mut params = header.params.clone();
    parallel::fit_member(
        &header.spec,
        &header.net,
        &mut params,
        &x,
        &targets,
        &member,
        &mut combine,
    )
    .map_err(|e| TrainingFailure {
        error: e.to_string(),
        lost_peer: combine.lost_peer.take(),
    })?;
    Ok(params)
}

/// One task as the worker runs it.
struct Task<'a> {
    ctx: &'a SessionContext,
    channels: &'a Channels,
    outbox: &'a Outbox,
    faults: &'a Faults,
    id: AttemptId,
    /// When the task must stop, if ever.
    deadline: Option<Instant>,
}

impl Task<'_> {
    /// Computes every output in order; what they shared is forgotten once they are done.
    /// Every output kept here is opened first, so a consumer started early finds it; one the
    /// task did not finish is marked failed, so its readers learn why.
    async fn run(
        &self,
        outputs: &[TaskOutput],
        plans: &[Vec<u8>],
    ) -> Result<(Vec<Vec<u64>>, Vec<Vec<u64>>)> {
        for (k, output) in outputs.iter().enumerate() {
            if output.kept_here() {
                self.outbox.open(self.id.output_key(k), output.consumed);
            }
        }
        let mut rows = Vec::with_capacity(plans.len());
        let mut bytes = Vec::with_capacity(plans.len());
        let mut ran = Ok(());
        for (k, (output, plan)) in outputs.iter().zip(plans).enumerate() {
            match self.run_output(k, *output, plan).await {
                Ok((r, b)) => {
                    rows.push(r);
                    bytes.push(b);
                }
                Err(e) => {
                    ran = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = &ran {
            let why = e.to_string();
            for (k, output) in outputs.iter().enumerate().skip(rows.len()) {
                if output.kept_here() {
                    self.outbox.fail(&self.id.output_key(k), &why);
                }
            }
        }
        for (k, output) in outputs.iter().enumerate() {
            if output.shared {
                self.outbox.forget(&self.id.output_key(k));
            }
        }
        ran.map(|()| (rows, bytes))
    }

    /// Computes output `k`, divides it into its buckets and keeps them where its channel says.
    async fn run_output(
        &self,
        k: usize,
        output: TaskOutput,
        bytes: &[u8],
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let id = self.id;
        let task_ctx = self.ctx.task_ctx();
        let plan = codec::decode(bytes, &task_ctx)?;
        tracing::debug!(
            "worker {} runs {} output {k}:\n{}",
            std::process::id(),
            id.key(),
            datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
        );
        let (input, partitioning) = super::lowering::dealing(&plan);
        let role = match (&partitioning, output.back) {
            (_, true) => Role::Last,
            (Some(Partitioning::Hash(..)), false) => Role::Shuffle,
            _ => Role::Gather,
        };
        self.faults.before_task(&id, role)?;
        let schema = input.schema();
        let mut stream = input.execute(0, task_ctx)?;
        if output.shared {
            // Read by this task's other outputs only: kept as they are, never encoded.
            let mut batches = Vec::new();
            let (mut rows, mut bytes) = (0, 0);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                bytes += batch.get_array_memory_size() as u64;
                batches.push(batch);
            }
            self.outbox.keep_batches(id.output_key(k), batches);
            return Ok((vec![rows], vec![bytes]));
        }
        let n = super::lowering::bucket_count(&plan);
        let mut buckets: Vec<Bucket> = (0..n).map(|_| Bucket::default()).collect();
        let mut dealer = Dealer::new(partitioning, id.task, n)?;
        let key = id.output_key(k);
        let kept_here = output.kept_here();
        let options = self.channels.ipc_options()?;
        let mut write = |bucket: usize, part: RecordBatch| -> Result<()> {
            let b = &mut buckets[bucket];
            b.write(&schema, &part, &options)?;
            if kept_here && let Some(chunk) = b.chunk() {
                self.outbox.append(&key, bucket, chunk);
            }
            Ok(())
        };
        let mut seen = 0usize;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            seen += 1;
            self.faults.during_task(&id, role, seen)?;
            if self.deadline.is_some_and(|d| Instant::now() > d) {
                return Err(datafusion::error::DataFusionError::Execution(format!(
                    "task {} passed its deadline and stopped",
                    id.key()
                )));
            }
            dealer.deal(batch, &mut write)?;
        }
        tracing::debug!(
            "worker {} ran {key}, measured:\n{}",
            std::process::id(),
            datafusion::physical_plan::display::DisplayableExecutionPlan::with_metrics(
                input.as_ref()
            )
            .indent(true)
        );
        for (bucket, b) in buckets.iter_mut().enumerate() {
            let rest = b.finish()?;
            if kept_here {
                self.outbox.append(&key, bucket, rest);
            } else if b.rows > 0 {
                // A storage hop writes each bucket whole, as one object per attempt.
                self.channels.put(&key, bucket, rest).await?;
            }
        }
        if kept_here {
            self.outbox.seal(&key);
        }
        Ok((
            buckets.iter().map(|b| b.rows).collect(),
            buckets.iter().map(|b| b.bytes).collect(),
        ))
    }
}
