//! What introducing a pair of functions through a rendezvous host costs here: a dial, the
//! host's answer, and the punched connection, on loopback (`direct.pairing_s`).

use crate::distributed::auth::Secret;
use crate::distributed::rendezvous::client::Rendezvous;
use crate::distributed::rendezvous::server;
use std::io;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(3);

/// The median seconds of `pairs` pairings, each from dial to connected.
pub fn pairing_s(pairs: usize) -> io::Result<f64> {
    let listener = server::listen("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    // The host serves until the process ends, which for `flowc calibrate` is soon.
    std::thread::spawn(move || server::serve(listener, server::Options::default()));
    let run = Rendezvous::new(&addr, &Secret::generate()?)?;
    let _open = run.open()?;
    let mut member = run.register("member")?;
    let answerer = {
        let run = run.clone();
        std::thread::spawn(move || -> io::Result<()> {
            for _ in 0..pairs {
                let (pairing, _) = member.asked()?;
                run.accept(pairing)?.punch(WITHIN)?;
            }
            Ok(())
        })
    };
    let mut times = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let started = Instant::now();
        run.dial("member", String::new())?.punch(WITHIN)?;
        times.push(started.elapsed().as_secs_f64());
    }
    answerer
        .join()
        .map_err(|_| io::Error::other("the answering side failed"))??;
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairing_on_loopback_takes_milliseconds_at_most() {
        let s = super::pairing_s(5).unwrap();
        assert!(s > 0.0 && s < 0.5, "{s}");
    }
}
