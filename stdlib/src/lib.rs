//! The standard library catalogue of flow: the model kinds `train` accepts with their
//! arguments and outputs, the feature functions usable in `features = [...]`, and the metrics
//! `evaluate` computes. The compiler checks programs against these signatures and
//! `flowc explain KIND` prints them. It also holds the numeric kernels models are built from
//! (so far the logistic score and SGD pass that `flowc calibrate` times); the full training,
//! inference and ONNX kernels are the ML standard library work.

pub mod features;
pub mod kernels;
pub mod metrics;
pub mod models;

pub use features::{FEATURE_FUNCTIONS, FeatureFunction};
pub use metrics::{CLASSIFICATION_METRICS, CLUSTERING_METRICS, REGRESSION_METRICS};
pub use models::{ArgType, MODEL_KINDS, ModelArg, ModelKind, Task};

/// A documented entry that `flowc explain NAME` can print.
pub fn explain(name: &str) -> Option<String> {
    if name == "train" {
        let mut out = String::from(
            "train KIND(ARGS) — consumes a table and yields a model.\n\nModel kinds:\n",
        );
        for kind in MODEL_KINDS {
            out.push_str(&format!("  {:<9} {}\n", kind.name, kind.doc));
        }
        out.push_str("\n`flowc explain KIND` lists a kind's arguments.\n");
        return Some(out);
    }
    if let Some(kind) = models::find(name) {
        return Some(kind.explain());
    }
    features::find(name).map(FeatureFunction::explain)
}
