//! The models a worker process has loaded, kept for its next tasks: every task of an `infer`
//! step carries its model's bytes, and turning an ONNX file into a runnable tract plan costs
//! milliseconds that a worker scoring one job after another would otherwise pay per task.

use crate::ml::AnyModel;
use std::sync::{Arc, Mutex, OnceLock};

/// Models kept at once; the oldest goes first.
const KEPT: usize = 4;

/// A model's wire form and the model loaded from it.
type Entry = (bool, Vec<u8>, Arc<AnyModel>);

fn kept() -> &'static Mutex<Vec<Entry>> {
    static KEPT_MODELS: OnceLock<Mutex<Vec<Entry>>> = OnceLock::new();
    KEPT_MODELS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The model of a wire form (`onnx` and its file's bytes), loaded once per process.
pub fn load(onnx: bool, bytes: &[u8]) -> Result<Arc<AnyModel>, String> {
    let lock = || {
        kept()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some((_, _, model)) = lock().iter().find(|(o, b, _)| *o == onnx && b == bytes) {
        return Ok(model.clone());
    }
    let model = Arc::new(AnyModel::from_wire(onnx, bytes.to_vec())?);
    let mut models = lock();
    if models.len() == KEPT {
        models.remove(0);
    }
    models.push((onnx, bytes.to_vec(), model.clone()));
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::load;
    use std::sync::Arc;

    #[test]
    fn the_same_bytes_give_the_same_loaded_model() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/models/digits.onnx"
        ))
        .unwrap();
        let first = load(true, &bytes).unwrap();
        let again = load(true, &bytes).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(load(true, b"not a model").is_err());
    }
}
