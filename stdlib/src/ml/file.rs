//! The native model file: a first line `FLOWMODEL <version>` and the model as JSON. The
//! version is read before anything else, so a file from a newer flow is refused with a clear
//! message instead of being misread.

use super::model::Model;
use crate::error::MlError;

/// The version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &str = "FLOWMODEL";

/// The bytes of a model file.
pub fn to_bytes(model: &Model) -> Vec<u8> {
    let mut out = format!("{MAGIC} {FORMAT_VERSION}\n").into_bytes();
    // A model of plain numbers and strings always serialises; an empty body is never written.
    out.extend(serde_json::to_vec(model).unwrap_or_default());
    out.push(b'\n');
    out
}

/// Reads a model file's bytes; the error says what is wrong with the file.
pub fn from_bytes(bytes: &[u8]) -> Result<Model, MlError> {
    let newline = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let header = std::str::from_utf8(&bytes[..newline]).unwrap_or("");
    let Some(version) = header.strip_prefix(MAGIC) else {
        return Err(MlError::model_file(
            "it is not a flow model: it does not start with `FLOWMODEL` (models are written by \
             `save MODEL to \"file.model\"`)",
        ));
    };
    let version: u32 = version
        .trim()
        .parse()
        .map_err(|_| MlError::model_file(format!("its header `{header}` has no format version")))?;
    if version > FORMAT_VERSION {
        return Err(MlError::model_file(format!(
            "it was written by a newer flow (model format version {version}; this flowc reads up \
             to version {FORMAT_VERSION}); upgrade flowc to use it"
        )));
    }
    serde_json::from_slice(&bytes[newline.min(bytes.len())..])
        .map_err(|e| MlError::model_file(format!("it is damaged: {e}")))
}
