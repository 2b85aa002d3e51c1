//! The logical DAG: what the compiler hands to the planner and the runtime. Relational nodes
//! hold DataFusion logical plans whose leaves are scans of [`NodeTable`]s, placeholders that
//! name the upstream node they read; the runtime substitutes the real data for them.

use crate::source::{CsvOptions, Format, ResolvedLoad};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchemaRef;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use flow_lang::Span;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use std::fmt::Write as _;
use std::sync::Arc;

pub type NodeId = NodeIndex;

/// A model as the type checker knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSignature {
    pub kind: String,
    pub task: flow_stdlib::Task,
    /// Input columns `infer` needs, with the types training saw.
    pub inputs: Vec<(String, datafusion::arrow::datatypes::DataType)>,
    /// The label column and its type (none for clustering and loaded models).
    pub label: Option<(String, datafusion::arrow::datatypes::DataType)>,
    /// For a transformer, which reads a column of token ids (the one `tokenize` makes, or the
    /// one named in `inputs`), its shape.
    pub transformer: Option<TransformerShape>,
}

/// What decides the cost of scoring a sequence with a transformer: the weights every token
/// is multiplied by, and the attention, in which every token meets every other.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TransformerShape {
    /// Weights of its matrix products (the embedding tables are looked up, not multiplied).
    pub matmul_params: u64,
    /// Values per token between layers.
    pub width: u64,
    /// Attention layers.
    pub layers: u64,
    /// The longest sequence it reads.
    pub max_length: u64,
}

impl TransformerShape {
    /// Sequences per call of the model when the program does not say: on a CPU, one at a
    /// time scores the most per second, with tract and with onnxruntime alike
    /// (docs/benchmarks.md, the batch sweep); activations grow with every sequence.
    pub const BATCH: usize = 1;

    /// Floating-point operations to score one sequence of `length` tokens: two per weight
    /// and token, and for attention's two products four per width, layer and pair of tokens.
    pub fn flops(&self, length: f64) -> f64 {
        2.0 * self.matmul_params as f64 * length
            + 4.0 * (self.width * self.layers) as f64 * length * length
    }

    /// The lengths sequences are padded to: a sequence runs at the shortest one that holds
    /// it, so a model needs a plan for only these few shapes, and a short review does not
    /// pay for a long one's padding.
    pub const PADDED_LENGTHS: [usize; 7] = [16, 32, 64, 128, 256, 384, 512];

    /// The length a sequence of `n` ids runs at: the shortest of
    /// [`Self::PADDED_LENGTHS`] that holds it, and never past the model's longest.
    pub fn padded_length(&self, n: usize) -> usize {
        let longest = usize::try_from(self.max_length).unwrap_or(usize::MAX);
        Self::PADDED_LENGTHS
            .iter()
            .copied()
            .find(|b| *b >= n && *b <= longest)
            .unwrap_or(longest)
    }
}

/// The column of token ids a transformer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenColumn {
    /// Its name in the table the model scores.
    pub name: String,
    /// The length `tokenize` cuts it to, when `tokenize` in the program makes it.
    pub cut: Option<usize>,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    Save {
        /// As written.
        path: String,
        /// Where it is written, resolved by the [`crate::SchemaSource`].
        file: String,
        format: Format,
        csv: CsvOptions,
        model: bool,
    },
    Show {
        limit: usize,
    },
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    /// Files read as one table.
    Source {
        load: ResolvedLoad,
        csv: CsvOptions,
        path: String,
    },
    /// A model file (`load "x.model"` / `.onnx`).
    ModelSource {
        /// As written.
        path: String,
        /// Where it is read, resolved by the [`crate::SchemaSource`].
        file: String,
        /// The shape of a transformer, which the planner prices by.
        transformer: Option<TransformerShape>,
    },
    /// Relational work, as a DataFusion logical plan.
    Relational {
        plan: LogicalPlan,
    },
    /// One side of a `split`: the rows whose seeded hash falls below (or, for the second
    /// side, at or above) the fraction.
    Split {
        plan: LogicalPlan,
        fraction: f64,
        seed: u64,
        first: bool,
    },
    Train {
        model: ModelSignature,
        /// The arguments as written, for people.
        args: Vec<(String, String)>,
        /// What training needs, defaults filled in.
        spec: flow_stdlib::TrainSpec,
    },
    Infer {
        batch: Option<i64>,
        /// For a transformer, the column of token ids it reads: what scoring costs depends
        /// on how long its sequences are.
        tokens: Option<TokenColumn>,
    },
    Evaluate {
        label: String,
    },
    Sink(SinkKind),
}

/// Planner hints given with `with { ... }` on a step, after validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hints {
    pub workers: Option<u32>,
    pub memory_mb: Option<u32>,
    pub channel: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: NodeKind,
    /// A short name for people: the binding, the file, the step.
    pub label: String,
    /// The part of the program this node comes from (run-time errors point here).
    pub span: Span,
    pub hints: Hints,
}

impl Node {
    /// The DataFusion plan of a relational or split node.
    pub fn plan(&self) -> Option<&LogicalPlan> {
        match &self.kind {
            NodeKind::Relational { plan } | NodeKind::Split { plan, .. } => Some(plan),
            _ => None,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Source { .. } => "source",
            NodeKind::ModelSource { .. } => "model-source",
            NodeKind::Relational { .. } => "relational",
            NodeKind::Split { .. } => "split",
            NodeKind::Train { .. } => "train",
            NodeKind::Infer { .. } => "infer",
            NodeKind::Evaluate { .. } => "evaluate",
            NodeKind::Sink(SinkKind::Save { .. }) => "save",
            NodeKind::Sink(SinkKind::Show { .. }) => "show",
        }
    }
}

/// An edge carries the schema of the data that flows along it (absent for models).
#[derive(Debug, Clone)]
pub struct Edge {
    pub schema: Option<DFSchemaRef>,
}

/// The compiled program.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    pub graph: DiGraph<Node, Edge>,
}

impl Dag {
    pub fn add(&mut self, node: Node) -> NodeId {
        self.graph.add_node(node)
    }

    pub fn connect(&mut self, from: NodeId, to: NodeId, schema: Option<DFSchemaRef>) {
        if !self.graph.edges_connecting(from, to).any(|_| true) {
            self.graph.add_edge(from, to, Edge { schema });
        }
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id]
    }

    /// The sinks (`save`, `show`) in program order.
    pub fn sinks(&self) -> Vec<NodeId> {
        self.graph
            .node_indices()
            .filter(|i| matches!(self.graph[*i].kind, NodeKind::Sink(_)))
            .collect()
    }

    /// Upstream nodes of `id`, in insertion order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut inputs: Vec<NodeId> = self
            .graph
            .edges_directed(id, petgraph::Direction::Incoming)
            .map(|e| e.source())
            .collect();
        inputs.sort();
        inputs
    }

    /// Downstream nodes of `id`: the nodes that read it.
    pub fn readers(&self, id: NodeId) -> Vec<NodeId> {
        let mut readers: Vec<NodeId> = self
            .graph
            .neighbors_directed(id, petgraph::Direction::Outgoing)
            .collect();
        readers.sort();
        readers
    }

    /// Every node, each after the nodes it reads.
    pub fn in_order(&self) -> Vec<NodeId> {
        // The compiler only ever connects a node to nodes it has built, so the DAG has no
        // cycle and the sort cannot fail; insertion order is the fallback all the same.
        petgraph::algo::toposort(&self.graph, None)
            .unwrap_or_else(|_| self.graph.node_indices().collect())
    }

    /// A readable listing of the DAG, each node followed by its DataFusion plan (what
    /// `flowc explain FILE` prints).
    pub fn display(&self) -> String {
        let mut out = String::new();
        for id in self.graph.node_indices() {
            let node = &self.graph[id];
            let inputs: Vec<String> = self
                .inputs(id)
                .iter()
                .map(|i| format!("#{}", i.index()))
                .collect();
            let from = if inputs.is_empty() {
                String::new()
            } else {
                format!(" <- {}", inputs.join(", "))
            };
            let _ = writeln!(
                out,
                "#{} {} `{}`{from}",
                id.index(),
                node.kind_name(),
                node.label
            );
            match &node.kind {
                NodeKind::Source { load, .. } => {
                    let _ = writeln!(
                        out,
                        "    format: {}, files: {}",
                        load.format.name(),
                        load.files.len()
                    );
                    let cols: Vec<String> = load
                        .schema
                        .fields()
                        .iter()
                        .map(|f| format!("{}: {}", f.name(), crate::types::display(f.data_type())))
                        .collect();
                    let _ = writeln!(out, "    schema: {}", cols.join(", "));
                }
                NodeKind::ModelSource { path, .. } => {
                    let _ = writeln!(out, "    path: {path}");
                }
                NodeKind::Relational { plan } => write_plan(&mut out, plan),
                NodeKind::Split {
                    plan,
                    fraction,
                    seed,
                    first,
                } => {
                    let side = if *first { "first" } else { "second" };
                    let _ = writeln!(out, "    {side} side of split {fraction} seed {seed}");
                    write_plan(&mut out, plan);
                }
                NodeKind::Train { model, args, .. } => {
                    let args: Vec<String> =
                        args.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    let _ = writeln!(out, "    {}({})", model.kind, args.join(", "));
                }
                NodeKind::Infer { batch, .. } => {
                    let _ = writeln!(
                        out,
                        "    batch: {}",
                        batch.map_or("planner".to_string(), |b| b.to_string())
                    );
                }
                NodeKind::Evaluate { label } => {
                    let _ = writeln!(out, "    label: {label}");
                }
                NodeKind::Sink(SinkKind::Save { path, format, .. }) => {
                    let _ = writeln!(out, "    to {path} as {}", format.name());
                }
                NodeKind::Sink(SinkKind::Show { limit }) => {
                    let _ = writeln!(out, "    limit {limit}");
                }
            }
            if node.hints != Hints::default() {
                let _ = writeln!(out, "    hints: {:?}", node.hints);
            }
        }
        out
    }
}

fn write_plan(out: &mut String, plan: &LogicalPlan) {
    for line in plan.display_indent().to_string().lines() {
        let _ = writeln!(out, "    {line}");
    }
}

/// The placeholder a plan scans to read the output of another DAG node.
#[derive(Debug)]
pub struct NodeTable {
    pub node: NodeId,
    pub schema: SchemaRef,
}

#[async_trait::async_trait]
impl TableProvider for NodeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(format!(
            "node #{} was not substituted before execution",
            self.node.index()
        )))
    }
}

/// The DAG node a scan placeholder in a plan stands for, if the plan is such a scan.
pub fn node_of_scan(scan: &datafusion::logical_expr::TableScan) -> Option<NodeId> {
    let provider = datafusion::datasource::source_as_provider(&scan.source).ok()?;
    provider.downcast_ref::<NodeTable>().map(|t| t.node)
}
