//! Direct channels through a rendezvous host, for functions that accept no connections
//! ([`super::rendezvous`]). A reader dials the producer it reads from by name; the two punch
//! a connection and it is used as a direct channel always is. When they cannot (a NAT that
//! changes ports per destination, a firewall), that pair falls back to the storage hop: the
//! producer writes the bucket asked for to the run's store and says where through the host,
//! and the reader reads it there. The reader remembers the pair and does not punch it again.
//! What happened — punch times, fallbacks and why — is reported ([`Links`]).

use super::auth::Secret;
use super::channels::{Channels, Fetch, StreamEnd};
use super::outbox::Outbox;
use super::rendezvous::client::{Pairing, Rendezvous};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Longest a reader whose punch failed waits for the producer to store what it asked for (the
/// producer may still be computing it).
const STORED_WITHIN: Duration = Duration::from_secs(900);

/// How a run's processes reach each other when they cannot listen (`--rendezvous`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PunchOptions {
    /// The rendezvous host, `host:port`.
    pub rendezvous: String,
    /// Longest a pair tries to punch before it falls back to storage.
    pub within: Duration,
    /// Whether a pair that cannot punch fails the task instead of falling back
    /// (`--strict-channels`).
    pub strict: bool,
}

/// The name the coordinator registers under, for workers that cannot reach its address.
pub const COORDINATOR: &str = "coordinator";

/// Longest a worker tries the coordinator's address before punching to it instead.
const ADDRESS_WITHIN: Duration = Duration::from_secs(2);

/// Default for [`PunchOptions::within`].
pub const PUNCH_WITHIN: Duration = Duration::from_secs(3);

/// What a process's direct channels did, for the run's report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Links {
    /// Seconds each punched connection took, from dialling the host to connected.
    pub punched: Vec<f64>,
    /// Pairs that fell back to storage.
    pub fell_back: Vec<FellBack>,
}

impl Links {
    /// Adds `other`'s to these.
    pub fn extend(&mut self, other: Links) {
        self.punched.extend(other.punched);
        self.fell_back.extend(other.fell_back);
    }

    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.punched.is_empty() && self.fell_back.is_empty()
    }
}

/// A pair of processes that could not punch a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FellBack {
    /// The reader.
    pub from: String,
    /// The producer.
    pub to: String,
    /// Why, for people.
    pub reason: String,
}

/// What a reader asks the producer through the host.
#[derive(Debug, Serialize, Deserialize)]
struct Ask {
    fetch: Fetch,
    /// Whether to try punching (a pair known not to punch goes straight to storage).
    punch: bool,
}

/// What a producer that could not be reached says it did with the bucket.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The object holding it, if it was there to store.
    path: Option<String>,
    end: StreamEnd,
}

/// A message signed with the run's secret, so the host can neither forge nor alter it.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    body: String,
    signature: String,
}

fn seal(secret: &Secret, message: &impl Serialize) -> io::Result<String> {
    let body = serde_json::to_string(message).map_err(io::Error::other)?;
    let signature = secret.sign(body.as_bytes());
    serde_json::to_string(&Sealed { body, signature }).map_err(io::Error::other)
}

fn unseal<T: for<'de> Deserialize<'de>>(secret: &Secret, note: &str) -> io::Result<T> {
    let sealed: Sealed = serde_json::from_str(note).map_err(io::Error::other)?;
    if !secret.verify(sealed.body.as_bytes(), &sealed.signature) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "a note not signed by the run",
        ));
    }
    serde_json::from_str(&sealed.body).map_err(io::Error::other)
}

/// A pair that could not punch when falling back is forbidden (`--strict-channels`): the
/// task fails like any other rather than treating its peer as lost (the peer is alive, and
/// would be replaced for nothing).
#[derive(Debug)]
pub struct Unpunched(pub String);

impl std::fmt::Display for Unpunched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unpunched {}

impl Unpunched {
    /// Whether `error` is one.
    pub fn is(error: &io::Error) -> bool {
        error.get_ref().is_some_and(|e| e.is::<Unpunched>())
    }
}

/// Where a reader's dial led.
#[derive(Debug)]
pub enum Reached {
    /// A punched connection to the producer, whose membership is proven; the reader still
    /// answers the producer's challenge, as on any direct channel.
    Stream(TcpStream),
    /// The pair could not punch: the producer stored the bucket (or says why it could not).
    Stored {
        path: Option<String>,
        end: StreamEnd,
    },
}

/// One process's side of punched channels.
#[derive(Debug)]
pub struct Punching {
    rendezvous: Rendezvous,
    secret: Secret,
    options: PunchOptions,
    /// This process's name at the host.
    me: String,
    /// Its own data server on loopback, for what it reads from itself.
    own: Option<String>,
    /// Peers this process could not punch to, and why.
    unreachable: Mutex<HashMap<String, String>>,
    links: Mutex<Links>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Punching {
    /// Punched channels for the process named `me` of the run whose secret is `secret`; `own`
    /// is its data server on loopback, if it keeps outputs.
    pub fn new(
        options: &PunchOptions,
        secret: &Secret,
        me: String,
        own: Option<String>,
    ) -> io::Result<Punching> {
        Ok(Punching {
            rendezvous: Rendezvous::new(&options.rendezvous, secret)?,
            secret: secret.clone(),
            options: options.clone(),
            me,
            own,
            unreachable: Mutex::default(),
            links: Mutex::default(),
        })
    }

    /// A fresh member name.
    pub fn fresh_name() -> io::Result<String> {
        Ok(format!("f{}", &Secret::generate()?.to_hex()[..12]))
    }

    /// This process's name at the host (its peers' address for it).
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The host.
    pub fn rendezvous(&self) -> &Rendezvous {
        &self.rendezvous
    }

    /// What happened since the last call.
    pub fn take_links(&self) -> Links {
        std::mem::take(&mut *lock(&self.links))
    }

    /// Reaches producer `to` for `fetch`.
    pub fn dial(&self, to: &str, fetch: &Fetch) -> io::Result<Reached> {
        if let Some(own) = self.own.as_ref().filter(|_| to == self.me) {
            return Ok(Reached::Stream(TcpStream::connect(own)?));
        }
        let started = Instant::now();
        let punch = !lock(&self.unreachable).contains_key(to);
        let ask = Ask {
            fetch: fetch.clone(),
            punch,
        };
        let mut pairing = self.rendezvous.dial(to, seal(&self.secret, &ask)?)?;
        if punch {
            match pairing.punch(self.options.within) {
                Ok(mut stream) => {
                    // The producer proves itself first: a punched endpoint could be anyone's.
                    self.secret.challenge(&mut stream)?;
                    lock(&self.links)
                        .punched
                        .push(started.elapsed().as_secs_f64());
                    return Ok(Reached::Stream(stream));
                }
                Err(e) => self.fell_back(to, &pairing, &e)?,
            }
        }
        let stored: Stored = unseal(&self.secret, &pairing.hear(STORED_WITHIN)?)?;
        Ok(Reached::Stored {
            path: stored.path,
            end: stored.end,
        })
    }

    fn fell_back(&self, to: &str, pairing: &Pairing, e: &io::Error) -> io::Result<()> {
        let reason = format!(
            "no punched connection between {} and {} ({e})",
            pairing.yours, pairing.peer
        );
        if self.options.strict {
            return Err(io::Error::other(Unpunched(format!(
                "{reason}; --strict-channels forbids falling back to storage"
            ))));
        }
        lock(&self.unreachable).insert(to.to_string(), reason.clone());
        lock(&self.links).fell_back.push(FellBack {
            from: self.me.clone(),
            to: to.to_string(),
            reason,
        });
        Ok(())
    }

    /// The control connection to the coordinator: at its address if that can be reached,
    /// else punched through the rendezvous host (a coordinator behind a NAT, or listening
    /// only on loopback, registers there: [`Punching::answer_workers`]).
    pub fn reach_coordinator(&self, addr: &str) -> io::Result<TcpStream> {
        let direct = std::net::ToSocketAddrs::to_socket_addrs(addr)?
            .next()
            .map(|a| TcpStream::connect_timeout(&a, ADDRESS_WITHIN));
        match direct {
            Some(Ok(stream)) => Ok(stream),
            _ => self
                .rendezvous
                .dial(COORDINATOR, String::new())?
                .punch(self.options.within),
        }
    }

    /// The coordinator's side of [`Punching::reach_coordinator`]: registers as
    /// [`COORDINATOR`] and hands every punched connection to `join`, each on a thread of
    /// its own, for as long as the registration lasts.
    pub fn answer_workers(
        self: &Arc<Self>,
        join: impl Fn(TcpStream) + Send + Sync + 'static,
    ) -> io::Result<()> {
        let mut registration = self.rendezvous.register(COORDINATOR)?;
        let (me, join) = (self.clone(), Arc::new(join));
        std::thread::spawn(move || {
            while let Ok((pairing, _)) = registration.asked() {
                let (me, join) = (me.clone(), join.clone());
                std::thread::spawn(move || {
                    let punched = me
                        .rendezvous
                        .accept(pairing)
                        .and_then(|p| p.punch(me.options.within));
                    match punched {
                        Ok(stream) => join(stream),
                        Err(e) => tracing::debug!("a worker's control pairing failed: {e}"),
                    }
                });
            }
        });
        Ok(())
    }

    /// Registers this process as a producer and answers every peer that asks for it, each on
    /// a thread of its own, for the life of the process.
    pub fn serve(self: &Arc<Self>, channels: Arc<Channels>, outbox: Arc<Outbox>) -> io::Result<()> {
        let mut registration = self.rendezvous.register(&self.me)?;
        let me = self.clone();
        std::thread::spawn(move || {
            while let Ok((pairing, note)) = registration.asked() {
                let (me, channels, outbox) = (me.clone(), channels.clone(), outbox.clone());
                std::thread::spawn(move || {
                    if let Err(e) = me.answer(pairing, &note, &channels, &outbox) {
                        tracing::debug!("pairing {pairing} ended: {e}");
                    }
                });
            }
        });
        Ok(())
    }

    fn answer(
        &self,
        number: u64,
        note: &str,
        channels: &Channels,
        outbox: &Outbox,
    ) -> io::Result<()> {
        let ask: Ask = unseal(&self.secret, note)?;
        let mut pairing = self.rendezvous.accept(number)?;
        if ask.punch {
            // The reader records the failure; the producer just falls back with it.
            if let Ok(mut stream) = pairing.punch(self.options.within) {
                self.secret.answer(&mut stream)?;
                return channels.serve(stream, outbox);
            }
        }
        let stored = self.store(&ask.fetch, number, channels, outbox)?;
        pairing.tell(seal(&self.secret, &stored)?)
    }

    /// Writes the bucket `fetch` asks for to the run's store, once it is complete.
    fn store(
        &self,
        fetch: &Fetch,
        pairing: u64,
        channels: &Channels,
        outbox: &Outbox,
    ) -> io::Result<Stored> {
        let mut bytes = Vec::new();
        let wait = Duration::from_millis(fetch.wait_ms);
        let ended = outbox.follow(&fetch.key, fetch.bucket, wait, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })?;
        let end = StreamEnd::from(ended);
        if end != StreamEnd::Complete {
            return Ok(Stored { path: None, end });
        }
        let path = format!(
            "{}/fallback/{}/b{}-p{pairing}.arrow",
            channels.prefix, fetch.key, fetch.bucket
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        channels.requests.put();
        runtime
            .block_on(
                channels
                    .store
                    .put(&ObjectPath::from(path.as_str()), bytes.into()),
            )
            .map_err(io::Error::other)?;
        Ok(Stored {
            path: Some(path),
            end,
        })
    }
}
