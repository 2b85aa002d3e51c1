//! The one error type of the ML kernels. Every variant is the user's problem (their data,
//! their model file), written as a sentence that says what to do about it.

/// What went wrong while training, running or reading a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MlError {
    /// The data does not fit what the step needs (a null label, an unseen class, ...).
    #[error("{0}")]
    Data(String),
    /// A model file that cannot be read.
    #[error("{0}")]
    ModelFile(String),
}

impl MlError {
    pub fn data(message: impl Into<String>) -> MlError {
        MlError::Data(message.into())
    }

    pub fn model_file(message: impl Into<String>) -> MlError {
        MlError::ModelFile(message.into())
    }
}

impl From<arrow::error::ArrowError> for MlError {
    fn from(e: arrow::error::ArrowError) -> MlError {
        MlError::Data(e.to_string())
    }
}
