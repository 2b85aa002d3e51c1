//! The standard library catalogue of flow: the model kinds `train` accepts with their
//! arguments and outputs, the feature functions usable in `features = [...]`, and the metrics
//! `evaluate` computes. The compiler checks programs against these signatures and
//! `flowc explain KIND` prints them. It also holds the kernels (`ml`) that train models,
//! score tables with them, read and write model files and compute the metrics; they work on
//! Arrow record batches and know nothing of processes or channels. `text` turns text into the
//! token ids transformer models read.

pub mod error;
pub mod features;
pub mod metrics;
pub mod ml;
pub mod models;
pub mod spec;
pub mod text;

pub use error::MlError;
pub use spec::{ArgValue, Feature, OptimizerKind, SyncMode, TrainSpec};

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
