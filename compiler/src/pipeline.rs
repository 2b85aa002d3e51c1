//! Lowering statements and pipelines: sources, relational steps and sinks.

use crate::dag::{Node, NodeKind, NodeTable, SinkKind};
use crate::expr::{ExprCx, clean_error};
use crate::facts::{BindingFact, PlaceFact, Shape};
use crate::scope::{self, columns_in_scope};
use crate::source::{CsvOptions, Format, LoadRequest};
use crate::types::{arrow_type, comparable, display};
use crate::{Binding, Compiler, NodeId, Value, settings};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::{Column, DFSchema, ExprSchema, JoinType, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, lit};
use flow_lang::ast::{
    self, ExprKind, Ident, Literal, Pipeline, Source, SourceKind, Step, StepKind,
};
use flow_lang::format::expr_text;
use flow_lang::{Code, Diagnostic, Span};
use std::sync::Arc;

type Table = (LogicalPlan, Vec<NodeId>);

impl Compiler<'_> {
    pub(crate) fn check_fresh(&mut self, name: &Ident) -> bool {
        if let Some(existing) = self.bindings.get(&name.name) {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::E0008,
                    format!("`{}` is already bound", name.name),
                    name.span,
                    "bound again here",
                )
                .with_secondary(existing.span, "first bound here")
                .with_help("names are immutable; give the new table another name"),
            );
            return false;
        }
        true
    }

    pub(crate) fn bind(&mut self, name: &Ident, value: Value, span: Span) {
        let value = match value {
            Value::Table { plan, deps } => {
                let node = self.materialize(&plan, &deps, &name.name, span);
                Value::Table {
                    plan,
                    deps: vec![node],
                }
            }
            model => model,
        };
        self.facts.bindings.push(BindingFact {
            name: name.name.clone(),
            span: name.span,
            shape: value.shape(),
        });
        self.order.push(name.name.clone());
        self.bindings.insert(
            name.name.clone(),
            Binding {
                value,
                span: name.span,
                used: false,
            },
        );
    }

    /// Makes a relational node computing `plan`, fed by `deps`.
    pub(crate) fn materialize(
        &mut self,
        plan: &LogicalPlan,
        deps: &[NodeId],
        label: &str,
        span: Span,
    ) -> NodeId {
        let hints = std::mem::take(&mut self.pending_hints);
        let node = self.dag.add(Node {
            kind: NodeKind::Relational { plan: plan.clone() },
            label: label.to_string(),
            span,
            hints,
        });
        for dep in deps {
            let schema = self.dag.node(*dep).plan().map(|p| p.schema().clone());
            self.dag.connect(*dep, node, schema);
        }
        node
    }

    /// A scan of a DAG node's output under a qualifier.
    pub(crate) fn scan_node(
        &self,
        node: NodeId,
        qualifier: &str,
        schema: Schema,
        span: Span,
    ) -> Result<LogicalPlan, Diagnostic> {
        let table = Arc::new(NodeTable {
            node,
            schema: Arc::new(schema),
        });
        LogicalPlanBuilder::scan(qualifier, provider_as_source(table), None)
            .and_then(|b| b.build())
            .map_err(|e| {
                Diagnostic::error(
                    Code::E0020,
                    clean_error(&e.to_string()),
                    span,
                    "cannot use this table",
                )
            })
    }

    pub(crate) fn pipeline(&mut self, p: &Pipeline, binding: Option<&str>) -> Option<Value> {
        let mut value = self.source(&p.source, binding)?;
        for step in &p.steps {
            if let Some(hints) = &step.hints {
                let h = settings::hints(hints, &mut self.diagnostics);
                settings::merge(&mut self.pending_hints, h);
            }
            let place = self.facts.places.len();
            self.facts.places.push(PlaceFact {
                span: step.span,
                input: Some(value.shape()),
                output: None,
            });
            let checked = self.step(value, step);
            if let Ok(v) = &checked {
                self.facts.places[place].output = Some(v.shape());
            }
            value = match checked {
                Ok(v) => v,
                Err(d) => {
                    if !d.message.is_empty() {
                        self.diagnostics.push(d);
                    }
                    return None;
                }
            };
        }
        Some(value)
    }

    fn table(&self, value: Value, span: Span, what: &str) -> Result<Table, Diagnostic> {
        match value {
            Value::Table { plan, deps } => Ok((plan, deps)),
            Value::Model { .. } => Err(Diagnostic::error(
                Code::E0018,
                format!("{what} needs a table, but this is a model"),
                span,
                "this is a model",
            )
            .with_help(
                "a model is used with `infer` (`table | infer model`) or saved with `save`",
            )),
        }
    }

    pub(crate) fn source(&mut self, source: &Source, binding: Option<&str>) -> Option<Value> {
        let result = match &source.kind {
            SourceKind::Name(name) => self.name(name),
            SourceKind::Pipeline(p) => return self.pipeline(p, binding),
            SourceKind::Sql(query) => self.sql(None, query),
            SourceKind::Load(load) => self.load(load, source.span, binding),
        };
        self.facts.places.push(PlaceFact {
            span: source.span,
            input: None,
            output: result.as_ref().ok().map(Value::shape),
        });
        result
            .map_err(|d| {
                if !d.message.is_empty() {
                    self.diagnostics.push(d);
                }
            })
            .ok()
    }

    fn name(&mut self, name: &Ident) -> Result<Value, Diagnostic> {
        let Some(binding) = self.bindings.get_mut(&name.name) else {
            if self.failed.contains(&name.name) {
                // Still a use of that binding, for navigation.
                self.facts.uses.push((name.span, name.name.clone()));
                return Err(silent(name.span));
            }
            return Err(Diagnostic::error(
                Code::E0003,
                format!("`{}` is not bound", name.name),
                name.span,
                "unknown name",
            )
            .suggesting(&name.name, self.order.iter().map(String::as_str), || {
                if self.order.is_empty() {
                    "nothing is bound yet; bind a table first with `let NAME = load \"file\"`"
                        .to_string()
                } else {
                    format!("bound names: {}", self.order.join(", "))
                }
            }));
        };
        binding.used = true;
        self.facts.uses.push((name.span, name.name.clone()));
        Ok(match &binding.value {
            Value::Table { plan, deps } => {
                // Re-qualify the binding's columns with its name, unless that would merge two
                // same-named columns (a join result keeps its sides' qualifiers).
                let aliased = LogicalPlanBuilder::from(plan.clone())
                    .alias(name.name.as_str())
                    .and_then(|b| b.build());
                Value::Table {
                    plan: aliased.unwrap_or_else(|_| plan.clone()),
                    deps: deps.clone(),
                }
            }
            model => model.clone(),
        })
    }

    fn load(
        &mut self,
        load: &ast::Load,
        span: Span,
        binding: Option<&str>,
    ) -> Result<Value, Diagnostic> {
        let path = &load.path.value;
        let lower = path.to_lowercase();
        if lower.ends_with(".model") || lower.ends_with(".onnx") {
            let signature = self.source.resolve_model(path).map_err(|message| {
                Diagnostic::error(
                    Code::E0020,
                    format!("cannot use the model `{path}`: {message}"),
                    load.path.span,
                    "this model",
                )
            })?;
            let node = self.dag.add(Node {
                kind: NodeKind::ModelSource {
                    path: path.clone(),
                    file: self.source.locate(path),
                    transformer: signature.as_ref().and_then(|s| s.transformer),
                },
                label: path.clone(),
                span,
                hints: Default::default(),
            });
            return Ok(Value::Model { node, signature });
        }
        let format = match &load.format {
            Some(f) => Some(Format::from_name(&f.name).ok_or_else(|| {
                Diagnostic::error(
                    Code::E0021,
                    format!("unknown format `{}`", f.name),
                    f.span,
                    "unknown format",
                )
                .with_help("formats: csv, parquet, json, arrow")
            })?),
            None => Format::from_path(path),
        };
        let csv = csv_options(load.options.as_ref(), format)?;
        let declared = match &load.schema {
            Some(fields) => {
                let mut out = Vec::new();
                for f in fields {
                    let ty = arrow_type(&f.ty).map_err(|m| {
                        Diagnostic::error(Code::E0023, m, f.ty.span, "unknown type")
                    })?;
                    out.push(Field::new(&f.name.name, ty, true));
                }
                Some(Arc::new(Schema::new(out)))
            }
            None => None,
        };
        let request = LoadRequest {
            path: path.clone(),
            format,
            csv: csv.clone(),
            declared,
        };
        let resolved = self.source.resolve(&request).map_err(|message| {
            let error = Diagnostic::error(
                Code::E0020,
                format!("cannot read `{path}`: {message}"),
                load.path.span,
                "this source",
            );
            // Compared by the file's name without its extension (the folder and the
            // extension are the same for all of them, and would make any two look alike).
            let name = |p: &str| {
                let file = p.rsplit('/').next().unwrap_or(p);
                let (stem, extension) = file.rsplit_once('.').unwrap_or((file, ""));
                (extension.to_string(), stem.to_string())
            };
            let neighbours = self.source.neighbours(path);
            let (extension, stem) = name(path);
            let stems: Vec<String> = neighbours
                .iter()
                .map(|n| name(n))
                .filter(|(e, _)| *e == extension)
                .map(|(_, s)| s)
                .collect();
            let close =
                flow_lang::diagnostic::suggest::closest(&stem, stems.iter().map(String::as_str))
                    .and_then(|close| {
                        neighbours
                            .iter()
                            .find(|n| name(n) == (extension.clone(), close.to_string()))
                    });
            match close {
                Some(close) => error.with_help(format!("did you mean \"{close}\"?")),
                None => error,
            }
        })?;
        let qualifier = binding
            .map(str::to_string)
            .unwrap_or_else(|| file_stem(path));
        let schema = resolved.schema.as_ref().clone();
        let node = self.dag.add(Node {
            kind: NodeKind::Source {
                load: resolved,
                csv,
                path: path.clone(),
            },
            label: path.clone(),
            span,
            hints: Default::default(),
        });
        let plan = self.scan_node(node, &qualifier, schema, span)?;
        Ok(Value::Table {
            plan,
            deps: vec![node],
        })
    }

    fn cx<'s>(&'s self, schema: &'s DFSchema, aggregates: bool) -> ExprCx<'s> {
        ExprCx {
            schema,
            state: &self.state,
            aggregates,
            source: self.source,
        }
    }

    /// `derive` one assignment at a time, each seeing the columns the ones before it wrote.
    fn derive_in_sequence(
        &self,
        mut plan: LogicalPlan,
        assigns: &[flow_lang::ast::Assign],
        err: impl Fn(datafusion::error::DataFusionError) -> Diagnostic,
    ) -> Result<LogicalPlan, Diagnostic> {
        for a in assigns {
            let schema = plan.schema().clone();
            let new = self.cx(&schema, false).lower(&a.expr)?.alias(&a.name.name);
            let mut exprs: Vec<Expr> = Vec::new();
            let mut replaced = false;
            for (q, f) in schema.iter() {
                if f.name() == &a.name.name {
                    if !replaced {
                        exprs.push(new.clone());
                        replaced = true;
                    }
                } else {
                    exprs.push(Expr::Column(Column::new(q.cloned(), f.name())));
                }
            }
            if !replaced {
                exprs.push(new);
            }
            plan = LogicalPlanBuilder::from(plan)
                .project(exprs)
                .and_then(|b| b.build())
                .map_err(&err)?;
        }
        Ok(plan)
    }

    fn step(&mut self, value: Value, step: &Step) -> Result<Value, Diagnostic> {
        match &step.kind {
            StepKind::Train { kind, args } => return self.train(value, kind, args, step.span),
            StepKind::Infer { model, batch } => {
                return self.infer(value, model, batch.as_ref(), step.span);
            }
            StepKind::Evaluate { label } => return self.evaluate(value, label, step.span),
            _ => {}
        }
        let what = format!("`{}`", step.kind.keyword());
        let (plan, mut deps) = self.table(value, step.span, &what)?;
        let schema = plan.schema().clone();
        let err = does_not_plan(step.span);
        let builder = LogicalPlanBuilder::from(plan.clone());
        let plan = match &step.kind {
            StepKind::Filter(e) => {
                let condition = self
                    .cx(&schema, false)
                    .condition(e, "the condition of `filter`")?;
                builder
                    .filter(condition)
                    .and_then(|b| b.build())
                    .map_err(err)?
            }
            StepKind::Select(items) => self.select_step(builder, &schema, items, step.span)?,
            StepKind::Derive(assigns) => self.derive_step(plan, &schema, assigns, step.span)?,
            StepKind::Group { keys, aggregates } => {
                self.group_step(builder, &schema, keys, aggregates, step.span)?
            }
            StepKind::Sort(keys) => self.sort_step(builder, &schema, keys, step.span)?,
            StepKind::Take(n) => builder
                .limit(0, Some(n.value.max(0) as usize))
                .and_then(|b| b.build())
                .map_err(err)?,
            StepKind::Distinct(cols) if cols.is_empty() => {
                builder.distinct().and_then(|b| b.build()).map_err(err)?
            }
            StepKind::Distinct(cols) => distinct_on(builder, &schema, cols, step.span)?,
            StepKind::Union(source) => {
                let right = self.source(source, None).ok_or_else(|| silent(step.span))?;
                let (right, right_deps) = self.table(right, source.span, "`union`")?;
                deps.extend(right_deps);
                let right = align_union(&schema, &right, source.span)?;
                builder.union(right).and_then(|b| b.build()).map_err(err)?
            }
            StepKind::Join { kind, right, on } => {
                let right_value = self.source(right, None).ok_or_else(|| silent(step.span))?;
                let (right_plan, right_deps) = self.table(right_value, right.span, "`join`")?;
                deps.extend(right_deps);
                self.join(
                    plan,
                    right_plan,
                    kind.unwrap_or(ast::JoinKind::Inner),
                    on,
                    step.span,
                )?
            }
            StepKind::Sql(query) => {
                let (plan, extra) = self.sql_step(Some(plan), query)?;
                deps.extend(extra);
                plan
            }
            StepKind::Train { .. } | StepKind::Infer { .. } | StepKind::Evaluate { .. } => {
                unreachable!("handled above")
            }
        };
        Ok(Value::Table { plan, deps })
    }

    fn select_step(
        &self,
        builder: LogicalPlanBuilder,
        schema: &DFSchema,
        items: &[ast::SelectItem],
        span: Span,
    ) -> Result<LogicalPlan, Diagnostic> {
        let cx = self.cx(schema, false);
        let mut exprs = Vec::new();
        let mut names: Vec<(String, Span)> = Vec::new();
        for item in items {
            let (name, expr) = select_item(&cx, item)?;
            check_unique(&mut names, name, item.span)?;
            exprs.push(expr);
        }
        builder
            .project(exprs)
            .and_then(|b| b.build())
            .map_err(does_not_plan(span))
    }

    fn derive_step(
        &self,
        plan: LogicalPlan,
        schema: &DFSchema,
        assigns: &[ast::Assign],
        span: Span,
    ) -> Result<LogicalPlan, Diagnostic> {
        // One projection for the whole step unless an assignment reads a column an earlier
        // one of the same step writes (then each sees the one before it).
        let independent = assigns.iter().enumerate().all(|(i, a)| {
            assigns[..i].iter().all(|earlier| {
                earlier.name.name != a.name.name && !a.expr.reads_column(&earlier.name.name)
            })
        });
        if !independent {
            return self.derive_in_sequence(plan, assigns, does_not_plan(span));
        }
        let cx = self.cx(schema, false);
        let mut new: Vec<(&str, Expr)> = Vec::new();
        for a in assigns {
            let name = a.name.name.as_str();
            new.push((name, cx.lower(&a.expr)?.alias(name)));
        }
        let mut exprs: Vec<Expr> = Vec::new();
        for (q, f) in schema.iter() {
            match new.iter().position(|(n, _)| n == f.name()) {
                Some(at) => exprs.push(new.remove(at).1),
                None => exprs.push(Expr::Column(Column::new(q.cloned(), f.name()))),
            }
        }
        exprs.extend(new.into_iter().map(|(_, e)| e));
        LogicalPlanBuilder::from(plan)
            .project(exprs)
            .and_then(|b| b.build())
            .map_err(does_not_plan(span))
    }

    fn group_step(
        &self,
        builder: LogicalPlanBuilder,
        schema: &DFSchema,
        keys: &[ast::SelectItem],
        aggregates: &[ast::Assign],
        span: Span,
    ) -> Result<LogicalPlan, Diagnostic> {
        let cx = self.cx(schema, false);
        let mut names: Vec<(String, Span)> = Vec::new();
        let mut group = Vec::new();
        for key in keys {
            let (name, expr) = select_item(&cx, key)?;
            not_constant(&expr, key.span, "group")?;
            check_unique(&mut names, name, key.span)?;
            group.push(expr);
        }
        let acx = self.cx(schema, true);
        let mut aggs = Vec::new();
        for a in aggregates {
            let lowered = acx.lower(&a.expr)?.unalias();
            if !matches!(lowered, Expr::AggregateFunction(_)) {
                return Err(Diagnostic::error(
                    Code::E0011,
                    format!(
                        "`{}` must be one aggregate, such as `sum(x)` or `count()`",
                        a.name.name
                    ),
                    a.expr.span,
                    "not an aggregate",
                )
                .with_help("compute expressions of aggregates in a `derive` after the `group`"));
            }
            check_unique(&mut names, a.name.name.clone(), a.span)?;
            aggs.push(lowered.alias(&a.name.name));
        }
        builder
            .aggregate(group, aggs)
            .and_then(|b| b.build())
            .map_err(does_not_plan(span))
    }

    fn sort_step(
        &self,
        builder: LogicalPlanBuilder,
        schema: &DFSchema,
        keys: &[ast::SortKey],
        span: Span,
    ) -> Result<LogicalPlan, Diagnostic> {
        let cx = self.cx(schema, false);
        let mut sorts = Vec::new();
        for k in keys {
            let e = cx.lower(&k.expr)?;
            not_constant(&e, k.expr.span, "sort")?;
            let ty = cx.type_of(&e, k.expr.span)?;
            if matches!(
                ty,
                datafusion::arrow::datatypes::DataType::List(_)
                    | datafusion::arrow::datatypes::DataType::Struct(_)
            ) {
                return Err(Diagnostic::error(
                    Code::E0006,
                    format!("cannot sort by a {}", display(&ty)),
                    k.expr.span,
                    "not orderable",
                ));
            }
            sorts.push(e.sort(!k.descending, false));
        }
        builder
            .sort(sorts)
            .and_then(|b| b.build())
            .map_err(does_not_plan(span))
    }

    fn sql(
        &mut self,
        input: Option<LogicalPlan>,
        query: &ast::StrLit,
    ) -> Result<Value, Diagnostic> {
        let (plan, deps) = self.sql_step(input, query)?;
        Ok(Value::Table { plan, deps })
    }

    fn join(
        &self,
        left: LogicalPlan,
        right: LogicalPlan,
        kind: ast::JoinKind,
        on: &[ast::Expr],
        span: Span,
    ) -> Result<LogicalPlan, Diagnostic> {
        let (ls, rs) = (left.schema().clone(), right.schema().clone());
        let join_type = match kind {
            ast::JoinKind::Inner => JoinType::Inner,
            ast::JoinKind::Left => JoinType::Left,
            ast::JoinKind::Right => JoinType::Right,
            ast::JoinKind::Full => JoinType::Full,
            ast::JoinKind::Semi => JoinType::LeftSemi,
            ast::JoinKind::Anti => JoinType::LeftAnti,
        };
        let using = on
            .iter()
            .all(|e| e.as_column().is_some_and(|c| c.qualifier.is_none()));
        let pairs = if using {
            using_pairs(on, &ls, &rs)?
        } else {
            condition_pairs(on, &ls, &rs)?
        };
        check_key_types(&pairs, &ls, &rs)?;
        check_not_self_join(&ls, &rs, span)?;
        let left_keys: Vec<Column> = pairs.iter().map(|p| p.0.clone()).collect();
        let right_keys: Vec<Column> = pairs.iter().map(|p| p.1.clone()).collect();
        let joined = LogicalPlanBuilder::from(left)
            .join(
                right,
                join_type,
                (left_keys.clone(), right_keys.clone()),
                None,
            )
            .map_err(|e| {
                Diagnostic::error(
                    Code::E0013,
                    clean_error(&e.to_string()),
                    span,
                    "this join does not plan",
                )
            })?;
        if !using || matches!(join_type, JoinType::LeftSemi | JoinType::LeftAnti) {
            return joined.build().map_err(|e| {
                Diagnostic::error(Code::E0013, clean_error(&e.to_string()), span, "here")
            });
        }
        keep_one_copy_of_keys(joined, join_type, &left_keys, &right_keys, span)
    }

    pub(crate) fn split(
        &mut self,
        first: &Ident,
        second: &Ident,
        input: &Pipeline,
        fraction: &ast::Expr,
        seed: Option<&ast::IntLit>,
    ) {
        let f = match &fraction.kind {
            ExprKind::Literal(Literal::Float(f)) => *f,
            ExprKind::Literal(Literal::Int(i)) => *i as f64,
            _ => f64::NAN,
        };
        if !(f > 0.0 && f < 1.0) {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::E0024,
                    "the split fraction must be between 0 and 1",
                    fraction.span,
                    "not in (0, 1)",
                )
                .with_help("write the share of rows that go to the first name, for example 0.8"),
            );
            return;
        }
        if first.name == second.name {
            self.diagnostics.push(Diagnostic::error(
                Code::E0024,
                "a split binds two different names",
                second.span,
                "same name twice",
            ));
            return;
        }
        if !self.check_fresh(first) || !self.check_fresh(second) {
            return;
        }
        let Some(value) = self.pipeline(input, None) else {
            return;
        };
        let (plan, deps) = match self.table(value, input.span, "`split`") {
            Ok(t) => t,
            Err(d) => return self.diagnostics.push(d),
        };
        let label = format!("{}, {}", first.name, second.name);
        let base = self.materialize(&plan, &deps, &label, input.span);
        let seed_value = seed.map_or(0, |s| s.value as u64);
        let mut args = vec![lit(seed_value as i64)];
        args.extend(
            plan.schema()
                .iter()
                .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name()))),
        );
        let hash = crate::split::SplitHash::udf().call(args);
        for (name, is_first) in [(first, true), (second, false)] {
            let predicate = if is_first {
                hash.clone().lt(lit(f))
            } else {
                hash.clone().gt_eq(lit(f))
            };
            let side = match LogicalPlanBuilder::from(plan.clone())
                .filter(predicate)
                .and_then(|b| b.build())
            {
                Ok(p) => p,
                Err(e) => return self.diagnostics.push(crate::expr::df_error(e, input.span)),
            };
            let node = self.dag.add(Node {
                kind: NodeKind::Split {
                    plan: side.clone(),
                    fraction: f,
                    seed: seed_value,
                    first: is_first,
                },
                label: name.name.clone(),
                span: name.span,
                hints: Default::default(),
            });
            self.dag.connect(base, node, Some(plan.schema().clone()));
            self.facts.bindings.push(BindingFact {
                name: name.name.clone(),
                span: name.span,
                shape: Shape::Table(side.schema().clone()),
            });
            self.order.push(name.name.clone());
            self.bindings.insert(
                name.name.clone(),
                Binding {
                    value: Value::Table {
                        plan: side,
                        deps: vec![node],
                    },
                    span: name.span,
                    used: false,
                },
            );
        }
    }

    pub(crate) fn save(
        &mut self,
        input: &Pipeline,
        target: &ast::StrLit,
        format: Option<&Ident>,
        options: Option<&ast::Object>,
    ) {
        let Some(value) = self.pipeline(input, None) else {
            return;
        };
        let is_model = matches!(value, Value::Model { .. });
        let result = (|| {
            let format = if is_model {
                if !target.value.to_lowercase().ends_with(".model") {
                    return Err(Diagnostic::error(
                        Code::E0021,
                        "a model is saved as a flow model file",
                        target.span,
                        "not a `.model` path",
                    )
                    .with_help("end the path with `.model`, for example `save model to \"out/churn.model\"`"));
                }
                Format::Parquet
            } else {
                match format {
                    Some(f) => Format::from_name(&f.name).filter(|f| *f != Format::Arrow).ok_or_else(|| {
                        Diagnostic::error(Code::E0021, format!("cannot save as `{}`", f.name), f.span, "unknown output format")
                            .with_help("`save` writes parquet, csv or json")
                    })?,
                    None => Format::from_path(&target.value).filter(|f| *f != Format::Arrow).ok_or_else(|| {
                        Diagnostic::error(Code::E0021, "cannot tell the output format from this path", target.span, "no known extension")
                            .with_help("end the path with .parquet, .csv or .json, or add `as parquet|csv|json`")
                    })?,
                }
            };
            let csv = csv_options(options, Some(format))?;
            Ok::<_, Diagnostic>((format, csv))
        })();
        let (format, csv) = match result {
            Ok(r) => r,
            Err(d) => return self.diagnostics.push(d),
        };
        let sink = SinkKind::Save {
            path: target.value.clone(),
            file: self.source.locate(&target.value),
            format,
            csv,
            model: is_model,
        };
        self.sink(value, sink, input.span, format!("save to {}", target.value));
    }

    pub(crate) fn show(&mut self, input: &Pipeline, limit: Option<&ast::IntLit>) {
        let Some(value) = self.pipeline(input, None) else {
            return;
        };
        if let Value::Model { .. } = value {
            return self.diagnostics.push(
                Diagnostic::error(
                    Code::E0018,
                    "`show` prints tables, but this is a model",
                    input.span,
                    "this is a model",
                )
                .with_help("show what the model predicts: `show data | infer model`"),
            );
        }
        let limit = limit.map_or(20, |l| l.value.max(0) as usize);
        self.sink(
            value,
            SinkKind::Show { limit },
            input.span,
            "show".to_string(),
        );
    }

    fn sink(&mut self, value: Value, sink: SinkKind, span: Span, label: String) {
        let input = match value {
            Value::Table { plan, deps } => self.materialize(&plan, &deps, &label, span),
            Value::Model { node, .. } => node,
        };
        let node = self.dag.add(Node {
            kind: NodeKind::Sink(sink),
            label,
            span,
            hints: Default::default(),
        });
        let schema = self.dag.node(input).plan().map(|p| p.schema().clone());
        self.dag.connect(input, node, schema);
    }
}

/// A diagnostic was already reported for this part; stop lowering quietly.
fn silent(span: Span) -> Diagnostic {
    Diagnostic::error(Code::E0001, "", span, "")
}

/// A `select` item or `group` key lowered, with the name of the column it makes: its own
/// name, the column it reads, or its source text.
fn select_item(cx: &ExprCx<'_>, item: &ast::SelectItem) -> Result<(String, Expr), Diagnostic> {
    let lowered = cx.lower(&item.expr)?;
    Ok(match (&item.name, item.expr.as_column()) {
        (Some(n), _) => (n.name.clone(), lowered.alias(&n.name)),
        (None, Some(c)) => (c.name.name.clone(), lowered),
        (None, None) => {
            let text = expr_text(&item.expr);
            (text.clone(), lowered.alias(text))
        }
    })
}

fn check_unique(
    names: &mut Vec<(String, Span)>,
    name: String,
    span: Span,
) -> Result<(), Diagnostic> {
    if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
        return Err(Diagnostic::error(
            Code::E0025,
            format!("column `{name}` appears twice"),
            span,
            "second one",
        )
        .with_secondary(*first, "first one")
        .with_help("rename one with `new_name = expression`"));
    }
    names.push((name, span));
    Ok(())
}

fn split_and<'a>(e: &'a ast::Expr, out: &mut Vec<&'a ast::Expr>) {
    match &e.kind {
        ExprKind::Binary {
            op: ast::BinaryOp::And,
            lhs,
            rhs,
        } => {
            split_and(lhs, out);
            split_and(rhs, out);
        }
        ExprKind::Paren(inner) => split_and(inner, out),
        _ => out.push(e),
    }
}

/// Reorders the right side of a union to the left's columns, checking names and types.
fn align_union(
    left: &DFSchema,
    right: &LogicalPlan,
    span: Span,
) -> Result<LogicalPlan, Diagnostic> {
    let rs = right.schema().clone();
    let mut problems = Vec::new();
    let mut exprs = Vec::new();
    for (_, lf) in left.iter() {
        match rs.iter().find(|(_, rf)| rf.name() == lf.name()) {
            Some((q, rf)) if comparable(lf.data_type(), rf.data_type()) => {
                exprs.push(Expr::Column(Column::new(q.cloned(), rf.name())).alias(lf.name()))
            }
            Some((_, rf)) => problems.push(format!(
                "`{}` is {} on the left but {} on the right",
                lf.name(),
                display(lf.data_type()),
                display(rf.data_type())
            )),
            None => problems.push(format!("`{}` is missing on the right", lf.name())),
        }
    }
    for (_, rf) in rs.iter() {
        if !left.iter().any(|(_, lf)| lf.name() == rf.name()) {
            problems.push(format!("`{}` is missing on the left", rf.name()));
        }
    }
    if !problems.is_empty() {
        return Err(Diagnostic::error(
            Code::E0012,
            "the tables of this union have different columns",
            span,
            "different columns",
        )
        .with_help(problems.join("; ")));
    }
    LogicalPlanBuilder::from(right.clone())
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(|e| Diagnostic::error(Code::E0012, clean_error(&e.to_string()), span, "here"))
}

fn csv_options(
    options: Option<&ast::Object>,
    format: Option<Format>,
) -> Result<CsvOptions, Diagnostic> {
    let mut csv = CsvOptions::default();
    let Some(options) = options else {
        return Ok(csv);
    };
    for entry in &options.entries {
        if format != Some(Format::Csv) {
            return Err(Diagnostic::error(
                Code::E0021,
                format!("option `{}` only applies to csv", entry.key.name),
                entry.key.span,
                "not a csv source",
            )
            .with_help("options: `header` and `delimiter`, for csv"));
        }
        match (entry.key.name.as_str(), &entry.value.kind) {
            ("header", ExprKind::Literal(Literal::Bool(b))) => csv.header = *b,
            ("delimiter", ExprKind::Literal(Literal::String(s))) if s.len() == 1 => {
                csv.delimiter = s.as_bytes()[0]
            }
            ("header" | "delimiter", _) => {
                return Err(Diagnostic::error(Code::E0021, format!("bad value for `{}`", entry.key.name), entry.value.span, "bad value")
                    .with_help("`header` takes true or false; `delimiter` takes a one-character string such as \";\""));
            }
            _ => {
                return Err(Diagnostic::error(
                    Code::E0021,
                    format!("unknown option `{}`", entry.key.name),
                    entry.key.span,
                    "unknown option",
                )
                .suggesting(&entry.key.name, ["header", "delimiter"], || {
                    "csv takes `header` and `delimiter`".into()
                }));
            }
        }
    }
    Ok(csv)
}

fn file_stem(path: &str) -> String {
    let name = path
        .rsplit(['/', '\\'])
        .find(|s| !s.is_empty() && !s.contains('*'))
        .unwrap_or("source");
    let stem = name.split('.').next().unwrap_or(name);
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        format!("t_{clean}")
    } else {
        clean
    }
}

/// E0035 when a `group` or `sort` key is the same for every row.
fn not_constant(expr: &Expr, span: Span, step: &str) -> Result<(), Diagnostic> {
    let Expr::Literal(value, _) = expr.clone().unalias() else {
        return Ok(());
    };
    let help = match &value {
        ScalarValue::Utf8(Some(text)) => format!(
            "to {step} by the column `{text}`, write its name without quotes{}",
            if flow_lang::keywords::is_reserved(text) {
                format!(" and in backticks, as it is a keyword: `` `{text}` ``")
            } else {
                String::new()
            }
        ),
        _ => format!("{step} by a column or an expression of columns"),
    };
    Err(Diagnostic::error(
        Code::E0035,
        format!("this {step} key is a constant: every row has the same value"),
        span,
        "a constant",
    )
    .with_help(help))
}

/// A step DataFusion cannot plan, as E0006 at the step.
fn does_not_plan(span: Span) -> impl Fn(datafusion::error::DataFusionError) -> Diagnostic {
    move |e| {
        Diagnostic::error(
            Code::E0006,
            clean_error(&e.to_string()),
            span,
            "this step does not plan",
        )
    }
}

/// `distinct a, b`: the first row of each combination of the columns.
fn distinct_on(
    builder: LogicalPlanBuilder,
    schema: &DFSchema,
    cols: &[ast::ColumnRef],
    span: Span,
) -> Result<LogicalPlan, Diagnostic> {
    let mut on = Vec::new();
    for c in cols {
        on.push(Expr::Column(scope::resolve(schema, c)?));
    }
    let all: Vec<Expr> = schema
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect();
    builder
        .distinct_on(on, all, None)
        .and_then(|b| b.build())
        .map_err(does_not_plan(span))
}

/// A join key missing on one side, with that side's columns as help.
fn side_error(c: &ast::ColumnRef, side: &str, schema: &DFSchema) -> Diagnostic {
    Diagnostic::error(
        Code::E0013,
        format!(
            "join key `{}` is not a column of the {side} side",
            c.name.name
        ),
        c.span,
        format!("missing on the {side}"),
    )
    .suggesting(
        &c.name.name,
        schema.fields().iter().map(|f| f.name().as_str()),
        || columns_in_scope(schema),
    )
}

/// The key pairs of `on a, b`: each name resolved on both sides.
fn using_pairs(
    on: &[ast::Expr],
    ls: &DFSchema,
    rs: &DFSchema,
) -> Result<Vec<(Column, Column, Span)>, Diagnostic> {
    let mut pairs = Vec::new();
    for e in on {
        let Some(c) = e.as_column() else { continue };
        let l = scope::resolve(ls, c).map_err(|_| side_error(c, "left", ls))?;
        let r = scope::resolve(rs, c).map_err(|_| side_error(c, "right", rs))?;
        pairs.push((l, r, e.span));
    }
    Ok(pairs)
}

/// The key pairs of `on a.x == b.x and ...`: each equality's columns, whichever side each
/// is written on.
fn condition_pairs(
    on: &[ast::Expr],
    ls: &DFSchema,
    rs: &DFSchema,
) -> Result<Vec<(Column, Column, Span)>, Diagnostic> {
    let [cond] = on else {
        return Err(Diagnostic::error(
            Code::E0013,
            "a join condition is either a list of key columns or one expression of equalities",
            on[1].span,
            "unexpected second condition",
        )
        .with_help("join equalities with `and`: `on a.x == b.x and a.y == b.y`"));
    };
    let mut conjuncts = Vec::new();
    split_and(cond, &mut conjuncts);
    let mut pairs = Vec::new();
    for c in conjuncts {
        let bad = || {
            Diagnostic::error(
                Code::E0013,
                "a join condition must compare a column of each side with `==`",
                c.span,
                "not an equality of columns",
            )
            .with_help("write `on left.key == right.key`, joining several with `and`")
        };
        let ExprKind::Binary {
            op: ast::BinaryOp::Eq,
            lhs,
            rhs,
        } = &c.kind
        else {
            return Err(bad());
        };
        let (Some(a), Some(b)) = (lhs.as_column(), rhs.as_column()) else {
            return Err(bad());
        };
        let pair = match (scope::resolve(ls, a), scope::resolve(rs, b)) {
            (Ok(l), Ok(r)) => (l, r),
            _ => match (scope::resolve(ls, b), scope::resolve(rs, a)) {
                (Ok(l), Ok(r)) => (l, r),
                _ => {
                    let (side, col, schema) = match scope::resolve(ls, a) {
                        Ok(_) => ("right", b, rs),
                        Err(_) => ("left", a, ls),
                    };
                    return Err(side_error(col, side, schema));
                }
            },
        };
        pairs.push((pair.0, pair.1, c.span));
    }
    Ok(pairs)
}

/// Every key pair compares values of comparable types.
fn check_key_types(
    pairs: &[(Column, Column, Span)],
    ls: &DFSchema,
    rs: &DFSchema,
) -> Result<(), Diagnostic> {
    for (l, r, span) in pairs {
        let lt = ls.field_from_column(l).map(|f| f.data_type().clone());
        let rt = rs.field_from_column(r).map(|f| f.data_type().clone());
        if let (Ok(lt), Ok(rt)) = (lt, rt)
            && !comparable(&lt, &rt)
        {
            return Err(Diagnostic::error(
                Code::E0013,
                format!(
                    "join keys have incomparable types: {} and {}",
                    display(&lt),
                    display(&rt)
                ),
                *span,
                format!("{} vs {}", display(&lt), display(&rt)),
            )
            .with_help("convert one side in a `derive` before the join"));
        }
    }
    Ok(())
}

/// The two sides do not share a name (a binding joined with itself).
fn check_not_self_join(ls: &DFSchema, rs: &DFSchema, span: Span) -> Result<(), Diagnostic> {
    let overlap = ls
        .iter()
        .filter_map(|(q, _)| q)
        .find(|q| rs.iter().any(|(rq, _)| rq == Some(*q)));
    match overlap {
        Some(q) => Err(Diagnostic::error(
            Code::E0013,
            format!("both sides of the join are called `{}`", q.table()),
            span,
            "self-join",
        )
        .with_help("bind one side to a new name first: `let other = ...`")),
        None => Ok(()),
    }
}

/// `on a, b` keeps one copy of each key: the left one (both, coalesced, for a full join;
/// the right one, where the left stood, for a right join).
fn keep_one_copy_of_keys(
    joined: LogicalPlanBuilder,
    join_type: JoinType,
    left_keys: &[Column],
    right_keys: &[Column],
    span: Span,
) -> Result<LogicalPlan, Diagnostic> {
    let joined_schema = joined.schema().clone();
    let mut exprs = Vec::new();
    for (q, f) in joined_schema.iter() {
        let column = Column::new(q.cloned(), f.name());
        let li = left_keys.iter().position(|k| *k == column);
        let ri = right_keys.iter().position(|k| *k == column);
        match (join_type, li, ri) {
            (JoinType::Full, Some(i), _) => exprs.push(
                datafusion::functions::core::expr_fn::coalesce(vec![
                    Expr::Column(left_keys[i].clone()),
                    Expr::Column(right_keys[i].clone()),
                ])
                .alias(f.name()),
            ),
            (JoinType::Right, Some(_), _)
            | (JoinType::Inner | JoinType::Left | JoinType::Full, _, Some(_)) => {}
            _ => exprs.push(Expr::Column(column)),
        }
    }
    if join_type == JoinType::Right {
        exprs.clear();
        for (q, f) in joined_schema.iter() {
            let column = Column::new(q.cloned(), f.name());
            if !left_keys.contains(&column) {
                exprs.push(Expr::Column(column));
            }
        }
    }
    joined
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(|e| Diagnostic::error(Code::E0013, clean_error(&e.to_string()), span, "here"))
}
