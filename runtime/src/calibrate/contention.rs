//! How fast work that misses the caches runs in each of several functions sharing this
//! machine: a grouping into a table larger than the caches, timed alone on one core, then
//! on every core at once. The workers of a local run are such functions: they share the
//! last cache and the memory bandwidth, so two of them building large hash tables do not
//! go twice as fast. Work that streams through the caches is not slowed this way.

use super::{ROUNDS, in_batches, overheads::median};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::{Arc, Barrier};
use std::time::Instant;

const WORK: [&str; 1] = ["SELECT u / 2 AS g, count(*) FROM t GROUP BY u / 2"];

/// Each of `cores` copies of the work running at once, in speed relative to one alone.
pub fn measure(table: &RecordBatch, cores: usize) -> Result<f64, String> {
    let alone = median((0..ROUNDS).map(|_| run(table)).collect::<Result<_, _>>()?);
    let start = Arc::new(Barrier::new(cores));
    let together: Vec<f64> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..cores)
            .map(|_| {
                let start = start.clone();
                scope.spawn(move || {
                    start.wait();
                    run(table)
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| {
                r.join()
                    .map_err(|_| "a calibration thread failed".to_string())?
            })
            .collect::<Result<_, String>>()
    })?;
    let each = together.iter().sum::<f64>() / together.len().max(1) as f64;
    Ok((alone / each).clamp(0.1, 1.0))
}

/// Seconds of the work on one core, in a runtime and session of its own.
fn run(table: &RecordBatch) -> Result<f64, String> {
    let fail = |e: datafusion::error::DataFusionError| e.to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        ctx.register_table("t", in_batches(table).map_err(fail)?)
            .map_err(fail)?;
        // Plans are made first: only the work is timed.
        let mut plans = Vec::new();
        for sql in WORK {
            plans.push(
                ctx.sql(sql)
                    .await
                    .map_err(fail)?
                    .create_physical_plan()
                    .await
                    .map_err(fail)?,
            );
        }
        let start = Instant::now();
        for plan in plans {
            datafusion::physical_plan::collect(plan, ctx.task_ctx())
                .await
                .map_err(fail)?;
        }
        Ok(start.elapsed().as_secs_f64())
    })
}
