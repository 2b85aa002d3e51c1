//! Where functions come from. The coordinator asks a [`Backend`] to start workers and, when
//! one misbehaves, to kill it; it never learns whether a worker is a local process or a
//! Lambda invocation. [`LocalBackend`] starts `flowc worker` processes on this machine.

use super::auth::{SECRET_ENV, Secret};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// What a worker needs to find its run.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The coordinator's control address.
    pub coordinator: String,
    /// The run's store URL.
    pub store: String,
    /// The run's prefix in the store.
    pub prefix: String,
}

/// Starts and stops workers.
pub trait Backend: Send {
    /// Starts one worker; it connects to the coordinator by itself.
    fn launch(&mut self, launch: &Launch, secret: &Secret) -> std::io::Result<()>;
    /// Stops the worker with this process id (or invocation), if it is still running.
    fn kill(&mut self, pid: u32);
    /// Stops every worker it started.
    fn shutdown(&mut self);
}

/// Workers as `flowc worker` processes on this machine.
#[derive(Debug)]
pub struct LocalBackend {
    exe: PathBuf,
    children: Vec<Child>,
}

impl LocalBackend {
    /// A backend starting `exe worker ...` (normally the running `flowc`).
    pub fn new(exe: PathBuf) -> LocalBackend {
        LocalBackend {
            exe,
            children: Vec::new(),
        }
    }
}

impl Backend for LocalBackend {
    fn launch(&mut self, launch: &Launch, secret: &Secret) -> std::io::Result<()> {
        let child = Command::new(&self.exe)
            .arg("worker")
            .arg("--connect")
            .arg(&launch.coordinator)
            .arg("--store")
            .arg(&launch.store)
            .arg("--prefix")
            .arg(&launch.prefix)
            .env(SECRET_ENV, secret.to_hex())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        self.children.push(child);
        // Reap the ones that already ended, so a long run does not collect zombies.
        self.children
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        Ok(())
    }

    fn kill(&mut self, pid: u32) {
        for c in &mut self.children {
            if c.id() == pid {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        self.children.retain(|c| c.id() != pid);
    }

    fn shutdown(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for LocalBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}
