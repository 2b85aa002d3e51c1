//! Atomic `save`: every output is written under a temporary name beside its target and renamed
//! into place only when the whole run has succeeded. Dropping uncommitted outputs deletes them.

use crate::interrupt::{Registered, on_interrupt};
use arrow::csv::WriterBuilder;
use arrow::json::LineDelimitedWriter;
use datafusion::execution::SendableRecordBatchStream;
use flow_compiler::{CsvOptions, Format};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

pub enum SaveError {
    Engine(datafusion::error::DataFusionError),
    Io(String),
}

/// Outputs written but not yet in place.
#[derive(Default)]
pub struct Pending {
    files: Vec<(PathBuf, PathBuf)>,
    interrupt: Vec<Registered>,
}

fn temp_name(target: &Path, n: usize) -> PathBuf {
    let name = target
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_else(|| "output".into());
    target.with_file_name(format!(".{name}.flow-tmp-{}-{n}", std::process::id()))
}

impl Pending {
    /// Writes the stream to a temporary file for `target`; returns the number of rows.
    pub async fn write(
        &mut self,
        target: &Path,
        format: Format,
        csv: &CsvOptions,
        mut stream: SendableRecordBatchStream,
    ) -> Result<usize, SaveError> {
        let io = |e: &dyn std::fmt::Display| {
            SaveError::Io(format!("cannot write {}: {e}", target.display()))
        };
        let file = self.create(target)?;
        let schema = stream.schema();
        let mut rows = 0;
        let out = BufWriter::new(file);
        match format {
            Format::Parquet => {
                let mut writer = ArrowWriter::try_new(out, schema, None).map_err(|e| io(&e))?;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(SaveError::Engine)?;
                    rows += batch.num_rows();
                    writer.write(&batch).map_err(|e| io(&e))?;
                }
                writer.close().map_err(|e| io(&e))?;
            }
            Format::Csv => {
                let mut writer = WriterBuilder::new()
                    .with_header(csv.header)
                    .with_delimiter(csv.delimiter)
                    .build(out);
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(SaveError::Engine)?;
                    rows += batch.num_rows();
                    writer.write(&batch).map_err(|e| io(&e))?;
                }
                writer.into_inner().into_inner().map_err(|e| io(&e))?;
            }
            Format::Json | Format::Arrow => {
                let mut writer = LineDelimitedWriter::new(out);
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(SaveError::Engine)?;
                    rows += batch.num_rows();
                    writer.write(&batch).map_err(|e| io(&e))?;
                }
                writer.finish().map_err(|e| io(&e))?;
                writer.into_inner().into_inner().map_err(|e| io(&e))?;
            }
        }
        Ok(rows)
    }

    /// Writes `bytes` to a temporary file for `target` (a model file).
    pub fn write_bytes(&mut self, target: &Path, bytes: &[u8]) -> Result<(), SaveError> {
        use std::io::Write as _;
        let mut file = self.create(target)?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| SaveError::Io(format!("cannot write {}: {e}", target.display())))
    }

    /// The temporary file of `target`, registered for removal unless committed.
    fn create(&mut self, target: &Path) -> Result<File, SaveError> {
        let io = |e: &dyn std::fmt::Display| {
            SaveError::Io(format!("cannot write {}: {e}", target.display()))
        };
        if target.is_dir() {
            return Err(SaveError::Io(format!(
                "{} is a folder; save to a file path",
                target.display()
            )));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(&e))?;
        }
        let temp = temp_name(target, self.files.len());
        let file = File::create(&temp).map_err(|e| io(&e))?;
        // Registered before writing so a failure part-way still removes the temporary file.
        self.files.push((temp.clone(), target.to_path_buf()));
        self.interrupt.push(on_interrupt(move || {
            let _ = std::fs::remove_file(temp);
        }));
        Ok(file)
    }

    /// Moves every output into place.
    pub fn commit(mut self) -> Result<(), String> {
        for (temp, target) in std::mem::take(&mut self.files) {
            std::fs::rename(&temp, &target)
                .map_err(|e| format!("cannot move the output into {}: {e}", target.display()))?;
        }
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        for (temp, _) in &self.files {
            let _ = std::fs::remove_file(temp);
        }
    }
}
