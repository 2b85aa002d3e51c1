//! Moving record batches between functions. A task's output is divided into buckets; each
//! bucket is either kept in the producing worker and served over a direct TCP channel, or
//! written as one Arrow IPC object under the run's prefix of an object store. [`Channels`] is
//! what a process needs to read and write both; it travels to operators as a session
//! extension.

use super::auth::Secret;
use super::outbox::{Ended, Outbox};
use super::protocol::{AttemptId, read_frame, receive, send, write_frame};
use super::punched::{Punching, Reached, Unpunched};
use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::CompressionType;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// How long a reader waits for a producer's output to be opened: the producer's task message
/// may still be on its way when a consumer started early asks for it.
const PRODUCER_START: Duration = Duration::from_secs(60);

/// Where one bucket of one committed task output can be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Location {
    /// In a worker's memory, served at `addr`.
    Direct {
        /// The worker's data server.
        addr: String,
        /// The attempt key ([`super::protocol::AttemptId::key`]).
        key: String,
        /// The bucket.
        bucket: usize,
        /// The producing attempt, when it was still running as the reader was sent here: its
        /// output may not be opened yet, so the reader waits for it rather than calling the
        /// peer lost, and reads it while it is written.
        #[serde(default)]
        producer: Option<AttemptId>,
    },
    /// An object in the run's store.
    Storage {
        /// The object's path.
        path: String,
    },
    /// In the reading worker's own outbox: an output its task computed for its other outputs.
    Here {
        /// The attempt's output key.
        key: String,
    },
}

/// A direct-channel peer that could not be reached, or no longer had what it was asked for.
/// It travels through DataFusion as a typed error (`DataFusionError::External`), so the
/// process that met it can tell the coordinator which worker to treat as dead
/// ([`lost_peer`]) without reading its message.
#[derive(Debug)]
pub struct PeerLost {
    /// The peer's data-server address.
    pub addr: String,
    /// What happened, for people.
    pub reason: String,
}

impl std::fmt::Display for PeerLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "direct-channel peer {} lost: {}", self.addr, self.reason)
    }
}

impl std::error::Error for PeerLost {}

impl PeerLost {
    /// The error for a lost peer at `addr`.
    pub fn error(addr: &str, reason: impl std::fmt::Display) -> DataFusionError {
        DataFusionError::External(Box::new(PeerLost {
            addr: addr.to_string(),
            reason: reason.to_string(),
        }))
    }
}

/// The address of the direct-channel peer an error was caused by, found among its causes.
pub fn lost_peer(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(lost) = e.downcast_ref::<PeerLost>() {
            return Some(lost.addr.clone());
        }
        cause = e.source();
    }
    None
}

/// A producing task that failed while a consumer read its output over a direct channel. Not
/// the consumer's fault, nor its peer's: the consumer runs again once the producer has. It
/// travels like [`PeerLost`], as a typed error.
#[derive(Debug)]
pub struct ProducerFailed {
    /// The producing attempt.
    pub producer: AttemptId,
    /// Why it failed.
    pub reason: String,
}

impl std::fmt::Display for ProducerFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "task {} of stage {}, whose output this task was reading, failed: {}",
            self.producer.task, self.producer.stage, self.reason
        )
    }
}

impl std::error::Error for ProducerFailed {}

/// The producing attempt whose failure caused an error, found among its causes.
pub fn failed_producer(error: &(dyn std::error::Error + 'static)) -> Option<AttemptId> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(failed) = e.downcast_ref::<ProducerFailed>() {
            return Some(failed.producer);
        }
        cause = e.source();
    }
    None
}

/// A location's bytes as [`Channels::open`] found them, and where they come from.
pub struct Opened(Box<dyn Read + Send>, Origin);

/// Where [`Channels::open`]'s bytes come from, to name a failure while reading them.
enum Origin {
    Object(String),
    Peer {
        addr: String,
        key: String,
        producer: Option<AttemptId>,
    },
}

impl Origin {
    fn error(&self, e: impl std::error::Error + 'static) -> DataFusionError {
        match self {
            Origin::Object(path) => DataFusionError::Execution(format!("cannot read {path}: {e}")),
            Origin::Peer {
                addr,
                key,
                producer,
            } => match (unserved(&e), producer) {
                (Some(end @ (StreamEnd::ProducerFailed(_) | StreamEnd::Taken)), Some(producer)) => {
                    DataFusionError::External(Box::new(ProducerFailed {
                        producer: *producer,
                        reason: match end {
                            StreamEnd::ProducerFailed(reason) => reason.clone(),
                            other => other.to_string(),
                        },
                    }))
                }
                (Some(StreamEnd::Missing), _) => {
                    PeerLost::error(addr, format!("it no longer holds {key}"))
                }
                _ => PeerLost::error(addr, e),
            },
        }
    }
}

/// The server's word on why a stream ended early, found among an error's causes.
fn unserved<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a StreamEnd> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(end) = io.get_ref().and_then(|i| i.downcast_ref::<StreamEnd>())
        {
            return Some(end);
        }
        cause = e.source();
    }
    None
}

/// A request for one bucket over a direct channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fetch {
    /// The attempt key, or a collective message's tag.
    pub key: String,
    /// The bucket.
    pub bucket: usize,
    /// How long the server may wait for the key to appear (a collective message not posted
    /// yet, a task whose message is still on its way).
    #[serde(default)]
    pub wait_ms: u64,
}

/// What follows the last chunk of a bucket sent over a direct channel: after the chunks (one
/// frame each) an empty frame, then this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StreamEnd {
    /// Everything was sent.
    Complete,
    /// The producing task failed; why.
    ProducerFailed(String),
    /// The server does not hold the key (never had it, or released it).
    Missing,
    /// A bucket handed over as it was read, to another reader: its producer must run again.
    Taken,
}

impl std::fmt::Display for StreamEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamEnd::Complete => write!(f, "complete"),
            StreamEnd::ProducerFailed(why) => write!(f, "its producer failed: {why}"),
            StreamEnd::Missing => write!(f, "the peer does not hold it"),
            StreamEnd::Taken => write!(f, "its rows were handed to an earlier reader"),
        }
    }
}

impl std::error::Error for StreamEnd {}

impl From<Ended> for StreamEnd {
    fn from(ended: Ended) -> StreamEnd {
        match ended {
            Ended::Sealed => StreamEnd::Complete,
            Ended::Failed(why) => StreamEnd::ProducerFailed(why),
            Ended::Missing => StreamEnd::Missing,
            Ended::Taken => StreamEnd::Taken,
        }
    }
}

/// The bytes of a bucket sent as frames ([`Channels::serve`]), read as one byte stream that
/// ends where the server said it ended, or fails with the [`StreamEnd`] saying why.
struct Frames<R> {
    inner: R,
    chunk: Vec<u8>,
    at: usize,
    end: Option<StreamEnd>,
}

impl<R: Read> Read for Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.at < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.at);
                buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            match &self.end {
                Some(StreamEnd::Complete) => return Ok(0),
                Some(end) => return Err(std::io::Error::other(end.clone())),
                None => {}
            }
            let frame = read_frame(&mut self.inner)?;
            if frame.is_empty() {
                self.end = Some(receive(&mut self.inner)?);
            } else {
                self.chunk = frame;
                self.at = 0;
            }
        }
    }
}

/// How long a reader waits for a location's producer to open its output: a producer still
/// running may not have started writing.
fn producer_wait(location: &Location) -> Duration {
    match location {
        Location::Direct {
            producer: Some(_), ..
        } => PRODUCER_START,
        _ => Duration::ZERO,
    }
}

/// Reads what [`Channels::open`] opened, handing each batch to `sink`.
pub fn read_opened(
    Opened(source, origin): Opened,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut source = BufReader::with_capacity(1 << 20, source);
    // A bucket its producer dealt no rows to is empty, not even a schema.
    if source.fill_buf().map_err(|e| origin.error(e))?.is_empty() {
        return Ok(());
    }
    let mut reader = StreamReader::try_new(source, None).map_err(|e| origin.error(e))?;
    for batch in reader.by_ref() {
        sink(batch.map_err(|e| origin.error(e))?)?;
    }
    // Past the stream's end marker a peer still says how the stream ended: read it, so the
    // peer's last words are heard rather than written to a closed connection.
    std::io::copy(reader.get_mut(), &mut std::io::sink()).map_err(|e| origin.error(e))?;
    Ok(())
}

/// How a process reaches the run's channels.
#[derive(Debug)]
pub struct Channels {
    /// The run's secret, proven on every direct connection.
    pub secret: Secret,
    /// The run's object store.
    pub store: Arc<dyn ObjectStore>,
    /// The run's prefix in the store.
    pub prefix: String,
    /// Compression of IPC data on the wire and in the store.
    pub compression: Compression,
    /// How direct peers are reached when none can listen: through a rendezvous host, by
    /// name. Without it a direct location's address is a data server's `host:port`.
    pub punching: Option<Arc<Punching>>,
    /// The store requests this process made (object stores bill each one).
    pub requests: RequestCount,
}

/// Requests made of the run's store: writes and reads (a read that finds nothing yet, as a
/// poll does, counts: it is billed too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreRequests {
    pub puts: u64,
    pub gets: u64,
}

/// Counts a process's [`StoreRequests`] as they are made.
#[derive(Debug, Default)]
pub struct RequestCount {
    puts: std::sync::atomic::AtomicU64,
    gets: std::sync::atomic::AtomicU64,
}

impl RequestCount {
    /// One more write.
    pub fn put(&self) {
        self.puts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// One more read.
    pub fn get(&self) {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The requests since the last call.
    pub fn take(&self) -> StoreRequests {
        use std::sync::atomic::Ordering::Relaxed;
        StoreRequests {
            puts: self.puts.swap(0, Relaxed),
            gets: self.gets.swap(0, Relaxed),
        }
    }
}

/// Compression of the Arrow IPC buffers a channel moves (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Buffers as they are: the cheapest on loopback.
    #[default]
    None,
    /// LZ4 frames: fast, modest ratio.
    Lz4,
    /// Zstandard: slower, smaller; worth it when the network or store is the bottleneck.
    Zstd,
}

impl Compression {
    /// Every choice, as the command line spells it.
    pub const NAMES: [&str; 3] = ["none", "lz4", "zstd"];

    /// The choice a command-line word names.
    pub fn parse(word: &str) -> Option<Compression> {
        match word {
            "none" => Some(Compression::None),
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The command-line word for this choice.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    fn ipc(self) -> Option<CompressionType> {
        match self {
            Compression::None => None,
            Compression::Lz4 => Some(CompressionType::LZ4_FRAME),
            Compression::Zstd => Some(CompressionType::ZSTD),
        }
    }
}

impl Channels {
    /// The object path of a bucket of an attempt.
    pub fn object_path(&self, key: &str, bucket: usize) -> String {
        format!("{}/{key}/b{bucket}.arrow", self.prefix)
    }

    /// IPC write options with the run's compression.
    pub fn ipc_options(&self) -> Result<IpcWriteOptions> {
        Ok(IpcWriteOptions::default().try_with_compression(self.compression.ipc())?)
    }

    /// Encodes batches as one Arrow IPC stream, compressed as the run asks.
    pub fn encode(&self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
        let mut buf = Vec::new();
        let mut w = StreamWriter::try_new_with_options(&mut buf, schema, self.ipc_options()?)?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
        drop(w);
        Ok(buf.into())
    }

    /// Writes one encoded bucket to the store.
    pub async fn put(&self, key: &str, bucket: usize, bytes: Bytes) -> Result<()> {
        let path = ObjectPath::from(self.object_path(key, bucket));
        self.requests.put();
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(|e| DataFusionError::Execution(format!("cannot write {path}: {e}")))?;
        Ok(())
    }

    /// Reads one location, handing each batch to `sink`. Runs on a blocking thread; `handle`
    /// is the runtime async store calls run on.
    pub fn read(
        &self,
        location: &Location,
        handle: &tokio::runtime::Handle,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let opened = self.open(location, handle, producer_wait(location))?;
        read_opened(opened, sink)
    }

    /// Opens, each on a thread of its own and all at once, the locations of a read that are
    /// punched direct channels, so that a reader of many producers pairs with them side by
    /// side rather than one after another; `None` for every other location (and for all of
    /// them when peers listen, where connecting costs next to nothing).
    pub fn open_ahead(
        self: &Arc<Self>,
        locations: &[Location],
        handle: &tokio::runtime::Handle,
    ) -> Vec<Option<std::thread::JoinHandle<Result<Opened>>>> {
        locations
            .iter()
            .map(|location| {
                let punched =
                    matches!(location, Location::Direct { .. }) && self.punching.is_some();
                punched.then(|| {
                    let (channels, location, handle) =
                        (self.clone(), location.clone(), handle.clone());
                    std::thread::spawn(move || {
                        channels.open(&location, &handle, producer_wait(&location))
                    })
                })
            })
            .collect()
    }

    /// The bytes at a location, waiting up to `wait` for a direct peer to post them.
    pub fn fetch(
        &self,
        location: &Location,
        handle: &tokio::runtime::Handle,
        wait: Duration,
    ) -> Result<Bytes> {
        let Opened(mut source, origin) = self.open(location, handle, wait)?;
        let mut bytes = Vec::new();
        source
            .read_to_end(&mut bytes)
            .map_err(|e| origin.error(e))?;
        Ok(bytes.into())
    }

    /// A reader of a location's bytes, and where they come from (a lost peer's errors are
    /// [`PeerLost`]).
    fn open(
        &self,
        location: &Location,
        handle: &tokio::runtime::Handle,
        wait: Duration,
    ) -> Result<Opened> {
        match location {
            Location::Here { key } => Err(DataFusionError::Internal(format!(
                "{key} is read from the worker's own outbox, not through a channel"
            ))),
            Location::Storage { path } => {
                let object = ObjectPath::from(path.as_str());
                self.requests.get();
                let bytes = handle
                    .block_on(async {
                        let got = self.store.get(&object).await?;
                        got.bytes().await
                    })
                    .map_err(|e| DataFusionError::Execution(format!("cannot read {path}: {e}")))?;
                Ok(Opened(
                    Box::new(std::io::Cursor::new(bytes)),
                    Origin::Object(path.clone()),
                ))
            }
            Location::Direct {
                addr,
                key,
                bucket,
                producer,
            } => {
                let lost = |e: std::io::Error| PeerLost::error(addr, e);
                let fetch = Fetch {
                    key: key.clone(),
                    bucket: *bucket,
                    wait_ms: wait.as_millis() as u64,
                };
                let origin = Origin::Peer {
                    addr: addr.clone(),
                    key: key.clone(),
                    producer: *producer,
                };
                let mut stream = match &self.punching {
                    None => TcpStream::connect(addr).map_err(lost)?,
                    Some(punching) => match punching.dial(addr, &fetch).map_err(|e| {
                        if Unpunched::is(&e) {
                            DataFusionError::Execution(e.to_string())
                        } else {
                            lost(e)
                        }
                    })? {
                        Reached::Stream(stream) => stream,
                        Reached::Stored {
                            path: Some(path), ..
                        } => {
                            return self.open(&Location::Storage { path }, handle, wait);
                        }
                        Reached::Stored { end, .. } => {
                            return Err(origin.error(std::io::Error::other(end)));
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                self.secret.answer(&mut stream).map_err(lost)?;
                send(&mut stream, &fetch).map_err(lost)?;
                let frames = Frames {
                    inner: stream,
                    chunk: Vec::new(),
                    at: 0,
                    end: None,
                };
                Ok(Opened(Box::new(frames), origin))
            }
        }
    }

    /// Serves one direct-channel connection from `outbox` (the worker's side of
    /// [`Channels::read`]). Connections that fail the challenge are dropped unanswered.
    pub fn serve(&self, mut stream: TcpStream, outbox: &Outbox) -> std::io::Result<()> {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
        self.secret.challenge(&mut stream)?;
        let _ = stream.set_read_timeout(None);
        let fetch: Fetch = receive(&mut stream)?;
        let wait = Duration::from_millis(fetch.wait_ms);
        // The reader's pace limits ours through TCP's flow control.
        let ended = outbox.follow(&fetch.key, fetch.bucket, wait, |chunk| {
            if chunk.is_empty() {
                Ok(())
            } else {
                write_frame(&mut stream, chunk)
            }
        })?;
        write_frame(&mut stream, &[])?;
        send(&mut stream, &StreamEnd::from(ended))?;
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::net::TcpListener;

    fn channels(secret: Secret) -> Channels {
        Channels {
            secret,
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: "run".into(),
            compression: Compression::None,
            punching: None,
            requests: RequestCount::default(),
        }
    }

    fn batch() -> (SchemaRef, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..1000))],
        )
        .unwrap();
        (schema, b)
    }

    /// A data server answering one connection.
    fn server(secret: Secret) -> (String, std::thread::JoinHandle<std::io::Result<()>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (conn, _) = listener.accept()?;
            let (schema, b) = batch();
            let channels = channels(secret);
            let outbox = Outbox::default();
            outbox.keep("k".into(), vec![channels.encode(&schema, &[b]).unwrap()]);
            channels.serve(conn, &outbox)
        });
        (addr, handle)
    }

    #[test]
    fn a_member_reads_a_bucket_over_a_direct_channel() {
        let secret = Secret::generate().unwrap();
        let (addr, server) = server(secret.clone());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut rows = 0;
        channels(secret)
            .read(
                &Location::Direct {
                    addr,
                    key: "k".into(),
                    bucket: 0,
                    producer: None,
                },
                runtime.handle(),
                &mut |b| {
                    rows += b.num_rows();
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(rows, 1000);
        server.join().unwrap().unwrap();
    }

    /// A worker's outbox served on a port of its own, and a producing attempt's key open in
    /// it.
    fn live_producer(secret: &Secret) -> (Arc<Outbox>, Location, AttemptId) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let outbox = Arc::new(Outbox::default());
        outbox.serve(listener, Arc::new(channels(secret.clone())));
        let producer = AttemptId {
            job: 0,
            stage: 1,
            task: 2,
            attempt: 0,
        };
        let location = Location::Direct {
            addr,
            key: producer.output_key(0),
            bucket: 0,
            producer: Some(producer),
        };
        (outbox, location, producer)
    }

    /// Reads `location` on a thread of its own, counting rows.
    fn read_on_thread(
        secret: &Secret,
        location: Location,
    ) -> std::thread::JoinHandle<Result<usize>> {
        let c = channels(secret.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let mut rows = 0;
            c.read(&location, runtime.handle(), &mut |b| {
                rows += b.num_rows();
                Ok(())
            })
            .map(|()| rows)
        })
    }

    #[test]
    fn a_reader_follows_a_producer_that_starts_and_writes_after_it_asked() {
        let secret = Secret::generate().unwrap();
        let (outbox, location, producer) = live_producer(&secret);
        let reader = read_on_thread(&secret, location);
        std::thread::sleep(Duration::from_millis(30));
        let key = producer.output_key(0);
        outbox.open(key.clone(), false);
        let (schema, _) = batch();
        let big = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..50_000))],
        )
        .unwrap();
        let mut bucket = super::super::bucket::Bucket::default();
        for _ in 0..3 {
            bucket
                .write(&schema, &big, &IpcWriteOptions::default())
                .unwrap();
            outbox.append(&key, 0, bucket.chunk().expect("a batch makes a chunk"));
            std::thread::sleep(Duration::from_millis(10));
        }
        outbox.append(&key, 0, bucket.finish().unwrap());
        outbox.seal(&key);
        assert_eq!(reader.join().unwrap().unwrap(), 150_000);
    }

    #[test]
    fn a_producer_failing_under_its_reader_is_a_typed_error_naming_the_producer() {
        let secret = Secret::generate().unwrap();
        let (outbox, location, producer) = live_producer(&secret);
        let key = producer.output_key(0);
        outbox.open(key.clone(), false);
        let (schema, b) = batch();
        let mut bucket = super::super::bucket::Bucket::default();
        bucket
            .write(&schema, &b, &IpcWriteOptions::default())
            .unwrap();
        // The schema and a batch, but no end: the producer is still writing.
        let mut started = bucket.finish().unwrap().to_vec();
        started.truncate(started.len() - 8);
        outbox.append(&key, 0, started.into());
        let reader = read_on_thread(&secret, location);
        std::thread::sleep(Duration::from_millis(30));
        outbox.fail(&key, "disk full");
        let error = reader.join().unwrap().unwrap_err();
        assert_eq!(failed_producer(&error), Some(producer));
        assert_eq!(lost_peer(&error), None);
        assert!(error.to_string().contains("disk full"), "{error}");
    }

    #[test]
    fn a_stranger_is_refused_and_learns_nothing_but_the_nonce() {
        let (addr, server) = server(Secret::generate().unwrap());
        let mut stranger = TcpStream::connect(&addr).unwrap();
        let mut nonce = [0u8; 32];
        stranger.read_exact(&mut nonce).unwrap();
        stranger.write_all(&[0u8; 32]).unwrap();
        send(
            &mut stranger,
            &Fetch {
                key: "k".into(),
                bucket: 0,
                wait_ms: 0,
            },
        )
        .unwrap_or(());
        let refused = server.join().unwrap().unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        let mut rest = Vec::new();
        let _ = stranger.read_to_end(&mut rest);
        assert!(rest.is_empty(), "a stranger was sent {} bytes", rest.len());
    }

    #[test]
    fn a_lost_peer_is_a_typed_error_found_through_its_wrappers() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let c = channels(Secret::generate().unwrap());
        // Nothing listens on a port just released.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let location = Location::Direct {
            addr: addr.clone(),
            key: "j0/s0/t0/a0".into(),
            bucket: 0,
            producer: None,
        };
        let error = c.read(&location, rt.handle(), &mut |_| Ok(())).unwrap_err();
        assert_eq!(lost_peer(&error).as_deref(), Some(addr.as_str()));
        let wrapped = DataFusionError::Context(
            "while joining".into(),
            Box::new(DataFusionError::Shared(Arc::new(error))),
        );
        assert_eq!(lost_peer(&wrapped).as_deref(), Some(addr.as_str()));
        // A storage object that is not there is the run's problem, not a peer's.
        let missing = Location::Storage {
            path: "run/none".into(),
        };
        let error = c.read(&missing, rt.handle(), &mut |_| Ok(())).unwrap_err();
        assert_eq!(lost_peer(&error), None);
    }
}
