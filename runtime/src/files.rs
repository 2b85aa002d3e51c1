//! The file-system [`SchemaSource`]: resolves `load` paths (relative to the `.flow` file's
//! folder; files, globs and folders) and reads their schemas from Parquet/Arrow metadata or a
//! sample of CSV/JSON rows.

use datafusion::arrow::datatypes::Schema;
use flow_compiler::{Format, LoadRequest, ModelSignature, ResolvedLoad, SchemaSource};
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many rows of a CSV or JSON file are read to infer its schema.
const SAMPLE_ROWS: usize = 1000;

/// Resolves sources on the local file system.
#[derive(Debug, Clone)]
pub struct FileSchemaSource {
    base: PathBuf,
}

impl FileSchemaSource {
    /// Paths in the program are resolved against `base`, the folder of the `.flow` file.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        FileSchemaSource { base: base.into() }
    }

    pub fn resolve_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn list_folder(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            list_folder(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

impl SchemaSource for FileSchemaSource {
    fn resolve_model(&self, path: &str) -> Result<Option<ModelSignature>, String> {
        crate::ml::load::signature(&self.resolve_path(path))
    }

    fn tokenizer(&self, path: &str) -> Result<Arc<flow_stdlib::text::Tokenizer>, String> {
        let full = self.resolve_path(path);
        let bytes = crate::ml::load::read(&full)?;
        flow_stdlib::text::Tokenizer::from_bytes(bytes, &full.display().to_string()).map(Arc::new)
    }

    fn neighbours(&self, path: &str) -> Vec<String> {
        let written = Path::new(path);
        let folder = written.parent().unwrap_or(Path::new(""));
        let Ok(entries) = std::fs::read_dir(self.resolve_path(&folder.display().to_string()))
        else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| folder.join(e.file_name()).display().to_string())
            .collect()
    }

    fn locate(&self, path: &str) -> String {
        self.resolve_path(path).display().to_string()
    }

    fn resolve(&self, request: &LoadRequest) -> Result<ResolvedLoad, String> {
        if request.path.contains("://") {
            return Err(
                "object-store URIs are not supported by the local engine yet; use a local path"
                    .into(),
            );
        }
        let full = self.resolve_path(&request.path);
        let mut files = Vec::new();
        if is_glob(&request.path) {
            let pattern = full.to_string_lossy().to_string();
            let paths = glob::glob(&pattern).map_err(|e| format!("bad glob pattern: {e}"))?;
            for p in paths.flatten() {
                if p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(format!("no file matches the pattern {}", full.display()));
            }
        } else if full.is_dir() {
            list_folder(&full, &mut files)
                .map_err(|e| format!("cannot list the folder {}: {e}", full.display()))?;
        } else if full.is_file() {
            files.push(full.clone());
        } else {
            return Err(format!("{} does not exist", full.display()));
        }
        let format = match request.format {
            Some(f) => f,
            None => files
                .iter()
                .find_map(|f| Format::from_path(&f.to_string_lossy()))
                .ok_or_else(|| {
                    "cannot tell the format from the file names; add `as csv|parquet|json|arrow`"
                        .to_string()
                })?,
        };
        if full.is_dir() && request.format.is_none() {
            files.retain(|f| Format::from_path(&f.to_string_lossy()) == Some(format));
        }
        if files.is_empty() {
            return Err(format!(
                "the folder {} holds no {} files",
                full.display(),
                format.name()
            ));
        }
        let schema = match &request.declared {
            Some(declared) => declared.clone(),
            None => {
                let mut schemas = Vec::new();
                for file in files.iter().take(16) {
                    schemas.push(
                        read_schema(file, format, request)
                            .map_err(|e| format!("{}: {e}", file.display()))?,
                    );
                }
                let merged = Schema::try_merge(schemas)
                    .map_err(|e| format!("the files disagree on their columns: {e}"))?;
                Arc::new(merged)
            }
        };
        let files = files
            .iter()
            .map(|f| f.to_string_lossy().to_string())
            .collect();
        Ok(ResolvedLoad {
            schema,
            format,
            files,
        })
    }
}

fn read_schema(path: &Path, format: Format, request: &LoadRequest) -> Result<Schema, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    match format {
        Format::Csv => {
            let mut reader = BufReader::new(file);
            let csv = datafusion::arrow::csv::reader::Format::default()
                .with_header(request.csv.header)
                .with_delimiter(request.csv.delimiter);
            let (schema, _) = csv
                .infer_schema(&mut reader, Some(SAMPLE_ROWS))
                .map_err(|e| e.to_string())?;
            Ok(schema)
        }
        Format::Json => {
            let mut reader = BufReader::new(file);
            let (schema, _) = datafusion::arrow::json::reader::infer_json_schema_from_seekable(
                &mut reader,
                Some(SAMPLE_ROWS),
            )
            .map_err(|e| e.to_string())?;
            reader.rewind().map_err(|e| e.to_string())?;
            Ok(schema)
        }
        Format::Parquet => {
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| format!("not a readable Parquet file ({e})"))?;
            let mut schema = builder.schema().as_ref().clone();
            schema.metadata.clear();
            Ok(schema)
        }
        Format::Arrow => {
            let reader = datafusion::arrow::ipc::reader::FileReader::try_new(file, None)
                .map_err(|e| format!("not a readable Arrow IPC file ({e})"))?;
            Ok(reader.schema().as_ref().clone())
        }
    }
}
