//! Moving record batches between functions. A task's output is divided into buckets; each
//! bucket is either kept in the producing worker and served over a direct TCP channel, or
//! written as one Arrow IPC object under the run's prefix of an object store. [`Channels`] is
//! what a process needs to read and write both; it travels to operators as a session
//! extension.

use super::auth::Secret;
use super::outbox::Outbox;
use super::protocol::{receive, send};
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
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

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

/// Where [`Channels::open`]'s bytes come from, to name a failure while reading them.
enum Origin {
    Object(String),
    Peer(String),
}

impl Origin {
    fn error(&self, e: impl std::fmt::Display) -> DataFusionError {
        match self {
            Origin::Object(path) => DataFusionError::Execution(format!("cannot read {path}: {e}")),
            Origin::Peer(addr) => PeerLost::error(addr, e),
        }
    }
}

/// A request for one bucket over a direct channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Fetch {
    /// The attempt key, or a collective message's tag.
    pub key: String,
    /// The bucket.
    pub bucket: usize,
    /// How long the server may wait for the key to be posted (collective messages).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The answer before the data: whether the bucket exists.
#[derive(Debug, Serialize, Deserialize)]
pub struct FetchReply {
    /// An error for people, or none when the IPC stream follows.
    pub error: Option<String>,
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
        let (source, origin) = self.open(location, handle, Duration::ZERO)?;
        let reader = StreamReader::try_new(BufReader::with_capacity(1 << 20, source), None)
            .map_err(|e| origin.error(e))?;
        for batch in reader {
            sink(batch.map_err(|e| origin.error(e))?)?;
        }
        Ok(())
    }

    /// The bytes at a location, waiting up to `wait` for a direct peer to post them.
    pub fn fetch(
        &self,
        location: &Location,
        handle: &tokio::runtime::Handle,
        wait: Duration,
    ) -> Result<Bytes> {
        let (mut source, origin) = self.open(location, handle, wait)?;
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
    ) -> Result<(Box<dyn Read>, Origin)> {
        match location {
            Location::Here { key } => Err(DataFusionError::Internal(format!(
                "{key} is read from the worker's own outbox, not through a channel"
            ))),
            Location::Storage { path } => {
                let object = ObjectPath::from(path.as_str());
                let bytes = handle
                    .block_on(async {
                        let got = self.store.get(&object).await?;
                        got.bytes().await
                    })
                    .map_err(|e| DataFusionError::Execution(format!("cannot read {path}: {e}")))?;
                Ok((
                    Box::new(std::io::Cursor::new(bytes)),
                    Origin::Object(path.clone()),
                ))
            }
            Location::Direct { addr, key, bucket } => {
                let lost = |e: std::io::Error| PeerLost::error(addr, e);
                let mut stream = TcpStream::connect(addr).map_err(lost)?;
                let _ = stream.set_nodelay(true);
                self.secret.answer(&mut stream).map_err(lost)?;
                let fetch = Fetch {
                    key: key.clone(),
                    bucket: *bucket,
                    wait_ms: wait.as_millis() as u64,
                };
                send(&mut stream, &fetch).map_err(lost)?;
                let reply: FetchReply = receive(&mut stream).map_err(lost)?;
                if let Some(error) = reply.error {
                    return Err(PeerLost::error(
                        addr,
                        format!("it no longer holds {key}: {error}"),
                    ));
                }
                Ok((Box::new(stream), Origin::Peer(addr.clone())))
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
        let Some(encoded) = outbox.get(&fetch.key, fetch.bucket, wait) else {
            return send(
                &mut stream,
                &FetchReply {
                    error: Some(format!("no output {} bucket {}", fetch.key, fetch.bucket)),
                },
            );
        };
        send(&mut stream, &FetchReply { error: None })?;
        // The reader's pace limits ours through TCP's flow control.
        stream.write_all(&encoded)?;
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
