//! What a run's processes say to a rendezvous host: the coordinator opens the run, each worker
//! registers so that peers may ask for it, and a reader dials a worker; the two sides of the
//! pairing then learn each other's public endpoint and punch ([`super::punch`]).

use super::punch::{self, Side};
use super::{Hello, Intent, Said, Tell, receive, send};
use crate::distributed::auth::{LEN, Secret};
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest the host may take to answer the hello (it waits up to its own pairing time for the
/// member a dialer asked for, 10 s by default).
const ANSWER: Duration = Duration::from_secs(20);

/// A run's way to its rendezvous host.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    addr: SocketAddr,
    run: String,
    key: Secret,
}

impl Rendezvous {
    /// The host at `addr` (`host:port`), for the run whose secret is `secret`.
    pub fn new(addr: &str, secret: &Secret) -> io::Result<Rendezvous> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{addr} names no address"))
        })?;
        Ok(Rendezvous {
            addr,
            run: secret.run_name(),
            key: secret.rendezvous_key(),
        })
    }

    /// The host's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connection that has said `intent`, from a port later sockets may share.
    fn connect(&self, intent: Intent) -> io::Result<TcpStream> {
        let mut stream = punch::connect_shared(self.addr, ANSWER)?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(ANSWER))?;
        let mut nonce = [0u8; LEN];
        stream.read_exact(&mut nonce)?;
        send(
            &mut stream,
            &Hello::new(&self.key, &self.run, &nonce, intent)?,
        )?;
        Ok(stream)
    }

    fn expect_welcome(stream: &mut TcpStream) -> io::Result<()> {
        match receive::<Said>(stream)? {
            Said::Welcome => Ok(()),
            Said::Refused { reason } => Err(io::Error::other(reason)),
            other => Err(unexpected(&other)),
        }
    }

    /// Opens the run; it lasts until the returned connection is dropped.
    pub fn open(&self) -> io::Result<TcpStream> {
        let mut stream = self.connect(Intent::Open {
            key: self.key.to_hex(),
        })?;
        Rendezvous::expect_welcome(&mut stream)?;
        stream.set_read_timeout(None)?;
        Ok(stream)
    }

    /// Registers member `name`: the registration hears of every peer asking for it.
    pub fn register(&self, name: &str) -> io::Result<Registration> {
        let mut stream = self.connect(Intent::Register {
            name: name.to_string(),
        })?;
        Rendezvous::expect_welcome(&mut stream)?;
        stream.set_read_timeout(None)?;
        Ok(Registration { stream })
    }

    /// Asks to meet member `to`, handing it `note`.
    pub fn dial(&self, to: &str, note: String) -> io::Result<Pairing> {
        let stream = self.connect(Intent::Dial {
            to: to.to_string(),
            note,
        })?;
        Pairing::matched(stream, Side::Dialler)
    }

    /// Answers pairing `pairing`.
    pub fn accept(&self, pairing: u64) -> io::Result<Pairing> {
        Pairing::matched(self.connect(Intent::Accept { pairing })?, Side::Answerer)
    }
}

fn unexpected(said: &Said) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the rendezvous host said {said:?} out of turn"),
    )
}

/// A registered member's connection to the host.
#[derive(Debug)]
pub struct Registration {
    stream: TcpStream,
}

impl Registration {
    /// The next peer asking to meet: its pairing and note. An error when the host or the run
    /// is gone.
    pub fn asked(&mut self) -> io::Result<(u64, String)> {
        match receive::<Said>(&mut self.stream)? {
            Said::Meet { pairing, note } => Ok((pairing, note)),
            other => Err(unexpected(&other)),
        }
    }
}

/// One side of a pairing: its connection to the host (kept open while it punches, so the
/// NAT keeps the mapping the host saw), and the two public endpoints.
#[derive(Debug)]
pub struct Pairing {
    stream: TcpStream,
    local: SocketAddr,
    side: Side,
    /// The other side, as the host saw it.
    pub peer: SocketAddr,
    /// This side, as the host saw it.
    pub yours: SocketAddr,
}

impl Pairing {
    fn matched(mut stream: TcpStream, side: Side) -> io::Result<Pairing> {
        let local = stream.local_addr()?;
        match receive::<Said>(&mut stream)? {
            Said::Peer { peer, yours } => Ok(Pairing {
                stream,
                local,
                side,
                peer,
                yours,
            }),
            Said::Refused { reason } => Err(io::Error::new(io::ErrorKind::NotFound, reason)),
            other => Err(unexpected(&other)),
        }
    }

    /// A connection to the other side, punched within `within`.
    pub fn punch(&self, within: Duration) -> io::Result<TcpStream> {
        punch::simultaneous_open(self.local, self.peer, self.side, within)
    }

    /// Passes `note` to the other side through the host.
    pub fn tell(&mut self, note: String) -> io::Result<()> {
        send(&mut self.stream, &Tell { note })
    }

    /// The other side's note, waiting up to `within`; an error if it left without one.
    pub fn hear(&mut self, within: Duration) -> io::Result<String> {
        self.stream.set_read_timeout(Some(within))?;
        match receive::<Said>(&mut self.stream)? {
            Said::Note { note } => Ok(note),
            other => Err(unexpected(&other)),
        }
    }
}
