//! Checking `train`, `infer` and `evaluate` against the signatures the standard library
//! declares, and adding their nodes to the DAG.

use crate::dag::{ModelSignature, Node, NodeKind};
use crate::expr::clean_error;
use crate::scope::{self, columns_in_scope};
use crate::types::{Family, display, family};
use crate::{Compiler, Value};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ExprSchema;
use flow_lang::ast::{self, Arg, ExprKind, Ident, Literal};
use flow_lang::format::expr_text;
use flow_lang::{Code, Diagnostic, Span};
use flow_stdlib::{ArgType, ArgValue, Feature, ModelKind, Task};

impl Compiler<'_> {
    pub(crate) fn train(
        &mut self,
        value: Value,
        kind: &Ident,
        args: &[Arg],
        span: Span,
    ) -> Result<Value, Diagnostic> {
        let Value::Table { plan, deps } = value else {
            return Err(Diagnostic::error(
                Code::E0018,
                "`train` needs a table, but this is a model",
                span,
                "this is a model",
            ));
        };
        let Some(model) = flow_stdlib::models::find(&kind.name) else {
            let names = flow_stdlib::MODEL_KINDS.iter().map(|k| k.name);
            return Err(Diagnostic::error(
                Code::E0016,
                format!("there is no model kind `{}`", kind.name),
                kind.span,
                "unknown model kind",
            )
            .suggesting(&kind.name, names.clone(), || {
                format!("model kinds: {}", names.collect::<Vec<_>>().join(", "))
            }));
        };
        let mut train = TrainArgs {
            spec: flow_stdlib::TrainSpec::new(model),
            given: Vec::new(),
            inputs: Vec::new(),
            label: None,
        };
        for arg in args {
            self.train_arg(model, plan.schema(), arg, &mut train)?;
        }
        train.complete(model, kind, span)?;
        let input = self.materialize(&plan, &deps, "training data", span);
        let signature = ModelSignature {
            kind: model.name.to_string(),
            task: model.task,
            inputs: train.inputs,
            label: train.label,
            transformer: None,
        };
        let node = self.dag.add(Node {
            kind: NodeKind::Train {
                model: signature.clone(),
                args: train.given,
                spec: train.spec,
            },
            label: format!("train {}", model.name),
            span,
            hints: Default::default(),
        });
        self.dag.connect(input, node, Some(plan.schema().clone()));
        Ok(Value::Model {
            node,
            signature: Some(signature),
        })
    }

    /// Checks one named argument of `train` against the model's catalogue entry and sets it
    /// on the spec.
    fn train_arg(
        &self,
        model: &ModelKind,
        schema: &datafusion::common::DFSchema,
        arg: &Arg,
        train: &mut TrainArgs,
    ) -> Result<(), Diagnostic> {
        let Some(name) = &arg.name else {
            return Err(Diagnostic::error(
                Code::E0017,
                "model arguments are named",
                arg.span,
                "unnamed argument",
            )
            .with_help("write `name = value`, for example `label = churned`"));
        };
        let Some(arg_spec) = model.arg(&name.name) else {
            let known = model.args.iter().map(|a| a.name);
            return Err(Diagnostic::error(
                Code::E0017,
                format!("`{}` takes no argument `{}`", model.name, name.name),
                name.span,
                "unknown argument",
            )
            .suggesting(&name.name, known.clone(), || {
                format!(
                    "`{}` takes: {}",
                    model.name,
                    known.collect::<Vec<_>>().join(", ")
                )
            }));
        };
        if train.given.iter().any(|(n, _)| *n == name.name) {
            return Err(Diagnostic::error(
                Code::E0017,
                format!("`{}` is given twice", name.name),
                name.span,
                "second one",
            ));
        }
        let wrong = |expected: String| {
            Diagnostic::error(
                Code::E0017,
                format!("`{}` takes {expected}", name.name),
                arg.value.span,
                format!("expected {expected}"),
            )
        };
        let value = match arg_spec.ty {
            ArgType::Column => {
                let Some(c) = arg.value.as_column() else {
                    return Err(wrong(arg_spec.ty.describe()));
                };
                let ty = label_type(model, schema, c)?;
                train.label = Some((c.name.name.clone(), ty));
                ArgValue::Column(c.name.name.clone())
            }
            ArgType::Features => {
                let ExprKind::List(items) = &arg.value.kind else {
                    return Err(wrong(arg_spec.ty.describe()));
                };
                if items.is_empty() {
                    return Err(wrong("at least one feature".into()));
                }
                let mut features = Vec::new();
                for item in items {
                    let (name, ty, feature) = self.feature(schema, item)?;
                    train.inputs.push((name, ty));
                    features.push(feature);
                }
                ArgValue::Features(features)
            }
            ty => literal_arg(ty, &arg.value).map_err(wrong)?,
        };
        train.spec.set(&name.name, value);
        train.given.push((name.name.clone(), expr_text(&arg.value)));
        Ok(())
    }

    /// One entry of `features = [...]`: a column or a feature function of a column.
    fn feature(
        &self,
        schema: &datafusion::common::DFSchema,
        item: &ast::Expr,
    ) -> Result<(String, DataType, Feature), Diagnostic> {
        if let Some(c) = item.as_column() {
            let column = scope::resolve(schema, c)?;
            let ty = schema
                .field_from_column(&column)
                .map(|f| f.data_type().clone())
                .unwrap_or(DataType::Null);
            if !matches!(family(&ty), Family::Numeric | Family::Bool) {
                return Err(Diagnostic::error(
                    Code::E0017,
                    format!(
                        "feature `{}` is {}, not a number",
                        c.name.name,
                        display(&ty)
                    ),
                    c.span,
                    format!("this is {}", display(&ty)),
                )
                .with_help(format!(
                    "encode it: `one_hot({0})` for categories, `bag_of_words({0})` for text",
                    c.name.name
                )));
            }
            let feature = Feature::Numeric {
                column: c.name.name.clone(),
            };
            return Ok((c.name.name.clone(), ty, feature));
        }
        let ExprKind::Call { name, args } = &item.kind else {
            return Err(Diagnostic::error(
                Code::E0017,
                "a feature is a column or a feature function",
                item.span,
                "not a feature",
            )
            .with_help("compute it in a `derive` before `train`"));
        };
        let Some(function) = flow_stdlib::features::find(&name.name) else {
            return Err(Diagnostic::error(
                Code::E0009,
                format!("there is no feature function `{}`", name.name),
                name.span,
                "unknown feature function",
            )
            .suggesting(
                &name.name,
                flow_stdlib::FEATURE_FUNCTIONS.iter().map(|f| f.name),
                || "feature functions: one_hot, bag_of_words".into(),
            ));
        };
        let Some(c) = args
            .first()
            .filter(|a| a.name.is_none())
            .and_then(|a| a.value.as_column())
        else {
            return Err(Diagnostic::error(
                Code::E0010,
                format!("`{}` takes a column first", name.name),
                item.span,
                "expected a column",
            )
            .with_help(function.signature));
        };
        for extra in &args[1..] {
            let ok = extra
                .name
                .as_ref()
                .is_some_and(|n| matches!(n.name.as_str(), "buckets" | "ngrams"))
                && function.name == "bag_of_words"
                && matches!(extra.value.kind, ExprKind::Literal(Literal::Int(i)) if i > 0);
            if !ok {
                return Err(Diagnostic::error(
                    Code::E0010,
                    format!("unexpected argument to `{}`", name.name),
                    extra.span,
                    "unexpected argument",
                )
                .with_help(function.signature));
            }
        }
        let column = scope::resolve(schema, c)?;
        let ty = schema
            .field_from_column(&column)
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        if function.text_input && family(&ty) != Family::Text {
            return Err(Diagnostic::error(
                Code::E0010,
                format!(
                    "`{}` needs a string column, but `{}` is {}",
                    name.name,
                    c.name.name,
                    display(&ty)
                ),
                c.span,
                format!("this is {}", display(&ty)),
            ));
        }
        let int_arg = |arg: &str, default: usize| {
            args[1..]
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == arg))
                .and_then(|a| match a.value.kind {
                    ExprKind::Literal(Literal::Int(i)) => usize::try_from(i).ok(),
                    _ => None,
                })
                .unwrap_or(default)
        };
        let column_name = c.name.name.clone();
        let feature = if function.name == "bag_of_words" {
            Feature::BagOfWords {
                column: column_name,
                buckets: int_arg("buckets", 4096),
                ngrams: int_arg("ngrams", 1),
            }
        } else {
            Feature::OneHot {
                column: column_name,
                categories: Vec::new(),
            }
        };
        Ok((c.name.name.clone(), ty, feature))
    }

    pub(crate) fn infer(
        &mut self,
        value: Value,
        model: &ast::Source,
        batch: Option<&ast::IntLit>,
        span: Span,
    ) -> Result<Value, Diagnostic> {
        let Value::Table { plan, deps } = value else {
            return Err(Diagnostic::error(
                Code::E0018,
                "`infer` needs a table on its left, but this is a model",
                span,
                "this is a model",
            ));
        };
        if let Some(b) = batch
            && b.value <= 0
        {
            return Err(Diagnostic::error(
                Code::E0017,
                "the batch size must be positive",
                b.span,
                "not positive",
            ));
        }
        let Some(model_value) = self.source(model, None) else {
            return Err(Diagnostic::error(Code::E0001, "", span, ""));
        };
        let Value::Model {
            node: model_node,
            signature,
        } = model_value
        else {
            return Err(Diagnostic::error(
                Code::E0018,
                "`infer` needs a model, but this is a table",
                model.span,
                "this is a table",
            )
            .with_help(
                "a model comes from `train` or from `load \"file.model\"` / `load \"file.onnx\"`",
            ));
        };
        let schema = plan.schema().clone();
        if let Some(sig) = &signature {
            let missing: Vec<&str> = sig
                .inputs
                .iter()
                .filter(|(name, ty)| {
                    !schema
                        .iter()
                        .any(|(_, f)| f.name() == name && family(f.data_type()) == family(ty))
                })
                .map(|(n, _)| n.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Diagnostic::error(
                    Code::E0019,
                    format!(
                        "the table lacks the model's input column{} {}",
                        if missing.len() == 1 { "" } else { "s" },
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    span,
                    "missing model inputs",
                )
                .with_help(columns_in_scope(&schema)));
            }
        }
        let transformer = signature.as_ref().is_some_and(|s| s.transformer.is_some());
        let tokens = if transformer {
            let column = match signature.as_ref().and_then(|s| s.inputs.first()) {
                Some((name, _)) => name.clone(),
                None => token_column(&schema, span)?,
            };
            let cut = crate::tokenize::cut_length(&plan, &column);
            Some(crate::TokenColumn { name: column, cut })
        } else {
            None
        };
        let input = self.materialize(&plan, &deps, "inference input", span);
        let node = self.dag.add(Node {
            kind: NodeKind::Infer {
                batch: batch.map(|b| b.value),
                tokens,
            },
            label: "infer".into(),
            span,
            hints: Default::default(),
        });
        self.dag.connect(input, node, Some(schema.clone()));
        self.dag.connect(model_node, node, None);
        let mut fields: Vec<Field> = schema
            .fields()
            .iter()
            .filter(|f| !matches!(f.name().as_str(), "prediction" | "probability" | "distance"))
            .map(|f| f.as_ref().clone())
            .collect();
        let task = signature.as_ref().map(|s| s.task);
        let prediction = match (&signature, task) {
            (
                Some(ModelSignature {
                    label: Some((_, ty)),
                    ..
                }),
                Some(Task::Classification),
            ) => ty.clone(),
            (_, Some(Task::Clustering)) => DataType::Int64,
            _ => DataType::Float64,
        };
        fields.push(Field::new("prediction", prediction, true));
        match task {
            Some(Task::Regression) => {}
            Some(Task::Clustering) => fields.push(Field::new("distance", DataType::Float64, true)),
            _ => fields.push(Field::new("probability", DataType::Float64, true)),
        }
        let plan = self.scan_node(node, "scored", Schema::new(fields), span)?;
        Ok(Value::Table {
            plan,
            deps: vec![node],
        })
    }

    pub(crate) fn evaluate(
        &mut self,
        value: Value,
        label: &ast::ColumnRef,
        span: Span,
    ) -> Result<Value, Diagnostic> {
        let Value::Table { plan, deps } = value else {
            return Err(Diagnostic::error(
                Code::E0018,
                "`evaluate` needs a scored table, but this is a model",
                span,
                "this is a model",
            ));
        };
        let schema = plan.schema().clone();
        scope::resolve(&schema, label).map_err(|d| Diagnostic {
            code: Code::E0030,
            ..d
        })?;
        let has = |name: &str| schema.iter().any(|(_, f)| f.name() == name);
        if !has("prediction") {
            return Err(Diagnostic::error(
                Code::E0030,
                "`evaluate` needs a `prediction` column",
                span,
                "no predictions here",
            )
            .with_help("score the table first: `table | infer model | evaluate label`"));
        }
        let metrics = if has("probability") {
            flow_stdlib::CLASSIFICATION_METRICS
        } else if has("distance") {
            flow_stdlib::CLUSTERING_METRICS
        } else {
            flow_stdlib::REGRESSION_METRICS
        };
        let input = self.materialize(&plan, &deps, "evaluation input", span);
        let node = self.dag.add(Node {
            kind: NodeKind::Evaluate {
                label: label.name.name.clone(),
            },
            label: "evaluate".into(),
            span,
            hints: Default::default(),
        });
        self.dag.connect(input, node, Some(schema.clone()));
        let fields: Vec<Field> = metrics
            .iter()
            .map(|m| Field::new(*m, DataType::Float64, true))
            .collect();
        let plan = self
            .scan_node(node, "metrics", Schema::new(fields), span)
            .map_err(|d| Diagnostic {
                message: clean_error(&d.message),
                ..d
            })?;
        Ok(Value::Table {
            plan,
            deps: vec![node],
        })
    }
}

/// What the arguments of a `train` step set, as they are checked.
struct TrainArgs {
    spec: flow_stdlib::TrainSpec,
    /// The arguments as written, for people.
    given: Vec<(String, String)>,
    /// The features' columns and types.
    inputs: Vec<(String, DataType)>,
    label: Option<(String, DataType)>,
}

impl TrainArgs {
    /// Checks what only the whole argument list shows: every required argument given, and
    /// the label not among the features.
    fn complete(&self, model: &ModelKind, kind: &Ident, span: Span) -> Result<(), Diagnostic> {
        for spec in model.args.iter().filter(|a| a.default.is_none()) {
            if !self.given.iter().any(|(n, _)| n == spec.name) {
                return Err(Diagnostic::error(
                    Code::E0017,
                    format!("`{}` needs the argument `{}`", model.name, spec.name),
                    kind.span,
                    format!("`{}` missing", spec.name),
                )
                .with_help(format!("add `{} = ...`: {}", spec.name, spec.doc)));
            }
        }
        if let Some((name, _)) = &self.label
            && self.inputs.iter().any(|(i, _)| i == name)
        {
            return Err(Diagnostic::error(
                Code::E0017,
                format!("the label `{name}` is also a feature"),
                span,
                "label among the features",
            )
            .with_help(
                "a model cannot see the answer it is asked to predict; remove it from `features`",
            ));
        }
        Ok(())
    }
}

/// The type of a label column, when the model can learn it.
fn label_type(
    model: &ModelKind,
    schema: &datafusion::common::DFSchema,
    c: &ast::ColumnRef,
) -> Result<DataType, Diagnostic> {
    let column = scope::resolve(schema, c)?;
    let ty = schema
        .field_from_column(&column)
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Null);
    let ok = match model.task {
        Task::Regression => family(&ty) == Family::Numeric,
        _ => matches!(family(&ty), Family::Numeric | Family::Text | Family::Bool),
    };
    if ok {
        return Ok(ty);
    }
    let need = if model.task == Task::Regression {
        "a numeric label"
    } else {
        "a label of numbers, strings or booleans"
    };
    Err(Diagnostic::error(
        Code::E0017,
        format!(
            "`{}` needs {need}, but `{}` is {}",
            model.name,
            c.name.name,
            display(&ty)
        ),
        c.span,
        format!("this is {}", display(&ty)),
    ))
}

/// The value of an argument written as a literal (a number, a list of numbers, a choice);
/// `Err` says what the argument takes.
fn literal_arg(ty: ArgType, value: &ast::Expr) -> Result<ArgValue, String> {
    match ty {
        ArgType::Int => match value.kind {
            ExprKind::Literal(Literal::Int(i)) if i > 0 => Ok(ArgValue::Int(i)),
            _ => Err("a positive integer".into()),
        },
        ArgType::Float => match value.kind {
            ExprKind::Literal(Literal::Float(f)) if f >= 0.0 => Ok(ArgValue::Float(f)),
            ExprKind::Literal(Literal::Int(i)) if i >= 0 => Ok(ArgValue::Float(i as f64)),
            _ => Err("a non-negative number".into()),
        },
        ArgType::IntList => {
            let ExprKind::List(items) = &value.kind else {
                return Err("a list of positive integers".into());
            };
            let sizes: Option<Vec<i64>> = items
                .iter()
                .map(|i| match i.kind {
                    ExprKind::Literal(Literal::Int(n)) if n > 0 => Some(n),
                    _ => None,
                })
                .collect();
            match sizes {
                Some(sizes) if !sizes.is_empty() => Ok(ArgValue::Ints(sizes)),
                _ => Err("a list of positive integers".into()),
            }
        }
        ArgType::Choice(options) => match &value.kind {
            ExprKind::Literal(Literal::String(s)) if options.contains(&s.as_str()) => {
                Ok(ArgValue::Text(s.clone()))
            }
            _ => Err(ty.describe()),
        },
        ArgType::Column | ArgType::Features => Err(ty.describe()),
    }
}

/// A transformer reads the table's one column of token ids: E0019 when there is none or
/// there are several.
fn token_column(schema: &datafusion::common::DFSchema, span: Span) -> Result<String, Diagnostic> {
    let found: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| flow_stdlib::text::is_token_type(f.data_type()))
        .map(|f| f.name().as_str())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(Diagnostic::error(
            Code::E0019,
            "the model is a transformer, which reads token ids, and the table has no column of them",
            span,
            "no token ids",
        )
        .with_help(format!(
            "make them from the text first: `derive tokens = {}`; {}",
            crate::tokenize::SYNTAX,
            columns_in_scope(schema)
        ))),
        many => Err(Diagnostic::error(
            Code::E0019,
            format!(
                "the model reads one column of token ids, and the table has {}: {}",
                many.len(),
                many.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            ),
            span,
            "which token ids?",
        )
        .with_help("`select` away the ones the model should not read")),
    }
}
