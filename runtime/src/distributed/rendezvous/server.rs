//! `flowc rendezvous`: introduces a run's functions to each other and relays no data. One
//! thread per connection; every read before a connection has proven itself has a deadline, so
//! a client that connects and says nothing (or says it slowly) holds only its own thread, and
//! only for [`Options::hello_within`].

use super::{Hello, Intent, Said, Tell, receive, send};
use crate::distributed::auth::Secret;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How patient the host is.
#[derive(Debug, Clone)]
pub struct Options {
    /// Longest a new connection may take to prove itself.
    pub hello_within: Duration,
    /// Longest a dialer waits for the member it asked for to answer.
    pub pairing_within: Duration,
    /// Longest a pairing stays open after its sides learned of each other (for a note after
    /// a failed punch: the producer stores what was asked for, then says where).
    pub linger: Duration,
    /// Connections served at once; more are closed as they arrive.
    pub max_connections: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            hello_within: Duration::from_secs(5),
            pairing_within: Duration::from_secs(10),
            linger: Duration::from_secs(900),
            max_connections: 4096,
        }
    }
}

/// A listener on `addr` for [`serve`], with room for the bursts of connections a run makes
/// when every reader pairs with every producer at once (the usual backlog of 128 drops SYNs
/// past it, which their senders resend only a second later).
pub fn listen(addr: &str) -> io::Result<TcpListener> {
    let addr = std::net::ToSocketAddrs::to_socket_addrs(addr)?
        .next()
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{addr} names no address"))
        })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Serves `listener` until the process ends.
pub fn serve(listener: TcpListener, options: Options) {
    let host = Arc::new(Host {
        runs: Mutex::default(),
        next: AtomicU64::new(1),
        open: AtomicUsize::new(0),
        options,
    });
    for conn in listener.incoming().flatten() {
        if host.open.fetch_add(1, Ordering::SeqCst) >= host.options.max_connections {
            host.open.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let host = host.clone();
        std::thread::spawn(move || {
            let id = host.next.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = host.connection(id, conn) {
                tracing::debug!("rendezvous connection {id} ended: {e}");
            }
            host.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

struct Host {
    runs: Mutex<HashMap<String, Run>>,
    /// Connection and pairing numbers.
    next: AtomicU64,
    open: AtomicUsize,
    options: Options,
}

struct Run {
    key: Secret,
    /// The connection that opened it: the run ends with it.
    opener: u64,
    members: HashMap<String, Member>,
    pending: HashMap<u64, Pending>,
}

struct Member {
    connection: u64,
    tell: Sender<Said>,
}

/// A dialer waiting for its member to answer.
struct Pending {
    dialer: SocketAddr,
    answer: Sender<Matched>,
}

/// What a dialer learns when its member answers: where it is, and the two ends of the
/// pairing's notes.
struct Matched {
    peer: SocketAddr,
    to_peer: Sender<String>,
    from_peer: Receiver<String>,
}

/// Reads with one deadline for the whole read, however slowly the bytes come.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "too slow"));
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut stream = self.stream;
        stream.read(buf)
    }
}

fn refuse(stream: &mut TcpStream, reason: impl Into<String>) -> io::Result<()> {
    send(
        stream,
        &Said::Refused {
            reason: reason.into(),
        },
    )
}

impl Host {
    fn runs(&self) -> MutexGuard<'_, HashMap<String, Run>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connection(&self, id: u64, mut stream: TcpStream) -> io::Result<()> {
        let _ = stream.set_nodelay(true);
        let from = stream.peer_addr()?;
        let nonce = Secret::nonce()?;
        io::Write::write_all(&mut stream, &nonce)?;
        let hello: Hello = receive(&mut Deadline {
            stream: &stream,
            until: Instant::now() + self.options.hello_within,
        })?;
        stream.set_read_timeout(None)?;
        if let Intent::Open { key } = &hello.intent {
            return self.open(id, stream, &hello.run, key);
        }
        // A stranger hears nothing: an unknown run and a wrong proof look the same.
        let known = self
            .runs()
            .get(&hello.run)
            .is_some_and(|run| hello.proven(&run.key, &nonce));
        if !known {
            return Err(io::Error::new(io::ErrorKind::PermissionDenied, "unproven"));
        }
        match hello.intent {
            Intent::Open { .. } => unreachable!("handled above"),
            Intent::Register { name } => self.register(id, stream, &hello.run, name),
            Intent::Dial { to, note } => self.dial(stream, from, &hello.run, &to, note),
            Intent::Accept { pairing } => self.accept(stream, from, &hello.run, pairing),
        }
    }

    fn open(&self, id: u64, mut stream: TcpStream, run: &str, key: &str) -> io::Result<()> {
        let Some(key) = Secret::from_hex(key) else {
            return refuse(&mut stream, "a run's key is 64 hex digits");
        };
        {
            let mut runs = self.runs();
            if runs.contains_key(run) {
                drop(runs);
                return refuse(&mut stream, "a run of that name is open");
            }
            runs.insert(
                run.to_string(),
                Run {
                    key,
                    opener: id,
                    members: HashMap::new(),
                    pending: HashMap::new(),
                },
            );
        }
        let said = send(&mut stream, &Said::Welcome);
        if said.is_ok() {
            // The opener says nothing more; its connection closing ends the run.
            let _ = io::copy(&mut stream, &mut io::sink());
        }
        let mut runs = self.runs();
        if runs.get(run).is_some_and(|r| r.opener == id) {
            runs.remove(run);
        }
        said
    }

    fn register(&self, id: u64, mut stream: TcpStream, run: &str, name: String) -> io::Result<()> {
        let (tell, heard) = channel();
        {
            let mut runs = self.runs();
            let Some(r) = runs.get_mut(run) else {
                return Ok(());
            };
            if r.members.contains_key(&name) {
                drop(runs);
                return refuse(&mut stream, format!("a member named {name} is registered"));
            }
            r.members.insert(
                name.clone(),
                Member {
                    connection: id,
                    tell: tell.clone(),
                },
            );
        }
        drop(tell);
        // The member says nothing more: its connection closing (read here) unregisters it,
        // which drops the last sender and wakes the loop below.
        let watcher = stream.try_clone()?;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let mut watcher = &watcher;
                let _ = io::copy(&mut watcher, &mut io::sink());
                if let Some(r) = self.runs().get_mut(run)
                    && r.members.get(&name).is_some_and(|m| m.connection == id)
                {
                    r.members.remove(&name);
                }
            });
            let result = send(&mut stream, &Said::Welcome).and_then(|()| {
                loop {
                    match heard.recv() {
                        Ok(said) => send(&mut stream, &said)?,
                        Err(_) => break Ok(()),
                    }
                }
            });
            let _ = stream.shutdown(Shutdown::Both);
            result
        })
    }

    fn dial(
        &self,
        mut stream: TcpStream,
        from: SocketAddr,
        run: &str,
        to: &str,
        note: String,
    ) -> io::Result<()> {
        let (answer, answered) = channel();
        let pairing = self.next.fetch_add(1, Ordering::SeqCst);
        let asked = {
            let mut runs = self.runs();
            match runs.get_mut(run) {
                Some(r) => match r.members.get(to) {
                    Some(member) => {
                        let asked = member.tell.send(Said::Meet { pairing, note }).is_ok();
                        if asked {
                            r.pending.insert(
                                pairing,
                                Pending {
                                    dialer: from,
                                    answer,
                                },
                            );
                        }
                        asked
                    }
                    None => false,
                },
                None => false,
            }
        };
        if !asked {
            return refuse(&mut stream, format!("no member named {to} is registered"));
        }
        let matched = answered.recv_timeout(self.options.pairing_within);
        let Ok(matched) = matched else {
            if let Some(r) = self.runs().get_mut(run) {
                r.pending.remove(&pairing);
            }
            return refuse(
                &mut stream,
                format!(
                    "{to} did not answer within {:?}",
                    self.options.pairing_within
                ),
            );
        };
        send(
            &mut stream,
            &Said::Peer {
                peer: matched.peer,
                yours: from,
            },
        )?;
        self.relay(stream, matched.to_peer, matched.from_peer)
    }

    fn accept(
        &self,
        mut stream: TcpStream,
        from: SocketAddr,
        run: &str,
        pairing: u64,
    ) -> io::Result<()> {
        let pending = self
            .runs()
            .get_mut(run)
            .and_then(|r| r.pending.remove(&pairing));
        let (to_dialer, dialer_hears) = channel();
        let (to_member, member_hears) = channel();
        let dialer = pending.and_then(|p| {
            let matched = Matched {
                peer: from,
                to_peer: to_member,
                from_peer: dialer_hears,
            };
            p.answer.send(matched).is_ok().then_some(p.dialer)
        });
        let Some(dialer) = dialer else {
            return refuse(&mut stream, "the pairing is over");
        };
        send(
            &mut stream,
            &Said::Peer {
                peer: dialer,
                yours: from,
            },
        )?;
        self.relay(stream, to_dialer, member_hears)
    }

    /// Passes notes between the two sides of a pairing until either leaves or it has lasted
    /// [`Options::linger`]; then ends this side's connection, so its client hears that the
    /// other side is gone.
    fn relay(
        &self,
        mut stream: TcpStream,
        to_peer: Sender<String>,
        from_peer: Receiver<String>,
    ) -> io::Result<()> {
        let until = Instant::now() + self.options.linger;
        let reader = stream.try_clone()?;
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut reader = Deadline {
                    stream: &reader,
                    until,
                };
                while let Ok(Tell { note }) = receive(&mut reader) {
                    if to_peer.send(note).is_err() {
                        break;
                    }
                }
                let _ = reader.stream.shutdown(Shutdown::Both);
            });
            let result = loop {
                let left = until.saturating_duration_since(Instant::now());
                match from_peer.recv_timeout(left) {
                    Ok(note) => {
                        if let Err(e) = send(&mut stream, &Said::Note { note }) {
                            break Err(e);
                        }
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                        break Ok(());
                    }
                }
            };
            let _ = stream.shutdown(Shutdown::Both);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::Rendezvous;
    use super::*;
    use std::io::Write;

    fn host(options: Options) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || serve(listener, options));
        addr
    }

    fn quick() -> Options {
        Options {
            hello_within: Duration::from_millis(300),
            pairing_within: Duration::from_secs(2),
            ..Options::default()
        }
    }

    /// A run opened at `addr`, its secret, and the connection that holds it open.
    fn opened(addr: &str) -> (Rendezvous, Secret, TcpStream) {
        let secret = Secret::generate().unwrap();
        let run = Rendezvous::new(addr, &secret).unwrap();
        let open = run.open().unwrap();
        (run, secret, open)
    }

    /// Everything the host sends a connection that says `hello` after its nonce.
    fn heard_after(addr: &str, hello: impl FnOnce(&[u8]) -> Hello) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut nonce = [0u8; 32];
        s.read_exact(&mut nonce).unwrap();
        send(&mut s, &hello(&nonce)).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        rest
    }

    #[test]
    fn members_of_a_run_meet_and_pass_notes() {
        let addr = host(quick());
        let (run, _, _open) = opened(&addr);
        let mut member = run.register("b").unwrap();
        let dialer = std::thread::spawn({
            let run = run.clone();
            move || {
                let mut pairing = run.dial("b", "the ask".into()).unwrap();
                let note = pairing.hear(Duration::from_secs(5)).unwrap();
                (pairing.peer, note)
            }
        });
        let (number, note) = member.asked().unwrap();
        assert_eq!(note, "the ask");
        let mut answer = run.accept(number).unwrap();
        answer.tell("stored".into()).unwrap();
        let (peer, note) = dialer.join().unwrap();
        assert_eq!(peer, answer.yours);
        assert_eq!(note, "stored");
    }

    #[test]
    fn a_stranger_cannot_register_nor_dial_and_hears_nothing_but_the_nonce() {
        let addr = host(quick());
        let (run, secret, _open) = opened(&addr);
        let _member = run.register("b").unwrap();
        // The stranger knows the run's name, even, but not its key.
        let stranger = Secret::generate().unwrap().rendezvous_key();
        let name = secret.run_name();
        for intent in [
            Intent::Register { name: "c".into() },
            Intent::Dial {
                to: "b".into(),
                note: String::new(),
            },
            Intent::Accept { pairing: 1 },
        ] {
            let heard = heard_after(&addr, |nonce| {
                Hello::new(&stranger, &name, nonce, intent.clone()).unwrap()
            });
            assert!(heard.is_empty(), "{intent:?}: {heard:?}");
        }
        // Nor does a run it opened itself under that name exist beside ours.
        let taken = heard_after(&addr, |nonce| {
            Hello::new(
                &stranger,
                &name,
                nonce,
                Intent::Open {
                    key: stranger.to_hex(),
                },
            )
            .unwrap()
        });
        let said: Said = receive(&mut &taken[..]).unwrap();
        assert!(matches!(said, Said::Refused { .. }), "{said:?}");
    }

    #[test]
    fn a_hello_replayed_on_another_connection_or_for_another_run_is_refused() {
        let addr = host(quick());
        let (a, b) = (Secret::generate().unwrap(), Secret::generate().unwrap());
        let (run_a, run_b) = (
            Rendezvous::new(&addr, &a).unwrap(),
            Rendezvous::new(&addr, &b).unwrap(),
        );
        let (_a, _b) = (run_a.open().unwrap(), run_b.open().unwrap());
        // A registration of run a, proven for one nonce...
        let mut captured = None;
        let heard = heard_after(&addr, |nonce| {
            let hello = Hello::new(
                &a.rendezvous_key(),
                &a.run_name(),
                nonce,
                Intent::Register { name: "m".into() },
            )
            .unwrap();
            captured = Some(hello.clone());
            hello
        });
        assert!(!heard.is_empty(), "the genuine registration is welcomed");
        let captured = captured.unwrap();
        // ...is worth nothing against a fresh nonce, nor moved to run b.
        assert!(heard_after(&addr, |_| captured.clone()).is_empty());
        let mut moved = captured.clone();
        moved.run = b.run_name();
        assert!(heard_after(&addr, |_| moved.clone()).is_empty());
    }

    #[test]
    fn clients_that_say_nothing_or_say_it_slowly_stall_nobody() {
        let addr = host(quick());
        let mut silent: Vec<TcpStream> = (0..50)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect();
        // A slowloris: one byte of its hello at a time.
        let mut slow = TcpStream::connect(&addr).unwrap();
        let mut nonce = [0u8; 32];
        slow.read_exact(&mut nonce).unwrap();
        let started = Instant::now();
        let (run, _, _open) = opened(&addr);
        let mut member = run.register("b").unwrap();
        let dialer = std::thread::spawn({
            let run = run.clone();
            move || run.dial("b", String::new()).map(|p| p.peer)
        });
        let (number, _) = member.asked().unwrap();
        let answer = run.accept(number).unwrap();
        assert_eq!(dialer.join().unwrap().unwrap(), answer.yours);
        assert!(started.elapsed() < Duration::from_secs(2));
        // The slow one, sending a 100-byte hello a byte every 50 ms, is dropped once its time
        // to say hello is up, long before it is done.
        slow.write_all(&100u32.to_be_bytes()).unwrap();
        let mut sent = 0;
        while sent < 100 && slow.write_all(b" ").is_ok() {
            sent += 1;
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(sent < 40, "{sent} bytes sent before being dropped");
        let mut rest = Vec::new();
        silent[0]
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let _ = silent[0].read_to_end(&mut rest);
        assert_eq!(rest.len(), 32, "the nonce, then the end");
    }

    #[test]
    fn a_member_that_does_not_answer_times_the_pairing_out() {
        let addr = host(Options {
            pairing_within: Duration::from_millis(200),
            ..quick()
        });
        let (run, _, _open) = opened(&addr);
        let _member = run.register("b").unwrap();
        let error = run.dial("b", String::new()).unwrap_err();
        assert!(error.to_string().contains("did not answer"), "{error}");
        let error = run.dial("nobody", String::new()).unwrap_err();
        assert!(error.to_string().contains("no member named"), "{error}");
    }

    #[test]
    fn a_run_ends_when_its_opener_leaves() {
        let addr = host(quick());
        let (run, _, open) = opened(&addr);
        let mut member = run.register("b").unwrap();
        drop(open);
        assert!(member.asked().is_err());
        std::thread::sleep(Duration::from_millis(100));
        assert!(run.register("c").is_err());
    }
}
