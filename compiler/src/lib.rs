//! The flow compiler: resolves names and schemas, type-checks every step, and lowers a parsed
//! program to the logical [`Dag`] whose relational nodes are DataFusion logical plans.
//!
//! The compiler is pure: it learns the schemas of files only through the [`SchemaSource`]
//! trait, so the CLI, the language server and tests all reuse it unchanged.

pub mod dag;
mod expr;
pub mod facts;
pub mod functions;
pub use expr::clean_error;
mod ml;
mod pipeline;
pub mod scope;
pub mod settings;
pub mod source;
pub mod split;
mod sql;
pub mod tokenize;
pub mod types;

pub use dag::{
    Dag, Hints, ModelSignature, Node, NodeId, NodeKind, NodeTable, SinkKind, TokenColumn,
    TransformerShape, node_of_scan,
};
/// The Arrow crate the compiler speaks, for callers that build schemas (tests, fuzzers).
pub use datafusion::arrow;
pub use facts::{Facts, Shape};
pub use settings::Settings;
pub use source::{CsvOptions, Format, LoadRequest, ResolvedLoad, SchemaSource};

use datafusion::common::tree_node::Transformed;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::LogicalPlan;
use flow_lang::Parsed;
use flow_lang::ast::{Program, Stmt, StmtKind};
use flow_lang::{Code, Diagnostic, Span};
use std::collections::HashMap;

/// The result of compiling one program.
#[derive(Debug)]
pub struct Compiled {
    pub dag: Dag,
    pub settings: Settings,
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// What was learnt about each binding, source and step, for editors.
    pub facts: Facts,
}

/// A value a binding holds.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A table: its plan (inlined where it is used) and the DAG nodes it reads.
    Table {
        plan: LogicalPlan,
        deps: Vec<NodeId>,
    },
    /// A model made by `train` or loaded from a file (signature unknown for loaded ones).
    Model {
        node: NodeId,
        signature: Option<ModelSignature>,
    },
}

impl Value {
    /// The value as facts record it.
    pub(crate) fn shape(&self) -> Shape {
        match self {
            Value::Table { plan, .. } => Shape::Table(plan.schema().clone()),
            Value::Model { signature, .. } => Shape::Model(signature.clone()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Binding {
    value: Value,
    span: Span,
    used: bool,
}

/// The session whose function registry the compiler types calls against. Building it does
/// no IO.
pub fn session_state() -> SessionState {
    // Registering every function is costly; build the state once and hand out clones.
    static BASE: std::sync::OnceLock<SessionState> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let mut state = SessionStateBuilder::new().with_default_features().build();
        let _ = state.register_udf(split::SplitHash::udf());
        state
    })
    .clone()
}

/// Moves the filters of every plan that runs (the input of a sink or an ML step) as close to
/// the data as they can go (below joins, projections and groupings), so what the planner
/// prices and what the runtime runs is the filtered rows: a filter written after a join must
/// not make a whole table move between functions; and makes a `take` after a `sort` a top-k
/// ([`limit_sort`]). Only these rewrites run, so the plans keep their shape otherwise and
/// work the program shares stays shared; plans of more than [`PUSH_FILTERS_MAX_NODES`]
/// nodes are left as written (moving a filter rewrites it through every projection it
/// passes).
fn push_filters_down(dag: &mut Dag) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::optimizer::push_down_filter::PushDownFilter;
    use datafusion::optimizer::{Optimizer, OptimizerContext};
    let optimizer = Optimizer::with_rules(vec![std::sync::Arc::new(PushDownFilter::new())]);
    let context = OptimizerContext::new();
    let runs: Vec<NodeId> = dag
        .graph
        .node_indices()
        .filter(|n| {
            matches!(
                dag.node(*n).kind,
                NodeKind::Sink(_)
                    | NodeKind::Train { .. }
                    | NodeKind::Infer { .. }
                    | NodeKind::Evaluate { .. }
            )
        })
        .flat_map(|n| dag.inputs(n))
        .collect();
    for node in runs {
        let (NodeKind::Relational { plan } | NodeKind::Split { plan, .. }) =
            &mut dag.graph[node].kind
        else {
            continue;
        };
        let mut nodes = 0usize;
        let _ = plan.apply(|_| {
            nodes += 1;
            Ok(if nodes > PUSH_FILTERS_MAX_NODES {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        if nodes > PUSH_FILTERS_MAX_NODES {
            continue;
        }
        if let Ok(pushed) = optimizer.optimize(plan.clone(), &context, |_, _| {}) {
            *plan = pushed;
        }
        if let Ok(limited) = plan.clone().transform_up(limit_sort) {
            *plan = limited.data;
        }
    }
}

/// A `take` right after a `sort` becomes the sort's own fetch: a top-k, which the planner
/// prices as one and DataFusion runs as one (a heap of `k` rows, not a sort of all of them).
fn limit_sort(plan: LogicalPlan) -> datafusion::common::Result<Transformed<LogicalPlan>> {
    use datafusion::logical_expr::{FetchType, SkipType, Sort};
    let LogicalPlan::Limit(limit) = &plan else {
        return Ok(Transformed::no(plan));
    };
    let (Ok(SkipType::Literal(skip)), Ok(FetchType::Literal(Some(fetch)))) =
        (limit.get_skip_type(), limit.get_fetch_type())
    else {
        return Ok(Transformed::no(plan));
    };
    let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
        return Ok(Transformed::no(plan));
    };
    let wanted = skip + fetch;
    if sort.fetch.is_some_and(|f| f <= wanted) {
        return Ok(Transformed::no(plan));
    }
    let sort = LogicalPlan::Sort(Sort {
        fetch: Some(wanted),
        ..sort.clone()
    });
    if skip == 0 {
        return Ok(Transformed::yes(sort));
    }
    Ok(Transformed::yes(LogicalPlan::Limit(
        datafusion::logical_expr::Limit {
            input: std::sync::Arc::new(sort),
            ..limit.clone()
        },
    )))
}

/// Largest plan whose filters are moved towards its data ([`push_filters_down`]).
const PUSH_FILTERS_MAX_NODES: usize = 256;

pub(crate) struct Compiler<'a> {
    source: &'a dyn SchemaSource,
    state: SessionState,
    dag: Dag,
    bindings: HashMap<String, Binding>,
    /// Binding names in order of definition, for "did you mean" and unused warnings.
    order: Vec<String>,
    /// Names whose `let` or `split` did not check: their uses stay quiet, since the error
    /// that matters was reported where the binding failed.
    failed: std::collections::HashSet<String>,
    diagnostics: Vec<Diagnostic>,
    /// Hints of the steps lowered since the last node was made; the next node takes them.
    pending_hints: Hints,
    facts: Facts,
}

/// Compiles a parsed program. Never panics; problems come back as diagnostics.
pub fn compile(program: &Program, source: &dyn SchemaSource) -> Compiled {
    compile_statements(program.statements.iter(), source, &mut |_| {})
}

/// Parses and compiles `text` at once: each statement is checked while the ones after it are
/// still being parsed, on another thread. The answer is the same as [`flow_lang::parse`]
/// followed by [`compile`]; when the parse has errors, the compiled part covers only the
/// statements that parsed, and callers report the syntax errors alone, as they would have.
pub fn parse_and_compile(text: &str, source: &dyn SchemaSource) -> (Parsed, Compiled) {
    std::thread::scope(|scope| {
        let (sender, statements) = std::sync::mpsc::channel::<Stmt>();
        let parser = scope.spawn(move || {
            flow_lang::parse_each(text, &mut |statement| {
                // The receiver lives until the parser is joined.
                let _ = sender.send(statement);
            })
        });
        let mut kept = Vec::new();
        let compiled = compile_statements(statements.iter(), source, &mut |statement| {
            kept.push(statement);
        });
        // A parser panic is a bug; surface it as the panic it is.
        let mut parsed = parser
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        parsed.program.statements = kept;
        (parsed, compiled)
    })
}

/// Compiles statements in order, handing each to `done` after it. Never panics; problems
/// come back as diagnostics.
fn compile_statements<S: std::borrow::Borrow<Stmt>>(
    statements: impl IntoIterator<Item = S>,
    source: &dyn SchemaSource,
    done: &mut dyn FnMut(S),
) -> Compiled {
    let mut c = Compiler {
        source,
        state: session_state(),
        dag: Dag::default(),
        bindings: HashMap::new(),
        order: Vec::new(),
        failed: Default::default(),
        diagnostics: Vec::new(),
        pending_hints: Hints::default(),
        facts: Facts::default(),
    };
    let mut settings = Settings::default();
    let mut config_span: Option<Span> = None;
    for item in statements {
        let stmt = item.borrow();
        match &stmt.kind {
            StmtKind::Config(object) => match config_span {
                Some(first) => c.diagnostics.push(
                    Diagnostic::error(
                        Code::E0015,
                        "a program may have only one `config` block",
                        stmt.span,
                        "second config",
                    )
                    .with_secondary(first, "first config")
                    .with_help("merge the two blocks into one"),
                ),
                None => {
                    config_span = Some(stmt.span);
                    settings = settings::config(object, &mut c.diagnostics);
                }
            },
            StmtKind::Let { name, value } => {
                if c.check_fresh(name) {
                    match c.pipeline(value, Some(&name.name)) {
                        Some(v) => c.bind(name, v, value.span),
                        None => {
                            c.failed.insert(name.name.clone());
                            c.facts.unchecked.push((name.name.clone(), name.span));
                        }
                    }
                }
            }
            StmtKind::Split {
                first,
                second,
                input,
                fraction,
                seed,
            } => {
                c.split(first, second, input, fraction, seed.as_ref());
                for name in [first, second] {
                    if !c.bindings.contains_key(&name.name) {
                        c.failed.insert(name.name.clone());
                        c.facts.unchecked.push((name.name.clone(), name.span));
                    }
                }
            }
            StmtKind::Save {
                input,
                target,
                format,
                options,
            } => c.save(input, target, format.as_ref(), options.as_ref()),
            StmtKind::Show { input, limit } => c.show(input, limit.as_ref()),
        }
        done(item);
    }
    for name in &c.order {
        let binding = &c.bindings[name];
        if !binding.used && !name.starts_with('_') {
            c.diagnostics.push(
                Diagnostic::error(
                    Code::W0001,
                    format!("`{name}` is never used"),
                    binding.span,
                    "unused binding",
                )
                .with_help(format!(
                    "it will not be computed; remove it, or call it `_{name}` to keep it quietly"
                )),
            );
        }
    }
    c.diagnostics
        .sort_by_key(|d| (d.primary.span.start, d.severity));
    push_filters_down(&mut c.dag);
    Compiled {
        dag: c.dag,
        settings,
        diagnostics: c.diagnostics,
        facts: c.facts,
    }
}
