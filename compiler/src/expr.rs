//! Lowering flow expressions to DataFusion expressions, checking types on the way so that a
//! mistake is reported at its own span in flow's words.

use crate::scope;
use crate::types::{Family, arrow_type, comparable, display, family};
use datafusion::arrow::datatypes::{DataType, IntervalUnit};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::{Expr, ExprSchemable, Operator, binary_expr, cast, when};
use flow_lang::ast::{self, BinaryOp, ExprKind, Literal, UnaryOp};
use flow_lang::{Code, Diagnostic, Span};

/// Where an expression is lowered: the columns in scope and whether aggregates are allowed.
pub struct ExprCx<'a> {
    pub schema: &'a DFSchema,
    pub state: &'a SessionState,
    pub aggregates: bool,
    /// Reads the files a call names (`tokenize`'s tokenizer).
    pub source: &'a dyn crate::SchemaSource,
}

pub type Lowered = Result<Expr, Diagnostic>;

impl ExprCx<'_> {
    pub fn type_of(&self, expr: &Expr, span: Span) -> Result<DataType, Diagnostic> {
        expr.get_type(self.schema).map_err(|e| {
            Diagnostic::error(
                Code::E0006,
                clean_error(&e.to_string()),
                span,
                "cannot type this expression",
            )
        })
    }

    /// Lowers an expression that must be a boolean condition.
    pub fn condition(&self, e: &ast::Expr, what: &str) -> Lowered {
        let lowered = self.lower(e)?;
        let ty = self.type_of(&lowered, e.span)?;
        if !matches!(ty, DataType::Boolean | DataType::Null) {
            return Err(Diagnostic::error(
                Code::E0007,
                format!("{what} must be a boolean, but this is {}", display(&ty)),
                e.span,
                format!("this is {}", display(&ty)),
            )
            .with_help("compare it with something, for example `x > 0` or `x == \"a\"`"));
        }
        Ok(lowered)
    }

    pub fn lower(&self, e: &ast::Expr) -> Lowered {
        match &e.kind {
            ExprKind::Literal(lit) => Ok(Expr::Literal(literal(lit), None)),
            ExprKind::Column(c) => scope::resolve(self.schema, c).map(Expr::Column),
            ExprKind::Paren(inner) => self.lower(inner),
            ExprKind::Unary {
                op: UnaryOp::Not,
                expr,
            } => Ok(Expr::Not(Box::new(
                self.condition(expr, "the operand of `not`")?,
            ))),
            ExprKind::Unary {
                op: UnaryOp::Neg,
                expr,
            } => {
                let inner = self.lower(expr)?;
                let ty = self.type_of(&inner, expr.span)?;
                if !matches!(
                    family(&ty),
                    Family::Numeric | Family::Null | Family::Interval
                ) {
                    return Err(mismatch(
                        format!("cannot negate a value of type {}", display(&ty)),
                        expr.span,
                        &ty,
                    ));
                }
                Ok(Expr::Negative(Box::new(inner)))
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, e.span),
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.condition(cond, "the condition of `if`")?;
                let t = self.lower(then)?;
                let o = self.lower(otherwise)?;
                let (tt, ot) = (
                    self.type_of(&t, then.span)?,
                    self.type_of(&o, otherwise.span)?,
                );
                if !comparable(&tt, &ot) {
                    return Err(Diagnostic::error(
                        Code::E0006,
                        format!(
                            "the branches of `if` have different types: {} and {}",
                            display(&tt),
                            display(&ot)
                        ),
                        otherwise.span,
                        format!("this is {}", display(&ot)),
                    )
                    .with_secondary(then.span, format!("this is {}", display(&tt)))
                    .with_help("convert one branch with `as TYPE`"));
                }
                when(c, t).otherwise(o).map_err(|err| df_error(err, e.span))
            }
            ExprKind::Cast { expr, ty } => {
                let inner = self.lower(expr)?;
                let target = arrow_type(ty)
                    .map_err(|m| Diagnostic::error(Code::E0023, m, ty.span, "unknown type"))?;
                Ok(cast(inner, target))
            }
            ExprKind::IsNull { expr, negated } => {
                let inner = self.lower(expr)?;
                Ok(if *negated {
                    inner.is_not_null()
                } else {
                    inner.is_null()
                })
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => {
                let inner = self.lower(expr)?;
                let ty = self.type_of(&inner, expr.span)?;
                let mut items = Vec::with_capacity(list.len());
                for item in list {
                    let lowered = self.lower(item)?;
                    let item_ty = self.type_of(&lowered, item.span)?;
                    if !comparable(&ty, &item_ty) {
                        return Err(mismatch(
                            format!(
                                "cannot look for a {} in a list holding {}",
                                display(&ty),
                                display(&item_ty)
                            ),
                            item.span,
                            &item_ty,
                        ));
                    }
                    items.push(lowered);
                }
                Ok(inner.in_list(items, *negated))
            }
            ExprKind::Like {
                expr,
                pattern,
                negated,
            } => {
                let inner = self.lower(expr)?;
                let ty = self.type_of(&inner, expr.span)?;
                if !matches!(family(&ty), Family::Text | Family::Null) {
                    return Err(mismatch(
                        format!("`like` needs a string, but this is {}", display(&ty)),
                        expr.span,
                        &ty,
                    ));
                }
                let pattern = Expr::Literal(ScalarValue::Utf8(Some(pattern.value.clone())), None);
                Ok(Expr::Like(Like::new(
                    *negated,
                    Box::new(inner),
                    Box::new(pattern),
                    None,
                    false,
                )))
            }
            ExprKind::List(_) => Err(Diagnostic::error(
                Code::E0006,
                "a list is only allowed after `in` and in arguments of `train`",
                e.span,
                "list not allowed here",
            )),
            ExprKind::Call { name, args } => self.call(name, args, e.span),
        }
    }

    fn binary(&self, op: BinaryOp, lhs: &ast::Expr, rhs: &ast::Expr, span: Span) -> Lowered {
        if matches!(op, BinaryOp::And | BinaryOp::Or) {
            let what = format!("each side of `{}`", op.symbol());
            let (l, r) = (self.condition(lhs, &what)?, self.condition(rhs, &what)?);
            return Ok(binary_expr(
                l,
                if op == BinaryOp::And {
                    Operator::And
                } else {
                    Operator::Or
                },
                r,
            ));
        }
        let (l, r) = (self.lower(lhs)?, self.lower(rhs)?);
        let (lt, rt) = (self.type_of(&l, lhs.span)?, self.type_of(&r, rhs.span)?);
        let (lf, rf) = (family(&lt), family(&rt));
        let ok = if op.is_comparison() {
            comparable(&lt, &rt)
        } else {
            match (lf, rf) {
                (Family::Null, _) | (_, Family::Null) => true,
                (Family::Numeric, Family::Numeric) => true,
                (Family::Temporal, Family::Interval) => matches!(op, BinaryOp::Add | BinaryOp::Sub),
                (Family::Interval, Family::Temporal) => op == BinaryOp::Add,
                (Family::Temporal, Family::Temporal) => op == BinaryOp::Sub,
                (Family::Interval, Family::Interval) => matches!(op, BinaryOp::Add | BinaryOp::Sub),
                _ => false,
            }
        };
        if !ok {
            let verb = match op {
                BinaryOp::Add => "add",
                BinaryOp::Sub => "subtract",
                BinaryOp::Mul => "multiply",
                BinaryOp::Div => "divide",
                BinaryOp::Mod => "take the remainder of",
                _ => "compare",
            };
            let text_side = match (lf, rf) {
                (Family::Text, _) => Some(lhs),
                (_, Family::Text) => Some(rhs),
                _ => None,
            };
            let help = match text_side {
                Some(side) if !op.is_comparison() => {
                    let side = flow_lang::format::expr_text(side);
                    format!(
                        "`{side}` is a string; if it holds numbers, convert it first: `({side} as float64)`"
                    )
                }
                Some(_) => "convert the string with `as TYPE`, or compare it with a string literal"
                    .to_string(),
                None => "convert one side with `as TYPE` if a conversion is meant".to_string(),
            };
            // The operator between the operands, so its label does not overlap theirs.
            let operator = if lhs.span.end < rhs.span.start {
                Span::new(lhs.span.end, rhs.span.start)
            } else {
                span
            };
            return Err(Diagnostic::error(
                Code::E0006,
                format!(
                    "cannot {verb} {} and {} with `{}`",
                    display(&lt),
                    display(&rt),
                    op.symbol()
                ),
                operator,
                format!("{} {} {}", display(&lt), op.symbol(), display(&rt)),
            )
            .with_secondary(lhs.span, format!("this is {}", display(&lt)))
            .with_secondary(rhs.span, format!("this is {}", display(&rt)))
            .with_help(help));
        }
        let operator = match op {
            BinaryOp::Eq => Operator::Eq,
            BinaryOp::Ne => Operator::NotEq,
            BinaryOp::Lt => Operator::Lt,
            BinaryOp::Le => Operator::LtEq,
            BinaryOp::Gt => Operator::Gt,
            BinaryOp::Ge => Operator::GtEq,
            BinaryOp::Add => Operator::Plus,
            BinaryOp::Sub => Operator::Minus,
            BinaryOp::Mul => Operator::Multiply,
            BinaryOp::Div => Operator::Divide,
            _ => Operator::Modulo,
        };
        Ok(binary_expr(l, operator, r))
    }

    fn call(&self, name: &ast::Ident, args: &[ast::Arg], span: Span) -> Lowered {
        if name
            .name
            .eq_ignore_ascii_case(crate::tokenize::Tokenize::NAME)
        {
            return self.tokenize(name, args, span);
        }
        if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
            return Err(Diagnostic::error(
                Code::E0010,
                format!("`{}` takes no named arguments", name.name),
                named.span,
                "named argument",
            )
            .with_help("named arguments are only taken by `train` and feature functions"));
        }
        let fname = name.name.to_lowercase();
        let is_aggregate =
            fname == "count_distinct" || self.state.aggregate_functions().contains_key(&fname);
        if is_aggregate && !self.aggregates {
            return Err(Diagnostic::error(
                Code::E0011,
                format!("`{}` is an aggregate function, which only works inside `group {{ ... }}`", name.name),
                span,
                "aggregate outside of group",
            )
            .with_help("use `group KEY { name = ... }`, or `group { ... }` for one row over the whole table"));
        }
        if flow_stdlib::features::find(&fname).is_some() {
            return Err(Diagnostic::error(
                Code::E0009,
                format!(
                    "`{}` is a feature function; it only works in `features = [...]` of `train`",
                    name.name
                ),
                name.span,
                "feature function outside of train",
            ));
        }
        let mut lowered = Vec::with_capacity(args.len());
        for arg in args {
            lowered.push(self.lower(&arg.value)?);
        }
        let arity = |n: usize| -> Result<(), Diagnostic> {
            if args.len() == n {
                Ok(())
            } else {
                Err(Diagnostic::error(
                    Code::E0010,
                    format!(
                        "`{}` takes {n} argument{}, but {} were given",
                        name.name,
                        if n == 1 { "" } else { "s" },
                        args.len()
                    ),
                    span,
                    "wrong number of arguments",
                ))
            }
        };
        let expr = match fname.as_str() {
            "date" => {
                arity(1)?;
                self.literal_of_type(&fname, &args[0], &DataType::Date32)?;
                cast(lowered.remove(0), DataType::Date32)
            }
            "interval" => {
                arity(1)?;
                let ty = DataType::Interval(IntervalUnit::MonthDayNano);
                self.literal_of_type(&fname, &args[0], &ty)?;
                cast(lowered.remove(0), ty)
            }
            "count" if args.is_empty() => datafusion::functions_aggregate::count::count_all(),
            "count_distinct" => {
                arity(1)?;
                datafusion::functions_aggregate::expr_fn::count_distinct(lowered.remove(0))
            }
            _ => {
                if let Some(udaf) = self.state.aggregate_functions().get(&fname) {
                    udaf.call(lowered)
                } else if let Some(udf) = self.state.scalar_functions().get(&fname) {
                    udf.call(lowered)
                } else {
                    let mut names: Vec<&str> = self
                        .state
                        .scalar_functions()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    names.extend(self.state.aggregate_functions().keys().map(String::as_str));
                    names.extend(["date", "interval", "count_distinct"]);
                    return Err(Diagnostic::error(
                        Code::E0009,
                        format!("there is no function named `{}`", name.name),
                        name.span,
                        "unknown function",
                    )
                    .suggesting(&name.name, names.iter().copied(), || {
                        "see docs/language.md for the functions flow knows".to_string()
                    }));
                }
            }
        };
        // Typing the call checks its arguments against the function's signature.
        if expr.get_type(self.schema).is_err() {
            return Err(self.wrong_arguments(
                name,
                &fname,
                args,
                &lowered_types(&expr, self.schema),
                span,
            ));
        }
        Ok(expr)
    }

    /// E0010 for a call whose arguments fit none of the function's signatures: what was
    /// given, argument by argument, and how the function is called.
    fn wrong_arguments(
        &self,
        name: &ast::Ident,
        fname: &str,
        args: &[ast::Arg],
        types: &[Option<DataType>],
        span: Span,
    ) -> Diagnostic {
        let given: Vec<String> = args
            .iter()
            .zip(types)
            .map(|(arg, ty)| {
                let ty = ty.as_ref().map_or("an unknown type".to_string(), display);
                format!("`{}` is {ty}", flow_lang::format::expr_text(&arg.value))
            })
            .collect();
        let given = match given.as_slice() {
            [] => "no arguments".to_string(),
            [one] => one.clone(),
            many => format!(
                "{} and {}",
                many[..many.len() - 1].join(", "),
                many[many.len() - 1]
            ),
        };
        let diagnostic = Diagnostic::error(
            Code::E0010,
            format!("`{}` cannot take these arguments: {given}", name.name),
            span,
            "these arguments do not fit",
        );
        match crate::functions::find(fname) {
            Some(f) => diagnostic.with_help(format!(
                "`{}` is called as `{}`: {}",
                name.name,
                f.syntax,
                first_sentence(&f.description)
            )),
            None => diagnostic,
        }
    }

    /// A `date("...")` or `interval("...")` whose text is a literal: checked now, so a date
    /// that does not exist is an error of the program, not of its run.
    fn literal_of_type(
        &self,
        fname: &str,
        arg: &ast::Arg,
        ty: &DataType,
    ) -> Result<(), Diagnostic> {
        let ExprKind::Literal(Literal::String(text)) = &arg.value.kind else {
            return Ok(());
        };
        match ScalarValue::Utf8(Some(text.clone())).cast_to(ty) {
            Ok(value) if !value.is_null() => Ok(()),
            _ => {
                let (what, form) = if fname == "date" {
                    (
                        "a date",
                        "write dates as \"YYYY-MM-DD\", for example \"1998-09-02\"",
                    )
                } else {
                    (
                        "a length of time",
                        "write lengths of time as \"90 days\", \"3 months\" or \"1 year 2 days\"",
                    )
                };
                Err(Diagnostic::error(
                    Code::E0023,
                    format!("\"{text}\" is not {what}"),
                    arg.value.span,
                    format!("not {what}"),
                )
                .with_help(form))
            }
        }
    }
}

/// The types of a call's arguments, where they can be told.
fn lowered_types(expr: &Expr, schema: &DFSchema) -> Vec<Option<DataType>> {
    let args = match expr {
        Expr::ScalarFunction(f) => &f.args,
        Expr::AggregateFunction(f) => &f.params.args,
        _ => return Vec::new(),
    };
    args.iter().map(|a| a.get_type(schema).ok()).collect()
}

/// The first sentence of a function's description.
fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}

fn literal(lit: &Literal) -> ScalarValue {
    match lit {
        Literal::Int(i) => ScalarValue::Int64(Some(*i)),
        Literal::Float(f) => ScalarValue::Float64(Some(*f)),
        Literal::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Literal::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Literal::Null => ScalarValue::Null,
    }
}

fn mismatch(message: String, span: Span, ty: &DataType) -> Diagnostic {
    Diagnostic::error(
        Code::E0006,
        message,
        span,
        format!("this is {}", display(ty)),
    )
}

pub fn df_error(e: datafusion::error::DataFusionError, span: Span) -> Diagnostic {
    Diagnostic::error(Code::E0006, clean_error(&e.to_string()), span, "here")
}

/// An engine (DataFusion or Arrow) message without its internal prefixes and backtrace
/// hints, as one line for a person.
pub fn clean_error(message: &str) -> String {
    let mut m = message.trim();
    loop {
        let before = m;
        for prefix in [
            "Error during planning: ",
            "Schema error: ",
            "Internal error: ",
            "Execution error: ",
            "External error: ",
            "Arrow error: ",
            "Parser error: ",
            "Csv error: ",
            "Json error: ",
        ] {
            if let Some(rest) = m.strip_prefix(prefix) {
                m = rest.trim();
            }
        }
        if m == before {
            break;
        }
    }
    let m = m
        .split(". This issue was likely caused by a bug")
        .next()
        .unwrap_or(m);
    m.lines().next().unwrap_or(m).to_string()
}
