//! The operator graph: the planner's input IR. The compiler's DAG inlines every binding into
//! the plans that use it; lowering walks the plans that actually run (those feeding a sink or
//! a model step), makes one operator per relational node, merges operators that compute the
//! same thing, and remembers where each came from so the runtime can cut the DataFusion plan
//! at the same places. Generated graphs (property tests, benchmarks) are built directly.

use crate::needs::Lowered;
use crate::stats::{self, ColumnBytes, SourceStats, Statistics};
use crate::trace;
use datafusion::common::Column;
use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Expr, FetchType, LogicalPlan, Operator};
use datafusion::scalar::ScalarValue;
use flow_compiler::{Dag, ModelSignature, NodeId, NodeKind, SinkKind, node_of_scan};
use flow_stdlib::{Feature, TrainSpec};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// Index of an operator in its [`OpGraph`].
pub type OpId = usize;

/// What an operator does, with what the cost model needs to know about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    /// Reads the files of a `load`.
    Scan {
        /// The binding or path the program loads.
        source: String,
        /// `csv`, `parquet`, `json` or `arrow`.
        format: String,
        /// Files matched.
        files: u32,
        /// Size and rows, as the statistics saw them.
        stats: SourceStats,
        /// What the columns the program reads hold, when the format stores columns apart
        /// (Parquet) and the statistics could measure them; otherwise every byte is read
        /// and parsed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<ColumnBytes>,
    },
    /// Reads a model file.
    ModelLoad {
        /// The model file.
        path: String,
        /// Its size.
        bytes: u64,
        /// A transformer's shape, which prices its scoring.
        transformer: Option<flow_compiler::TransformerShape>,
    },
    /// Keeps the rows matching a predicate.
    Filter {
        /// Fraction of rows kept, measured on a sample of the source every column of the
        /// predicate comes from; `None` when the predicate spans sources or computed columns
        /// (then [`stats::FILTER_SELECTIVITY`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keeps: Option<f64>,
    },
    /// Computes columns row by row.
    Project,
    /// One side of a `split`: keeps `fraction` of the rows.
    Split {
        /// Fraction of rows kept, in 0..=1.
        fraction: f64,
    },
    /// An equi-join on `keys` columns (`join` is DataFusion's join type, e.g. `Inner`).
    Join {
        /// DataFusion's join type, e.g. `Inner`.
        join: String,
        /// Key columns compared.
        keys: u32,
        /// Distinct key combinations of each side (left, right) at the sources its key columns
        /// come from, estimated from their data; `None` when a key is computed or its source
        /// could not be sampled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distinct: Option<[u64; 2]>,
    },
    /// A grouping on `keys` columns (none: one row).
    Aggregate {
        /// Grouping columns.
        keys: u32,
        /// Distinct combinations of the keys, estimated from the data of the sources the
        /// keys come from (the product of each key's distinct values); `None` when a key
        /// is computed or its source could not be sampled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        groups: Option<u64>,
    },
    /// A global sort.
    Sort {
        /// Rows kept after sorting (`take` after `sort`).
        fetch: Option<u64>,
    },
    /// The first rows of its input.
    Limit {
        /// Rows kept.
        fetch: u64,
    },
    /// Rows of all inputs, one after another.
    Union,
    /// Rows written in the program (`VALUES`, an empty relation).
    Values {
        /// Rows written.
        rows: u64,
    },
    /// A plan node flow does not distribute (window functions, subqueries): it runs whole in
    /// one function.
    Opaque {
        /// The plan node's name.
        what: String,
    },
    /// Trains a model on its input.
    Train {
        /// Model kind, e.g. `logistic`.
        model: String,
        /// Parameters of the model (weights and biases).
        params: u64,
        /// Inputs the model reads per row once its features are encoded (a bag of words is
        /// `buckets` of them).
        inputs: u64,
        /// Passes over the rows, when the program chose them; otherwise training's default
        /// for the rows it gets ([`flow_stdlib::spec::default_epochs`]).
        epochs: Option<u32>,
        /// Rows per gradient step.
        batch_size: u32,
        /// The program's `sync`, when it chose one.
        sync: Option<flow_stdlib::SyncMode>,
    },
    /// Applies the model of its first input to the table of its second.
    Infer {
        /// Rows per inference call, when the program chose it.
        batch: Option<u64>,
        /// For a transformer, the length its sequences are cut to, when `tokenize` says.
        tokens: Option<u64>,
        /// For a transformer, the lengths its sequences run at once padded, each with the
        /// share of rows that run at it, measured on a sample of the text; empty when not
        /// measured (every sequence is then priced at the cut).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        padded: Vec<(u64, f64)>,
    },
    /// Computes metrics of a model on a table.
    Evaluate,
    /// Writes its input to a file.
    Save {
        /// Destination, as written.
        path: String,
        /// `csv`, `parquet` or `json`.
        format: String,
    },
    /// Prints the first rows of its input.
    Show {
        /// Rows printed.
        limit: u64,
    },
}

impl OpKind {
    /// A short name for plans and graphs.
    pub fn name(&self) -> &'static str {
        match self {
            OpKind::Scan { .. } => "scan",
            OpKind::ModelLoad { .. } => "load-model",
            OpKind::Filter { .. } => "filter",
            OpKind::Project => "project",
            OpKind::Split { .. } => "split",
            OpKind::Join { .. } => "join",
            OpKind::Aggregate { .. } => "aggregate",
            OpKind::Sort { .. } => "sort",
            OpKind::Limit { .. } => "limit",
            OpKind::Union => "union",
            OpKind::Values { .. } => "values",
            OpKind::Opaque { .. } => "opaque",
            OpKind::Train { .. } => "train",
            OpKind::Infer { .. } => "infer",
            OpKind::Evaluate => "evaluate",
            OpKind::Save { .. } => "save",
            OpKind::Show { .. } => "show",
        }
    }

    /// Whether the operator produces its whole output in one function (a global sort, a
    /// `take`, a sink, an aggregate without keys, anything flow does not distribute).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            OpKind::Values { .. }
                | OpKind::ModelLoad { .. }
                | OpKind::Aggregate { keys: 0, .. }
                | OpKind::Sort { .. }
                | OpKind::Limit { .. }
                | OpKind::Save { .. }
                | OpKind::Show { .. }
                | OpKind::Evaluate
                | OpKind::Opaque { .. }
        )
    }

    /// Whether the operator yields a model rather than a table.
    pub fn is_model(&self) -> bool {
        matches!(self, OpKind::Train { .. } | OpKind::ModelLoad { .. })
    }

    /// Whether a function's task computes the operator's rows. Sinks, training, evaluation
    /// and loading a model are the coordinator's: it runs them once their inputs have
    /// arrived, so a stage of only such operators has no task and overlaps nothing.
    pub fn runs_in_task(&self) -> bool {
        !matches!(
            self,
            OpKind::Train { .. }
                | OpKind::ModelLoad { .. }
                | OpKind::Evaluate
                | OpKind::Save { .. }
                | OpKind::Show { .. }
        )
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpKind::Scan {
                source,
                format,
                files,
                stats,
                read,
            } => {
                let rows = if stats.exact { "" } else { "~" };
                write!(
                    f,
                    "scan {source} ({format}, {files} file{}, {}, {rows}{} rows",
                    if *files == 1 { "" } else { "s" },
                    crate::units::bytes(stats.bytes as f64),
                    crate::units::count(stats.rows as f64)
                )?;
                match read {
                    Some(read) if read.stored < stats.bytes => {
                        write!(f, "; reads {})", crate::units::bytes(read.stored as f64))
                    }
                    _ => f.write_str(")"),
                }
            }
            OpKind::ModelLoad { path, bytes, .. } => {
                write!(
                    f,
                    "load-model {path} ({})",
                    crate::units::bytes(*bytes as f64)
                )
            }
            OpKind::Split { fraction } => {
                write!(f, "split (keeps {})", (fraction * 1e6).round() / 1e6)
            }
            OpKind::Join { join, keys, .. } => write!(f, "join {join} on {keys} key(s)"),
            OpKind::Aggregate { keys: 0, .. } => f.write_str("aggregate (one row)"),
            OpKind::Aggregate { keys, .. } => write!(f, "aggregate by {keys} key(s)"),
            OpKind::Sort { fetch: Some(n) } => write!(f, "sort (top {n})"),
            OpKind::Limit { fetch } => write!(f, "limit {fetch}"),
            OpKind::Values { rows } => write!(f, "values ({rows} rows)"),
            OpKind::Opaque { what } => write!(f, "{what} (one function)"),
            OpKind::Train {
                model,
                params,
                epochs,
                ..
            } => match epochs {
                Some(epochs) => write!(f, "train {model} ({params} parameters, {epochs} epochs)"),
                None => write!(
                    f,
                    "train {model} ({params} parameters, epochs for {} steps)",
                    flow_stdlib::spec::DEFAULT_STEPS
                ),
            },
            OpKind::Infer {
                batch,
                tokens,
                padded,
            } => {
                let mut said = Vec::new();
                if let Some(b) = batch {
                    said.push(format!("batch {b}"));
                }
                if let Some(t) = tokens {
                    said.push(format!("{t} tokens"));
                }
                if !padded.is_empty() {
                    let mean: f64 = padded.iter().map(|(l, share)| *l as f64 * share).sum();
                    said.push(format!("padded to {mean:.0} on average"));
                }
                if said.is_empty() {
                    f.write_str("infer")
                } else {
                    write!(f, "infer ({})", said.join(", "))
                }
            }
            OpKind::Save { path, format } => write!(f, "save {path} ({format})"),
            OpKind::Show { limit } => write!(f, "show (first {limit} rows)"),
            other => f.write_str(other.name()),
        }
    }
}

/// Where an operator comes from: the DAG node whose plan holds it and the path of child
/// indexes from that plan's root (empty for non-relational nodes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The DAG node.
    pub node: usize,
    /// Child indexes from the root of the node's DataFusion plan.
    pub path: Vec<usize>,
}

/// A channel a hint or flag can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Producer and consumer are the same function; nothing moves.
    Fused,
    /// TCP between functions.
    Direct,
    /// Objects in storage.
    Storage,
}

impl Channel {
    /// The name used in hints, flags and plans.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Fused => "fused",
            Channel::Direct => "direct",
            Channel::Storage => "storage",
        }
    }

    /// The channel with that name.
    pub fn from_name(name: &str) -> Option<Channel> {
        [Channel::Fused, Channel::Direct, Channel::Storage]
            .into_iter()
            .find(|c| c.name() == name)
    }
}

/// Planner hints of the step an operator ends (`with { ... }`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpHints {
    /// `workers`: at most this many functions.
    pub workers: Option<u32>,
    /// `memory_mb`: memory of each function.
    pub memory_mb: Option<u32>,
    /// `channel`: how the step's output moves.
    pub channel: Option<Channel>,
    /// Where the hint is written, for errors.
    #[serde(skip)]
    pub span: flow_lang::Span,
}

impl OpHints {
    /// Whether no hint is given.
    pub fn is_empty(&self) -> bool {
        self.workers.is_none() && self.memory_mb.is_none() && self.channel.is_none()
    }
}

/// One operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// What it does.
    pub kind: OpKind,
    /// Operators it reads, each with a smaller id.
    pub inputs: Vec<OpId>,
    /// Bytes per output row in Arrow memory.
    pub width: f64,
    /// Where it comes from.
    pub origin: Origin,
    /// Nodes of the expressions it evaluates (columns, literals, calls): planning a job
    /// costs in proportion to its operators and their expressions.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exprs: u32,
    /// Of those, the nodes that compute something for every row: an operator's work per
    /// row grows with them.
    #[serde(default, skip_serializing_if = "Computes::is_none")]
    pub computes: Computes,
    #[serde(default, skip_serializing_if = "OpHints::is_empty")]
    /// Hints of the step it ends.
    pub hints: OpHints,
}

impl Op {
    /// An operator of a graph built by hand (tests, benchmarks, programs embedding the
    /// planner): it comes from no program, so it has no origin, expressions or hints.
    pub fn new(kind: OpKind, inputs: Vec<OpId>, width: f64) -> Op {
        Op {
            kind,
            inputs,
            width,
            origin: Origin::default(),
            exprs: 0,
            computes: Computes::default(),
            hints: OpHints::default(),
        }
    }

    /// What planning this operator costs, in nodes: itself and its expressions' nodes.
    pub fn planning_nodes(&self) -> f64 {
        1.0 + f64::from(self.exprs)
    }
}

/// Operators in topological order: every input has a smaller id than its reader.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpGraph {
    /// The operators, inputs first.
    pub ops: Vec<Op>,
    /// For each DAG node whose whole output an operator computes, that operator (the runtime
    /// reads a node's rows from its operator's stage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ends: Vec<(usize, OpId)>,
}

impl OpGraph {
    /// Appends an operator; its inputs must already be in the graph.
    ///
    /// # Panics
    /// When an input is not an earlier operator (a bug in the caller, not user input).
    pub fn push(&mut self, op: Op) -> OpId {
        let id = self.ops.len();
        assert!(
            op.inputs.iter().all(|i| *i < id),
            "operator inputs must come first"
        );
        self.ops.push(op);
        id
    }

    /// Number of operators.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operators.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The DAG nodes whose whole output `op` computes.
    pub fn ends_of(&self, op: OpId) -> impl Iterator<Item = usize> + '_ {
        self.ends
            .iter()
            .filter(move |(_, o)| *o == op)
            .map(|(n, _)| *n)
    }

    /// Readers of each operator.
    pub fn readers(&self) -> Vec<Vec<OpId>> {
        let mut readers = vec![Vec::new(); self.ops.len()];
        for (id, op) in self.ops.iter().enumerate() {
            for i in &op.inputs {
                readers[*i].push(id);
            }
        }
        readers
    }
}

/// Estimated output of an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Size {
    /// Rows.
    pub rows: f64,
    /// Bytes in Arrow memory.
    pub bytes: f64,
}

/// Estimates every operator's output from the sources' statistics and the defaults in
/// [`crate::stats`]. Every estimate grows (weakly) with its inputs.
pub fn estimate(graph: &OpGraph) -> Vec<Size> {
    let mut sizes: Vec<Size> = Vec::with_capacity(graph.ops.len());
    for op in &graph.ops {
        let input = |k: usize| op.inputs.get(k).map_or(0.0, |i| sizes[*i].rows);
        let all: f64 = op.inputs.iter().map(|i| sizes[*i].rows).sum();
        let rows = match &op.kind {
            OpKind::Scan { stats, .. } => stats.rows as f64,
            OpKind::ModelLoad { .. } | OpKind::Train { .. } | OpKind::Evaluate => 1.0,
            OpKind::Filter { keeps } => input(0) * keeps.unwrap_or(stats::FILTER_SELECTIVITY),
            OpKind::Project | OpKind::Opaque { .. } | OpKind::Save { .. } => all,
            OpKind::Split { fraction } => input(0) * fraction,
            OpKind::Join {
                join,
                keys,
                distinct,
            } => join_rows(join, *keys, *distinct, input(0), input(1)),
            OpKind::Aggregate { keys: 0, .. } => 1.0,
            OpKind::Aggregate {
                groups: Some(groups),
                ..
            } => (*groups as f64).max(1.0).min(input(0)),
            OpKind::Aggregate { .. } => (input(0) * stats::GROUPS_PER_ROW).max(1.0).min(input(0)),
            OpKind::Sort { fetch: Some(n) } | OpKind::Limit { fetch: n } => input(0).min(*n as f64),
            OpKind::Sort { fetch: None } => input(0),
            OpKind::Union => all,
            OpKind::Values { rows } => *rows as f64,
            OpKind::Infer { .. } => input(1),
            OpKind::Show { limit } => input(0).min(*limit as f64),
        };
        let bytes = match &op.kind {
            OpKind::ModelLoad { bytes, .. } => *bytes as f64,
            OpKind::Train { params, .. } => model_bytes(*params),
            _ => rows * op.width,
        };
        sizes.push(Size { rows, bytes });
    }
    sizes
}

/// Rows out of a join of `left` and `right` rows. With the distinct keys of each side known,
/// the textbook estimate: every key of the side with fewer distinct keys finds its matches
/// (`left × right / max(distinct)`, each side's distinct keys at most its rows); without
/// them, the larger side (a key–foreign-key join). Outer joins keep at least their preserved
/// sides. A semi join keeps the share of its side's keys the other side has (containment:
/// the side with fewer keys has them all in the other), an anti join the rest; without
/// distinct keys, all of its side.
fn join_rows(join: &str, keys: u32, distinct: Option<[u64; 2]>, left: f64, right: f64) -> f64 {
    let distinct = distinct.map(|[l, r]| {
        (
            (l as f64).min(left).max(1.0),
            (r as f64).min(right).max(1.0),
        )
    });
    let inner = match distinct {
        Some((l, r)) => left * right / l.max(r),
        None if keys == 0 => left * right,
        None => left.max(right),
    };
    // The share of the left side's keys found on the right, and the reverse.
    let (left_found, right_found) =
        distinct.map_or((1.0, 1.0), |(l, r)| ((r / l).min(1.0), (l / r).min(1.0)));
    match join {
        "Full" => inner.max(left + right),
        "Left" => inner.max(left),
        "Right" => inner.max(right),
        "LeftSemi" => left * left_found,
        "RightSemi" => right * right_found,
        "LeftAnti" if distinct.is_some() => left * (1.0 - left_found),
        "RightAnti" if distinct.is_some() => right * (1.0 - right_found),
        "RightAnti" => right,
        "LeftAnti" | "LeftMark" => left,
        _ => inner,
    }
}

/// Bytes of a model with this many parameters (64-bit floats).
pub fn model_bytes(params: u64) -> f64 {
    params as f64 * 8.0
}

/// Classes assumed for a classifier before training has seen its labels.
pub const ASSUMED_CLASSES: u64 = 10;
/// Categories a `one_hot` feature is assumed to have before training has seen its column.
pub const ASSUMED_CATEGORIES: u64 = 8;

/// The model's inputs as training sees them: a bag of words is one column but `buckets`
/// inputs, a one-hot one per category (not known before training: assumed).
fn train_inputs(model: &ModelSignature, spec: &TrainSpec) -> u64 {
    if spec.features.is_empty() {
        return model.inputs.len() as u64;
    }
    spec.features
        .iter()
        .map(|f| match f {
            Feature::OneHot { categories, .. } if categories.is_empty() => ASSUMED_CATEGORIES,
            f => f.width() as u64,
        })
        .sum()
}

/// Parameters the trained model has: the layers of the network the spec describes (its
/// `hidden` layers with the catalogue's defaults applied by the compiler), or `k` centres.
fn train_params(model: &ModelSignature, spec: &TrainSpec, inputs: u64) -> u64 {
    if model.kind == "kmeans" {
        return spec.k as u64 * inputs.max(1);
    }
    let outputs = match model.task {
        flow_stdlib::Task::Classification if model.kind == "softmax" => ASSUMED_CLASSES,
        _ => 1,
    };
    let mut layers = vec![inputs];
    if model.kind == "mlp" {
        layers.extend(spec.hidden.iter().map(|h| *h as u64));
    }
    layers.push(outputs);
    layers.windows(2).map(|w| (w[0] + 1) * w[1]).sum()
}

/// Builds the operator graph of a compiled program.
pub fn lower(dag: &Dag, stats: &dyn Statistics) -> OpGraph {
    let mut lowering = Lowering {
        dag,
        stats,
        graph: OpGraph::default(),
        lowered: Lowered::default(),
        same: HashMap::new(),
    };
    for sink in dag.sinks() {
        lowering.node(sink);
    }
    let mut graph = lowering.graph;
    crate::needs::narrow(dag, &lowering.lowered, &mut graph, stats);
    graph
}

struct Lowering<'a> {
    dag: &'a Dag,
    stats: &'a dyn Statistics,
    graph: OpGraph,
    lowered: Lowered,
    /// Operators by what they compute (their own description and their inputs), so a binding
    /// used twice is computed once.
    same: HashMap<(String, Vec<OpId>), OpId>,
}

impl<'a> Lowering<'a> {
    fn push(&mut self, key: String, op: Op) -> OpId {
        let key = (key, op.inputs.clone());
        if let Some(id) = self.same.get(&key) {
            return *id;
        }
        let id = self.graph.push(op);
        self.same.insert(key, id);
        id
    }

    fn node(&mut self, id: NodeId) -> OpId {
        if let Some(op) = self.lowered.by_node.get(&id) {
            return *op;
        }
        let node = self.dag.node(id);
        let origin = Origin {
            node: id.index(),
            path: Vec::new(),
        };
        let hints = OpHints {
            workers: node.hints.workers,
            memory_mb: node.hints.memory_mb,
            channel: node.hints.channel.as_deref().and_then(Channel::from_name),
            span: node.span,
        };
        let inputs = self.dag.inputs(id);
        let op = match &node.kind {
            NodeKind::Source { load, csv, .. } => {
                let stats = self
                    .stats
                    .source(load, csv)
                    .unwrap_or(stats::UNKNOWN_SOURCE);
                let op = Op {
                    kind: OpKind::Scan {
                        source: node.label.clone(),
                        format: load.format.name().to_string(),
                        files: u32::try_from(load.files.len()).unwrap_or(u32::MAX),
                        stats,
                        read: None,
                    },
                    inputs: Vec::new(),
                    width: stats::row_width(&load.schema),
                    origin,
                    exprs: 0,
                    computes: Computes::default(),
                    hints,
                };
                let op = self.push(format!("source #{}", id.index()), op);
                self.lowered.fields.insert(op, field_widths(&load.schema));
                op
            }
            NodeKind::ModelSource {
                path,
                file,
                transformer,
            } => {
                let bytes = self
                    .stats
                    .model_bytes(file)
                    .unwrap_or(stats::UNKNOWN_MODEL_BYTES);
                let op = Op {
                    kind: OpKind::ModelLoad {
                        path: path.clone(),
                        bytes,
                        transformer: *transformer,
                    },
                    inputs: Vec::new(),
                    width: 1.0,
                    origin,
                    exprs: 0,
                    computes: Computes::default(),
                    hints,
                };
                self.push(format!("model #{}", id.index()), op)
            }
            NodeKind::Relational { plan } | NodeKind::Split { plan, .. } => {
                let root = self.plan(plan, id, &mut Vec::new());
                if !hints.is_empty() {
                    self.graph.ops[root].hints = hints;
                }
                root
            }
            NodeKind::Train { model, spec, .. } => {
                let input = inputs.first().map(|i| self.node(*i));
                let features = train_inputs(model, spec);
                let op = Op {
                    kind: OpKind::Train {
                        model: model.kind.clone(),
                        params: train_params(model, spec, features),
                        inputs: features,
                        epochs: spec.epochs.map(|e| u32::try_from(e).unwrap_or(u32::MAX)),
                        batch_size: u32::try_from(spec.batch_size).unwrap_or(u32::MAX).max(1),
                        sync: spec.sync,
                    },
                    inputs: input.into_iter().collect(),
                    width: 1.0,
                    origin,
                    exprs: 0,
                    computes: Computes::default(),
                    hints,
                };
                self.push(format!("train #{}", id.index()), op)
            }
            NodeKind::Infer { batch, tokens } => {
                let is_model = |n: &NodeId| {
                    matches!(
                        self.dag.node(*n).kind,
                        NodeKind::Train { .. } | NodeKind::ModelSource { .. }
                    )
                };
                let model = inputs.iter().find(|n| is_model(n)).copied();
                let table = inputs.iter().find(|n| !is_model(n)).copied();
                let mut ins = Vec::new();
                for n in [model, table].into_iter().flatten() {
                    ins.push(self.node(n));
                }
                let width = self
                    .graph
                    .ops
                    .get(*ins.last().unwrap_or(&0))
                    .map_or(1.0, |o| o.width)
                    + 16.0;
                let op = Op {
                    kind: OpKind::Infer {
                        batch: batch.and_then(|b| u64::try_from(b).ok()),
                        tokens: tokens
                            .as_ref()
                            .and_then(|t| t.cut)
                            .and_then(|t| u64::try_from(t).ok()),
                        padded: match (model, table, tokens) {
                            (Some(m), Some(t), Some(tokens)) => {
                                self.padded(m, t, &tokens.name).unwrap_or_default()
                            }
                            _ => Vec::new(),
                        },
                    },
                    inputs: ins,
                    width,
                    origin,
                    exprs: 0,
                    computes: Computes::default(),
                    hints,
                };
                self.push(format!("infer #{}", id.index()), op)
            }
            NodeKind::Evaluate { .. } | NodeKind::Sink(_) => {
                let ins: Vec<OpId> = inputs.iter().map(|n| self.node(*n)).collect();
                let width = ins.first().map_or(1.0, |i| self.graph.ops[*i].width);
                let kind = match &node.kind {
                    NodeKind::Sink(SinkKind::Save { path, format, .. }) => OpKind::Save {
                        path: path.clone(),
                        format: format.name().to_string(),
                    },
                    NodeKind::Sink(SinkKind::Show { limit }) => OpKind::Show {
                        limit: *limit as u64,
                    },
                    _ => OpKind::Evaluate,
                };
                let op = Op {
                    kind,
                    inputs: ins,
                    width,
                    origin,
                    exprs: 0,
                    computes: Computes::default(),
                    hints,
                };
                self.push(format!("node #{}", id.index()), op)
            }
        };
        self.lowered.by_node.insert(id, op);
        self.graph.ends.push((id.index(), op));
        op
    }

    /// Distinct combinations of `keys` over `input`: each key that is a column is traced to
    /// the source it comes from unchanged, whose distinct values the statistics estimate.
    fn groups<'k>(
        &self,
        input: &LogicalPlan,
        keys: impl IntoIterator<Item = &'k Expr>,
    ) -> Option<u64> {
        let mut product: u64 = 1;
        for key in keys {
            let Expr::Column(column) = key else {
                return None;
            };
            let at = trace::column(self.dag, input, column)?;
            let distinct = self.stats.distinct(at.load, at.csv, at.name)?;
            product = product.saturating_mul(distinct.max(1));
        }
        Some(product)
    }

    /// For a transformer `model` reading the token ids `column` of `table`, the lengths its
    /// sequences run at once padded and the share of rows at each, from the lengths of the
    /// ids a sample of the source's rows gives.
    fn padded(&self, model: NodeId, table: NodeId, column: &str) -> Option<Vec<(u64, f64)>> {
        let NodeKind::ModelSource {
            transformer: Some(shape),
            ..
        } = &self.dag.node(model).kind
        else {
            return None;
        };
        let NodeKind::Relational { plan } = &self.dag.node(table).kind else {
            return None;
        };
        let (source, expr) = trace::computed(self.dag, plan, &Column::from_name(column))?;
        let lengths = self.stats.list_lengths(source.load, source.csv, &expr)?;
        if lengths.is_empty() {
            return None;
        }
        let mut rows: std::collections::BTreeMap<u64, usize> = Default::default();
        for n in &lengths {
            let n = usize::try_from(*n).unwrap_or(usize::MAX);
            *rows.entry(shape.padded_length(n) as u64).or_default() += 1;
        }
        let sampled = lengths.len() as f64;
        Some(
            rows.into_iter()
                .map(|(length, n)| (length, n as f64 / sampled))
                .collect(),
        )
    }

    /// Fraction of rows a filter keeps, measured on a sample of the one source every column
    /// of its predicate comes from unchanged.
    fn keeps(&self, filter: &datafusion::logical_expr::Filter) -> Option<f64> {
        let mut source = None;
        let mut names = HashMap::new();
        for column in filter.predicate.column_refs() {
            let at = trace::column(self.dag, &filter.input, column)?;
            if source.is_some_and(|s: trace::SourceColumn<'_>| s.node != at.node) {
                return None;
            }
            names.insert(column.clone(), at.name.to_string());
            source = Some(at);
        }
        let source = source?;
        let predicate = filter
            .predicate
            .clone()
            .transform(|e| match e {
                Expr::Column(c) => {
                    let name = names.get(&c).cloned().unwrap_or(c.name);
                    Ok(Transformed::yes(Expr::Column(Column::from_name(name))))
                }
                e => Ok(Transformed::no(e)),
            })
            .ok()?
            .data;
        let keeps = self
            .stats
            .selectivity(source.load, source.csv, &predicate)?;
        keeps.is_finite().then_some(keeps.clamp(0.0, 1.0))
    }

    fn plan(&mut self, plan: &LogicalPlan, node: NodeId, path: &mut Vec<usize>) -> OpId {
        if let LogicalPlan::TableScan(scan) = plan
            && let Some(read) = node_of_scan(scan)
        {
            let op = self.node(read);
            self.lowered.at.insert((node.index(), path.clone()), op);
            return op;
        }
        let children = plan.inputs();
        if matches!(plan, LogicalPlan::SubqueryAlias(_)) && children.len() == 1 {
            path.push(0);
            let op = self.plan(children[0], node, path);
            path.pop();
            return op;
        }
        let mut inputs = Vec::with_capacity(children.len());
        for (k, child) in children.iter().enumerate() {
            path.push(k);
            inputs.push(self.plan(child, node, path));
            path.pop();
        }
        let kind = match plan {
            LogicalPlan::Projection(_) => OpKind::Project,
            LogicalPlan::Filter(f) => match split_fraction(&f.predicate) {
                Some(fraction) => OpKind::Split { fraction },
                None => OpKind::Filter {
                    keeps: self.keeps(f),
                },
            },
            LogicalPlan::Join(j) => OpKind::Join {
                join: join_name(j.join_type).to_string(),
                keys: u32::try_from(j.on.len()).unwrap_or(u32::MAX),
                distinct: (!j.on.is_empty())
                    .then(|| {
                        let left = self.groups(&j.left, j.on.iter().map(|(l, _)| l))?;
                        let right = self.groups(&j.right, j.on.iter().map(|(_, r)| r))?;
                        Some([left, right])
                    })
                    .flatten(),
            },
            LogicalPlan::Aggregate(a) => OpKind::Aggregate {
                keys: u32::try_from(a.group_expr.len()).unwrap_or(u32::MAX),
                groups: self.groups(&a.input, a.group_expr.iter()),
            },
            LogicalPlan::Distinct(d) => {
                let columns: Vec<Expr> = plan
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                OpKind::Aggregate {
                    keys: u32::try_from(columns.len()).unwrap_or(u32::MAX),
                    groups: self.groups(d.input(), &columns),
                }
            }
            LogicalPlan::Sort(s) => OpKind::Sort {
                fetch: s.fetch.map(|n| n as u64),
            },
            LogicalPlan::Limit(l) => match l.get_fetch_type() {
                Ok(FetchType::Literal(Some(n))) => OpKind::Limit { fetch: n as u64 },
                _ => OpKind::Project,
            },
            LogicalPlan::Union(_) => OpKind::Union,
            LogicalPlan::Values(v) => OpKind::Values {
                rows: v.values.len() as u64,
            },
            LogicalPlan::EmptyRelation(e) => OpKind::Values {
                rows: u64::from(e.produce_one_row),
            },
            other => OpKind::Opaque {
                what: other
                    .display()
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("plan")
                    .to_lowercase(),
            },
        };
        let width = stats::row_width(plan.schema().as_arrow());
        let key = match &kind {
            OpKind::Values { .. } | OpKind::Opaque { .. } => {
                format!("{} @{}:{path:?}", plan.display(), node.index())
            }
            _ => plan.display().to_string(),
        };
        let op = Op {
            kind,
            inputs,
            width,
            origin: Origin {
                node: node.index(),
                path: path.clone(),
            },
            exprs: expression_nodes(plan),
            computes: computed_nodes(plan),
            hints: OpHints::default(),
        };
        let op = self.push(key, op);
        self.lowered.at.insert((node.index(), path.clone()), op);
        self.lowered
            .fields
            .insert(op, field_widths(plan.schema().as_arrow()));
        op
    }
}

fn field_widths(schema: &datafusion::arrow::datatypes::Schema) -> Vec<f64> {
    schema
        .fields()
        .iter()
        .map(|f| stats::type_width(f.data_type()))
        .collect()
}

/// Nodes of the expressions one plan node evaluates (not its inputs').
pub fn expression_nodes(plan: &LogicalPlan) -> u32 {
    let mut n: u32 = 0;
    for e in plan.expressions() {
        // Counting cannot fail: the closure never returns an error.
        let _ = e.apply(|_| {
            n = n.saturating_add(1);
            Ok(TreeNodeRecursion::Continue)
        });
    }
    n
}

/// The expression nodes an operator computes for every row (operators, calls, casts,
/// aggregate functions; not columns, literals or names), by what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computes {
    /// Nodes whose result is a number, a boolean, a date or text.
    pub plain: u32,
    /// Nodes that yield or read decimals: arithmetic that keeps precision and checks for
    /// overflow, comparisons and casts of 128-bit values, several times dearer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decimal: u32,
    /// Calls of `tokenize`: a tokenizer walks the whole text, thousands of times a plain
    /// node's work.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokenize: u32,
}

impl Computes {
    fn is_none(&self) -> bool {
        self.plain == 0 && self.decimal == 0 && self.tokenize == 0
    }
}

/// Expression nodes of one plan node that compute per row, typed against the rows it reads.
pub fn computed_nodes(plan: &LogicalPlan) -> Computes {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::ExprSchemable;
    let inputs = plan.inputs();
    let schema = match inputs.as_slice() {
        [input] => input.schema(),
        _ => plan.schema(),
    };
    let mut n = Computes::default();
    for e in plan.expressions() {
        let _ = e.apply(|e| {
            if !matches!(
                e,
                Expr::Column(_)
                    | Expr::Literal(..)
                    | Expr::Alias(_)
                    | Expr::ScalarVariable(..)
                    | Expr::OuterReferenceColumn(..)
                    | Expr::Placeholder(_)
            ) {
                let decimal = |e: &Expr| {
                    matches!(
                        e.get_type(schema.as_ref()),
                        Ok(DataType::Decimal32(..)
                            | DataType::Decimal64(..)
                            | DataType::Decimal128(..)
                            | DataType::Decimal256(..))
                    )
                };
                // A node reading decimals (a comparison, a cast to a float) works on them as
                // much as one yielding them.
                let mut reads_decimal = false;
                let _ = e.apply_children(|child| {
                    reads_decimal |= decimal(child);
                    Ok(TreeNodeRecursion::Continue)
                });
                if flow_compiler::tokenize::Tokenize::called(e).is_some() {
                    n.tokenize = n.tokenize.saturating_add(1);
                } else if reads_decimal || decimal(e) {
                    n.decimal = n.decimal.saturating_add(1);
                } else {
                    n.plain = n.plain.saturating_add(1);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    n
}

/// Plan nodes and expression nodes of a whole logical plan, counted as the operator graph
/// counts them ([`Op::planning_nodes`]).
pub fn planning_nodes(plan: &LogicalPlan) -> u32 {
    let mut n: u32 = 0;
    let _ = plan.apply(|node| {
        if !matches!(node, LogicalPlan::SubqueryAlias(_)) {
            n = n.saturating_add(1 + expression_nodes(node));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn join_name(join: JoinType) -> &'static str {
    match join {
        JoinType::Inner => "Inner",
        JoinType::Left => "Left",
        JoinType::Right => "Right",
        JoinType::Full => "Full",
        JoinType::LeftSemi => "LeftSemi",
        JoinType::RightSemi => "RightSemi",
        JoinType::LeftAnti => "LeftAnti",
        JoinType::RightAnti => "RightAnti",
        _ => "LeftMark",
    }
}

/// The fraction of rows a split filter (`flow_split_hash(...) < f`, or `>= f` for the second
/// side) keeps.
fn split_fraction(predicate: &Expr) -> Option<f64> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    let Expr::ScalarFunction(f) = left.as_ref() else {
        return None;
    };
    if f.name() != "flow_split_hash" {
        return None;
    }
    let Expr::Literal(ScalarValue::Float64(Some(fraction)), _) = right.as_ref() else {
        return None;
    };
    match op {
        Operator::Lt => Some(*fraction),
        Operator::GtEq => Some(1.0 - fraction),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_semi_join_keeps_the_share_of_its_keys_the_other_side_has() {
        // Ten million rows on five million keys, against a hundred thousand keys.
        let distinct = Some([5_000_000, 100_000]);
        let semi = join_rows("LeftSemi", 1, distinct, 1e7, 1e5);
        let anti = join_rows("LeftAnti", 1, distinct, 1e7, 1e5);
        assert!((semi - 2e5).abs() < 1.0, "{semi}");
        assert!((semi + anti - 1e7).abs() < 1.0, "{anti}");
        // Unknown keys: the whole side, as before.
        assert_eq!(join_rows("LeftSemi", 1, None, 1e7, 1e5), 1e7);
        let right = join_rows("RightSemi", 1, Some([100_000, 5_000_000]), 1e5, 1e7);
        assert!((right - 2e5).abs() < 1.0, "{right}");
    }
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit, table_scan};

    #[test]
    fn expressions_are_counted_node_by_node_and_aliases_are_not_operators() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]);
        let plan = table_scan(Some("t"), &schema, None)
            .and_then(|b| b.filter(col("a").gt(lit(1)).and(col("b").lt(lit(2)))))
            .and_then(|b| b.alias("u"))
            .and_then(|b| b.build())
            .unwrap();
        let LogicalPlan::SubqueryAlias(alias) = &plan else {
            panic!("{plan}");
        };
        // `a > 1 AND b < 2`: the AND, two comparisons, two columns, two literals.
        assert_eq!(expression_nodes(&alias.input), 7);
        // The filter (1 + 7) and the scan (1); the alias is not an operator.
        assert_eq!(planning_nodes(&plan), 9);
        // Of those, the AND and the two comparisons compute per row.
        let computes = computed_nodes(&alias.input);
        assert_eq!((computes.plain, computes.decimal), (3, 0));
    }

    #[test]
    fn nodes_that_yield_or_read_decimals_are_counted_apart() {
        let schema = Schema::new(vec![
            Field::new("price", DataType::Decimal128(15, 2), false),
            Field::new("n", DataType::Int64, false),
        ]);
        let scan = table_scan(Some("t"), &schema, None).unwrap();
        // `price * 2 > 10 AND n > 1`: the product yields a decimal and the first comparison
        // reads one; the second comparison and the AND do neither.
        let two = lit(datafusion::scalar::ScalarValue::Decimal128(
            Some(200),
            15,
            2,
        ));
        let ten = lit(datafusion::scalar::ScalarValue::Decimal128(
            Some(1000),
            15,
            2,
        ));
        let plan = scan
            .filter((col("price") * two).gt(ten).and(col("n").gt(lit(1i64))))
            .and_then(|b| b.build())
            .unwrap();
        let computes = computed_nodes(&plan);
        assert_eq!((computes.plain, computes.decimal), (2, 2), "{plan}");
    }
}
