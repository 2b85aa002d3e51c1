//! The flow runtime: executes compiled pipelines, and measures what the planner needs from the
//! machine (file statistics, `flowc calibrate`). It runs a whole DAG in one process through
//! DataFusion (reading files, writing outputs atomically, printing tables), or, through
//! [`distributed`], across worker processes: a coordinator, workers started by a `Backend`,
//! the planner's stages lowered to DataFusion task plans, direct TCP and storage channels. [`ml`] runs the
//! ML steps with the standard library's kernels: training (data-parallel across workers),
//! inference as a DataFusion operator that travels with its model, ONNX models via tract.

pub mod calibrate;
mod diagnose;
pub mod distributed;
mod exec;
pub mod files;
pub mod interrupt;
pub mod ml;
mod remembered;
mod save;
pub mod stats;

pub use exec::{Cluster, RunOptions, RunSummary, Saved, collect, run};
pub use files::FileSchemaSource;
pub use stats::FileStatistics;
