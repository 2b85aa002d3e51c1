//! How the compiler learns the schema of a `load` without doing IO itself: through the
//! [`SchemaSource`] trait, implemented over the file system by the runtime and by test fakes.

use datafusion::arrow::datatypes::SchemaRef;

/// The file formats flow reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Csv,
    Parquet,
    Json,
    Arrow,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Csv, Format::Parquet, Format::Json, Format::Arrow];

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Arrow => "arrow",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The format a file extension stands for.
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "csv" | "tsv" => Some(Format::Csv),
            "parquet" | "pq" => Some(Format::Parquet),
            "json" | "jsonl" | "ndjson" => Some(Format::Json),
            "arrow" | "ipc" | "feather" => Some(Format::Arrow),
            _ => None,
        }
    }

    /// The format of a path from its extension (for a glob, the pattern's extension).
    pub fn from_path(path: &str) -> Option<Format> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        name.rsplit_once('.')
            .and_then(|(_, ext)| Format::from_extension(ext))
    }
}

/// Options of a CSV source or sink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CsvOptions {
    pub header: bool,
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            header: true,
            delimiter: b',',
        }
    }
}

/// What the compiler asks about one `load`.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    /// The path as written in the program (relative paths are the source's business).
    pub path: String,
    /// The format the program gave or the extension implies; `None` for a folder.
    pub format: Option<Format>,
    pub csv: CsvOptions,
    /// A declared `schema { ... }`, which wins over what the files say.
    pub declared: Option<SchemaRef>,
}

/// What a [`SchemaSource`] answers about one `load`.
#[derive(Debug, Clone)]
pub struct ResolvedLoad {
    pub schema: SchemaRef,
    pub format: Format,
    /// The files the load reads, as absolute paths or URLs, in a stable order.
    pub files: Vec<String>,
}

/// Tells the compiler the schema of sources. Implementations do the IO.
pub trait SchemaSource {
    /// Resolves a load. The error is a sentence for the user (it becomes an E0020 diagnostic).
    fn resolve(&self, request: &LoadRequest) -> Result<ResolvedLoad, String>;

    /// What a model file (`load "x.model"` or `"x.onnx"`) reads and predicts, so `infer` can be
    /// checked before anything runs. `Ok(None)`: this source cannot tell, and `infer` of the
    /// model is checked when it runs. The error is a sentence for the user (E0020).
    fn resolve_model(&self, path: &str) -> Result<Option<crate::dag::ModelSignature>, String> {
        let _ = path;
        Ok(None)
    }

    /// The tokenizer in the file `path` names (a `tokenizer.json`), for `tokenize`. The error
    /// is a sentence for the user (it becomes an E0036 diagnostic).
    fn tokenizer(
        &self,
        path: &str,
    ) -> Result<std::sync::Arc<flow_stdlib::text::Tokenizer>, String> {
        Err(format!(
            "{path} cannot be read here: this checker reads no tokenizer files"
        ))
    }

    /// Paths beside `path` that exist (the other files of its folder, written the way the
    /// program wrote `path`), for a did-you-mean when `path` does not resolve.
    fn neighbours(&self, path: &str) -> Vec<String> {
        let _ = path;
        Vec::new()
    }

    /// Where a path the program names (a model it loads, a file it saves) is, for whoever
    /// runs the program: resolved once, here, the way loads are (relative to the program's
    /// folder, for files), so nothing downstream joins it to a folder again. A source
    /// without files leaves it as written.
    fn locate(&self, path: &str) -> String {
        path.to_string()
    }
}
