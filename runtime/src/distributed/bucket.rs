//! One bucket of a task's output as it is written: an Arrow IPC stream encoded batch by
//! batch, cut into chunks a reader can have while the task goes on.

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;

/// A chunk is handed over once this much is encoded: large enough that a frame's header and
/// a reader's wake-up are nothing next to it, small enough that a reader starts early. The
/// planner prices pipelined stages by it, so it owns the figure.
pub use flow_planner::physical::CHUNK_BYTES;

/// The encoder of one bucket.
#[derive(Default)]
pub struct Bucket {
    /// Started at the first batch: a bucket dealt no rows stays empty, not even a schema.
    writer: Option<StreamWriter<Vec<u8>>>,
    /// Rows written.
    pub rows: u64,
    /// Bytes encoded, handed over or not.
    pub bytes: u64,
}

impl Bucket {
    /// Encodes `batch` after what the bucket holds.
    pub fn write(
        &mut self,
        schema: &SchemaRef,
        batch: &RecordBatch,
        options: &IpcWriteOptions,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.writer {
            Some(w) => w,
            empty => empty.insert(StreamWriter::try_new_with_options(
                Vec::new(),
                schema,
                options.clone(),
            )?),
        };
        // The schema, written when the stream starts, counts too.
        let before = if self.rows == 0 {
            0
        } else {
            writer.get_ref().len()
        };
        writer.write(batch)?;
        self.bytes += (writer.get_ref().len() - before) as u64;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// What is encoded and not handed over yet, if it makes a chunk.
    pub fn chunk(&mut self) -> Option<Bytes> {
        let held = self.writer.as_mut()?.get_mut();
        (held.len() >= CHUNK_BYTES).then(|| std::mem::take(held).into())
    }

    /// Ends the stream: what is left to hand over, the end marker included; empty for a
    /// bucket that never had a row.
    pub fn finish(&mut self) -> Result<Bytes> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(Bytes::new());
        };
        let before = writer.get_ref().len();
        writer.finish()?;
        self.bytes += (writer.get_ref().len() - before) as u64;
        Ok(std::mem::take(writer.get_mut()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::ipc::reader::StreamReader;
    use std::sync::Arc;

    #[test]
    fn chunks_joined_are_one_stream_with_every_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..50_000))],
        )
        .unwrap();
        let mut bucket = Bucket::default();
        let mut joined = Vec::new();
        let mut chunks = 0;
        for _ in 0..4 {
            bucket
                .write(&schema, &batch, &IpcWriteOptions::default())
                .unwrap();
            if let Some(c) = bucket.chunk() {
                chunks += 1;
                joined.extend_from_slice(&c);
            }
        }
        joined.extend_from_slice(&bucket.finish().unwrap());
        assert!(chunks >= 2, "{chunks} chunks");
        assert_eq!(bucket.bytes, joined.len() as u64);
        let rows: usize = StreamReader::try_new(std::io::Cursor::new(joined), None)
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        assert_eq!((rows, bucket.rows), (200_000, 200_000));
    }

    #[test]
    fn a_bucket_without_rows_is_empty() {
        let mut bucket = Bucket::default();
        assert!(bucket.chunk().is_none());
        assert!(bucket.finish().unwrap().is_empty());
        assert_eq!((bucket.rows, bucket.bytes), (0, 0));
    }
}
