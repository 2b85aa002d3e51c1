//! How a task deals its output rows into the buckets of an exchange's consumers.
//!
//! A hash shuffle sends each row where its key belongs. A scatter or repartition only needs
//! every consumer to get a fair share, and it must not deal whole record batches: a file of
//! fewer rows than one batch (8,192) is one batch, and dealt whole it would give one consumer
//! everything while the others idle — the transformer inference that fans out 2,000 reviews
//! over functions ran on one of them. So each batch is cut into contiguous slices, one per
//! consumer in turn, no smaller than [`MIN_SLICE_ROWS`].

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;

/// The fewest rows a slice holds (unless its batch is smaller): below this a slice's IPC
/// framing and its consumer's per-batch work start to count against the rows in it.
pub const MIN_SLICE_ROWS: usize = 16;

/// Deals batches into `n` buckets.
pub enum Dealer {
    /// Everything to bucket 0.
    One,
    /// By the hash of key columns.
    Hash(BatchPartitioner),
    /// Slices to one bucket after another, `next` first.
    Turns { next: usize, n: usize },
}

impl Dealer {
    /// The dealer for `partitioning` into `n` buckets, for task `task` of its stage: dealing
    /// in turns starts at the task's own bucket, so the tasks of a stage do not all send
    /// their first rows to the same consumer.
    pub fn new(partitioning: Option<Partitioning>, task: usize, n: usize) -> Result<Dealer> {
        Ok(match partitioning {
            Some(p @ Partitioning::Hash(..)) => {
                Dealer::Hash(BatchPartitioner::try_new(p, Time::new(), task % n, n)?)
            }
            Some(Partitioning::RoundRobinBatch(n)) if n > 1 => Dealer::Turns { next: task % n, n },
            _ => Dealer::One,
        })
    }

    /// Hands `batch`'s rows to `write(bucket, rows)`.
    pub fn deal(
        &mut self,
        batch: RecordBatch,
        write: &mut impl FnMut(usize, RecordBatch) -> Result<()>,
    ) -> Result<()> {
        match self {
            Dealer::One => write(0, batch),
            Dealer::Hash(p) => p.partition(batch, write),
            Dealer::Turns { next, n } => {
                let rows = batch.num_rows();
                let pieces = rows.div_ceil(MIN_SLICE_ROWS).clamp(1, *n);
                let size = rows.div_ceil(pieces).max(1);
                let mut at = 0;
                while at < rows {
                    let len = size.min(rows - at);
                    write(*next, batch.slice(at, len))?;
                    *next = (*next + 1) % *n;
                    at += len;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(rows: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap()
    }

    /// The rows each bucket gets, in the order it gets them.
    fn dealt(dealer: &mut Dealer, batches: &[i64], n: usize) -> Vec<Vec<i64>> {
        let mut got = vec![Vec::new(); n];
        for rows in batches {
            dealer
                .deal(batch(*rows), &mut |b, part| {
                    let x = part
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap();
                    got[b].extend(x.values().iter());
                    Ok(())
                })
                .unwrap();
        }
        got
    }

    #[test]
    fn one_small_batch_is_shared_by_every_consumer() {
        let mut d = Dealer::new(Some(Partitioning::RoundRobinBatch(2)), 0, 2).unwrap();
        let got = dealt(&mut d, &[2000], 2);
        assert_eq!(got[0], (0..1000).collect::<Vec<_>>());
        assert_eq!(got[1], (1000..2000).collect::<Vec<_>>());
    }

    #[test]
    fn slices_are_not_cut_below_the_minimum() {
        let mut d = Dealer::new(Some(Partitioning::RoundRobinBatch(8)), 0, 8).unwrap();
        let got = dealt(&mut d, &[40], 8);
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [14, 14, 12, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn turns_go_on_across_batches_and_start_at_the_task() {
        let mut d = Dealer::new(Some(Partitioning::RoundRobinBatch(3)), 4, 3).unwrap();
        let got = dealt(&mut d, &[10, 10, 10], 3);
        // Task 4 starts at bucket 1; each batch of 10 is one slice.
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 10]);
        assert_eq!(got[1], (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn every_row_is_dealt_once() {
        for n in 1..6 {
            let mut d = Dealer::new(Some(Partitioning::RoundRobinBatch(n)), 1, n).unwrap();
            let got = dealt(&mut d, &[1, 17, 100, 8192, 0], n);
            let mut all: Vec<i64> = got.concat();
            all.sort_unstable();
            let mut want: Vec<i64> = [1, 17, 100, 8192].iter().flat_map(|r| 0..*r).collect();
            want.sort_unstable();
            assert_eq!(all, want, "{n} buckets");
        }
    }
}
