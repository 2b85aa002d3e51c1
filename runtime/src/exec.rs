//! Single-process execution of a compiled DAG through DataFusion: every sink's plan, with the
//! scan placeholders of the DAG replaced by the real files, run in one session.

use crate::distributed::lowering::{self, Destination, Lowering};
use crate::distributed::protocol::TrainHeader;
use crate::distributed::record::RunRecord;
use crate::distributed::{Backend, Channel, ClusterOptions, Coordinator, LocalBackend, Watch};
use crate::ml::scored::ScoredTable;
use crate::ml::{AnyModel, MlHost, MlResults};
use crate::save;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{MemTable, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, TableScan};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use flow_compiler::{Compiled, Dag, Format, NodeId, NodeKind, SinkKind, node_of_scan};
use flow_lang::{Code, Diagnostic, Span};
use flow_planner::PhysicalPlan;
use flow_stdlib::TrainSpec;
use flow_stdlib::ml::train::{self, Prepared};
use flow_stdlib::ml::{Body, Model};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Options of a single-process run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// DataFusion's target partitions (threads); defaults to the machine's cores.
    pub partitions: Option<usize>,
    /// Run across worker processes instead of in this one.
    pub cluster: Option<Cluster>,
    /// Told about every stage and task of a distributed run.
    pub watch: Option<Arc<dyn Watch>>,
}

/// A distributed run: its options and where its functions come from.
#[derive(Clone)]
pub struct Cluster {
    /// Workers, channel, store, attempts.
    pub options: ClusterOptions,
    /// Makes the backend that starts the run's functions (once per run), or says why it
    /// cannot.
    pub backend: Arc<dyn Fn() -> Result<Box<dyn Backend>, String> + Send + Sync>,
}

impl Cluster {
    /// A run on `flowc worker` processes of this machine, started as `EXE worker ...`.
    pub fn local(options: ClusterOptions, exe: PathBuf) -> Cluster {
        Cluster {
            options,
            backend: Arc::new(move || Ok(Box::new(LocalBackend::new(exe.clone())))),
        }
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Where a sink's rows are computed.
enum Engine {
    Local,
    Cluster(Box<Coordinator>),
}

impl Engine {
    /// The rows of DAG node `node` as `reader` (a sink, or none for a training or an
    /// evaluation) needs them: in this process, `plan` (the node's, substituted) executed; on
    /// a cluster, the plan's stages that compute the node's operator run and its rows read
    /// back.
    async fn rows_of(
        &mut self,
        ctx: &SessionContext,
        (dag, ml): (&Dag, &MlResults),
        (node, reader): (NodeId, Option<NodeId>),
        plan: LogicalPlan,
    ) -> datafusion::error::Result<SendableRecordBatchStream> {
        match self {
            Engine::Cluster(coordinator) if computes_rows(coordinator.plan(), node) => {
                let schema = Arc::new(plan.schema().as_arrow().clone());
                let batches = cluster_rows(coordinator, ctx, (dag, ml), node, reader).await?;
                Ok(Box::pin(MemoryStream::try_new(batches, schema, None)?))
            }
            // What the coordinator computed itself (an evaluation's metrics) is here already.
            _ => ctx.execute_logical_plan(plan).await?.execute_stream().await,
        }
    }

    async fn finish(self) -> Option<RunRecord> {
        match self {
            Engine::Local => None,
            Engine::Cluster(c) => Some(c.finish().await),
        }
    }
}

/// Whether the plan's tasks compute `node`'s rows (not the coordinator, as it computes an
/// evaluation's).
fn computes_rows(plan: &PhysicalPlan, node: NodeId) -> bool {
    plan.op_of_node(node.index())
        .is_some_and(|op| lowering::computes(&plan.ops[op].op.kind))
}

/// Runs the stages that compute `node`'s operator (lowering those not lowered yet) and reads
/// its rows back through the output `reader`'s operator reads, else any output of it.
async fn cluster_rows(
    coordinator: &mut Coordinator,
    ctx: &SessionContext,
    (dag, ml): (&Dag, &MlResults),
    node: NodeId,
    reader: Option<NodeId>,
) -> datafusion::error::Result<Vec<RecordBatch>> {
    let plan = coordinator.plan().clone();
    let missing = |what: String| DataFusionError::Internal(format!("the plan has no {what}"));
    let op = plan
        .op_of_node(node.index())
        .ok_or_else(|| missing(format!("operator for node #{}", node.index())))?;
    let reader = reader.and_then(|r| plan.op_of_node(r.index()));
    let outputs = coordinator.outputs().to_vec();
    let stage = plan.stage_of(op);
    // What a task shares among its outputs is gone when the task ends: not readable here.
    let ours = |o: &&lowering::OutputOf| o.op == op && o.to != Destination::Shared;
    let for_reader = |o: &&lowering::OutputOf| match o.to {
        Destination::Exchange(x) => Some(plan.exchanges[x].consumer) == reader,
        Destination::Coordinator => true,
        Destination::Shared => false,
    };
    let chosen = outputs[stage]
        .iter()
        .filter(ours)
        .find(for_reader)
        .or_else(|| outputs[stage].iter().find(ours))
        .ok_or_else(|| missing(format!("output of operator #{op}")))?;
    let output = outputs[stage]
        .iter()
        .position(|o| o == chosen)
        .unwrap_or_default();
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_config(coordinator.stage_config())
        .build();
    let leaves = Leaves { dag, ml };
    let lowering = Lowering {
        dag,
        plan: &plan,
        leaves: &leaves,
        outputs: &outputs,
        back: back_channel(&plan, coordinator.direct()),
        direct: coordinator.direct(),
        before: (0..plan.stages.len())
            .filter(|s| coordinator.lowered(*s))
            .collect(),
        partials: Default::default(),
        needs: Default::default(),
    };
    let needed = coordinator.needed(stage);
    let readers = later_readers(&plan, &outputs, &needed, |s| coordinator.lowered(s));
    let mut lowering_order: Vec<usize> = needed.iter().chain(&readers).copied().collect();
    lowering_order.sort_unstable();
    // Consumers first: a grouping's stage decides the partial aggregation its producers run,
    // and every reader the columns its producers send and keep.
    for id in lowering_order.into_iter().rev() {
        if coordinator.lowered(id) {
            continue;
        }
        let started = std::time::Instant::now();
        match lowering.stage(id, &state).await {
            Ok(lowered) => coordinator.add_stage(lowered),
            // A later job's stage may read what is not made yet (a model this run trains):
            // it is lowered with its own job, its producers sending every column.
            Err(e) if readers.contains(&id) => {
                tracing::debug!("stage {id} is lowered with its own job: {e}");
                continue;
            }
            Err(e) => return Err(e),
        }
        tracing::debug!(
            "stage {id} lowered in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    coordinator.read(stage, output).await
}

/// Stages of later jobs that read what the `needed` stages compute and nothing else not yet
/// lowered. Lowered with them, they say which columns they read: a stage several sinks
/// share then sends and keeps only those, not every column of its scan. Stages further down
/// wait for their own job, so no stage is lowered after a stage that reads it.
fn later_readers(
    plan: &PhysicalPlan,
    outputs: &[Vec<lowering::OutputOf>],
    needed: &[usize],
    lowered: impl Fn(usize) -> bool,
) -> Vec<usize> {
    (0..plan.stages.len())
        .filter(|s| !needed.contains(s) && !lowered(*s))
        .filter(|s| {
            let inputs = lowering::input_stages(plan, outputs, *s);
            inputs.iter().any(|i| needed.contains(i))
                && inputs.iter().all(|i| needed.contains(i) || lowered(*i))
        })
        .collect()
}

/// What comes back to the coordinator moves direct, unless the coordinator cannot reach its
/// functions (Lambda) or every exchange was forced through storage (`--channel storage`).
fn back_channel(plan: &PhysicalPlan, direct: bool) -> Channel {
    let all_storage = !direct
        || (!plan.exchanges.is_empty()
            && plan
                .exchanges
                .iter()
                .all(|x| x.forced && x.channel == Channel::Storage));
    if all_storage {
        Channel::Storage
    } else {
        Channel::Direct
    }
}

/// The tables a lowered stage reads that no stage computes.
struct Leaves<'a> {
    dag: &'a Dag,
    ml: &'a MlResults,
}

impl lowering::Leaves for Leaves<'_> {
    fn substitute(&self, plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
        substitute(self.dag, plan, self.ml)
            .map_err(|d| DataFusionError::Execution(d.message.clone()))
    }

    fn scored(
        &self,
        infer: NodeId,
        input: LogicalPlan,
        scan: &TableScan,
        planned: Option<usize>,
    ) -> datafusion::error::Result<LogicalPlan> {
        let NodeKind::Infer { batch, .. } = &self.dag.node(infer).kind else {
            return Err(DataFusionError::Internal(format!(
                "node #{} is not an infer",
                infer.index()
            )));
        };
        let table = ScoredTable {
            input: self.substitute(input)?,
            model: self
                .ml
                .model_of(self.dag, infer)
                .map_err(|d| DataFusionError::Execution(d.message.clone()))?,
            // The plan's batch is the program's when it names one.
            batch: planned.or_else(|| batch.and_then(|b| usize::try_from(b).ok())),
            schema: scan.source.schema(),
        };
        LogicalPlanBuilder::scan(
            scan.table_name.clone(),
            provider_as_source(Arc::new(table)),
            scan.projection.clone(),
        )?
        .build()
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Files written by `save`, in program order.
    pub saved: Vec<Saved>,
    /// What the workers did, when the run was distributed.
    pub cluster: Option<RunRecord>,
}

/// What one `save` wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// A table: the file and its rows.
    Table(PathBuf, usize),
    /// A model file.
    Model(PathBuf),
}

/// Computes the whole table of the `index`-th sink (in program order), ignoring a `show`'s
/// row limit and writing nothing. Tests and tools use it to look at results.
pub fn collect(
    compiled: &Compiled,
    options: &RunOptions,
    index: usize,
) -> Result<Vec<RecordBatch>, Diagnostic> {
    let dag = &compiled.dag;
    let Some(sink) = dag.sinks().get(index).copied() else {
        return Err(Diagnostic::error(
            Code::E0029,
            format!("the program has no sink number {index}"),
            Span::default(),
            "here",
        ));
    };
    let input = dag.inputs(sink)[0];
    engine()?.block_on(async {
        let ctx = session(options);
        let mut ml = MlResults::default();
        let mut engine = Engine::Local;
        ensure_ml(dag, input, &ctx, &mut engine, &mut ml).await?;
        rows(dag, input, &ctx, &mut engine, &ml).await
    })
}

/// Computes the ML nodes `node` depends on.
async fn ensure_ml(
    dag: &Dag,
    node: NodeId,
    ctx: &SessionContext,
    engine: &mut Engine,
    ml: &mut MlResults,
) -> Result<(), Diagnostic> {
    let mut host = Host { dag, ctx, engine };
    ml.ensure(dag, node, &mut host).await
}

/// The engine as the ML steps see it.
struct Host<'a> {
    dag: &'a Dag,
    ctx: &'a SessionContext,
    engine: &'a mut Engine,
}

impl MlHost for Host<'_> {
    async fn rows(
        &mut self,
        node: NodeId,
        results: &MlResults,
    ) -> Result<Vec<RecordBatch>, Diagnostic> {
        rows(self.dag, node, self.ctx, self.engine, results).await
    }

    fn train(
        &mut self,
        node: NodeId,
        spec: &TrainSpec,
        prepared: Prepared,
    ) -> Result<Model, String> {
        let Engine::Cluster(coordinator) = &mut *self.engine else {
            return Ok(train::fit_prepared(spec, prepared));
        };
        let Body::Net { net, .. } = &prepared.model.body else {
            // k-means trains in the coordinator.
            return Ok(train::fit_prepared(spec, prepared));
        };
        // One function's worth of training runs where its rows already are: shipping them to
        // a single worker would add a copy the plan does not have (it fuses training with the
        // step that computes its table).
        let training = coordinator.training(node.index(), spec);
        if training.group < 2 {
            tracing::info!("training in the coordinator: the plan gives it one function");
            return Ok(train::fit_prepared(spec, prepared));
        }
        let header = TrainHeader {
            spec: spec.clone(),
            net: net.clone(),
            params: train::initial_params(spec, net),
            inputs: prepared.x.cols,
        };
        let params = coordinator
            .train(&header, &training, &prepared.x, &prepared.targets)
            .map_err(|e| crate::diagnose::clean(&e.to_string()))?;
        let mut model = prepared.model;
        if let Body::Net { params: p, .. } = &mut model.body {
            *p = params;
        }
        Ok(model)
    }
}

/// The whole table of a relational node (its ML inputs already computed).
async fn rows(
    dag: &Dag,
    node: NodeId,
    ctx: &SessionContext,
    engine: &mut Engine,
    ml: &MlResults,
) -> Result<Vec<RecordBatch>, Diagnostic> {
    let Some(plan) = dag.node(node).plan() else {
        return Err(not_available(dag, node));
    };
    let plan = substitute(dag, plan.clone(), ml)?;
    let at = dag.node(node).span;
    let fail =
        |e: datafusion::error::DataFusionError| run_error(dag, &plan_sources(dag, node), e, at);
    let stream = engine
        .rows_of(ctx, (dag, ml), (node, None), plan)
        .await
        .map_err(fail)?;
    datafusion::physical_plan::common::collect(stream)
        .await
        .map_err(fail)
}

fn engine() -> Result<tokio::runtime::Runtime, Diagnostic> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Diagnostic::error(
                Code::E0029,
                format!("cannot start the engine: {e}"),
                Span::default(),
                "here",
            )
        })
}

fn session(options: &RunOptions) -> SessionContext {
    let mut state = flow_compiler::session_state();
    if let Some(p) = options.partitions {
        *state.config_mut() = SessionConfig::new().with_target_partitions(p.max(1));
    }
    SessionContext::new_with_state(state)
}

/// Runs every `save` and `show` of a compiled program. Tables for `show` are written to `out`.
/// Saves are committed only when every sink succeeded, so a failed run writes nothing.
pub fn run(
    compiled: &Compiled,
    options: &RunOptions,
    out: &mut dyn Write,
) -> Result<RunSummary, Diagnostic> {
    engine()?.block_on(run_async(compiled, options, out))
}

async fn run_async(
    compiled: &Compiled,
    options: &RunOptions,
    out: &mut dyn Write,
) -> Result<RunSummary, Diagnostic> {
    let ctx = session(options);
    let mut engine = match &options.cluster {
        None => Engine::Local,
        Some(cluster) => {
            let started = (cluster.backend)()
                .map_err(DataFusionError::Execution)
                .and_then(|backend| {
                    Coordinator::start(&cluster.options, backend, options.watch.clone())
                });
            Engine::Cluster(Box::new(started.map_err(|e| {
                Diagnostic::error(
                    Code::E0029,
                    format!(
                        "cannot start the workers: {}",
                        crate::diagnose::clean(&e.to_string())
                    ),
                    Span::default(),
                    "while starting the run",
                )
            })?))
        }
    };
    let result = run_sinks(compiled, out, &ctx, &mut engine, options.watch.as_deref()).await;
    if let Some(watch) = &options.watch {
        watch.finished();
    }
    let record = engine.finish().await;
    result.map(|summary| RunSummary {
        cluster: record,
        ..summary
    })
}

async fn run_sinks(
    compiled: &Compiled,
    out: &mut dyn Write,
    ctx: &SessionContext,
    engine: &mut Engine,
    watch: Option<&dyn Watch>,
) -> Result<RunSummary, Diagnostic> {
    let dag = &compiled.dag;
    let mut pending = save::Pending::default();
    let mut summary = RunSummary::default();
    let mut ml = MlResults::default();
    let sinks = dag.sinks();
    for (index, sink) in sinks.iter().copied().enumerate() {
        let node = dag.node(sink);
        if let Some(watch) = watch {
            watch.sink(index, sinks.len(), &node.label);
        }
        let NodeKind::Sink(kind) = &node.kind else {
            continue;
        };
        let input = dag.inputs(sink)[0];
        ensure_ml(dag, input, ctx, engine, &mut ml).await?;
        if let Some(model) = ml.model(input) {
            let SinkKind::Save { file, .. } = kind else {
                return Err(not_available(dag, input));
            };
            let target = PathBuf::from(file);
            let AnyModel::Flow(model) = model.as_ref() else {
                return Err(Diagnostic::error(
                    Code::E0033,
                    "an ONNX model cannot be saved as a flow model",
                    node.span,
                    "this save",
                )
                .with_help("copy the `.onnx` file instead; flow reads it where it is"));
            };
            let bytes = flow_stdlib::ml::file::to_bytes(model);
            pending
                .write_bytes(&target, &bytes)
                .map_err(|e| save_error(e, node.span, |e| run_error(dag, &[], e, node.span)))?;
            summary.saved.push(Saved::Model(target));
            continue;
        }
        let plan = match dag.node(input).plan() {
            Some(plan) => substitute(dag, plan.clone(), &ml)?,
            None => return Err(not_available(dag, input)),
        };
        let at = dag.node(input).span;
        let fail = |e: datafusion::error::DataFusionError| {
            run_error(dag, &plan_sources(dag, input), e, at)
        };
        match kind {
            SinkKind::Show { limit } => {
                let limited = LogicalPlanBuilder::from(plan.clone())
                    .limit(0, Some(limit + 1))
                    .and_then(|b| b.build())
                    .map_err(fail)?;
                let stream = engine
                    .rows_of(ctx, (dag, &ml), (input, Some(sink)), limited)
                    .await
                    .map_err(fail)?;
                // An empty table still shows its columns.
                let schema = stream.schema();
                let batches = datafusion::physical_plan::common::collect(stream)
                    .await
                    .map_err(fail)?;
                let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let shown = take_rows(&batches, *limit);
                let table = pretty_format_batches_with_schema(schema, &shown)
                    .map_err(|e| fail(e.into()))?;
                let _ = writeln!(out, "{table}");
                if total > *limit {
                    let _ = writeln!(out, "(first {limit} rows shown)");
                } else {
                    let _ = writeln!(out, "({total} row{})", if total == 1 { "" } else { "s" });
                }
            }
            SinkKind::Save {
                file, format, csv, ..
            } => {
                let target = PathBuf::from(file);
                let stream = engine
                    .rows_of(ctx, (dag, &ml), (input, Some(sink)), plan)
                    .await
                    .map_err(fail)?;
                let started = std::time::Instant::now();
                let rows = pending
                    .write(&target, *format, csv, stream)
                    .await
                    .map_err(|e| save_error(e, node.span, fail))?;
                tracing::debug!(
                    "{rows} rows written beside {} in {:.1} ms",
                    target.display(),
                    started.elapsed().as_secs_f64() * 1e3
                );
                summary.saved.push(Saved::Table(target, rows));
            }
        }
    }
    pending.commit().map_err(|message| {
        Diagnostic::error(Code::E0029, message, Span::default(), "while saving")
    })?;
    Ok(summary)
}

fn save_error(
    e: save::SaveError,
    at: Span,
    engine: impl FnOnce(datafusion::error::DataFusionError) -> Diagnostic,
) -> Diagnostic {
    match e {
        save::SaveError::Engine(e) => engine(e),
        save::SaveError::Io(message) => {
            Diagnostic::error(Code::E0029, message, at, "while saving this")
        }
    }
}

fn take_rows(batches: &[RecordBatch], limit: usize) -> Vec<RecordBatch> {
    let mut left = limit;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let n = b.num_rows().min(left);
        out.push(b.slice(0, n));
        left -= n;
    }
    out
}

/// Replaces every placeholder scan with the table it stands for: the files of a source, the
/// computed rows of an ML step.
fn substitute(dag: &Dag, plan: LogicalPlan, ml: &MlResults) -> Result<LogicalPlan, Diagnostic> {
    let mut missing = None;
    let mut failed = None;
    let result = plan.transform_up(|p| {
        let LogicalPlan::TableScan(scan) = &p else {
            return Ok(Transformed::no(p));
        };
        let Some(node) = node_of_scan(scan) else {
            return Ok(Transformed::no(p));
        };
        if let NodeKind::Infer { batch, .. } = &dag.node(node).kind {
            let scored = scored_table(dag, node, *batch, scan.source.schema(), ml);
            let table = match scored {
                Ok(table) => table,
                Err(d) => {
                    failed = Some(d);
                    return Ok(Transformed::no(p));
                }
            };
            let plan = LogicalPlanBuilder::scan(
                scan.table_name.clone(),
                provider_as_source(Arc::new(table)),
                scan.projection.clone(),
            )?
            .build()?;
            return Ok(Transformed::yes(plan));
        }
        let computed = ml.table(node, &scan.source.schema()).map(|rows| {
            let rows = rows.map_err(datafusion::error::DataFusionError::Execution)?;
            let table = MemTable::try_new(scan.source.schema(), vec![rows])?;
            Ok::<_, datafusion::error::DataFusionError>(Arc::new(table) as Arc<dyn TableProvider>)
        });
        let table = match computed {
            Some(table) => Some(table?),
            None => source_table(dag, node)?,
        };
        match table {
            Some(table) => {
                let plan = LogicalPlanBuilder::scan(
                    scan.table_name.clone(),
                    provider_as_source(table),
                    scan.projection.clone(),
                )?
                .build()?;
                Ok(Transformed::yes(plan))
            }
            None => {
                missing = Some(node);
                Ok(Transformed::no(p))
            }
        }
    });
    if let Some(d) = failed {
        return Err(d);
    }
    if let Some(node) = missing {
        return Err(not_available(dag, node));
    }
    result
        .map(|t| t.data)
        .map_err(|e| Diagnostic::error(Code::E0029, e.to_string(), Span::default(), "here"))
}

/// The table of an `infer` node: its input, substituted, scored by its model when planned.
fn scored_table(
    dag: &Dag,
    node: NodeId,
    batch: Option<i64>,
    schema: datafusion::arrow::datatypes::SchemaRef,
    ml: &MlResults,
) -> Result<ScoredTable, Diagnostic> {
    let data = crate::ml::data_input(dag, node);
    let Some(plan) = dag.node(data).plan() else {
        return Err(not_available(dag, data));
    };
    Ok(ScoredTable {
        input: substitute(dag, plan.clone(), ml)?,
        model: ml.model_of(dag, node)?,
        batch: batch.and_then(|b| usize::try_from(b).ok()),
        schema,
    })
}

/// The listing table of a source node; `None` for nodes this engine cannot compute yet.
fn source_table(
    dag: &Dag,
    node: NodeId,
) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
    let NodeKind::Source { load, csv, .. } = &dag.node(node).kind else {
        return Ok(None);
    };
    let format: Arc<dyn FileFormat> = match load.format {
        Format::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(csv.header)
                .with_delimiter(csv.delimiter),
        ),
        Format::Parquet => Arc::new(ParquetFormat::default()),
        Format::Json => Arc::new(JsonFormat::default()),
        Format::Arrow => Arc::new(ArrowFormat),
    };
    let urls = load
        .files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options = ListingOptions::new(format).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(load.schema.clone());
    Ok(Some(Arc::new(ListingTable::try_new(config)?)))
}

/// A node the engine was asked for rows of but has none: a bug in the compiler or here.
fn not_available(dag: &Dag, node: NodeId) -> Diagnostic {
    let n = dag.node(node);
    Diagnostic::error(
        Code::E0029,
        format!(
            "internal error: the {} node `{}` has no rows to compute",
            n.kind_name(),
            n.label
        ),
        n.span,
        "while running this",
    )
    .with_help("this is a bug in flow; please report it with the program")
}

/// The source nodes a plan node reads, transitively.
fn plan_sources(dag: &Dag, node: NodeId) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        if matches!(dag.node(n).kind, NodeKind::Source { .. }) && !out.contains(&n) {
            out.push(n);
        }
        stack.extend(dag.inputs(n));
    }
    out
}

/// A run-time failure as a diagnostic pointing at the step that ran; bad data names the file.
fn run_error(
    dag: &Dag,
    sources: &[NodeId],
    e: datafusion::error::DataFusionError,
    at: Span,
) -> Diagnostic {
    let message = e.to_string();
    if let Some(at_marker) = message.find(crate::ml::ML_ERROR) {
        let text = &message[at_marker + crate::ml::ML_ERROR.len()..];
        return Diagnostic::error(Code::E0033, text.trim(), at, "while scoring this table");
    }
    let lower = message.to_lowercase();
    let bad_data = [
        "csv error",
        "parser error",
        "json error",
        "error while parsing",
        "cast error",
        "parquet error",
        "arrow error: invalid",
    ]
    .iter()
    .any(|m| lower.contains(m));
    if bad_data {
        if let Some(d) = crate::diagnose::bad_data(dag, sources) {
            return d;
        }
        return Diagnostic::error(
            Code::E0027,
            format!("bad data: {}", crate::diagnose::clean(&message)),
            at,
            "while reading the data of this step",
        );
    }
    Diagnostic::error(
        Code::E0029,
        crate::diagnose::clean(&message),
        at,
        "while running this step",
    )
}
