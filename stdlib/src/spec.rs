//! What a `train` step asks for, after the compiler checked it against the catalogue: the
//! model kind, its label and features, and every argument with the catalogue's defaults
//! filled in. The runtime trains from this alone.

use crate::models::{ArgType, ModelKind};
use serde::{Deserialize, Serialize};

/// A feature as written in `features = [...]`, before training has seen the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Feature {
    /// A numeric or boolean column, standardised by the model.
    Numeric { column: String },
    /// One indicator per category seen in training (`categories` is filled by training).
    OneHot {
        column: String,
        categories: Vec<String>,
    },
    /// Hashed counts of lower-cased words and word n-grams of a text column.
    BagOfWords {
        column: String,
        buckets: usize,
        ngrams: usize,
    },
}

impl Feature {
    pub fn column(&self) -> &str {
        match self {
            Feature::Numeric { column }
            | Feature::OneHot { column, .. }
            | Feature::BagOfWords { column, .. } => column,
        }
    }

    /// How many model inputs this feature becomes.
    pub fn width(&self) -> usize {
        match self {
            Feature::Numeric { .. } => 1,
            Feature::OneHot { categories, .. } => categories.len(),
            Feature::BagOfWords { buckets, .. } => *buckets,
        }
    }
}

/// The update rule of gradient training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
}

/// How data-parallel workers combine what they learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    Allreduce,
    ScatterReduce,
    Average,
}

impl SyncMode {
    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Allreduce => "allreduce",
            SyncMode::ScatterReduce => "scatter_reduce",
            SyncMode::Average => "average",
        }
    }

    pub fn parse(name: &str) -> Option<SyncMode> {
        [
            SyncMode::Allreduce,
            SyncMode::ScatterReduce,
            SyncMode::Average,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// One argument's value as the program gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgValue {
    Int(i64),
    Float(f64),
    Text(String),
    Ints(Vec<i64>),
    Column(String),
    Features(Vec<Feature>),
}

/// Everything training needs to know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    pub kind: String,
    pub label: Option<String>,
    pub features: Vec<Feature>,
    /// `None`: [`TrainSpec::epochs_for`] the training rows.
    pub epochs: Option<usize>,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    /// `None`: [`TrainSpec::l2_for`] the training rows.
    pub l2: Option<f64>,
    pub seed: u64,
    pub hidden: Vec<usize>,
    pub k: usize,
    pub max_iter: usize,
    pub n_init: usize,
    /// `None`: the planner chooses.
    pub sync: Option<SyncMode>,
}

/// Optimiser steps the default number of epochs gives at least: enough for the linear models
/// to settle at their optimum (a 455-row data set reaches scikit-learn's after about 500).
pub const DEFAULT_STEPS: usize = 1_000;
/// The fewest and most passes the default gives.
pub const DEFAULT_EPOCHS: std::ops::RangeInclusive<usize> = 10..=1_000;

/// The default passes over `rows` rows in batches of `batch_size` (what the planner prices
/// and training runs): enough for [`DEFAULT_STEPS`] steps, within [`DEFAULT_EPOCHS`].
pub fn default_epochs(rows: usize, batch_size: usize) -> usize {
    let steps = rows.div_ceil(batch_size.max(1)).max(1);
    DEFAULT_STEPS
        .div_ceil(steps)
        .clamp(*DEFAULT_EPOCHS.start(), *DEFAULT_EPOCHS.end())
}

impl TrainSpec {
    /// Passes over `rows` training rows: as the program says, or enough for
    /// [`DEFAULT_STEPS`] steps of `batch_size` rows, within [`DEFAULT_EPOCHS`]. A small
    /// table takes many passes, a large one the fewest: the steps are what converge.
    pub fn epochs_for(&self, rows: usize) -> usize {
        self.epochs
            .unwrap_or_else(|| default_epochs(rows, self.batch_size))
    }

    /// The L2 penalty for `rows` training rows: as the program says, or `1 / rows`,
    /// scikit-learn's `C = 1` on the mean loss (the catalogue gives linear regression and
    /// the network `0.0`).
    pub fn l2_for(&self, rows: usize) -> f64 {
        self.l2.unwrap_or(1.0 / rows.max(1) as f64)
    }

    /// The spec of `kind` with every default of the catalogue applied.
    pub fn new(kind: &ModelKind) -> TrainSpec {
        let mut spec = TrainSpec {
            kind: kind.name.to_string(),
            label: None,
            features: Vec::new(),
            epochs: None,
            learning_rate: 0.01,
            batch_size: 256,
            optimizer: OptimizerKind::Adam,
            l2: None,
            seed: 0,
            hidden: Vec::new(),
            k: 8,
            max_iter: 100,
            n_init: 3,
            sync: None,
        };
        for arg in kind.args {
            let Some(default) = arg.default else { continue };
            let value = match arg.ty {
                ArgType::Int => default.parse().ok().map(ArgValue::Int),
                ArgType::Float => default.parse().ok().map(ArgValue::Float),
                ArgType::IntList => {
                    let inner = default.trim_start_matches('[').trim_end_matches(']');
                    inner
                        .split(',')
                        .map(|n| n.trim().parse().ok())
                        .collect::<Option<Vec<i64>>>()
                        .map(ArgValue::Ints)
                }
                ArgType::Choice(_) => Some(ArgValue::Text(default.trim_matches('"').to_string())),
                ArgType::Column | ArgType::Features => None,
            };
            if let Some(value) = value {
                spec.set(arg.name, value);
            }
        }
        spec
    }

    /// Sets one argument. Values were checked against the catalogue by the compiler; a value of
    /// the wrong shape is ignored.
    pub fn set(&mut self, name: &str, value: ArgValue) {
        let count = |v: i64| usize::try_from(v).unwrap_or(0).max(1);
        match (name, value) {
            ("label", ArgValue::Column(c)) => self.label = Some(c),
            ("features", ArgValue::Features(f)) => self.features = f,
            ("epochs", ArgValue::Int(v)) => self.epochs = Some(count(v)),
            ("batch_size", ArgValue::Int(v)) => self.batch_size = count(v),
            ("k", ArgValue::Int(v)) => self.k = count(v),
            ("max_iter", ArgValue::Int(v)) => self.max_iter = count(v),
            ("n_init", ArgValue::Int(v)) => self.n_init = count(v),
            ("seed", ArgValue::Int(v)) => self.seed = v as u64,
            ("learning_rate", ArgValue::Float(v)) => self.learning_rate = v,
            ("learning_rate", ArgValue::Int(v)) => self.learning_rate = v as f64,
            ("l2", ArgValue::Float(v)) => self.l2 = Some(v),
            ("l2", ArgValue::Int(v)) => self.l2 = Some(v as f64),
            ("hidden", ArgValue::Ints(v)) => self.hidden = v.into_iter().map(count).collect(),
            ("optimizer", ArgValue::Text(t)) => {
                self.optimizer = if t == "sgd" {
                    OptimizerKind::Sgd
                } else {
                    OptimizerKind::Adam
                }
            }
            ("sync", ArgValue::Text(t)) => self.sync = SyncMode::parse(&t),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_catalogue() {
        let mlp = TrainSpec::new(crate::models::find("mlp").unwrap());
        assert_eq!(mlp.hidden, vec![64]);
        assert_eq!(mlp.epochs, None);
        assert_eq!(mlp.l2, Some(0.0));
        assert_eq!(mlp.optimizer, OptimizerKind::Adam);
        assert_eq!(mlp.sync, None);
        let kmeans = TrainSpec::new(crate::models::find("kmeans").unwrap());
        assert_eq!(kmeans.max_iter, 100);
        let logistic = TrainSpec::new(crate::models::find("logistic").unwrap());
        assert_eq!(logistic.l2, None);
        assert_eq!(logistic.l2_for(400), 1.0 / 400.0);
        let linear = TrainSpec::new(crate::models::find("linear").unwrap());
        assert_eq!(linear.l2_for(400), 0.0);
    }

    #[test]
    fn the_default_epochs_give_enough_steps_whatever_the_rows() {
        let mut spec = TrainSpec::new(crate::models::find("logistic").unwrap());
        // 455 rows in batches of 256: two steps a pass, 500 passes.
        assert_eq!(spec.epochs_for(455), 500);
        // Far more rows than steps: the fewest passes.
        assert_eq!(spec.epochs_for(10_000_000), 10);
        // One row: the most passes.
        assert_eq!(spec.epochs_for(1), 1_000);
        for rows in [1usize, 300, 455, 5_000, 100_000, 10_000_000] {
            let steps = rows.div_ceil(spec.batch_size) * spec.epochs_for(rows);
            assert!(steps >= DEFAULT_STEPS, "{rows} rows: {steps} steps");
        }
        spec.set("epochs", ArgValue::Int(3));
        assert_eq!(spec.epochs_for(455), 3);
    }
}
