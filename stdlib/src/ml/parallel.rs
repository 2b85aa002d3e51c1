//! Data-parallel training: each member of a group trains on its shard of the prepared rows
//! and the members combine what they learn through a [`Combine`] (the runtime's collectives),
//! in one of the three `sync` modes:
//!
//! - `allreduce` and `scatter_reduce`: every step each member computes the gradient sum of its
//!   share of the global batch, the sums are added across the group, and every member takes
//!   the same optimiser step on the mean — the single-process update, computed in parallel;
//!   the two differ only in how the runtime adds (a ring over direct channels, or
//!   scatter-reduce through storage);
//! - `average`: members step alone on their own batches and replace their parameters by the
//!   group's mean every `every` steps and at the end (model averaging).
//!
//! Members must agree on the number of steps, so the coordinator fixes `steps_per_epoch`.

use super::matrix::Matrix;
use super::net::{Net, Picked};
use super::optim::Optimizer;
use crate::error::MlError;
use crate::spec::{SyncMode, TrainSpec};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Adds vectors across the group; every member gets the same sum.
pub trait Combine {
    /// Replaces `values` by their element-wise sum over the group. `tag` is unique to the call.
    fn sum(&mut self, tag: &str, values: &mut [f64]) -> Result<(), MlError>;
}

/// One member's part in a data-parallel training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub rank: usize,
    pub size: usize,
    pub sync: SyncMode,
    /// Model averaging: steps between averages.
    pub every: usize,
    /// Steps in every epoch, the same for all members.
    pub steps_per_epoch: usize,
    /// Passes over the data and the L2 penalty, resolved for the rows of the whole group
    /// ([`TrainSpec::epochs_for`], [`TrainSpec::l2_for`]) so every member trains as one
    /// process would.
    pub epochs: usize,
    pub l2: f64,
}

/// The shares of `rows` rows among `size` members: member r gets rows r, r+size, ...
pub fn shard_rows(rows: usize, size: usize, rank: usize) -> Vec<usize> {
    (rank..rows).step_by(size.max(1)).collect()
}

/// Rows each member takes per step, and steps per epoch, for a global batch of `batch`.
pub fn schedule(rows: usize, size: usize, batch: usize, sync: SyncMode) -> (usize, usize) {
    let size = size.max(1);
    let local = match sync {
        // The group's step covers one global batch.
        SyncMode::Allreduce | SyncMode::ScatterReduce => batch.div_ceil(size).max(1),
        // Each member steps on batches of its own.
        SyncMode::Average => batch.max(1),
    };
    let largest_shard = rows.div_ceil(size);
    (local, largest_shard.div_ceil(local).max(1))
}

/// Trains `params` of `net` on this member's rows `x` and `targets`; returns the parameters,
/// which every member ends with.
pub fn fit_member(
    spec: &TrainSpec,
    net: &Net,
    params: &mut [f64],
    x: &Matrix,
    targets: &[f64],
    member: &Member,
    combine: &mut dyn Combine,
) -> Result<(), MlError> {
    let (local, steps) = (
        schedule(
            x.rows * member.size,
            member.size,
            spec.batch_size,
            member.sync,
        )
        .0,
        member.steps_per_epoch,
    );
    // Every member draws its own order; the initial parameters are everyone's.
    let mut rng = ChaCha8Rng::seed_from_u64(
        spec.seed ^ (member.rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let mut optimizer = Optimizer::new(spec.optimizer, spec.learning_rate, params.len());
    let mut grad = vec![0.0; params.len() + 1];
    let mut scratch = Vec::new();
    let mut order: Vec<usize> = (0..x.rows).collect();
    let mut since_average = 0;
    for epoch in 0..member.epochs {
        order.shuffle(&mut rng);
        for step in 0..steps {
            // Each row once per epoch, as in one process; a member whose shard is done
            // contributes nothing to the steps that remain.
            let start = (step * local).min(order.len());
            let chunk = &order[start..(start + local).min(order.len())];
            let tag = format!("e{epoch}s{step}");
            match member.sync {
                SyncMode::Allreduce | SyncMode::ScatterReduce => {
                    let n = chunk.len() as f64;
                    let (values, count) = grad.split_at_mut(params.len());
                    if chunk.is_empty() {
                        values.fill(0.0);
                    } else {
                        let picked = Picked {
                            x,
                            targets,
                            rows: chunk,
                        };
                        // A mean over the chunk without the penalty, made a sum.
                        net.gradient_rows(params, picked, 0.0, values, &mut scratch);
                        values.iter_mut().for_each(|g| *g *= n);
                    }
                    count[0] = n;
                    combine.sum(&tag, &mut grad)?;
                    let total = grad[params.len()].max(1.0);
                    let values = &mut grad[..params.len()];
                    values.iter_mut().for_each(|g| *g /= total);
                    net.add_l2(params, member.l2, values);
                    optimizer.step(params, values);
                }
                SyncMode::Average => {
                    let values = &mut grad[..params.len()];
                    if !chunk.is_empty() {
                        let picked = Picked {
                            x,
                            targets,
                            rows: chunk,
                        };
                        net.gradient_rows(params, picked, member.l2, values, &mut scratch);
                        optimizer.step(params, values);
                    }
                    since_average += 1;
                    if since_average >= member.every.max(1) {
                        average(params, member.size, &tag, combine)?;
                        since_average = 0;
                    }
                }
            }
        }
    }
    if member.sync == SyncMode::Average && since_average > 0 {
        average(params, member.size, "last", combine)?;
    }
    Ok(())
}

fn average(
    params: &mut [f64],
    size: usize,
    tag: &str,
    combine: &mut dyn Combine,
) -> Result<(), MlError> {
    combine.sum(tag, params)?;
    let n = size.max(1) as f64;
    params.iter_mut().for_each(|p| *p /= n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::net::Head;

    /// A group of one adds nothing.
    struct Alone;

    impl Combine for Alone {
        fn sum(&mut self, _tag: &str, _values: &mut [f64]) -> Result<(), MlError> {
            Ok(())
        }
    }

    #[test]
    fn schedules_cover_the_largest_shard() {
        assert_eq!(schedule(10, 3, 4, SyncMode::Allreduce), (2, 2));
        assert_eq!(schedule(10, 3, 4, SyncMode::Average), (4, 1));
        assert_eq!(shard_rows(7, 3, 1), vec![1, 4]);
    }

    #[test]
    fn a_group_of_one_learns() {
        let mut spec = TrainSpec::new(crate::models::find("logistic").unwrap());
        spec.epochs = Some(50);
        spec.batch_size = 4;
        spec.learning_rate = 0.1;
        let x = Matrix {
            rows: 8,
            cols: 1,
            data: vec![-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0],
        };
        let targets = vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let net = Net::new(1, &[], 1, Head::Sigmoid);
        for sync in [SyncMode::Allreduce, SyncMode::Average] {
            let mut params = vec![0.0; net.param_count()];
            let (_, steps) = schedule(8, 1, 4, sync);
            let member = Member {
                rank: 0,
                size: 1,
                sync,
                every: 2,
                steps_per_epoch: steps,
                epochs: spec.epochs_for(8),
                l2: spec.l2_for(8),
            };
            fit_member(&spec, &net, &mut params, &x, &targets, &member, &mut Alone).unwrap();
            assert!(params[0] > 1.0, "{sync:?}: {params:?}");
        }
    }
}
