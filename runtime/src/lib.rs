//! The flow runtime: executes compiled pipelines, and measures what the planner needs from the
//! machine (file statistics, `flowc calibrate`). Today it runs the whole DAG in one process
//! through DataFusion (reading files, writing outputs atomically, printing tables); the
//! distributed coordinator, workers, channels and backends are the runtime issue's work and
//! will live behind traits here.

pub mod calibrate;
mod diagnose;
pub mod distributed;
mod exec;
pub mod files;
mod save;
pub mod stats;

pub use exec::{Cluster, RunOptions, RunSummary, collect, run};
pub use files::FileSchemaSource;
pub use stats::FileStatistics;
