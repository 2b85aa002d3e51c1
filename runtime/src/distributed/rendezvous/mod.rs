//! Direct channels between functions that accept no connections. Each function sits behind a
//! NAT, so neither side of a channel can listen for the other: both connect out to a
//! rendezvous host (`flowc rendezvous`), which tells each the public endpoint it saw the other
//! come from, and both then connect to each other at once from the port they used (TCP
//! simultaneous open, "hole punching", as TCPunch does it for FMI). The host relays no data.
//!
//! Unlike TCPunch, every connection to the host proves membership of its run: the host sends
//! a nonce, the caller answers with an HMAC of it under the run's rendezvous key
//! ([`Secret::rendezvous_key`], derived from the run's secret, so the host can pass no
//! worker's data handshake), and a wrong answer is dropped unanswered. The host serves many
//! runs and many pairings at once, one thread per connection with a deadline on every read.
//!
//! [`server`] is the host; [`client`] what a run's processes say to it; [`punch`] the
//! simultaneous open itself.

pub mod client;
pub mod punch;
pub mod server;

use super::auth::Secret;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Frames to or from the host are small; a longer one is a stranger's and ends the connection.
const MAX_FRAME: usize = 16 << 10;

/// What a connection to the host is for, after the nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Intent {
    /// Opens a run with its rendezvous key (hex). The run lasts as long as this connection.
    Open { key: String },
    /// A member others may ask to meet: it stays connected and hears of them ([`Said::Meet`]).
    Register { name: String },
    /// Asks to meet member `to`; `note` is handed to it (the reader's request, signed by the
    /// run's secret, so the host can neither read meaning into it nor alter it unnoticed).
    Dial { to: String, note: String },
    /// Answers pairing `pairing`, which this member heard of as a [`Said::Meet`].
    Accept { pairing: u64 },
}

/// The first frame of a connection, answering the nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The run's name at the host ([`Secret::run_name`]).
    pub run: String,
    pub intent: Intent,
    /// [`Secret::sign`] under the run's rendezvous key of the nonce, the run and the intent
    /// (empty when opening a run: the host has no key to check it with yet).
    pub proof: String,
}

impl Hello {
    fn signed_bytes(nonce: &[u8], run: &str, intent: &Intent) -> io::Result<Vec<u8>> {
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(run.as_bytes());
        bytes.push(0);
        bytes.extend(serde_json::to_vec(intent).map_err(io::Error::other)?);
        Ok(bytes)
    }

    /// A hello for `intent`, proven under `key`.
    pub fn new(key: &Secret, run: &str, nonce: &[u8], intent: Intent) -> io::Result<Hello> {
        let proof = match intent {
            Intent::Open { .. } => String::new(),
            _ => key.sign(&Hello::signed_bytes(nonce, run, &intent)?),
        };
        Ok(Hello {
            run: run.to_string(),
            intent,
            proof,
        })
    }

    /// Whether the proof holds for `nonce` under `key`.
    pub fn proven(&self, key: &Secret, nonce: &[u8]) -> bool {
        Hello::signed_bytes(nonce, &self.run, &self.intent)
            .is_ok_and(|bytes| key.verify(&bytes, &self.proof))
    }
}

/// What the host says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Said {
    /// The run is open, or the member registered.
    Welcome,
    /// To a registered member: a peer asks to meet it in pairing `pairing`.
    Meet { pairing: u64, note: String },
    /// To both sides of a pairing: the other's public endpoint, and this side's as the host
    /// saw it.
    Peer { peer: SocketAddr, yours: SocketAddr },
    /// No pairing: why.
    Refused { reason: String },
    /// A note from the other side of the pairing (after a punch failed: where it stored what
    /// was asked for).
    Note { note: String },
}

/// What a side of a pairing may say after [`Said::Peer`]: a note for the other side.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tell {
    pub note: String,
}

/// Writes one small JSON frame.
pub fn send(w: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a rendezvous message is larger than the limit",
        ));
    }
    super::protocol::write_frame(w, &bytes)
}

/// Reads one small JSON frame; a longer one is refused before it is read.
pub fn receive<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<T> {
    let bytes = super::protocol::read_frame_of_at_most(r, MAX_FRAME)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
