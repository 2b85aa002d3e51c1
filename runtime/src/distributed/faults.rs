//! Faults on purpose, for the tests that prove the runtime survives them. A worker reads
//! `FLOW_FAULTS` (comma-separated) at start:
//! - `kill@shuffle`, `kill@gather`, `kill@last`: the worker running the first attempt of
//!   task 0 of a stage of that role kills itself with SIGKILL after its first batch;
//! - `fail@shuffle`, `fail@gather`, `fail@last`: every attempt of every task of that role
//!   fails, a permanent failure;
//! - `stall@shuffle`, `stall@gather`, `stall@last`: like `kill`, but the worker stops working
//!   instead of dying, a run held open (for the Ctrl-C test);
//! - `err@shuffle`, `err@gather`, `err@last`: like `kill`, but the task fails with an error,
//!   once (a transient failure, met by the consumers reading it as it writes);
//! - `kill@train`: member 1 of the first attempt at a data-parallel training kills itself
//!   with SIGKILL in its second epoch.
//!
//! Unset (as for every user), nothing happens.

use super::protocol::AttemptId;
use datafusion::error::{DataFusionError, Result};

/// The environment variable faults are read from.
pub const FAULTS_ENV: &str = "FLOW_FAULTS";

/// What a stage's tasks do with their output, as faults name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Divide it by key for a hash shuffle.
    Shuffle,
    /// Hand it whole to a consumer that merges (gather, broadcast).
    Gather,
    /// Hand it to the coordinator, which shows or saves it.
    Last,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Shuffle => "shuffle",
            Role::Gather => "gather",
            Role::Last => "last",
        }
    }
}

/// The faults this worker injects.
#[derive(Debug, Default)]
pub struct Faults {
    kill: Vec<String>,
    fail: Vec<String>,
    stall: Vec<String>,
    err: Vec<String>,
}

impl Faults {
    /// Faults from [`FAULTS_ENV`].
    pub fn from_env() -> Faults {
        let mut faults = Faults::default();
        for item in std::env::var(FAULTS_ENV).unwrap_or_default().split(',') {
            match item.trim().split_once('@') {
                Some(("kill", role)) => faults.kill.push(role.to_string()),
                Some(("fail", role)) => faults.fail.push(role.to_string()),
                Some(("stall", role)) => faults.stall.push(role.to_string()),
                Some(("err", role)) => faults.err.push(role.to_string()),
                _ => {}
            }
        }
        faults
    }

    /// Called before a task runs: an injected permanent failure.
    pub fn before_task(&self, id: &AttemptId, role: Role) -> Result<()> {
        if self.fail.iter().any(|r| r == role.name()) {
            return Err(DataFusionError::Execution(format!(
                "injected failure of stage {} task {} ({FAULTS_ENV})",
                id.stage, id.task
            )));
        }
        Ok(())
    }

    /// Called at every step of a data-parallel training: an injected death.
    pub fn during_training(&self, rank: usize, attempt: u32, epoch: usize) {
        if rank == 1 && attempt == 0 && epoch == 1 && self.kill.iter().any(|r| r == "train") {
            die();
        }
    }

    /// Called after each batch a task computes: an injected death, stall or error.
    pub fn during_task(&self, id: &AttemptId, role: Role, batches: usize) -> Result<()> {
        if batches != 1 || id.task != 0 || id.attempt != 0 {
            return Ok(());
        }
        if self.err.iter().any(|r| r == role.name()) {
            return Err(DataFusionError::Execution(format!(
                "injected transient failure of stage {} task {} ({FAULTS_ENV})",
                id.stage, id.task
            )));
        }
        if self.stall.iter().any(|r| r == role.name()) {
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
        if self.kill.iter().any(|r| r == role.name()) {
            die();
        }
        Ok(())
    }
}

/// SIGKILL, as the operating system or Lambda would: no destructors, no goodbye.
fn die() {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    std::thread::sleep(std::time::Duration::from_secs(60));
    std::process::exit(137);
}
