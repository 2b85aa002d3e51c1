//! The kernels behind `train`, `infer` and `evaluate`: feature encoding, the dense network
//! and k-means, the optimisers, trained models and their file format.

pub mod encode;
pub mod evaluate;
pub mod file;
pub mod kmeans;
pub mod matrix;
pub mod model;
pub mod net;
pub mod optim;
pub mod parallel;
pub mod train;

pub use matrix::Matrix;
pub use model::{Body, Model};
