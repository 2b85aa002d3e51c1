//! `flowc worker`: one function of a run. It connects to the coordinator, proves the run's
//! secret, serves its outputs to peers over direct channels, and runs the tasks it is sent
//! one at a time with DataFusion held to one partition (the one vCPU of its function).

use super::auth::Secret;
use super::channels::{Channels, Compression, lost_peer};
use super::codec;
use super::faults::{Faults, Role};
use super::outbox::Outbox;
use super::protocol::{AttemptId, ChannelKind, ToCoordinator, ToWorker, read_frame, receive, send};
use super::store::open_store;
use bytes::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::{BatchPartitioner, RepartitionExec};
use datafusion::prelude::{SessionConfig, SessionContext};
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
}

/// Runs a worker until the coordinator says stop or goes away.
pub fn serve(args: &WorkerArgs, secret: Secret) -> std::result::Result<(), String> {
    let store = open_store(&args.store).map_err(|e| e.to_string())?;
    let channels = Arc::new(Channels {
        secret: secret.clone(),
        store,
        prefix: args.prefix.clone(),
        compression: args.compression,
    });
    let outbox = Arc::new(Outbox::default());
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let data_addr = listener
        .local_addr()
        .map_err(|e| e.to_string())?
        .to_string();
    outbox.serve(listener, channels.clone());
    let mut control = TcpStream::connect(&args.connect).map_err(|e| e.to_string())?;
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut state = flow_compiler::session_state();
    let mut config = SessionConfig::new().with_target_partitions(1);
    // A scan partition would otherwise steal the files of its sibling partitions, which in a
    // distributed run are other workers' tasks: every file would be read once per task.
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    *state.config_mut() = config.with_extension(channels.clone());
    let ctx = SessionContext::new_with_state(state);
    let faults = Faults::from_env();
    loop {
        // The coordinator closing the connection is the normal way a worker learns the run is
        // over (or that the coordinator died): either way, exit.
        let Ok(message) = receive::<ToWorker>(&mut control) else {
            return Ok(());
        };
        match message {
            ToWorker::Shutdown => return Ok(()),
            ToWorker::Release { job } => {
                outbox.release(&format!("j{job}/"));
            }
            ToWorker::Task { id, channel, last } => {
                let Ok(plan) = read_frame(&mut control) else {
                    return Ok(());
                };
                let started = Instant::now();
                let result = runtime.block_on(run_task(
                    &ctx,
                    &channels,
                    &outbox,
                    &faults,
                    (id, last),
                    channel,
                    &plan,
                ));
                let reply = match result {
                    Ok((rows, bytes)) => ToCoordinator::Done {
                        id,
                        rows,
                        bytes,
                        seconds: started.elapsed().as_secs_f64(),
                    },
                    Err(e) => {
                        let error = e.to_string();
                        ToCoordinator::Failed {
                            id,
                            lost_peer: lost_peer(&error),
                            error,
                        }
                    }
                };
                if send(&mut control, &reply).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

async fn run_task(
    ctx: &SessionContext,
    channels: &Channels,
    outbox: &Outbox,
    faults: &Faults,
    (id, last): (AttemptId, bool),
    channel: ChannelKind,
    bytes: &[u8],
) -> Result<(Vec<u64>, Vec<u64>)> {
    let task_ctx = ctx.task_ctx();
    let plan = codec::decode(bytes, &task_ctx)?;
    tracing::debug!(
        "worker {} runs {}:\n{}",
        std::process::id(),
        id.key(),
        datafusion::physical_plan::displayable(plan.as_ref()).indent(true)
    );
    let (input, partitioning) = match plan.downcast_ref::<RepartitionExec>() {
        Some(rep) => (rep.input().clone(), Some(rep.partitioning().clone())),
        None => (plan.clone(), None),
    };
    let role = match (&partitioning, last) {
        (Some(_), _) => Role::Shuffle,
        (None, false) => Role::Gather,
        (None, true) => Role::Last,
    };
    faults.before_task(&id, role)?;
    let schema = input.schema();
    let mut stream = input.execute(id.task, task_ctx)?;
    let n = match &partitioning {
        Some(Partitioning::Hash(_, n) | Partitioning::RoundRobinBatch(n)) => *n,
        _ => 1,
    };
    let mut buckets: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
    let mut partitioner = match partitioning {
        Some(p @ (Partitioning::Hash(..) | Partitioning::RoundRobinBatch(_))) => {
            Some(BatchPartitioner::try_new(p, Time::new(), id.task, 1)?)
        }
        _ => None,
    };
    let mut seen = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        seen += 1;
        faults.during_task(&id, role, seen);
        match partitioner.as_mut() {
            Some(p) => p.partition(batch, |bucket, part| {
                buckets[bucket].push(part);
                Ok(())
            })?,
            None => buckets[0].push(batch),
        }
    }
    let rows: Vec<u64> = buckets
        .iter()
        .map(|b| b.iter().map(|x| x.num_rows() as u64).sum())
        .collect();
    let key = id.key();
    let mut encoded = Vec::with_capacity(n);
    for (bucket, batches) in buckets.iter().enumerate() {
        encoded.push(if rows[bucket] == 0 {
            Bytes::new()
        } else {
            channels.encode(&schema, batches)?
        });
    }
    let sizes = encoded.iter().map(|b| b.len() as u64).collect();
    match channel {
        ChannelKind::Storage => {
            for (bucket, bytes) in encoded.into_iter().enumerate() {
                if rows[bucket] > 0 {
                    channels.put(&key, bucket, bytes).await?;
                }
            }
        }
        ChannelKind::Direct => {
            outbox.keep(key, encoded);
        }
    }
    Ok((rows, sizes))
}
