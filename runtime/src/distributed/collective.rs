//! Collectives among the functions of one stage: the hooks data-parallel training builds on.
//! A [`Group`] is N members that know their rank and reach each other through a [`Mailbox`]:
//! a message is posted under a tag and fetched by tag and sender, either over direct channels
//! (the poster's data server keeps it: [`DirectMailbox`]) or through the run's object store
//! ([`StoreMailbox`]). On top of that, the three ways the planner may choose to combine
//! gradients or models:
//! - [`Group::allreduce_ring`]: reduce-scatter then all-gather around a ring, 2(N−1) steps
//!   each moving 1/N of the vector — bandwidth-optimal, for direct channels;
//! - [`Group::allreduce_doubling`]: recursive doubling, log₂N steps each moving the whole
//!   vector — latency-optimal for small vectors (N a power of two);
//! - [`Group::scatter_reduce`]: every member posts its N chunks once, member r reduces chunk
//!   r, everyone reads the reduced chunks — two rounds, suited to a store;
//!
//! and [`Group::average`] (model averaging) on any of them.

use super::channels::{Channels, Location};
use super::outbox::Outbox;
use bytes::Bytes;
use datafusion::error::{DataFusionError, Result};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait for a peer's message before the collective fails.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// How the members of a group exchange messages.
pub trait Mailbox: Send + Sync {
    /// Makes `bytes` available to the group under `tag`, from this member.
    fn post(&self, tag: &str, bytes: Bytes) -> Result<()>;
    /// What member `from` posted under `tag`, waiting for it if need be.
    fn fetch(&self, from: usize, tag: &str) -> Result<Bytes>;
}

/// Messages kept in this process's outbox and fetched from the peers' data servers.
pub struct DirectMailbox {
    /// The run's channels (secret, compression).
    pub channels: Arc<Channels>,
    /// This process's outbox, served by its data server.
    pub outbox: Arc<Outbox>,
    /// Every member's data-server address, by rank.
    pub peers: Vec<String>,
    /// Runtime the fetches' I/O runs on.
    pub handle: tokio::runtime::Handle,
}

impl Mailbox for DirectMailbox {
    fn post(&self, tag: &str, bytes: Bytes) -> Result<()> {
        self.outbox.keep(tag.to_string(), vec![bytes]);
        Ok(())
    }

    fn fetch(&self, from: usize, tag: &str) -> Result<Bytes> {
        let addr = self.peers.get(from).ok_or_else(|| {
            DataFusionError::Internal(format!(
                "no member {from} in a group of {}",
                self.peers.len()
            ))
        })?;
        let location = Location::Direct {
            addr: addr.clone(),
            key: tag.to_string(),
            bucket: 0,
            producer: None,
        };
        self.channels.fetch(&location, &self.handle, PATIENCE)
    }
}

/// Messages as objects under the run's prefix, polled for until they appear.
pub struct StoreMailbox {
    /// The run's channels (store and prefix).
    pub channels: Arc<Channels>,
    /// This member's rank.
    pub rank: usize,
    /// Runtime the store calls run on.
    pub handle: tokio::runtime::Handle,
}

impl StoreMailbox {
    fn path(&self, from: usize, tag: &str) -> ObjectPath {
        ObjectPath::from(format!(
            "{}/collective/{tag}/from{from}",
            self.channels.prefix
        ))
    }
}

impl Mailbox for StoreMailbox {
    fn post(&self, tag: &str, bytes: Bytes) -> Result<()> {
        let path = self.path(self.rank, tag);
        self.channels.requests.put();
        self.handle
            .block_on(self.channels.store.put(&path, bytes.into()))
            .map_err(|e| DataFusionError::Execution(format!("cannot write {path}: {e}")))?;
        Ok(())
    }

    fn fetch(&self, from: usize, tag: &str) -> Result<Bytes> {
        let path = self.path(from, tag);
        let deadline = Instant::now() + PATIENCE;
        let mut pause = Duration::from_millis(1);
        loop {
            self.channels.requests.get();
            let got = self.handle.block_on(async {
                match self.channels.store.get(&path).await {
                    Ok(object) => object.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            });
            match got {
                Ok(Some(bytes)) => return Ok(bytes),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Ok(None) => {
                    return Err(DataFusionError::Execution(format!(
                        "member {from} posted nothing under {tag} within {} s",
                        PATIENCE.as_secs()
                    )));
                }
                Err(e) => {
                    return Err(DataFusionError::Execution(format!(
                        "cannot read {path}: {e}"
                    )));
                }
            }
        }
    }
}

/// One member of a group of `size`.
pub struct Group {
    /// This member's rank, in `0..size`.
    pub rank: usize,
    /// Members.
    pub size: usize,
    mailbox: Box<dyn Mailbox>,
}

fn encode(values: &[f32]) -> Bytes {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

fn add_into(target: &mut [f32], bytes: &[u8]) -> Result<()> {
    if bytes.len() != target.len() * 4 {
        return Err(DataFusionError::Execution(format!(
            "a peer sent {} bytes where {} values were expected",
            bytes.len(),
            target.len()
        )));
    }
    for (t, chunk) in target.iter_mut().zip(bytes.chunks_exact(4)) {
        *t += f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Ok(())
}

fn copy_into(target: &mut [f32], bytes: &[u8]) -> Result<()> {
    target.fill(0.0);
    add_into(target, bytes)
}

/// The `i`-th of `n` nearly equal ranges of `0..len`.
fn chunk(len: usize, n: usize, i: usize) -> std::ops::Range<usize> {
    (len * i / n)..(len * (i + 1) / n)
}

impl Group {
    /// Member `rank` of `size`, exchanging through `mailbox`.
    pub fn new(rank: usize, size: usize, mailbox: Box<dyn Mailbox>) -> Result<Group> {
        if size == 0 || rank >= size {
            return Err(DataFusionError::Internal(format!(
                "member {rank} of a group of {size}"
            )));
        }
        Ok(Group {
            rank,
            size,
            mailbox,
        })
    }

    /// Sums `data` element-wise across the group around a ring; every member ends with the
    /// sum. `tag` must be unique to this call within the run.
    pub fn allreduce_ring(&self, tag: &str, data: &mut [f32]) -> Result<()> {
        let (n, r) = (self.size, self.rank);
        let left = (r + n - 1) % n;
        // Reduce-scatter: after step s, member r holds the sum of s+2 members' chunk r-s-1.
        for step in 0..n - 1 {
            let send = (r + n - step) % n;
            let recv = (r + n - step - 1) % n;
            let tag = format!("{tag}/rs{step}");
            self.mailbox
                .post(&tag, encode(&data[chunk(data.len(), n, send)]))?;
            let got = self.mailbox.fetch(left, &tag)?;
            let range = chunk(data.len(), n, recv);
            add_into(&mut data[range], &got)?;
        }
        // All-gather: member r owns the full sum of chunk r+1 and passes sums around.
        for step in 0..n - 1 {
            let send = (r + 1 + n - step) % n;
            let recv = (r + n - step) % n;
            let tag = format!("{tag}/ag{step}");
            self.mailbox
                .post(&tag, encode(&data[chunk(data.len(), n, send)]))?;
            let got = self.mailbox.fetch(left, &tag)?;
            let range = chunk(data.len(), n, recv);
            copy_into(&mut data[range], &got)?;
        }
        Ok(())
    }

    /// Sums `data` across the group by recursive doubling: in step k each member exchanges
    /// its whole vector with the member whose rank differs in bit k. Groups whose size is not
    /// a power of two use the ring.
    pub fn allreduce_doubling(&self, tag: &str, data: &mut [f32]) -> Result<()> {
        if !self.size.is_power_of_two() {
            return self.allreduce_ring(tag, data);
        }
        let mut distance = 1;
        while distance < self.size {
            let partner = self.rank ^ distance;
            let tag = format!("{tag}/d{distance}");
            self.mailbox.post(&tag, encode(data))?;
            let got = self.mailbox.fetch(partner, &tag)?;
            add_into(data, &got)?;
            distance *= 2;
        }
        Ok(())
    }

    /// Sums `data` across the group in two rounds through the mailbox: every member posts
    /// chunk i for member i, member r sums chunk r and posts it, everyone reads every sum.
    pub fn scatter_reduce(&self, tag: &str, data: &mut [f32]) -> Result<()> {
        let (n, r) = (self.size, self.rank);
        for i in 0..n {
            let part = encode(&data[chunk(data.len(), n, i)]);
            self.mailbox.post(&format!("{tag}/to{i}"), part)?;
        }
        let mine = chunk(data.len(), n, r);
        let mut sum = vec![0.0f32; mine.len()];
        for from in 0..n {
            add_into(
                &mut sum,
                &self.mailbox.fetch(from, &format!("{tag}/to{r}"))?,
            )?;
        }
        self.mailbox.post(&format!("{tag}/sum"), encode(&sum))?;
        for owner in 0..n {
            let range = chunk(data.len(), n, owner);
            copy_into(
                &mut data[range],
                &self.mailbox.fetch(owner, &format!("{tag}/sum"))?,
            )?;
        }
        Ok(())
    }

    /// Replaces `data` with its mean across the group (model averaging), summing with
    /// `allreduce` (one of the three above).
    pub fn average(
        &self,
        tag: &str,
        data: &mut [f32],
        allreduce: fn(&Group, &str, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        allreduce(self, tag, data)?;
        let n = self.size as f32;
        data.iter_mut().for_each(|v| *v /= n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::auth::Secret;
    use crate::distributed::channels::Compression;
    use std::net::TcpListener;

    type Allreduce = fn(&Group, &str, &mut [f32]) -> Result<()>;

    /// Member r's vector: r+1 in every place, plus the place's index.
    fn vector(rank: usize, len: usize) -> Vec<f32> {
        (0..len).map(|i| (rank + 1) as f32 + i as f32).collect()
    }

    fn expected(size: usize, len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (1..=size).map(|r| r as f32 + i as f32).sum())
            .collect()
    }

    fn channels(store: &std::path::Path, secret: &Secret) -> Arc<Channels> {
        Arc::new(Channels {
            secret: secret.clone(),
            store: crate::distributed::store::open_store(&store.display().to_string()).unwrap(),
            prefix: "run".into(),
            compression: Compression::None,
            punching: None,
            requests: Default::default(),
        })
    }

    /// Runs `allreduce` on `size` members, each on a thread with its own data server (or the
    /// shared store), and checks every member ends with the sum.
    fn check(size: usize, len: usize, direct: bool, allreduce: Allreduce) {
        let dir = tempfile::tempdir().unwrap();
        let secret = Secret::generate().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut outboxes = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..size {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            peers.push(listener.local_addr().unwrap().to_string());
            let outbox = Arc::new(Outbox::default());
            outbox.serve(listener, channels(dir.path(), &secret));
            outboxes.push(outbox);
        }
        std::thread::scope(|scope| {
            for (rank, outbox) in outboxes.iter().enumerate() {
                let (peers, secret, handle) =
                    (peers.clone(), secret.clone(), runtime.handle().clone());
                let store = dir.path();
                scope.spawn(move || {
                    let channels = channels(store, &secret);
                    let mailbox: Box<dyn Mailbox> = if direct {
                        Box::new(DirectMailbox {
                            channels,
                            outbox: outbox.clone(),
                            peers,
                            handle,
                        })
                    } else {
                        Box::new(StoreMailbox {
                            channels,
                            rank,
                            handle,
                        })
                    };
                    let group = Group::new(rank, size, mailbox).unwrap();
                    let mut data = vector(rank, len);
                    allreduce(&group, "grad", &mut data).unwrap();
                    assert_eq!(data, expected(size, len), "member {rank} of {size}");
                    let mut model = vector(rank, len);
                    group.average("model", &mut model, allreduce).unwrap();
                    let mean: Vec<f32> = expected(size, len)
                        .iter()
                        .map(|v| v / size as f32)
                        .collect();
                    assert_eq!(model, mean, "average at member {rank} of {size}");
                });
            }
        });
    }

    #[test]
    fn ring_allreduce_over_direct_channels_sums_on_every_member() {
        for size in [1, 2, 3, 4] {
            check(size, 10, true, Group::allreduce_ring);
        }
        check(4, 3, true, Group::allreduce_ring);
    }

    #[test]
    fn recursive_doubling_over_direct_channels_sums_on_every_member() {
        for size in [1, 2, 4, 3] {
            check(size, 9, true, Group::allreduce_doubling);
        }
    }

    #[test]
    fn scatter_reduce_through_the_store_sums_on_every_member() {
        for size in [1, 2, 4] {
            check(size, 11, false, Group::scatter_reduce);
        }
    }

    #[test]
    fn a_member_outside_the_group_is_refused() {
        let mailbox = Box::new(StoreMailbox {
            channels: channels(std::path::Path::new("/tmp"), &Secret::generate().unwrap()),
            rank: 0,
            handle: tokio::runtime::Runtime::new().unwrap().handle().clone(),
        });
        assert!(Group::new(2, 2, mailbox).is_err());
    }
}
