//! Distributed execution: a coordinator inside `flowc run` and N workers (`flowc worker`
//! processes locally; the same code behind `lambda_runtime` later). The coordinator runs the
//! planner's stages as they are planned (`lowering`: each stage's operators become a
//! DataFusion plan per output, cut where the plan puts exchanges), ships each task's plans
//! with datafusion-proto over an authenticated control connection, and moves stage outputs
//! over the channel the plan chose: direct TCP, or the run's object store.

pub mod auth;
pub mod backend;
pub mod bucket;
pub mod channels;
pub mod codec;
pub mod collective;
pub mod coordinator;
pub mod cpu;
pub mod dealer;
pub mod estimated;
pub mod exchange;
pub mod faults;
pub mod loaded_models;
pub mod lowering;
pub mod outbox;
pub mod peak;
pub mod protocol;
pub mod punched;
pub mod record;
pub mod rendezvous;
pub mod row_groups;
pub mod store;
pub mod training;
pub mod worker;

pub use backend::{Backend, LocalBackend};
pub use coordinator::{ClusterOptions, Coordinator};
pub use flow_planner::Channel;
pub use record::{ExchangeRecord, StageRecord, TaskRecord, Watch};
