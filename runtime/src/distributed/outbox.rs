//! What a process keeps for its peers to fetch over direct channels: task outputs (one
//! encoded Arrow IPC stream per bucket) and collective messages, by key, served by its data
//! server. A fetch may wait for a key not posted yet — the members of a collective post and
//! fetch in any order — while task outputs are kept before anyone learns where they are, so
//! their readers never wait.

use super::channels::Channels;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Messages and outputs kept for peers.
#[derive(Debug, Default)]
pub struct Outbox {
    kept: Mutex<HashMap<String, Vec<Bytes>>>,
    posted: Condvar,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Bytes>>> {
        // Entries are inserted and removed whole; a panic elsewhere cannot tear one.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `buckets` under `key` and wakes the fetches waiting for it.
    pub fn keep(&self, key: String, buckets: Vec<Bytes>) {
        self.lock().insert(key, buckets);
        self.posted.notify_all();
    }

    /// Bucket `bucket` of `key`, waiting up to `wait` for it to be kept.
    pub fn get(&self, key: &str, bucket: usize, wait: Duration) -> Option<Bytes> {
        let deadline = Instant::now() + wait;
        let mut kept = self.lock();
        loop {
            if let Some(buckets) = kept.get(key) {
                return buckets.get(bucket).cloned();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            kept = self
                .posted
                .wait_timeout(kept, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Forgets `key`.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Forgets every key that starts with `prefix`.
    pub fn release(&self, prefix: &str) {
        self.lock().retain(|key, _| !key.starts_with(prefix));
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
