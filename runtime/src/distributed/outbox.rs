//! What a process keeps for its peers to fetch over direct channels: task outputs (per
//! bucket, the chunks of one Arrow IPC stream) and collective messages, by key, served by its
//! data server.
//!
//! A task's output is opened when the task starts and grows chunk by chunk while it runs; a
//! reader that asks for a bucket is sent the chunks already there and then each new one as it
//! is appended, until the output is sealed (or its task fails). So a consuming task started
//! while its producers still run reads as they write: the plan's stages overlap. A fetch may
//! wait for a key not opened yet: the members of a collective post and fetch in any order,
//! and a consumer may ask before its producer's task message has arrived.
//!
//! An output is either *kept* — what was sent stays until the coordinator releases it, so a
//! reader that fails reads again, and any number of readers may read a bucket — or
//! *consumed*: each bucket has one reader, a chunk is dropped once it is handed over, and the
//! producer waits while its reader has more than [`WINDOW_BYTES`] of the bucket still to take
//! (backpressure: the producer's memory is bounded by its reader's pace). A consumed bucket
//! is read once; its reader failing means its producer runs again (the coordinator's rule).

use super::channels::Channels;
use bytes::Bytes;
use datafusion::arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How much of a consumed bucket may wait for its reader before the producer waits too: a
/// few chunks, so the reader never starves while the producer encodes the next one.
pub const WINDOW_BYTES: usize = 4 * super::bucket::CHUNK_BYTES;

/// How a kept output ended, or that it has not.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Its task is still appending.
    Open,
    /// Complete.
    Sealed,
    /// Its task failed; what it had appended is dropped.
    Failed(String),
}

/// One bucket's chunks.
#[derive(Debug, Default)]
struct Chunks {
    /// In order; in a consumed bucket the ones handed over are left empty.
    list: Vec<Bytes>,
    /// Chunks handed to the reader of a consumed bucket.
    handed: usize,
    /// Bytes appended and not handed over yet (consumed buckets).
    waiting: usize,
    /// Whether a reader is following the bucket.
    reading: bool,
}

/// One key's chunks.
#[derive(Debug)]
struct Kept {
    buckets: Vec<Chunks>,
    state: State,
    consumed: bool,
}

impl Kept {
    fn new(consumed: bool) -> Kept {
        Kept {
            buckets: Vec::new(),
            state: State::Open,
            consumed,
        }
    }

    fn bucket(&mut self, bucket: usize) -> &mut Chunks {
        if self.buckets.len() <= bucket {
            self.buckets.resize_with(bucket + 1, Chunks::default);
        }
        &mut self.buckets[bucket]
    }
}

/// How following a bucket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Every chunk was handed over.
    Sealed,
    /// The producing task failed; why.
    Failed(String),
    /// The key was not there in time, or was released while being read.
    Missing,
    /// A consumed bucket another reader had started on.
    Taken,
}

/// Messages and outputs kept for peers.
#[derive(Debug, Default)]
pub struct Outbox {
    kept: Mutex<HashMap<String, Kept>>,
    changed: Condvar,
    /// Rows a task keeps for its own other outputs, as batches: they never leave the process.
    batches: Mutex<HashMap<String, Vec<RecordBatch>>>,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        // Every change is one insert, push or assignment; a panic elsewhere cannot tear one.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        kept: MutexGuard<'a, HashMap<String, Kept>>,
    ) -> MutexGuard<'a, HashMap<String, Kept>> {
        self.changed
            .wait(kept)
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, key: &str, change: impl FnOnce(&mut Kept)) {
        if let Some(kept) = self.lock().get_mut(key) {
            change(kept);
        }
        self.changed.notify_all();
    }

    /// Starts an output under `key` that chunks will be appended to; `consumed` when each
    /// bucket has one reader and need not be kept once read.
    pub fn open(&self, key: String, consumed: bool) {
        self.lock().insert(key, Kept::new(consumed));
        self.changed.notify_all();
    }

    /// Appends a chunk to bucket `bucket` of an open output. For a consumed output, first
    /// waits while the bucket's reader has more than [`WINDOW_BYTES`] still to take.
    pub fn append(&self, key: &str, bucket: usize, chunk: Bytes) {
        let mut kept = self.lock();
        loop {
            let Some(k) = kept.get_mut(key) else {
                return;
            };
            let consumed = k.consumed;
            let b = k.bucket(bucket);
            if consumed && b.reading && b.waiting >= WINDOW_BYTES {
                kept = self.wait(kept);
                continue;
            }
            b.waiting += chunk.len();
            b.list.push(chunk);
            break;
        }
        drop(kept);
        self.changed.notify_all();
    }

    /// Marks an open output complete.
    pub fn seal(&self, key: &str) {
        self.update(key, |kept| {
            if kept.state == State::Open {
                kept.state = State::Sealed;
            }
        });
    }

    /// Marks an open output failed, dropping what it held; its readers are told why.
    pub fn fail(&self, key: &str, why: &str) {
        self.update(key, |kept| {
            if kept.state == State::Open {
                kept.buckets.clear();
                kept.state = State::Failed(why.to_string());
            }
        });
    }

    /// Keeps `buckets` under `key`, complete, one chunk each.
    pub fn keep(&self, key: String, buckets: Vec<Bytes>) {
        let mut kept = Kept::new(false);
        kept.state = State::Sealed;
        for (b, bytes) in buckets.into_iter().enumerate() {
            kept.bucket(b).list.push(bytes);
        }
        self.lock().insert(key, kept);
        self.changed.notify_all();
    }

    /// Hands every chunk of bucket `bucket` of `key` to `each`, in order, as they are
    /// appended, until the output is sealed or fails. Waits up to `wait` for the key to be
    /// opened; once it is, waits as long as its task runs. `each` runs without the lock held.
    pub fn follow(
        &self,
        key: &str,
        bucket: usize,
        wait: Duration,
        each: impl FnMut(&Bytes) -> std::io::Result<()>,
    ) -> std::io::Result<Ended> {
        let ended = self.follow_marked(key, bucket, wait, each);
        // The reader is gone, however it ended: its producer no longer waits for it.
        self.update(key, |kept| {
            if let Some(b) = kept.buckets.get_mut(bucket) {
                b.reading = false;
            }
        });
        ended
    }

    fn follow_marked(
        &self,
        key: &str,
        bucket: usize,
        wait: Duration,
        mut each: impl FnMut(&Bytes) -> std::io::Result<()>,
    ) -> std::io::Result<Ended> {
        let deadline = Instant::now() + wait;
        let mut sent = 0;
        let mut first = true;
        let mut kept = self.lock();
        loop {
            let (fresh, state) = match kept.get_mut(key) {
                Some(k) => {
                    let consumed = k.consumed;
                    let state = k.state.clone();
                    let b = k.bucket(bucket);
                    if first && consumed {
                        if b.reading || b.handed > 0 {
                            return Ok(Ended::Taken);
                        }
                        b.reading = true;
                    }
                    first = false;
                    let fresh: Vec<Bytes> = if consumed {
                        let taken: Vec<Bytes> =
                            b.list[b.handed..].iter_mut().map(std::mem::take).collect();
                        b.handed = b.list.len();
                        b.waiting = 0;
                        taken
                    } else {
                        b.list[sent.min(b.list.len())..].to_vec()
                    };
                    (fresh, Some(state))
                }
                // Released while being read: what was handed over is all there is.
                None if sent > 0 => return Ok(Ended::Missing),
                None => (Vec::new(), None),
            };
            if !fresh.is_empty() {
                drop(kept);
                // The producer may be waiting for room.
                self.changed.notify_all();
                for chunk in &fresh {
                    each(chunk)?;
                }
                sent += fresh.len();
                kept = self.lock();
                continue;
            }
            match state {
                Some(State::Sealed) => return Ok(Ended::Sealed),
                Some(State::Failed(why)) => return Ok(Ended::Failed(why)),
                Some(State::Open) => kept = self.wait(kept),
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Ended::Missing);
                    }
                    kept = self
                        .changed
                        .wait_timeout(kept, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }

    fn lock_batches(&self) -> MutexGuard<'_, HashMap<String, Vec<RecordBatch>>> {
        // Entries are inserted and removed whole.
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a task's rows for its other outputs under `key`.
    pub fn keep_batches(&self, key: String, batches: Vec<RecordBatch>) {
        self.lock_batches().insert(key, batches);
    }

    /// The rows kept under `key` by [`Outbox::keep_batches`].
    pub fn batches(&self, key: &str) -> Option<Vec<RecordBatch>> {
        self.lock_batches().get(key).cloned()
    }

    /// Forgets `key`.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
        self.lock_batches().remove(key);
        self.changed.notify_all();
    }

    /// Forgets every key that starts with `prefix`.
    pub fn release(&self, prefix: &str) {
        self.lock().retain(|key, _| !key.starts_with(prefix));
        self.lock_batches()
            .retain(|key, _| !key.starts_with(prefix));
        self.changed.notify_all();
    }

    /// Serves the outbox on `listener` from a thread of its own, one thread per connection,
    /// for the life of the process.
    pub fn serve(self: &Arc<Self>, listener: TcpListener, channels: Arc<Channels>) {
        let outbox = self.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let channels = channels.clone();
                let outbox = outbox.clone();
                std::thread::spawn(move || {
                    // A refused or broken connection is the peer's problem, not ours.
                    let _ = channels.serve(conn, &outbox);
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bucket `bucket` of `key` whole, waiting up to `wait` for it to be sealed; `None` if it
    /// was not, or failed.
    fn get(outbox: &Outbox, key: &str, bucket: usize, wait: Duration) -> Option<Bytes> {
        let mut whole = Vec::new();
        match outbox.follow(key, bucket, wait, |chunk| {
            whole.extend_from_slice(chunk);
            Ok(())
        }) {
            Ok(Ended::Sealed) => Some(whole.into()),
            _ => None,
        }
    }

    fn chunk(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_reader_gets_chunks_appended_after_it_started_reading() {
        let outbox = Arc::new(Outbox::default());
        outbox.open("k".into(), false);
        outbox.append("k", 1, chunk("a"));
        let reader = {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                let mut got = String::new();
                let ended = outbox
                    .follow("k", 1, Duration::ZERO, |c| {
                        got.push_str(std::str::from_utf8(c).unwrap());
                        Ok(())
                    })
                    .unwrap();
                (got, ended)
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        outbox.append("k", 1, chunk("b"));
        outbox.append("k", 0, chunk("other bucket"));
        outbox.append("k", 1, chunk("c"));
        outbox.seal("k");
        assert_eq!(reader.join().unwrap(), ("abc".to_string(), Ended::Sealed));
        // Kept after it was read: a second reader gets all of it at once.
        assert_eq!(get(&outbox, "k", 1, Duration::ZERO), Some(chunk("abc")));
        assert_eq!(get(&outbox, "k", 7, Duration::ZERO), Some(Bytes::new()));
    }

    #[test]
    fn a_failed_output_tells_its_readers_and_keeps_nothing() {
        let outbox = Outbox::default();
        outbox.open("k".into(), false);
        outbox.append("k", 0, chunk("half"));
        outbox.fail("k", "out of memory");
        let ended = outbox.follow("k", 0, Duration::ZERO, |_| Ok(())).unwrap();
        assert_eq!(ended, Ended::Failed("out of memory".into()));
        assert_eq!(get(&outbox, "k", 0, Duration::ZERO), None);
    }

    #[test]
    fn a_key_not_opened_in_time_is_missing_and_one_opened_later_is_waited_for() {
        let outbox = Arc::new(Outbox::default());
        let ended = outbox
            .follow("k", 0, Duration::from_millis(10), |_| Ok(()))
            .unwrap();
        assert_eq!(ended, Ended::Missing);
        let poster = {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                outbox.keep("k".into(), vec![chunk("late")]);
            })
        };
        assert_eq!(
            get(&outbox, "k", 0, Duration::from_secs(10)),
            Some(chunk("late"))
        );
        poster.join().unwrap();
    }

    #[test]
    fn releasing_an_output_ends_its_readers() {
        let outbox = Arc::new(Outbox::default());
        outbox.open("j0/s1/t0/a0/o0".into(), false);
        outbox.append("j0/s1/t0/a0/o0", 0, chunk("x"));
        let reader = {
            let outbox = outbox.clone();
            std::thread::spawn(move || {
                outbox
                    .follow("j0/s1/t0/a0/o0", 0, Duration::ZERO, |_| Ok(()))
                    .unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        outbox.release("j0/");
        assert_eq!(reader.join().unwrap(), Ended::Missing);
    }

    #[test]
    fn a_consumed_bucket_holds_its_producer_to_its_readers_pace_and_is_read_once() {
        let outbox = Arc::new(Outbox::default());
        outbox.open("k".into(), true);
        let chunk = Bytes::from(vec![7u8; WINDOW_BYTES / 2]);
        // No reader yet: nothing to wait for.
        for _ in 0..4 {
            outbox.append("k", 0, chunk.clone());
        }
        let producer = {
            let outbox = outbox.clone();
            let chunk = chunk.clone();
            std::thread::spawn(move || {
                for _ in 0..16 {
                    outbox.append("k", 0, chunk.clone());
                }
                outbox.seal("k");
            })
        };
        // The producer wrote past the window only as the reader took: the most waiting for
        // the reader at any time is the window plus one chunk.
        let mut got = 0;
        let mut most_waiting = 0;
        let ended = outbox
            .follow("k", 0, Duration::ZERO, |c| {
                got += c.len();
                std::thread::sleep(Duration::from_millis(2));
                let kept = outbox.lock();
                most_waiting = most_waiting.max(kept["k"].buckets[0].waiting);
                Ok(())
            })
            .unwrap();
        producer.join().unwrap();
        assert_eq!(ended, Ended::Sealed);
        assert_eq!(got, 20 * chunk.len());
        assert!(
            most_waiting <= WINDOW_BYTES + chunk.len(),
            "{most_waiting} bytes waited for the reader"
        );
        // Handed over means gone: a second reader is refused, and nothing is held.
        let again = outbox.follow("k", 0, Duration::ZERO, |_| Ok(())).unwrap();
        assert_eq!(again, Ended::Taken);
        let held: usize = outbox.lock()["k"].buckets[0]
            .list
            .iter()
            .map(Bytes::len)
            .sum();
        assert_eq!(held, 0);
    }
}
