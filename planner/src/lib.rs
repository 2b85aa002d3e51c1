//! The flow planner: partitions the logical DAG across serverless functions and chooses, per
//! exchange, a direct channel or a storage hop from a cost model.
//!
//! Not implemented yet (issue "Planner"). The crate exists so the layering is in place; it
//! exposes nothing, and the CLI rejects `flowc plan` and the planner's flags until it lands.
