//! What an exchange costs besides moving bytes, measured on the path a worker takes: dealing
//! rows into buckets by the hash of a key (DataFusion's `BatchPartitioner`), encoding each
//! bucket as one Arrow IPC stream, and, on the other side, decoding it — each per byte of
//! rows in memory, as the planner counts an exchange's bytes.

use super::overheads::median;
use super::{ROUNDS, engine_batches, row_bytes};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use datafusion::physical_expr::Partitioning;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;
use std::time::Instant;

/// Buckets the calibration deals rows into: a shuffle between two workers.
const BUCKETS: usize = 2;

/// Seconds per byte of encoding (dealing included) and of decoding `batch`'s rows, dealt
/// by the hash of `key`.
pub fn measure(batch: &RecordBatch, key: &str) -> Result<(f64, f64)> {
    let bytes = row_bytes(batch);
    let batches = engine_batches(batch);
    let (mut encode, mut decode) = (Vec::new(), Vec::new());
    for round in 0..=ROUNDS {
        let start = Instant::now();
        let streams = deal_and_encode(&batches, key)?;
        let encoded = start.elapsed().as_secs_f64();
        let start = Instant::now();
        for stream in &streams {
            for batch in StreamReader::try_new(std::io::Cursor::new(stream), None)? {
                std::hint::black_box(batch?);
            }
        }
        if round > 0 {
            encode.push(encoded);
            decode.push(start.elapsed().as_secs_f64());
        }
    }
    Ok((median(encode) / bytes, median(decode) / bytes))
}

fn deal_and_encode(batches: &[RecordBatch], key: &str) -> Result<Vec<Vec<u8>>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let schema = first.schema();
    let hash = Partitioning::Hash(vec![col(key, &schema)?], BUCKETS);
    let mut partitioner = BatchPartitioner::try_new(hash, Time::new(), 0, BUCKETS)?;
    let mut buckets: Vec<Vec<RecordBatch>> = vec![Vec::new(); BUCKETS];
    for batch in batches {
        partitioner.partition(batch.clone(), |bucket, part| {
            buckets[bucket].push(part);
            Ok(())
        })?;
    }
    buckets
        .iter()
        .map(|parts| {
            let mut out = Vec::new();
            let mut writer = StreamWriter::try_new(&mut out, &schema)?;
            for part in parts {
                writer.write(part)?;
            }
            writer.finish()?;
            drop(writer);
            Ok(out)
        })
        .collect()
}
