//! Distributed execution: a coordinator inside `flowc run` and N workers (`flowc worker`
//! processes locally; the same code behind `lambda_runtime` later). The coordinator cuts each
//! job's DataFusion physical plan into stages at its exchanges, ships each task's plan fragment
//! with datafusion-proto over an authenticated control connection, and moves stage outputs
//! over direct TCP channels or through the run's object store.

pub mod auth;
pub mod backend;
pub mod channels;
pub mod co_located;
pub mod codec;
pub mod collective;
pub mod coordinator;
pub mod exchange;
pub mod faults;
pub mod loaded_models;
pub mod outbox;
pub mod pairing;
pub mod protocol;
pub mod record;
pub mod row_groups;
pub mod stages;
pub mod store;
pub mod training;
pub mod worker;

pub use backend::{Backend, LocalBackend};
pub use coordinator::{ChannelChoice, ClusterOptions, Coordinator};
pub use flow_planner::Channel;
pub use record::{StageRecord, TaskRecord, Watch};
