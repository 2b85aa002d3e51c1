//! flow on AWS Lambda. This crate owns everything that knows Lambda exists: the function
//! role of the `flowc` binary (a sandbox runs one task or training member per invocation,
//! [`function`]), the backend that makes invocations a run's workers ([`backend`]), the
//! signed payload they exchange ([`request`]), deploying the functions ([`deploy`]) and
//! finding what is deployed ([`deployment`], [`names`]). The coordinator and the worker code are the runtime's, unchanged: the
//! backend speaks the worker protocol to the coordinator and turns each task into an
//! invocation.

pub mod backend;
pub mod deploy;
pub mod deployment;
pub mod function;
pub mod names;
pub mod request;

pub use backend::LambdaBackend;
