//! Reading model files: flow's own `.model` files (and, for `infer`, ONNX files), and the
//! signature the compiler checks `infer` against.

use datafusion::arrow::datatypes::DataType;
use flow_compiler::ModelSignature;
use flow_stdlib::ml::Model;
use flow_stdlib::ml::file;
use std::path::Path;

/// The bytes of the file `path`; the error is a sentence about the file.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })
}

/// A native model read from `path`; the error is a sentence about the file.
pub fn native(path: &Path) -> Result<Model, String> {
    let bytes = read(path)?;
    file::from_bytes(&bytes).map_err(|e| format!("{} cannot be used: {e}", path.display()))
}

/// What the model in `path` reads and predicts. An ONNX model that does not name its input
/// columns has none to check.
pub fn signature(path: &Path) -> Result<Option<ModelSignature>, String> {
    if is_onnx(path) {
        return Ok(Some(onnx_signature(&super::load_onnx(path)?)));
    }
    native(path).map(|model| Some(signature_of(&model)))
}

/// What an ONNX model reads and predicts, as far as its file says.
fn onnx_signature(model: &super::AnyModel) -> ModelSignature {
    match model {
        super::AnyModel::Transformer(t) => ModelSignature {
            kind: "onnx transformer".into(),
            task: flow_stdlib::models::Task::Classification,
            inputs: t
                .column
                .iter()
                .map(|c| (c.clone(), flow_stdlib::text::token_type()))
                .collect(),
            label: Some(("label".to_string(), DataType::Int64)),
            transformer: Some(t.shape),
        },
        super::AnyModel::Onnx(model) => ModelSignature {
            kind: "onnx".into(),
            task: model.task,
            inputs: model
                .inputs
                .iter()
                .flatten()
                .map(|c| (c.clone(), DataType::Float64))
                .collect(),
            label: (model.task == flow_stdlib::models::Task::Classification)
                .then(|| ("label".to_string(), DataType::Int64)),
            transformer: None,
        },
        super::AnyModel::Flow(model) => signature_of(model),
    }
}

pub fn is_onnx(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The compiler's view of a trained model.
pub fn signature_of(model: &Model) -> ModelSignature {
    let ty = |name: &str| name.parse::<DataType>().unwrap_or(DataType::Null);
    ModelSignature {
        kind: model.kind.clone(),
        task: model.task,
        inputs: model
            .inputs
            .iter()
            .map(|i| (i.column.clone(), ty(&i.data_type)))
            .collect(),
        label: model
            .label
            .as_ref()
            .map(|l| (l.column.clone(), ty(&l.data_type))),
        transformer: None,
    }
}
