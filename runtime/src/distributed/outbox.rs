//! What a process keeps for its peers to fetch over direct channels: task outputs (per
//! bucket, the chunks of one Arrow IPC stream) and collective messages, by key, served by its
//! data server.
//!
//! A task's output is opened when the task starts and grows chunk by chunk while it runs; a
//! reader that asks for a bucket is sent the chunks already there and then each new one as it
//! is appended, until the output is sealed (or its task fails). So a consuming task started
//! while its producers still run reads as they write: the plan's stages overlap. What was sent
//! stays kept until the coordinator releases it, so a reader that fails reads again instead of
//! the producer running again. A fetch may wait for a key not opened yet: the members of a
//! collective post and fetch in any order, and a consumer may ask before its producer's task
//! message has arrived.

use super::channels::Channels;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

/// One key's chunks.
#[derive(Debug)]
struct Kept {
    /// Per bucket, the chunks in order; their concatenation is one Arrow IPC stream.
    buckets: Vec<Vec<Bytes>>,
    state: State,
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
}

/// Messages and outputs kept for peers.
#[derive(Debug, Default)]
pub struct Outbox {
    kept: Mutex<HashMap<String, Kept>>,
    changed: Condvar,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        // Every change is one insert, push or assignment; a panic elsewhere cannot tear one.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, key: &str, change: impl FnOnce(&mut Kept)) {
        if let Some(kept) = self.lock().get_mut(key) {
            change(kept);
        }
        self.changed.notify_all();
    }

    /// Starts an output under `key` that chunks will be appended to.
    pub fn open(&self, key: String) {
        self.lock().insert(
            key,
            Kept {
                buckets: Vec::new(),
                state: State::Open,
            },
        );
        self.changed.notify_all();
    }

    /// Appends a chunk to bucket `bucket` of an open output.
    pub fn append(&self, key: &str, bucket: usize, chunk: Bytes) {
        self.update(key, |kept| {
            if kept.buckets.len() <= bucket {
                kept.buckets.resize_with(bucket + 1, Vec::new);
            }
            kept.buckets[bucket].push(chunk);
        });
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
        self.lock().insert(
            key,
            Kept {
                buckets: buckets.into_iter().map(|b| vec![b]).collect(),
                state: State::Sealed,
            },
        );
        self.changed.notify_all();
    }

    /// Bucket `bucket` of `key` whole, waiting up to `wait` for it to be sealed; `None` if it
    /// was not, or failed.
    pub fn get(&self, key: &str, bucket: usize, wait: Duration) -> Option<Bytes> {
        let mut whole = Vec::new();
        match self.follow(key, bucket, wait, |chunk| {
            whole.extend_from_slice(chunk);
            Ok(())
        }) {
            Ok(Ended::Sealed) => Some(whole.into()),
            _ => None,
        }
    }

    /// Hands every chunk of bucket `bucket` of `key` to `each`, in order, as they are
    /// appended, until the output is sealed or fails. Waits up to `wait` for the key to be
    /// opened; once it is, waits as long as its task runs. `each` runs without the lock held.
    pub fn follow(
        &self,
        key: &str,
        bucket: usize,
        wait: Duration,
        mut each: impl FnMut(&Bytes) -> std::io::Result<()>,
    ) -> std::io::Result<Ended> {
        let deadline = Instant::now() + wait;
        let mut sent = 0;
        let mut kept = self.lock();
        loop {
            let (fresh, state) = match kept.get(key) {
                Some(k) => {
                    let chunks = k.buckets.get(bucket).map_or(&[][..], Vec::as_slice);
                    (
                        chunks[sent.min(chunks.len())..].to_vec(),
                        Some(k.state.clone()),
                    )
                }
                // Released while being read: what was handed over is all there is.
                None if sent > 0 => return Ok(Ended::Missing),
                None => (Vec::new(), None),
            };
            if !fresh.is_empty() {
                drop(kept);
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
                Some(State::Open) => {
                    kept = self
                        .changed
                        .wait(kept)
                        .unwrap_or_else(PoisonError::into_inner);
                }
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

    /// Forgets `key`.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
        self.changed.notify_all();
    }

    /// Forgets every key that starts with `prefix`.
    pub fn release(&self, prefix: &str) {
        self.lock().retain(|key, _| !key.starts_with(prefix));
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

    fn chunk(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_reader_gets_chunks_appended_after_it_started_reading() {
        let outbox = Arc::new(Outbox::default());
        outbox.open("k".into());
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
        assert_eq!(outbox.get("k", 1, Duration::ZERO), Some(chunk("abc")));
        assert_eq!(outbox.get("k", 7, Duration::ZERO), Some(Bytes::new()));
    }

    #[test]
    fn a_failed_output_tells_its_readers_and_keeps_nothing() {
        let outbox = Outbox::default();
        outbox.open("k".into());
        outbox.append("k", 0, chunk("half"));
        outbox.fail("k", "out of memory");
        let ended = outbox.follow("k", 0, Duration::ZERO, |_| Ok(())).unwrap();
        assert_eq!(ended, Ended::Failed("out of memory".into()));
        assert_eq!(outbox.get("k", 0, Duration::ZERO), None);
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
            outbox.get("k", 0, Duration::from_secs(10)),
            Some(chunk("late"))
        );
        poster.join().unwrap();
    }

    #[test]
    fn releasing_an_output_ends_its_readers() {
        let outbox = Arc::new(Outbox::default());
        outbox.open("j0/s1/t0/a0/o0".into());
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
}
