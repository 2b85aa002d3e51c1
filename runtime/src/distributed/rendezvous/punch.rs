//! TCP simultaneous open. Both sides of a pairing connect to each other's public endpoint from
//! the local port their connection to the rendezvous host left from: each one's outgoing SYN
//! opens its own NAT for the other's, and whichever arrives second finds a hole. Every socket
//! on that port is bound with `SO_REUSEADDR` and `SO_REUSEPORT`, so the connection to the
//! host stays open (keeping the NAT's mapping) while the punch is tried.

use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Longest one connect attempt waits before the next. A SYN the peer's NAT dropped (it had
/// not opened its side yet) is not resent by the kernel for a second; a fresh attempt resends
/// it sooner.
const ATTEMPT: Duration = Duration::from_millis(100);

/// Pause after a refused attempt (no NAT in between, and the peer had not started yet).
const PAUSE: Duration = Duration::from_millis(1);

/// A socket bound to `local` that other sockets may share the port with.
fn shared(local: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(local), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&local.into())?;
    Ok(socket)
}

/// Connects to `to` from a fresh port that later sockets may share ([`simultaneous_open`]).
pub fn connect_shared(to: SocketAddr, within: Duration) -> io::Result<TcpStream> {
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let socket = shared(any)?;
    socket.connect_timeout(&to.into(), within)?;
    Ok(socket.into())
}

/// Which side of a pairing punches. Without a NAT in between (a public host, loopback) two
/// SYNs rarely cross in flight, so one side also listens on its port: the answering side,
/// which then takes whichever connection comes first. The dialling side only connects, so
/// the two always end up holding the same connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Dialler,
    Answerer,
}

/// A connection to `peer` from `local`, tried until `within` has passed.
pub fn simultaneous_open(
    local: SocketAddr,
    peer: SocketAddr,
    side: Side,
    within: Duration,
) -> io::Result<TcpStream> {
    // A timeout too long to add is as good as none.
    let until = Instant::now()
        .checked_add(within)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
    let listener = match side {
        Side::Answerer => {
            let listener = shared(local)?;
            listener.listen(8)?;
            listener.set_nonblocking(true)?;
            Some(listener)
        }
        Side::Dialler => None,
    };
    let mut last = io::Error::new(io::ErrorKind::TimedOut, "no attempt");
    loop {
        if let Some(stream) = listener.as_ref().and_then(|l| accepted(l, peer)) {
            return ready(stream);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection to {peer} within {within:?} (last: {last})"),
            ));
        }
        let socket = shared(local)?;
        match socket.connect_timeout(&peer.into(), left.min(ATTEMPT)) {
            Ok(()) => return ready(socket),
            Err(e) => {
                if e.kind() != io::ErrorKind::TimedOut {
                    std::thread::sleep(PAUSE.min(left));
                }
                last = e;
            }
        }
    }
}

/// A connection from `peer` waiting on `listener`; others are dropped.
fn accepted(listener: &Socket, peer: SocketAddr) -> Option<Socket> {
    while let Ok((socket, from)) = listener.accept() {
        if from.as_socket() == Some(peer) {
            return Some(socket);
        }
    }
    None
}

fn ready(socket: Socket) -> io::Result<TcpStream> {
    let stream: TcpStream = socket.into();
    stream.set_nonblocking(false)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn two_sides_opening_at_once_get_one_connection() {
        // On loopback there is no NAT: the point is that two sides on ports that also hold
        // other connections meet each other.
        let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let to_host = host.local_addr().unwrap();
        let a = connect_shared(to_host, ATTEMPT).unwrap();
        let b = connect_shared(to_host, ATTEMPT).unwrap();
        let (pa, pb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let within = Duration::from_secs(5);
        let other = std::thread::spawn(move || simultaneous_open(pb, pa, Side::Answerer, within));
        let mut one = simultaneous_open(pa, pb, Side::Dialler, within).unwrap();
        let mut two = other.join().unwrap().unwrap();
        one.write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        two.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
        drop((a, b));
    }

    #[test]
    fn nobody_there_is_an_error_once_the_time_is_up() {
        let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = connect_shared(host.local_addr().unwrap(), ATTEMPT).unwrap();
        let nobody = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = nobody.local_addr().unwrap();
        drop(nobody);
        let local = a.local_addr().unwrap();
        let error =
            simultaneous_open(local, gone, Side::Answerer, Duration::from_millis(200)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
