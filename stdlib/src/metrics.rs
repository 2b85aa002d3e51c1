//! The metrics `evaluate` computes, by task, in output column order.

pub const CLASSIFICATION_METRICS: &[&str] =
    &["accuracy", "precision", "recall", "f1", "auc", "log_loss"];
pub const REGRESSION_METRICS: &[&str] = &["rmse", "mae", "r2"];
pub const CLUSTERING_METRICS: &[&str] = &["inertia"];
