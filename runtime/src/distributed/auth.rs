//! Proof of membership in a run. Every connection a run accepts — the coordinator's control
//! port and each worker's data port — starts with a challenge: the listener sends a fresh
//! random nonce, the caller answers with HMAC-SHA256 of the nonce under the run's secret, and
//! the listener closes the connection on a wrong answer. Before the answer checks out the
//! listener has sent nothing but the nonce, so a stranger learns nothing about the run.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{self, Read, Write};

/// Bytes of a nonce and of a secret.
pub const LEN: usize = 32;

/// The environment variable a worker process reads its run's secret from (never the command
/// line, which other users of the machine can read).
pub const SECRET_ENV: &str = "FLOW_RUN_SECRET";

/// A run's shared secret.
#[derive(Clone)]
pub struct Secret([u8; LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh random secret.
    pub fn generate() -> io::Result<Secret> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(Secret(bytes))
    }

    /// The secret as hex, for the worker's environment.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Secret::to_hex`]'s output.
    pub fn from_hex(text: &str) -> Option<Secret> {
        let text = text.trim();
        if text.len() != LEN * 2 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Secret(bytes))
    }

    /// The secret from [`SECRET_ENV`].
    pub fn from_env() -> Option<Secret> {
        Secret::from_var(SECRET_ENV)
    }

    /// The secret in the environment variable `name`, written as [`Secret::to_hex`] does.
    pub fn from_var(name: &str) -> Option<Secret> {
        std::env::var(name).ok().and_then(|s| Secret::from_hex(&s))
    }

    /// The key the run's processes prove themselves with to a rendezvous host. It is derived
    /// from the secret, not the secret: the host that holds it can pass no handshake of the
    /// run's own connections, which [`Secret::challenge`] with the secret itself.
    pub fn rendezvous_key(&self) -> Secret {
        let tag = self
            .keyed(b"flow-rendezvous-key/1", b"")
            .finalize()
            .into_bytes();
        let mut bytes = [0u8; LEN];
        bytes.copy_from_slice(&tag);
        Secret(bytes)
    }

    /// The run's name at a rendezvous host: derived from the secret, so no stranger can
    /// guess it, and no two runs share one.
    pub fn run_name(&self) -> String {
        let tag = self.keyed(b"flow-run-name/1", b"").finalize().into_bytes();
        tag[..16].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn mac(&self, nonce: &[u8]) -> Hmac<Sha256> {
        self.keyed(b"flow-run/1", nonce)
    }

    fn keyed(&self, domain: &[u8], bytes: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(domain);
        mac.update(bytes);
        mac
    }

    /// A signature of `message` under this secret (hex), for messages that travel without a
    /// connection to challenge, such as a Lambda invocation's payload.
    pub fn sign(&self, message: &[u8]) -> String {
        let tag = self
            .keyed(b"flow-message/1", message)
            .finalize()
            .into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `signature` is [`Secret::sign`]'s of `message` (compared in constant time).
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        let Some(tag) = Secret::from_hex(signature) else {
            return false;
        };
        self.keyed(b"flow-message/1", message)
            .verify_slice(&tag.0)
            .is_ok()
    }

    /// A fresh random nonce.
    pub fn nonce() -> io::Result<[u8; LEN]> {
        let mut nonce = [0u8; LEN];
        getrandom::fill(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(nonce)
    }

    /// The listener's side: challenge the caller; an error means the caller is not one of us
    /// and the connection must be dropped.
    pub fn challenge(&self, stream: &mut (impl Read + Write)) -> io::Result<()> {
        let nonce = Secret::nonce()?;
        stream.write_all(&nonce)?;
        stream.flush()?;
        let mut answer = [0u8; LEN];
        stream.read_exact(&mut answer)?;
        self.mac(&nonce)
            .verify_slice(&answer)
            .map_err(|_| io::Error::new(io::ErrorKind::PermissionDenied, "wrong run secret"))
    }

    /// The caller's side: answer the listener's challenge.
    pub fn answer(&self, stream: &mut (impl Read + Write)) -> io::Result<()> {
        let mut nonce = [0u8; LEN];
        stream.read_exact(&mut nonce)?;
        let answer = self.mac(&nonce).finalize().into_bytes();
        stream.write_all(&answer)?;
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn handshake(listener: &Secret, caller: &Secret) -> io::Result<()> {
        let server = TcpListener::bind("127.0.0.1:0")?;
        let addr = server.local_addr()?;
        let caller = caller.clone();
        let client = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr)?;
            caller.answer(&mut s)
        });
        let (mut s, _) = server.accept()?;
        let result = listener.challenge(&mut s);
        drop(s);
        let _ = client.join();
        result
    }

    #[test]
    fn the_same_secret_is_accepted_and_another_refused() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert!(handshake(&a, &a).is_ok());
        let refused = handshake(&a, &b).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn a_signature_holds_for_its_message_under_its_secret_only() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        let signature = a.sign(b"task 3");
        assert!(a.verify(b"task 3", &signature));
        assert!(!a.verify(b"task 4", &signature));
        assert!(!b.verify(b"task 3", &signature));
        assert!(!a.verify(b"task 3", "not hex"));
    }

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let a = Secret::generate().unwrap();
        assert_eq!(Secret::from_hex(&a.to_hex()).unwrap().0, a.0);
        assert!(Secret::from_hex("xyz").is_none());
        assert!(Secret::from_hex(&"zz".repeat(32)).is_none());
    }
}
