//! Where functions come from. The coordinator asks a [`Backend`] to start workers and, when
//! one misbehaves, to kill it; it never learns whether a worker is a local process or a
//! Lambda invocation. [`LocalBackend`] starts `flowc worker` processes on this machine.

use super::auth::{SECRET_ENV, Secret};
use super::channels::Compression;
use super::punched::PunchOptions;
use crate::interrupt::{Registered, interrupted, on_interrupt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What a worker needs to find its run.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The coordinator's control address.
    pub coordinator: String,
    /// The run's store URL.
    pub store: String,
    /// The run's prefix in the store.
    pub prefix: String,
    /// Compression of channel data.
    pub compression: Compression,
    /// The `RUST_LOG` filter workers log with (none: the inherited one).
    pub log: Option<String>,
    /// The rendezvous host workers reach each other through, if they cannot listen.
    pub punch: Option<PunchOptions>,
}

/// Starts and stops workers.
pub trait Backend: Send {
    /// Starts one worker; it connects to the coordinator by itself.
    fn launch(&mut self, launch: &Launch, secret: &Secret) -> std::io::Result<()>;
    /// Stops the worker with this process id (or invocation), if it is still running.
    fn kill(&mut self, pid: u32);
    /// Stops every worker it started and waits until they are gone.
    fn shutdown(&mut self);
    /// Stops every worker it started without waiting for them to go, at the end of a run whose
    /// workers are all idle (nothing of theirs can still be written). By default the same as
    /// [`Backend::shutdown`].
    fn dismiss(&mut self) {
        self.shutdown();
    }
    /// Times the platform refused to start a function for now (throttling), each waited out
    /// and tried again. None by default.
    fn throttled(&self) -> u64 {
        0
    }
}

/// A command put in front of every worker command [`LocalBackend`] runs, when set: the NAT
/// test bed's (`scripts/nat-testbed`), which starts each worker inside a private host.
pub const LAUNCHER_ENV: &str = "FLOW_WORKER_LAUNCHER";

/// Workers as `flowc worker` processes on this machine.
#[derive(Debug)]
pub struct LocalBackend {
    exe: PathBuf,
    children: Arc<Mutex<Vec<Child>>>,
    _interrupt: Registered,
}

impl LocalBackend {
    /// A backend starting `exe worker ...` (normally the running `flowc`). Its workers are
    /// killed if the run is interrupted.
    pub fn new(exe: PathBuf) -> LocalBackend {
        let children: Arc<Mutex<Vec<Child>>> = Arc::default();
        let interrupt = on_interrupt({
            let children = children.clone();
            move || kill_all(&children)
        });
        LocalBackend {
            exe,
            children,
            _interrupt: interrupt,
        }
    }

    fn children(&self) -> MutexGuard<'_, Vec<Child>> {
        // A panic while holding the lock cannot leave the list inconsistent.
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn kill_all(children: &Mutex<Vec<Child>>) {
    let mut children = children.lock().unwrap_or_else(PoisonError::into_inner);
    // All signalled before any is waited for: the kernel tears them down side by side.
    signal_all(&mut children);
    for c in children.iter_mut() {
        let _ = c.wait();
    }
    children.clear();
}

fn signal_all(children: &mut [Child]) {
    for c in children {
        let _ = c.kill();
    }
}

/// The `flowc worker` flags that say how to reach peers through a rendezvous host.
fn punch_args(punch: Option<&PunchOptions>) -> Vec<String> {
    let Some(punch) = punch else {
        return Vec::new();
    };
    let mut args = vec![
        "--rendezvous".to_string(),
        punch.rendezvous.clone(),
        "--punch-timeout-ms".to_string(),
        punch.within.as_millis().to_string(),
    ];
    if punch.strict {
        args.push("--strict-channels".into());
    }
    args
}

impl Backend for LocalBackend {
    fn launch(&mut self, launch: &Launch, secret: &Secret) -> std::io::Result<()> {
        if interrupted() {
            return Err(std::io::Error::other("the run was interrupted"));
        }
        // The NAT test bed puts each worker in a private host of its own.
        let mut command = match std::env::var_os(LAUNCHER_ENV).filter(|l| !l.is_empty()) {
            Some(launcher) => {
                let mut command = Command::new(launcher);
                command.arg(&self.exe);
                command
            }
            None => Command::new(&self.exe),
        };
        if let Some(filter) = &launch.log {
            command.env("RUST_LOG", filter);
        }
        let child = command
            .arg("worker")
            .arg("--connect")
            .arg(&launch.coordinator)
            .arg("--store")
            .arg(&launch.store)
            .arg("--prefix")
            .arg(&launch.prefix)
            .arg("--compression")
            .arg(launch.compression.name())
            .args(punch_args(launch.punch.as_ref()))
            .env(SECRET_ENV, secret.to_hex())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let mut children = self.children();
        children.push(child);
        // Reap the ones that already ended, so a long run does not collect zombies.
        children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        Ok(())
    }

    fn kill(&mut self, pid: u32) {
        let mut children = self.children();
        for c in children.iter_mut().filter(|c| c.id() == pid) {
            let _ = c.kill();
            let _ = c.wait();
        }
        children.retain(|c| c.id() != pid);
    }

    fn shutdown(&mut self) {
        kill_all(&self.children);
    }

    /// Kills the workers and reaps them on a thread of its own: the kernel takes a few
    /// milliseconds to tear a process down, which the end of a run need not wait for.
    fn dismiss(&mut self) {
        let mut children = std::mem::take(&mut *self.children());
        signal_all(&mut children);
        std::thread::spawn(move || {
            for c in children.iter_mut() {
                let _ = c.wait();
            }
        });
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}
