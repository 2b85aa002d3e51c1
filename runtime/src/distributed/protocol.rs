//! What the coordinator and its workers say to each other over the control connection: one
//! length-prefixed JSON message per frame, a task's serialised plan in the frame after it.

use super::channels::StoreRequests;
use super::punched::Links;
use flow_planner::Channel;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Frames larger than this are refused: no honest message comes near it, and a corrupt length
/// must not make the reader allocate gigabytes.
const MAX_FRAME: usize = 1 << 30;

/// Writes one frame: a 4-byte big-endian length, then the bytes.
pub fn write_frame(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)?;
    w.flush()
}

/// Reads one frame written by [`write_frame`].
pub fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    read_frame_of_at_most(r, MAX_FRAME)
}

/// Reads one frame of at most `max` bytes; a longer one is refused before it is read.
pub fn read_frame_of_at_most(r: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is larger than the limit"),
        ));
    }
    let mut bytes = vec![0u8; len];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// Writes a message as a JSON frame.
pub fn send<T: Serialize>(w: &mut impl Write, message: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    write_frame(w, &bytes)
}

/// Reads a JSON frame as a message.
pub fn receive<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<T> {
    let bytes = read_frame(r)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Identifies one attempt at one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// Number of the run's job (one per sink, and one per training table or evaluation)
    /// that first needed the stage.
    pub job: usize,
    /// The plan's stage.
    pub stage: usize,
    /// Task within the stage (its share of the stage's inputs).
    pub task: usize,
    /// Attempt number, from 0.
    pub attempt: u32,
}

impl AttemptId {
    /// The key its outputs are stored under, unique within a run.
    pub fn key(&self) -> String {
        format!(
            "j{}/s{}/t{}/a{}",
            self.job, self.stage, self.task, self.attempt
        )
    }
}

/// A message from the coordinator.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// Run a task; the plan of each of its outputs (datafusion-proto bytes) follows, one
    /// frame each, in order.
    Task {
        /// Which attempt this is.
        id: AttemptId,
        /// Its outputs.
        outputs: Vec<TaskOutput>,
    },
    /// Train as one member of a data-parallel group. Three frames follow: the
    /// [`TrainHeader`] as JSON, then the member's input rows and their targets as
    /// little-endian `f64`s.
    Train {
        /// Names this training attempt; its messages' tags start with it.
        key: String,
        /// The plan's training stage (which says the function's memory), if it has one.
        #[serde(default)]
        stage: Option<usize>,
        /// Which attempt at the training this is, from 0.
        attempt: u32,
        /// The member's rank, the group's size, the sync mode and schedule.
        member: flow_stdlib::ml::parallel::Member,
        /// Every member's data-server address, by rank.
        peers: Vec<String>,
        /// How members reach each other: their data servers, or the run's store.
        mailbox: Channel,
        /// How `allreduce` adds: around a ring, or by recursive doubling.
        algorithm: flow_planner::physical::Algorithm,
    },
    /// Forget every output kept under a key that starts with `prefix` (a finished job's, or
    /// a stage's whose readers are all done).
    Release {
        /// The start of the keys.
        prefix: String,
    },
    /// Exit.
    Shutdown,
}

impl ToWorker {
    /// How many frames follow the message on the control connection.
    pub fn frames(&self) -> usize {
        match self {
            ToWorker::Task { outputs, .. } => outputs.len(),
            ToWorker::Train { .. } => 3,
            ToWorker::Release { .. } | ToWorker::Shutdown => 0,
        }
    }
}

/// One output of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    /// The channel it moves over.
    pub channel: Channel,
    /// Whether the coordinator reads it (for a sink, a training, an evaluation).
    pub back: bool,
    /// Whether it is kept only for the task's other outputs, which share it, and forgotten
    /// when the task ends.
    pub shared: bool,
    /// Whether each bucket's one reader takes it as it is written, holding the producer to
    /// its pace, and nothing is kept once read ([`super::outbox`]).
    #[serde(default)]
    pub consumed: bool,
}

impl TaskOutput {
    /// Whether the producing worker keeps it encoded and serves it over direct channels,
    /// rather than writing it to the run's store (or, shared, keeping its batches as they
    /// are for the task's other outputs).
    pub fn kept_here(&self) -> bool {
        !self.shared && self.channel != Channel::Storage
    }
}

impl AttemptId {
    /// The key output `output` of this attempt is stored under.
    pub fn output_key(&self, output: usize) -> String {
        format!("{}/o{output}", self.key())
    }
}

/// What every member of a training needs besides its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainHeader {
    pub spec: flow_stdlib::TrainSpec,
    pub net: flow_stdlib::ml::net::Net,
    /// The starting parameters, the same for every member.
    pub params: Vec<f64>,
    /// Columns of the input rows.
    pub inputs: usize,
}

/// `values` as little-endian bytes, the form rows travel in.
pub fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The `f64`s [`f64_bytes`] wrote.
pub fn f64_values(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// A message from a worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToCoordinator {
    /// First message after the handshake: where the worker serves direct-channel data.
    Hello {
        /// `host:port` of its data server.
        data_addr: String,
        /// Its process id, so the coordinator can tell people which process failed.
        pid: u32,
    },
    /// A task finished and its outputs are ready.
    Done {
        /// The attempt.
        id: AttemptId,
        /// Rows in each bucket of each output.
        rows: Vec<Vec<u64>>,
        /// Bytes (Arrow IPC) in each bucket of each output.
        bytes: Vec<Vec<u64>>,
        /// Seconds from receiving the task to outputs ready.
        seconds: f64,
        /// The worker's peak resident memory while it ran the task, in MB, where it can
        /// tell ([`super::peak`]).
        #[serde(default)]
        peak_mb: Option<f64>,
        /// CPU seconds the worker spent on the task, where it can tell ([`super::cpu`]).
        #[serde(default)]
        cpu_s: Option<f64>,
        /// What the task's punched channels did.
        #[serde(default)]
        links: Links,
        /// The requests it made of the run's store.
        #[serde(default)]
        store_requests: StoreRequests,
        /// The duration the platform billed for it, where the platform says (Lambda's log
        /// tail); filled in by the backend, not the worker.
        #[serde(default)]
        billed_s: Option<f64>,
    },
    /// A member finished training; every member ends with the same parameters.
    Trained {
        key: String,
        rank: usize,
        params: Vec<f64>,
        seconds: f64,
        /// What the member's punched channels did.
        #[serde(default)]
        links: Links,
        /// The requests it made of the run's store.
        #[serde(default)]
        store_requests: StoreRequests,
    },
    /// A member could not train.
    TrainFailed {
        key: String,
        rank: usize,
        error: String,
        /// The peer whose loss failed it, if that was why.
        lost_peer: Option<String>,
    },
    /// A task failed.
    Failed {
        /// The attempt.
        id: AttemptId,
        /// What went wrong, for people.
        error: String,
        /// The `data_addr` of a direct-channel peer that could not be reached, if that was the
        /// cause (the coordinator then treats the peer as dead).
        lost_peer: Option<String>,
        /// A producer this task was reading while it ran, if that producer failed first:
        /// the task is not at fault and runs again once the producer has.
        #[serde(default)]
        failed_producer: Option<AttemptId>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_lengths_are_refused() {
        let mut buf = Vec::new();
        send(
            &mut buf,
            &ToWorker::Release {
                prefix: "j3/".into(),
            },
        )
        .unwrap();
        write_frame(&mut buf, b"plan").unwrap();
        let mut r = &buf[..];
        assert!(matches!(
            receive(&mut r).unwrap(),
            ToWorker::Release { prefix } if prefix == "j3/"
        ));
        assert_eq!(read_frame(&mut r).unwrap(), b"plan");
        let mut huge = &[0xffu8, 0xff, 0xff, 0xff][..];
        assert!(read_frame(&mut huge).is_err());
    }
}
