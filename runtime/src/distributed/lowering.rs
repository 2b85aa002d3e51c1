//! Lowering the planner's stages to what workers run: the plan is the program. Each stage of
//! the [`PhysicalPlan`] becomes one runtime stage of exactly `functions` tasks. Each of its
//! outputs — an exchange the plan sends on, or rows the coordinator reads for a sink, a
//! training or an evaluation — is the operator's piece of the compiler's logical plan, cut
//! where the planner put exchanges (an [`ExchangeTable`] stands for each input that another
//! stage computes), planned by DataFusion for one partition, and divided into the exchange's
//! buckets at its root (`RepartitionExec`: by the hash of the consumer's keys, or dealt out
//! for a scatter). A task runs that plan over its share: its part of every scan's rows
//! and its bucket of every shuffled input, or all of a broadcast or gather. What several
//! outputs of a stage compute alike (a scan feeding three exchanges) is an output of its own,
//! computed first and kept in the task for the others ([`Destination::Shared`]): each task
//! does the stage's work once.
//!
//! Operators the coordinator runs itself — `train`, `evaluate`, loading a model, `save` and
//! `show` — have no task plan: their inputs come back to the coordinator, and the models they
//! make ride inside the plans of the `infer` operators that use them.

use super::estimated::Estimated;
use super::exchange::{ExchangeReadExec, ReadKind};
use super::row_groups::RowGroups;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::Transformed;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::TableType;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::{DataSource, DataSourceExec};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, SubqueryAlias, TableScan};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::expressions::{Column as PhysicalColumn, Literal};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::{ProjectionExec, ProjectionExpr};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{
    ChildrenPropertiesMode, ExecutionPlan, ExecutionPlanProperties, ReplaceChildrenOptions,
};
use datafusion::scalar::ScalarValue;
use flow_compiler::{Dag, NodeId, NodeKind, NodeTable, node_of_scan};
use flow_planner::physical::{Exchange, Pattern};
use flow_planner::{Channel, OpId, OpKind, PhysicalPlan};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Where an output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The plan's exchange with this id.
    Exchange(usize),
    /// The coordinator, for an operator of the same stage it runs itself.
    Coordinator,
    /// The task itself: rows several of its other outputs read, computed once and kept in
    /// the worker for them.
    Shared,
}

/// What a stage's tasks produce, before any plan is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputOf {
    /// The operator whose rows these are.
    pub op: OpId,
    /// Where they go.
    pub to: Destination,
}

/// Whether the operator's rows are computed by a task (not by the coordinator): the
/// planner's fact, which its timeline prices.
pub fn computes(kind: &OpKind) -> bool {
    kind.runs_in_task()
}

/// The outputs of every stage of a plan, by stage: first the rows its other outputs share
/// ([`Destination::Shared`], inputs first), then each exchange out of a computing operator,
/// then the rows a coordinator operator of the same stage reads.
pub fn outputs(plan: &PhysicalPlan) -> Vec<Vec<OutputOf>> {
    let mut out = vec![Vec::new(); plan.stages.len()];
    for x in &plan.exchanges {
        if computes(&plan.ops[x.producer].op.kind) {
            out[x.from].push(OutputOf {
                op: x.producer,
                to: Destination::Exchange(x.id),
            });
        }
    }
    for planned in &plan.ops {
        if computes(&planned.op.kind) {
            continue;
        }
        for input in &planned.op.inputs {
            let producer = &plan.ops[*input];
            let here = OutputOf {
                op: *input,
                to: Destination::Coordinator,
            };
            if producer.stage == planned.stage
                && computes(&producer.op.kind)
                && !out[planned.stage].contains(&here)
            {
                out[planned.stage].push(here);
            }
        }
    }
    // A stage whose one output is a fused exchange runs inside its consumer's task: the
    // consumer's plan computes its rows where it reads them, and nothing moves.
    for outputs in out.iter_mut() {
        if let [
            OutputOf {
                to: Destination::Exchange(x),
                ..
            },
        ] = outputs[..]
            && fused_into_consumer(plan, &plan.exchanges[x])
        {
            outputs.clear();
        }
    }
    for (stage, outputs) in out.iter_mut().enumerate() {
        let shared: Vec<OutputOf> = shared_ops(plan, stage, outputs)
            .into_iter()
            .map(|op| OutputOf {
                op,
                to: Destination::Shared,
            })
            .collect();
        outputs.splice(0..0, shared);
    }
    out
}

/// Whether exchange `x` can run inside its consumer's task: the plan fuses it (producer and
/// consumer are one function) and tasks compute both sides. Its producer stage is then no
/// task of its own when this is its only output ([`outputs`]).
fn fused_into_consumer(plan: &PhysicalPlan, x: &Exchange) -> bool {
    x.channel == Channel::Fused
        && plan.stages[x.from].functions == 1
        && plan.stages[x.to].functions == 1
        && computes(&plan.ops[x.producer].op.kind)
        && computes(&plan.ops[x.consumer].op.kind)
}

/// Whether exchange `x` runs inside its consumer's task (its producer stage has no outputs
/// of its own: see [`outputs`]).
pub fn inlined(plan: &PhysicalPlan, outputs: &[Vec<OutputOf>], x: &Exchange) -> bool {
    outputs[x.from].is_empty() && fused_into_consumer(plan, x)
}

/// The stages whose outputs stage `id` reads, through the stages fused into its tasks.
pub fn input_stages(plan: &PhysicalPlan, outputs: &[Vec<OutputOf>], id: usize) -> Vec<usize> {
    let mut inputs = Vec::new();
    let mut pending = vec![id];
    while let Some(s) = pending.pop() {
        for x in plan.inputs_of(s) {
            if !computes(&plan.ops[x.producer].op.kind) {
                continue;
            }
            if inlined(plan, outputs, x) {
                pending.push(x.from);
            } else if !inputs.contains(&x.from) {
                inputs.push(x.from);
            }
        }
    }
    inputs.sort_unstable();
    inputs
}

/// The operators of `stage` that two or more of its outputs compute, where the sharing ends:
/// each is an output's own operator or read by an operator only one output computes. They
/// are computed once per task.
fn shared_ops(plan: &PhysicalPlan, stage: usize, outputs: &[OutputOf]) -> Vec<OpId> {
    if outputs.len() < 2 {
        return Vec::new();
    }
    let in_stage = |op: OpId| plan.ops[op].stage == stage && computes(&plan.ops[op].op.kind);
    let mut uses: HashMap<OpId, usize> = HashMap::new();
    for o in outputs {
        let mut seen = HashSet::new();
        let mut pending = vec![o.op];
        while let Some(op) = pending.pop() {
            if !in_stage(op) || !seen.insert(op) {
                continue;
            }
            pending.extend(plan.ops[op].op.inputs.iter().copied());
        }
        for op in seen {
            *uses.entry(op).or_default() += 1;
        }
    }
    let shared = |op: &OpId| uses.get(op).is_some_and(|n| *n >= 2);
    let mut ends: Vec<OpId> =
        uses.keys()
            .copied()
            .filter(shared)
            .filter(|op| {
                outputs.iter().any(|o| o.op == *op)
                    || plan.ops.iter().any(|r| {
                        uses.contains_key(&r.id) && r.op.inputs.contains(op) && !shared(&r.id)
                    })
            })
            .collect();
    ends.sort_unstable();
    ends
}

/// One output of a lowered stage.
#[derive(Debug, Clone)]
pub struct Output {
    /// What it carries.
    pub of: OutputOf,
    /// The channel it moves over.
    pub channel: Channel,
    /// Buckets each task divides it into.
    pub buckets: usize,
    /// The task plan, for one partition, its readers without locations; a
    /// `RepartitionExec` at the root when it is divided into buckets.
    pub plan: Arc<dyn ExecutionPlan>,
    /// For each file scan of `plan` in [`for_each_scan`] order, the files of each task.
    pub shares: Vec<Vec<FileGroup>>,
}

/// A planner stage as the runtime runs it.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The planner's stage id.
    pub id: usize,
    /// Tasks: the stage's functions.
    pub tasks: usize,
    /// Its outputs; none when the coordinator does all of its work.
    pub outputs: Vec<Output>,
    /// The stages it reads outputs of.
    pub inputs: Vec<usize>,
}

/// How lowering reaches the tables a stage reads that no stage computes: sources' files and
/// the tables ML steps computed, and the model of an `infer`.
pub trait Leaves {
    /// `plan` with every placeholder scan of a source or a computed ML table replaced.
    fn substitute(&self, plan: LogicalPlan) -> Result<LogicalPlan>;

    /// A scan of `infer`'s scored table, named and projected as `scan`, over `input`, scored
    /// `batch` rows per call of the model (the plan's batching).
    fn scored(
        &self,
        infer: NodeId,
        input: LogicalPlan,
        scan: &TableScan,
        batch: Option<usize>,
    ) -> Result<LogicalPlan>;
}

/// Lowers the stages of one plan.
pub struct Lowering<'a> {
    pub dag: &'a Dag,
    pub plan: &'a PhysicalPlan,
    pub leaves: &'a dyn Leaves,
    /// Every stage's outputs ([`outputs`]).
    pub outputs: &'a [Vec<OutputOf>],
    /// The channel of what the coordinator reads.
    pub back: Channel,
    /// Whether functions reach each other directly; where they cannot, what a fused
    /// exchange hands from one task to another goes through storage.
    pub direct: bool,
    /// Stages lowered before this lowering began: their outputs are fixed.
    pub before: HashSet<usize>,
    /// What each producer runs over its rows before it sends on an exchange: the partial
    /// aggregation of a grouping ([`Lowering::split_groupings`]) or its own top k of a
    /// top-k ([`Lowering::note_top_k`]), decided while lowering the consumer; stages are
    /// lowered consumers first, so the producer finds it here.
    pub partials: RefCell<HashMap<usize, Arc<dyn ExecutionPlan>>>,
    /// The columns each consumer reads of each output of a stage not lowered yet, by
    /// `(stage, output)`; the producer sends only those.
    pub needs: RefCell<HashMap<(usize, usize), Needed>>,
}

impl Lowering<'_> {
    /// The runtime moves a fused exchange like a direct one (the function is the same), or
    /// through storage where functions cannot reach each other.
    fn runtime_channel(&self, channel: Channel) -> Channel {
        match channel {
            Channel::Fused if self.direct => Channel::Direct,
            Channel::Fused => Channel::Storage,
            other => other,
        }
    }

    /// Lowers stage `id`, planning each output with `state` (one target partition).
    pub async fn stage(&self, id: usize, state: &SessionState) -> Result<Stage> {
        let planned = &self.plan.stages[id];
        let tasks = planned.functions.max(1) as usize;
        let of = &self.outputs[id];
        let shared = |k: &usize| of[*k].to == Destination::Shared;
        let readers: Vec<usize> = (0..of.len()).filter(|k| !shared(k)).collect();
        if of.len() > readers.len() {
            // The rows a task keeps for its other outputs carry only the columns those read:
            // planning the readers once records which (then they are planned for good).
            for &k in &readers {
                self.output(id, k, tasks, state).await?;
            }
        }
        let mut outputs: Vec<Option<Output>> = (0..of.len()).map(|_| None).collect();
        for k in readers.into_iter().chain((0..of.len()).filter(shared)) {
            outputs[k] = Some(self.output(id, k, tasks, state).await?);
        }
        let inputs = input_stages(self.plan, self.outputs, id);
        Ok(Stage {
            id,
            tasks,
            outputs: outputs.into_iter().flatten().collect(),
            inputs,
        })
    }

    /// Output `k` of stage `id`, planned for tasks of one partition.
    async fn output(
        &self,
        id: usize,
        k: usize,
        tasks: usize,
        state: &SessionState,
    ) -> Result<Output> {
        let of = &self.outputs[id][k];
        let mut logical = self.logical(of.op, id)?;
        if let Some(shared) = self.shared_index(id, of.op)
            && of.to != Destination::Shared
        {
            let schema = logical.schema().clone();
            let name = format!("shared_{shared}");
            let made = &self.plan.ops[of.op];
            let n = tasks.max(1) as f64;
            let estimate = (made.rows / n, made.bytes / n);
            logical = self.placeholder((id, shared), ReadKind::Own, &schema, name, estimate)?;
        }
        let logical = self.leaves.substitute(self.sent(id, k, logical)?)?;
        let mut plan = state.create_physical_plan(&logical).await?;
        // A task is one partition; a union of inputs keeps each as a partition of its own.
        if plan.output_partitioning().partition_count() > 1 {
            plan = Arc::new(CoalescePartitionsExec::new(plan));
        }
        plan = self.split_groupings(plan)?;
        self.note_top_k(&plan)?;
        let (channel, buckets) = match of.to {
            Destination::Exchange(x) => {
                let x = &self.plan.exchanges[x];
                plan = self.limit(x.consumer, plan);
                let consumers = self.plan.stages[x.to].functions.max(1) as usize;
                let partial = self.partials.borrow().get(&x.id).cloned();
                let (root, buckets) = match partial {
                    Some(partial) => self.pre_aggregate(x, &partial, plan, consumers)?,
                    None => self.divide(x, plan, consumers, (state, self.sent_columns(id, k)))?,
                };
                plan = root;
                (self.runtime_channel(x.channel), buckets)
            }
            // Never moved: kept in the task for its other outputs.
            Destination::Shared => (self.runtime_channel(Channel::Fused), 1),
            Destination::Coordinator => {
                // Rows only `show`s read need no more than the longest of them prints.
                let readers = self.readers(of.op, id);
                let shows_only = readers
                    .iter()
                    .all(|r| matches!(self.plan.ops[*r].op.kind, OpKind::Show { .. }));
                if shows_only
                    && let Some(widest) =
                        readers
                            .iter()
                            .max_by_key(|r| match self.plan.ops[**r].op.kind {
                                OpKind::Show { limit } => limit,
                                _ => 0,
                            })
                {
                    plan = self.limit(*widest, plan);
                }
                (self.back, 1)
            }
        };
        let shares = shares_of(&plan, tasks, state).await?;
        Ok(Output {
            of: *of,
            channel,
            buckets,
            plan,
            shares,
        })
    }

    /// The columns output `k` of `stage` sends, when its readers said which they use.
    fn sent_columns(&self, stage: usize, k: usize) -> Option<Vec<usize>> {
        let needed = self.needs.borrow().get(&(stage, k)).cloned()?;
        needed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `plan` cut to the columns its readers use, when they said (output `k` of `stage`).
    fn sent(&self, stage: usize, k: usize, plan: LogicalPlan) -> Result<LogicalPlan> {
        let Some(columns) = self.sent_columns(stage, k) else {
            return Ok(plan);
        };
        if columns.len() == plan.schema().fields().len() {
            return Ok(plan);
        }
        let schema = plan.schema().clone();
        let exprs = columns
            .iter()
            .map(|i| Expr::Column(Column::from(schema.qualified_field(*i))));
        LogicalPlanBuilder::from(plan).project(exprs)?.build()
    }

    /// Operators of stage `stage` that read `op` there.
    fn readers(&self, op: OpId, stage: usize) -> Vec<OpId> {
        self.plan
            .ops
            .iter()
            .filter(|o| o.stage == stage && o.op.inputs.contains(&op))
            .map(|o| o.id)
            .collect()
    }

    /// A `show` reads no more than one row past what it prints from any task.
    fn limit(&self, reader: OpId, plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
        match self.plan.ops[reader].op.kind {
            OpKind::Show { limit } => Arc::new(GlobalLimitExec::new(
                plan,
                0,
                Some(
                    usize::try_from(limit)
                        .unwrap_or(usize::MAX)
                        .saturating_add(1),
                ),
            )),
            _ => plan,
        }
    }

    /// A top-k of `plan` (a sort with a fetch) that reads a gathered exchange from a stage not
    /// lowered yet has each producer keep only its own top k before it sends (recorded in
    /// [`Lowering::partials`], as a partial aggregation is): what the planner prices, and k
    /// rows per function instead of every row crossing to one. Only where the sort reads
    /// the exchange's rows as they come (renamed at most), so what the producer sends is
    /// what this stage reads.
    fn note_top_k(&self, plan: &Arc<dyn ExecutionPlan>) -> Result<()> {
        plan.apply(|node| {
            let Some(sort) = node.downcast_ref::<SortExec>() else {
                return Ok(TreeNodeRecursion::Continue);
            };
            let Some(k) = sort.fetch() else {
                return Ok(TreeNodeRecursion::Continue);
            };
            let mut below = sort.input();
            while below.downcast_ref::<CooperativeExec>().is_some() || renames_only(below) {
                below = below.children()[0];
            }
            if let Some(read) = below.downcast_ref::<ExchangeReadExec>()
                && let Some(Destination::Exchange(x)) = self
                    .outputs
                    .get(read.stage)
                    .and_then(|o| o.get(read.output))
                    .map(|o| o.to)
                && self.plan.exchanges[x].pattern == Pattern::Gather
                && !self.before.contains(&read.stage)
            {
                let local =
                    SortExec::new(sort.expr().clone(), sort.input().clone()).with_fetch(Some(k));
                self.partials.borrow_mut().insert(x, Arc::new(local));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(())
    }

    /// Each grouping of `plan` that reads an exchange from a stage not lowered yet, split in
    /// two where the plan says its producers pre-aggregate (`Exchange::partial`): the
    /// producer aggregates its rows partially before it sends them (recorded in
    /// [`Lowering::partials`]), and this stage combines the partial states it receives.
    fn split_groupings(&self, plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(split) = self.split_grouping(&node)? else {
                return Ok(Transformed::no(node));
            };
            Ok(Transformed::yes(split))
        })
        .map(|t| t.data)
    }

    fn split_grouping(
        &self,
        node: &Arc<dyn ExecutionPlan>,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let single = matches!(
            aggregate.mode(),
            AggregateMode::Single | AggregateMode::SinglePartitioned
        );
        if !single || !aggregate.group_expr().is_single() {
            return Ok(None);
        }
        let mut below = aggregate.input();
        while below.downcast_ref::<ProjectionExec>().is_some()
            || below.downcast_ref::<FilterExec>().is_some()
            || below.downcast_ref::<CooperativeExec>().is_some()
        {
            below = below.children()[0];
        }
        let Some(read) = below.downcast_ref::<ExchangeReadExec>() else {
            return Ok(None);
        };
        let Some(Destination::Exchange(x)) = self
            .outputs
            .get(read.stage)
            .and_then(|o| o.get(read.output))
            .map(|o| o.to)
        else {
            return Ok(None);
        };
        // The planner decides where producers pre-aggregate (and prices what moves so).
        if !self.plan.exchanges[x].partial || self.before.contains(&read.stage) {
            return Ok(None);
        }
        let partial: Arc<dyn ExecutionPlan> = Arc::new(AggregateExec::try_new(
            AggregateMode::Partial,
            aggregate.group_expr().clone(),
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            aggregate.input().clone(),
            aggregate.input_schema(),
        )?);
        let states = partial.schema();
        let read: Arc<dyn ExecutionPlan> = Arc::new(ExchangeReadExec::new(
            (read.stage, read.output),
            read.kind,
            1,
            states.clone(),
            EquivalenceProperties::new(states),
        ));
        let combine = AggregateExec::try_new(
            AggregateMode::Final,
            aggregate.group_expr().as_final(),
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            read,
            aggregate.input_schema(),
        )?;
        self.partials.borrow_mut().insert(x, partial);
        Ok(Some(Arc::new(combine)))
    }

    /// The producer's side of a split grouping: `partial` over its rows, divided by the
    /// grouping's keys (the first columns of the partial states).
    fn pre_aggregate(
        &self,
        x: &Exchange,
        partial: &Arc<dyn ExecutionPlan>,
        rows: Arc<dyn ExecutionPlan>,
        consumers: usize,
    ) -> Result<(Arc<dyn ExecutionPlan>, usize)> {
        let plan = partial
            .clone()
            .transform_up(|node| {
                if node.downcast_ref::<ExchangeReadExec>().is_none() {
                    return Ok(Transformed::no(node));
                }
                // The rows named as the reader names them, so the operators above it bind.
                let named: Vec<ProjectionExpr> = node
                    .schema()
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(i, field)| ProjectionExpr {
                        expr: Arc::new(PhysicalColumn::new(rows.schema().field(i).name(), i)),
                        alias: field.name().clone(),
                    })
                    .collect();
                Ok(Transformed::yes(
                    Arc::new(ProjectionExec::try_new(named, rows.clone())?)
                        as Arc<dyn ExecutionPlan>,
                ))
            })?
            .data;
        let keys = partial
            .downcast_ref::<AggregateExec>()
            .map_or(0, |a| a.group_expr().expr().len());
        if x.pattern == Pattern::Gather || keys == 0 {
            return Ok((plan, 1));
        }
        let schema = plan.schema();
        let columns: Vec<Arc<dyn PhysicalExpr>> = (0..keys)
            .map(|i| Arc::new(PhysicalColumn::new(schema.field(i).name(), i)) as _)
            .collect();
        Ok((
            Arc::new(RepartitionExec::try_new(
                plan,
                Partitioning::Hash(columns, consumers),
            )?),
            consumers,
        ))
    }

    /// The output's plan divided into the exchange's buckets at its root.
    fn divide(
        &self,
        x: &Exchange,
        plan: Arc<dyn ExecutionPlan>,
        consumers: usize,
        (state, sent): (&SessionState, Option<Vec<usize>>),
    ) -> Result<(Arc<dyn ExecutionPlan>, usize)> {
        let partitioning = match x.pattern {
            Pattern::Gather | Pattern::Broadcast => return Ok((plan, 1)),
            Pattern::Scatter | Pattern::Repartition => Partitioning::RoundRobinBatch(consumers),
            Pattern::HashShuffle => {
                let mut keys = self.keys(x, state)?;
                if let Some(sent) = sent {
                    // The keys name columns of everything the producer computes; it sends
                    // only `sent`, in order.
                    keys =
                        keys.into_iter()
                            .map(|k| {
                                k.transform(|e| {
                                    let Some(c) = e.downcast_ref::<PhysicalColumn>() else {
                                        return Ok(Transformed::no(e));
                                    };
                                    let at = sent.iter().position(|s| *s == c.index()).ok_or_else(
                                        || internal(format!("key column {} is not sent", c.name())),
                                    )?;
                                    Ok(Transformed::yes(
                                        Arc::new(PhysicalColumn::new(c.name(), at))
                                            as Arc<dyn PhysicalExpr>,
                                    ))
                                })
                                .map(|t| t.data)
                            })
                            .collect::<Result<_>>()?;
                }
                Partitioning::Hash(keys, consumers)
            }
        };
        Ok((
            Arc::new(RepartitionExec::try_new(plan, partitioning)?),
            consumers,
        ))
    }

    /// The consumer's keys over the rows the producer sends: a join's keys on the producer's
    /// side, a grouping's keys. A join without keys hashes every row alike.
    fn keys(&self, x: &Exchange, state: &SessionState) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
        let consumer = &self.plan.ops[x.consumer].op;
        let side = consumer
            .inputs
            .iter()
            .position(|i| *i == x.producer)
            .unwrap_or(0);
        let node = self.node_plan(x.consumer)?;
        let child = strip_aliases(node.inputs()[side]);
        let keys: Vec<Expr> = match node {
            LogicalPlan::Join(join) => join
                .on
                .iter()
                .map(|(l, r)| if side == 0 { l.clone() } else { r.clone() })
                .collect(),
            LogicalPlan::Aggregate(aggregate) => aggregate.group_expr.clone(),
            _ => child
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect(),
        };
        if keys.is_empty() {
            return Ok(vec![Arc::new(Literal::new(ScalarValue::Int64(Some(0))))]);
        }
        let schema = node.inputs()[side].schema();
        keys.into_iter()
            .map(|k| state.create_physical_expr(k, schema))
            .collect()
    }

    /// The logical plan node an operator was made from.
    fn node_plan(&self, op: OpId) -> Result<&LogicalPlan> {
        let origin = &self.plan.ops[op].op.origin;
        let mut plan = self
            .dag
            .node(NodeId::new(origin.node))
            .plan()
            .ok_or_else(|| internal(format!("operator #{op} has no plan")))?;
        for k in &origin.path {
            plan = plan
                .inputs()
                .get(*k)
                .copied()
                .ok_or_else(|| internal(format!("operator #{op}'s path leaves its plan")))?;
        }
        Ok(plan)
    }

    /// Rows per call of a model in `stage`, as the plan's batching says.
    fn batch(&self, stage: usize) -> Option<usize> {
        let batching = self.plan.stages.get(stage)?.batching.as_ref()?;
        usize::try_from(batching.batch).ok().filter(|b| *b > 0)
    }

    /// The logical plan computing `op` in stage `stage`.
    fn logical(&self, op: OpId, stage: usize) -> Result<LogicalPlan> {
        let planned = &self.plan.ops[op].op;
        match &planned.kind {
            OpKind::Scan { .. } => self.source_scan(NodeId::new(planned.origin.node)),
            OpKind::Infer { .. } => {
                let node = NodeId::new(planned.origin.node);
                let input = self.infer_input(node, op, stage)?;
                let schema = self.node_schema(node)?;
                let scan = LogicalPlanBuilder::scan(
                    format!("scored_{}", node.index()),
                    provider_as_source(Arc::new(NodeTable { node, schema })),
                    None,
                )?
                .build()?;
                let LogicalPlan::TableScan(scan) = &scan else {
                    return Err(internal("a scan builds a scan".into()));
                };
                self.leaves.scored(node, input, scan, self.batch(stage))
            }
            _ => self.rebuild(self.node_plan(op)?, op, stage),
        }
    }

    /// A scan of a source node's files.
    fn source_scan(&self, node: NodeId) -> Result<LogicalPlan> {
        let NodeKind::Source { load, .. } = &self.dag.node(node).kind else {
            return Err(internal(format!("node #{} is not a source", node.index())));
        };
        let table = NodeTable {
            node,
            schema: load.schema.clone(),
        };
        LogicalPlanBuilder::scan(
            format!("source_{}", node.index()),
            provider_as_source(Arc::new(table)),
            None,
        )?
        .build()
    }

    /// The table `infer` node `node` (operator `op`) scores, lowered for stage `stage`.
    fn infer_input(&self, node: NodeId, op: OpId, stage: usize) -> Result<LogicalPlan> {
        let table = self.infer_table(op)?;
        let data = crate::ml::data_input(self.dag, node);
        match self.dag.node(data).plan() {
            Some(plan) => self.child(plan, table, op, stage),
            None => self.child(&self.source_scan(data)?, table, op, stage),
        }
    }

    /// The operator giving `infer` its table (the other input gives its model).
    fn infer_table(&self, op: OpId) -> Result<OpId> {
        self.plan.ops[op]
            .op
            .inputs
            .iter()
            .copied()
            .find(|i| !self.plan.ops[*i].op.kind.is_model())
            .ok_or_else(|| internal(format!("infer #{op} has no table")))
    }

    /// The output schema of a DAG node as the compiler declared it: the schema of the
    /// placeholder scans that read it.
    fn node_schema(&self, node: NodeId) -> Result<SchemaRef> {
        let mut found = None;
        for reader in self.dag.graph.node_indices() {
            let Some(plan) = self.dag.node(reader).plan() else {
                continue;
            };
            plan.apply(|p| {
                if let LogicalPlan::TableScan(scan) = p
                    && node_of_scan(scan) == Some(node)
                {
                    found = Some(scan.source.schema());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
            if found.is_some() {
                break;
            }
        }
        found.ok_or_else(|| internal(format!("nothing reads node #{}", node.index())))
    }

    /// `node` (operator `op`'s plan node) with each input computed in `stage` lowered in
    /// place and each input another stage computes read from its exchange.
    fn rebuild(&self, node: &LogicalPlan, op: OpId, stage: usize) -> Result<LogicalPlan> {
        let children = node.inputs();
        if children.is_empty() {
            return Ok(node.clone());
        }
        let inputs = &self.plan.ops[op].op.inputs;
        let mut rebuilt = Vec::with_capacity(children.len());
        for (k, child) in children.into_iter().enumerate() {
            let producer = *inputs.get(k).ok_or_else(|| {
                internal(format!("operator #{op} has fewer inputs than its plan"))
            })?;
            rebuilt.push(self.child(child, producer, op, stage)?);
        }
        node.with_new_exprs(node.expressions(), rebuilt)
    }

    /// One input of `consumer`, as its plan has it (`child`), computed by `producer`.
    fn child(
        &self,
        child: &LogicalPlan,
        producer: OpId,
        consumer: OpId,
        stage: usize,
    ) -> Result<LogicalPlan> {
        if let LogicalPlan::SubqueryAlias(alias) = child {
            let inner = self.child(&alias.input, producer, consumer, stage)?;
            return Ok(LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(
                Arc::new(inner),
                alias.alias.clone(),
            )?));
        }
        let made = &self.plan.ops[producer];
        let fused = self.plan.exchanges.iter().find(|x| {
            x.producer == producer && x.consumer == consumer && inlined(self.plan, self.outputs, x)
        });
        if made.stage != stage && fused.is_some() {
            // Computed here, as the stage fused into this task would have computed it.
            return self.child(child, producer, consumer, made.stage);
        }
        if made.stage != stage && computes(&made.op.kind) {
            let x = self
                .plan
                .exchanges
                .iter()
                .find(|x| x.producer == producer && x.consumer == consumer)
                .ok_or_else(|| {
                    internal(format!(
                        "no exchange from operator #{producer} to #{consumer}"
                    ))
                })?;
            let output = self.outputs[x.from]
                .iter()
                .position(|o| o.to == Destination::Exchange(x.id))
                .ok_or_else(|| internal(format!("exchange {} has no output", x.id)))?;
            let kind = ReadKind::of(x.pattern);
            let name = format!("exchange_{}", x.id);
            let share = match kind {
                ReadKind::Share => f64::from(self.plan.stages[stage].functions.max(1)),
                _ => 1.0,
            };
            let estimate = (made.rows / share, made.bytes / share);
            return self.placeholder((x.from, output), kind, child.schema(), name, estimate);
        }
        if let Some(k) = self.shared_index(stage, producer) {
            let name = format!("shared_{k}");
            let tasks = f64::from(self.plan.stages[stage].functions.max(1));
            let estimate = (made.rows / tasks, made.bytes / tasks);
            return self.placeholder((stage, k), ReadKind::Own, child.schema(), name, estimate);
        }
        match child {
            LogicalPlan::TableScan(scan) => match node_of_scan(scan) {
                Some(node) if matches!(self.dag.node(node).kind, NodeKind::Infer { .. }) => {
                    let input = self.infer_input(node, producer, stage)?;
                    self.leaves.scored(node, input, scan, self.batch(stage))
                }
                _ => self.estimated(scan, producer, stage),
            },
            _ => self.rebuild(child, producer, stage),
        }
    }

    /// A scan of operator `op` telling DataFusion the planner's estimate of what one task
    /// of `stage` reads ([`Estimated`]).
    fn estimated(&self, scan: &TableScan, op: OpId, stage: usize) -> Result<LogicalPlan> {
        // The compiler's placeholder becomes the table it stands for here, so the estimate
        // can wrap it.
        let substituted = self
            .leaves
            .substitute(LogicalPlan::TableScan(scan.clone()))?;
        let LogicalPlan::TableScan(scan) = substituted else {
            return Ok(substituted);
        };
        let Ok(inner) = source_as_provider(&scan.source) else {
            return Ok(LogicalPlan::TableScan(scan));
        };
        let tasks = f64::from(self.plan.stages[stage].functions.max(1));
        let made = &self.plan.ops[op];
        let mut estimated = scan.clone();
        estimated.source = provider_as_source(Arc::new(Estimated {
            inner,
            rows: made.rows / tasks,
            bytes: made.bytes / tasks,
        }));
        Ok(LogicalPlan::TableScan(estimated))
    }

    /// The index of the output of `stage` that keeps `op`'s rows for the task's other
    /// outputs, if it is shared.
    fn shared_index(&self, stage: usize, op: OpId) -> Option<usize> {
        self.outputs[stage]
            .iter()
            .position(|o| o.op == op && o.to == Destination::Shared)
    }

    /// A scan of output `output` of stage `stage`, read as `kind`, with the columns (and
    /// qualifiers) of `schema`.
    fn placeholder(
        &self,
        (stage, output): (usize, usize),
        kind: ReadKind,
        schema: &DFSchema,
        name: String,
        estimate: (f64, f64),
    ) -> Result<LogicalPlan> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), true))
            .collect();
        // A producer lowered after this stage (or the rows this task keeps for its outputs,
        // lowered after them) sends only what this stage reads of it.
        let needed = (!self.before.contains(&stage)).then(|| {
            self.needs
                .borrow_mut()
                .entry((stage, output))
                .or_default()
                .clone()
        });
        let table = ExchangeTable {
            stage,
            output,
            kind,
            schema: Arc::new(Schema::new(fields)),
            needed,
            estimate,
        };
        let columns = schema.iter().enumerate().map(|(i, (qualifier, field))| {
            Expr::Column(Column::new_unqualified(format!("c{i}")))
                .alias_qualified(qualifier.cloned(), field.name())
        });
        LogicalPlanBuilder::scan(name, provider_as_source(Arc::new(table)), None)?
            .project(columns)?
            .build()
    }
}

fn strip_aliases(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::SubqueryAlias(a) => strip_aliases(&a.input),
        other => other,
    }
}

fn internal(message: String) -> DataFusionError {
    DataFusionError::Internal(format!("lowering the plan: {message}"))
}

/// The columns a consumer reads of an exchange, recorded when its plan scans the exchange:
/// the producer, lowered after it, sends only those.
pub type Needed = Arc<Mutex<Option<Vec<usize>>>>;

/// The table a stage's plan reads another stage's output through.
#[derive(Debug)]
pub struct ExchangeTable {
    stage: usize,
    output: usize,
    kind: ReadKind,
    schema: SchemaRef,
    /// Where the columns read are recorded when the producer is yet to be lowered (it then
    /// sends only them); `None` when it sends every column.
    needed: Option<Needed>,
    /// The planner's rows and bytes for what one task reads.
    estimate: (f64, f64),
}

#[async_trait::async_trait]
impl TableProvider for ExchangeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        // What is sent: the columns read, in table order (one at least: a batch without
        // columns would lose its rows), or all of them.
        let sent = match (&self.needed, projection) {
            (Some(needed), Some(projection)) => {
                let mut sent = projection.clone();
                sent.sort_unstable();
                sent.dedup();
                if sent.is_empty() {
                    sent.push(0);
                }
                let mut recorded = needed.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(before) = recorded.as_ref() {
                    sent.extend(before.iter().copied());
                    sent.sort_unstable();
                    sent.dedup();
                }
                *recorded = Some(sent.clone());
                sent
            }
            (Some(needed), None) => {
                *needed.lock().unwrap_or_else(PoisonError::into_inner) = Some(all.clone());
                all
            }
            (None, _) => all,
        };
        let schema = Arc::new(self.schema.project(&sent)?);
        let read: Arc<dyn ExecutionPlan> = Arc::new(
            ExchangeReadExec::new(
                (self.stage, self.output),
                self.kind,
                1,
                schema.clone(),
                EquivalenceProperties::new(schema.clone()),
            )
            .with_estimate(self.estimate.0, self.estimate.1),
        );
        let wanted = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        if wanted == sent {
            return Ok(read);
        }
        let exprs: Vec<ProjectionExpr> = wanted
            .iter()
            .map(|i| {
                let at = sent.iter().position(|s| s == i).unwrap_or_default();
                let name = self.schema.field(*i).name().clone();
                ProjectionExpr {
                    expr: Arc::new(PhysicalColumn::new(&name, at)),
                    alias: name,
                }
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, read)?))
    }
}

/// Whether `plan` is a projection that only names its input's columns anew, each in its
/// place.
fn renames_only(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let Some(projection) = plan.downcast_ref::<ProjectionExec>() else {
        return false;
    };
    let exprs = projection.expr();
    exprs.len() == projection.input().schema().fields().len()
        && exprs.iter().enumerate().all(|(i, e)| {
            e.expr
                .downcast_ref::<PhysicalColumn>()
                .is_some_and(|c| c.index() == i)
        })
}

/// Calls `f` on every file scan of `plan`, children before parents, left to right.
pub fn for_each_scan(plan: &Arc<dyn ExecutionPlan>, f: &mut dyn FnMut(&FileScanConfig)) {
    for child in plan.children() {
        for_each_scan(child, f);
    }
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>()
        && let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>()
    {
        f(config);
    }
}

/// Each scan's files divided into `tasks` shares: Parquet by equal rows, to a row
/// ([`RowGroups`]); other formats by byte ranges where the format can start mid-file, else
/// by whole files. A task past the last share reads nothing.
async fn shares_of(
    plan: &Arc<dyn ExecutionPlan>,
    tasks: usize,
    state: &SessionState,
) -> Result<Vec<Vec<FileGroup>>> {
    let mut configs = Vec::new();
    for_each_scan(plan, &mut |c| configs.push(c.clone()));
    if tasks < 2 {
        return Ok(configs.iter().map(|c| c.file_groups.clone()).collect());
    }
    let row_groups = RowGroups::of(plan, state).await?;
    let mut shares = Vec::with_capacity(configs.len());
    for config in &configs {
        let divided = row_groups
            .shares(config, tasks)
            .or_else(|| by_range(config, tasks))
            .unwrap_or_else(|| by_file(config, tasks));
        shares.push(divided);
    }
    Ok(shares)
}

fn by_range(config: &FileScanConfig, tasks: usize) -> Option<Vec<FileGroup>> {
    if config.file_source.file_type() == "parquet" {
        return None;
    }
    let divided = config.repartitioned(tasks, 0, None).ok()??;
    let divided = divided.downcast_ref::<FileScanConfig>()?;
    Some(divided.file_groups.clone())
}

fn by_file(config: &FileScanConfig, tasks: usize) -> Vec<FileGroup> {
    let files: Vec<_> = config
        .file_groups
        .iter()
        .flat_map(|g| g.iter().cloned())
        .collect();
    FileGroup::new(files).split_files(tasks)
}

/// What an output's plan deals its rows out by: the plan under the dealing, and how it deals
/// (`None`: everything in one bucket). Workers deal as this says; readers count buckets by it.
pub fn dealing(plan: &Arc<dyn ExecutionPlan>) -> (Arc<dyn ExecutionPlan>, Option<Partitioning>) {
    match plan.downcast_ref::<RepartitionExec>() {
        Some(rep) => (rep.input().clone(), Some(rep.partitioning().clone())),
        None => (plan.clone(), None),
    }
}

/// How many buckets an output's plan deals its rows into.
pub fn bucket_count(plan: &Arc<dyn ExecutionPlan>) -> usize {
    match dealing(plan).1 {
        Some(Partitioning::Hash(_, n) | Partitioning::RoundRobinBatch(n)) => n,
        _ => 1,
    }
}

/// Task `task`'s plan of an output: its share of every scan.
pub fn task_plan(output: &Output, task: usize, tasks: usize) -> Result<Arc<dyn ExecutionPlan>> {
    if tasks < 2 {
        return Ok(output.plan.clone());
    }
    let mut next = 0;
    rewrite_scans(&output.plan, &mut |config| {
        let share = output
            .shares
            .get(next)
            .and_then(|groups| groups.get(task))
            .cloned()
            .unwrap_or_else(|| FileGroup::new(Vec::new()));
        next += 1;
        FileScanConfigBuilder::from(config.clone())
            .with_file_groups(vec![share])
            .build()
    })
}

fn rewrite_scans(
    plan: &Arc<dyn ExecutionPlan>,
    f: &mut dyn FnMut(&FileScanConfig) -> FileScanConfig,
) -> Result<Arc<dyn ExecutionPlan>> {
    let children: Vec<Arc<dyn ExecutionPlan>> = plan
        .children()
        .into_iter()
        .map(|c| rewrite_scans(c, f))
        .collect::<Result<_>>()?;
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>()
        && let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>()
    {
        return Ok(DataSourceExec::from_data_source(f(config)));
    }
    if children.is_empty() {
        return Ok(plan.clone());
    }
    plan.clone().replace_children(
        children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    )
}
