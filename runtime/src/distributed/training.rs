//! Data-parallel training on the run's workers: the coordinator gives every worker its shard
//! of the prepared rows and the group's addresses, the workers train together through the
//! collectives (`flow_stdlib::ml::parallel` says what is combined, [`super::collective`]
//! how), and every member ends with the same parameters. A member that fails or dies fails
//! the attempt; the whole group then starts again, up to the run's attempt limit.

use super::coordinator::{Coordinator, Event, error};
use super::protocol::{ToCoordinator, ToWorker, TrainHeader, f64_bytes, send, write_frame};
use datafusion::error::Result;
use flow_planner::Channel;
use flow_planner::physical::Algorithm;
use flow_stdlib::SyncMode;
use flow_stdlib::ml::Matrix;
use flow_stdlib::ml::parallel::{self, Member};
use std::sync::mpsc::RecvTimeoutError;

/// How the group combines updates: the sync mode, the allreduce algorithm, the averaging
/// period, and whether messages go through the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Collective {
    pub sync: SyncMode,
    pub algorithm: Algorithm,
    pub every: usize,
    pub mailbox: Channel,
}

/// How one `train` step trains on the run's workers: how many of them, and how they combine.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    /// Workers training together (1: the coordinator trains alone).
    pub group: usize,
    /// The plan's training stage, when the plan has one.
    pub stage: Option<usize>,
    pub collective: Collective,
}

impl Coordinator {
    /// Trains `header.params` on `training.group` workers, each on its shard of `x` and
    /// `targets`; returns the trained parameters.
    pub fn train(
        &mut self,
        header: &TrainHeader,
        training: &Training,
        x: &Matrix,
        targets: &[f64],
    ) -> Result<Vec<f64>> {
        let mut attempt = 1;
        loop {
            match self.train_once(header, training, x, targets, attempt - 1) {
                Ok(params) => return Ok(params),
                Err(e) if attempt < self.max_attempts() && !crate::interrupt::interrupted() => {
                    tracing::warn!("training attempt {attempt} failed ({e}); starting again");
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How the `train` step of DAG node `node` trains: the group is all the workers when the
    /// program names a `sync` mode (it asks for data-parallel training), else as many as the
    /// plan gave that step's training stage — one when the data is too small to be worth
    /// dividing; the collective is the program's `sync`, else what the plan chose for that
    /// stage, else the mode that suits the run's channel.
    pub fn training(&self, node: usize, spec: &flow_stdlib::TrainSpec) -> Training {
        let all = self.live_workers().len().max(1);
        let stage = self.planned_training_stage(node);
        let group = match stage {
            _ if spec.sync.is_some() => all,
            Some(s) => (s.functions as usize).clamp(1, all),
            None => all,
        };
        Training {
            group,
            stage: stage.map(|s| s.id),
            collective: self.collective(spec, stage.and_then(|s| s.collective.as_ref())),
        }
    }

    fn collective(
        &self,
        spec: &flow_stdlib::TrainSpec,
        planned: Option<&flow_planner::physical::Collective>,
    ) -> Collective {
        let mailbox_of = |sync: SyncMode, planned: Option<Channel>| match (sync, planned) {
            (SyncMode::ScatterReduce, _) | (_, Some(Channel::Storage)) => Channel::Storage,
            _ => self.default_channel(),
        };
        if let Some(sync) = spec.sync {
            return Collective {
                sync,
                algorithm: Algorithm::Ring,
                every: planned.map_or(8, |p| p.every as usize),
                mailbox: mailbox_of(sync, None),
            };
        }
        if let Some(p) = planned
            && let Some(sync) = p.sync
        {
            return Collective {
                sync,
                algorithm: p.algorithm,
                every: p.every.max(1) as usize,
                mailbox: mailbox_of(sync, Some(p.channel)),
            };
        }
        // Through storage every exchange costs requests and polling: averaging every few
        // steps amortises them; over direct channels each step's allreduce is cheap.
        let sync = match self.default_channel() {
            Channel::Storage => SyncMode::Average,
            Channel::Direct | Channel::Fused => SyncMode::Allreduce,
        };
        Collective {
            sync,
            algorithm: Algorithm::Ring,
            every: 8,
            mailbox: mailbox_of(sync, None),
        }
    }

    fn train_once(
        &mut self,
        header: &TrainHeader,
        training: &Training,
        x: &Matrix,
        targets: &[f64],
        attempt: u32,
    ) -> Result<Vec<f64>> {
        let collective = &training.collective;
        self.wait_for_workers()?;
        let job = self.new_job();
        let key = format!("j{job}/train");
        let mut members = self.live_workers();
        members.truncate(training.group.max(1));
        let size = members.len();
        let (_, steps) = parallel::schedule(x.rows, size, header.spec.batch_size, collective.sync);
        let peers: Vec<String> = members.iter().map(|w| self.data_addr(*w)).collect();
        let head = serde_json::to_vec(header).map_err(|e| error(e.to_string()))?;
        let outputs = header.net.outputs();
        tracing::info!(
            "training on {size} worker{}: {} with {} ({} steps per epoch)",
            if size == 1 { "" } else { "s" },
            collective.sync.name(),
            collective.algorithm.name(),
            steps
        );
        for (rank, &w) in members.iter().enumerate() {
            let rows = parallel::shard_rows(x.rows, size, rank);
            let shard = x.gather(&rows);
            let shard_targets: Vec<f64> = rows
                .iter()
                .flat_map(|r| targets[r * outputs..(r + 1) * outputs].iter().copied())
                .collect();
            let message = ToWorker::Train {
                key: key.clone(),
                stage: training.stage,
                attempt,
                member: Member {
                    rank,
                    size,
                    sync: collective.sync,
                    every: collective.every,
                    steps_per_epoch: steps,
                    epochs: header.spec.epochs_for(x.rows),
                    l2: header.spec.l2_for(x.rows),
                },
                peers: peers.clone(),
                mailbox: collective.mailbox,
                algorithm: collective.algorithm,
            };
            let conn = self.connection(w);
            let sent = send(conn, &message)
                .and_then(|()| write_frame(conn, &head))
                .and_then(|()| write_frame(conn, &f64_bytes(&shard.data)))
                .and_then(|()| write_frame(conn, &f64_bytes(&shard_targets)));
            if let Err(e) = sent {
                // It died before the coordinator heard: replace it and start again.
                self.retire(w);
                self.replace()?;
                self.release(job);
                return Err(error(format!("cannot send a worker its training: {e}")));
            }
        }
        let mut params: Vec<Option<Vec<f64>>> = vec![None; size];
        let result = loop {
            if let Some(Some(first)) = params.first()
                && params.iter().all(Option::is_some)
            {
                break Ok(first.clone());
            }
            let event = match self.next_event(super::coordinator::SILENCE) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    break Err(error("no worker has answered for five minutes"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    break Err(error("the coordinator lost its control port"));
                }
            };
            match event {
                Event::Message(
                    _,
                    ToCoordinator::Trained {
                        key: k,
                        rank,
                        params: p,
                        links,
                        store_requests,
                        ..
                    },
                ) if k == key && rank < size => {
                    self.heard(links, store_requests);
                    params[rank] = Some(p);
                }
                Event::Message(
                    _,
                    ToCoordinator::TrainFailed {
                        key: k,
                        rank,
                        error: message,
                        lost_peer,
                    },
                ) if k == key => {
                    // A member that lost a peer names it: that peer is dead.
                    if let Some(peer) = lost_peer
                        && let Some(&dead) = members.iter().find(|w| self.data_addr(**w) == peer)
                        && self.retire(dead).is_some()
                    {
                        self.replace()?;
                    }
                    break Err(error(format!("training member {rank} failed: {message}")));
                }
                Event::Lost(w) => {
                    let pid = self.retire(w);
                    self.replace()?;
                    if members.contains(&w) {
                        let pid = pid.map_or(String::new(), |p| format!(" {p}"));
                        break Err(error(format!("worker{pid} died while training")));
                    }
                }
                other => self.handle_setup(other),
            }
        };
        self.release(job);
        result
    }
}
