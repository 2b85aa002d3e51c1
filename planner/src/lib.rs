//! The flow planner: partitions the logical DAG across serverless functions and chooses, per
//! exchange, a direct channel or a storage hop from a cost model.
//!
//! So far it holds the target [`Profile`]s the cost model will read (`profiles/*.toml`, each
//! figure with its source). Stage formation, the choices and the physical plan are the rest
//! of the planner issue; until they land the CLI has no `flowc plan` and rejects the
//! planner's flags.

pub mod profile;

pub use profile::{Profile, ProfileError};
