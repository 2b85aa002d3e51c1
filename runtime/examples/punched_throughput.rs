//! One punched connection's throughput, for `bench/nat.sh`: three roles of one run meet at a
//! rendezvous host. `open` opens the run and holds it; `answer` registers, takes one pairing
//! and reads everything sent; `dial` dials the answerer, punches, sends BYTES and prints the
//! rate. The secret (64 hex digits) is the run's.
//!
//!     punched_throughput open|answer|dial RENDEZVOUS SECRET [BYTES]

use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::rendezvous::client::Rendezvous;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(5);

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, role, addr, secret, rest @ ..] = args.as_slice() else {
        eprintln!("usage: punched_throughput open|answer|dial RENDEZVOUS SECRET [BYTES]");
        std::process::exit(2);
    };
    let secret = Secret::from_hex(secret).expect("a secret of 64 hex digits");
    let run = Rendezvous::new(addr, &secret)?;
    match role.as_str() {
        "open" => {
            let _open = run.open()?;
            println!("open");
            std::io::stdout().flush()?;
            std::thread::sleep(Duration::from_secs(3600));
        }
        "answer" => {
            let mut member = run.register("answerer")?;
            println!("registered");
            std::io::stdout().flush()?;
            let (pairing, _) = member.asked()?;
            let mut stream = run.accept(pairing)?.punch(WITHIN)?;
            let mut sink = vec![0u8; 1 << 20];
            while stream.read(&mut sink)? > 0 {}
        }
        "dial" => {
            let bytes: usize = rest.first().and_then(|b| b.parse().ok()).unwrap_or(1 << 30);
            let started = Instant::now();
            let mut stream = run.dial("answerer", String::new())?.punch(WITHIN)?;
            let punched = started.elapsed();
            let chunk = vec![42u8; 1 << 20];
            let started = Instant::now();
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                stream.write_all(&chunk[..n])?;
                sent += n;
            }
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut end = [0u8; 1];
            let _ = stream.read(&mut end);
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "punched in {:.1} ms; {:.0} MB/s",
                punched.as_secs_f64() * 1e3,
                sent as f64 / seconds / 1e6
            );
        }
        other => {
            eprintln!("unknown role {other}");
            std::process::exit(2);
        }
    }
    Ok(())
}
