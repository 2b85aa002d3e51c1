//! Model kinds and their arguments.

use std::fmt::Write as _;

/// What a model predicts, which decides its output columns and the metrics of `evaluate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Regression,
    Classification,
    Clustering,
}

/// The type of a training argument's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// A column of the training table.
    Column,
    /// A list of columns or feature functions.
    Features,
    Int,
    Float,
    /// A list of positive integers.
    IntList,
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
}

impl ArgType {
    pub fn describe(self) -> String {
        match self {
            ArgType::Column => "a column".into(),
            ArgType::Features => "a list of columns or feature functions".into(),
            ArgType::Int => "an integer".into(),
            ArgType::Float => "a number".into(),
            ArgType::IntList => "a list of integers".into(),
            ArgType::Choice(options) => {
                format!(
                    "one of {}",
                    options
                        .iter()
                        .map(|o| format!("\"{o}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        }
    }
}

#[derive(Debug)]
pub struct ModelArg {
    pub name: &'static str,
    pub ty: ArgType,
    /// `None` when the argument is required.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

#[derive(Debug)]
pub struct ModelKind {
    pub name: &'static str,
    pub task: Task,
    pub doc: &'static str,
    pub args: &'static [ModelArg],
}

const SYNC: ModelArg = ModelArg {
    name: "sync",
    ty: ArgType::Choice(&["allreduce", "scatter_reduce", "average"]),
    default: Some("chosen by the planner"),
    doc: "how data-parallel workers combine their updates",
};
const FEATURES: ModelArg = ModelArg {
    name: "features",
    ty: ArgType::Features,
    default: None,
    doc: "the input columns or feature functions",
};
const LABEL: ModelArg = ModelArg {
    name: "label",
    ty: ArgType::Column,
    default: None,
    doc: "the column to predict",
};
const EPOCHS: ModelArg = ModelArg {
    name: "epochs",
    ty: ArgType::Int,
    default: Some("enough passes for 1,000 optimiser steps, from 10 to 1,000"),
    doc: "passes over the data",
};
const LEARNING_RATE: ModelArg = ModelArg {
    name: "learning_rate",
    ty: ArgType::Float,
    default: Some("0.01"),
    doc: "step size of the optimiser",
};
const BATCH_SIZE: ModelArg = ModelArg {
    name: "batch_size",
    ty: ArgType::Int,
    default: Some("256"),
    doc: "rows per minibatch",
};
const OPTIMIZER: ModelArg = ModelArg {
    name: "optimizer",
    ty: ArgType::Choice(&["sgd", "adam"]),
    default: Some("\"adam\""),
    doc: "the update rule",
};
const L2: ModelArg = ModelArg {
    name: "l2",
    ty: ArgType::Float,
    default: Some("0.0"),
    doc: "L2 regularisation strength (the penalty `l2/2 · ‖w‖²` on the mean loss)",
};
/// The classifiers' penalty defaults to scikit-learn's `LogisticRegression(C = 1)`, whose
/// optimum is what their default training reaches.
const L2_CLASSIFIER: ModelArg = ModelArg {
    default: Some("1 / training rows (scikit-learn's C = 1)"),
    ..L2
};
const SEED: ModelArg = ModelArg {
    name: "seed",
    ty: ArgType::Int,
    default: Some("0"),
    doc: "seed of initialisation and shuffling",
};

/// The arguments of linear regression, trained by gradient descent.
const SUPERVISED: &[ModelArg] = &[
    LABEL,
    FEATURES,
    EPOCHS,
    LEARNING_RATE,
    BATCH_SIZE,
    OPTIMIZER,
    L2,
    SEED,
    SYNC,
];

/// The arguments of the linear classifiers.
const CLASSIFIER: &[ModelArg] = &[
    LABEL,
    FEATURES,
    EPOCHS,
    LEARNING_RATE,
    BATCH_SIZE,
    OPTIMIZER,
    L2_CLASSIFIER,
    SEED,
    SYNC,
];

/// Every model kind of the standard library.
pub const MODEL_KINDS: &[ModelKind] = &[
    ModelKind {
        name: "linear",
        task: Task::Regression,
        doc: "linear regression (squared loss); outputs `prediction`",
        args: SUPERVISED,
    },
    ModelKind {
        name: "logistic",
        task: Task::Classification,
        doc: "binary logistic regression; outputs `probability` (of the second class, labels in their natural order) and `prediction` (the second class when `probability` ≥ 0.5)",
        args: CLASSIFIER,
    },
    ModelKind {
        name: "softmax",
        task: Task::Classification,
        doc: "multinomial logistic regression; outputs `prediction` (the most probable class) and `probability` (its probability)",
        args: CLASSIFIER,
    },
    ModelKind {
        name: "mlp",
        task: Task::Classification,
        doc: "multi-layer perceptron classifier (ReLU); outputs `prediction` and `probability`",
        args: &[
            LABEL,
            FEATURES,
            ModelArg {
                name: "hidden",
                ty: ArgType::IntList,
                default: Some("[64]"),
                doc: "sizes of the hidden layers",
            },
            EPOCHS,
            LEARNING_RATE,
            BATCH_SIZE,
            OPTIMIZER,
            L2,
            SEED,
            SYNC,
        ],
    },
    ModelKind {
        name: "kmeans",
        task: Task::Clustering,
        doc: "k-means clustering of the features as given (not standardised); outputs `prediction` (the cluster index) and `distance` (squared distance to its centre)",
        args: &[
            FEATURES,
            ModelArg {
                name: "k",
                ty: ArgType::Int,
                default: None,
                doc: "number of clusters",
            },
            ModelArg {
                name: "max_iter",
                ty: ArgType::Int,
                default: Some("100"),
                doc: "iterations of Lloyd's algorithm",
            },
            ModelArg {
                name: "n_init",
                ty: ArgType::Int,
                default: Some("3"),
                doc: "runs from different k-means++ starts; the one of lowest inertia is kept",
            },
            SEED,
            SYNC,
        ],
    },
];

/// The model kind of this name.
pub fn find(name: &str) -> Option<&'static ModelKind> {
    MODEL_KINDS.iter().find(|k| k.name == name)
}

impl ModelKind {
    pub fn arg(&self, name: &str) -> Option<&'static ModelArg> {
        self.args.iter().find(|a| a.name == name)
    }

    /// The long documentation printed by `flowc explain KIND`.
    pub fn explain(&self) -> String {
        let mut out = format!("{} — {}\n\nArguments:\n", self.name, self.doc);
        for arg in self.args {
            let default = arg
                .default
                .map_or("required".to_string(), |d| format!("default {d}"));
            let _ = writeln!(
                out,
                "  {:<14} {} ({default}): {}",
                arg.name,
                arg.ty.describe(),
                arg.doc
            );
        }
        out
    }
}
