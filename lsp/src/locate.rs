//! What stands at an offset of a parsed program: a binding, a use of one, a step's keyword, a
//! column, a function, a model kind or argument, a config or hint key, a load's path.

use flow_lang::Span;
use flow_lang::ast::*;

#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    /// A name where `let` or `split` binds it.
    Binding(&'a Ident),
    /// A bound name used as a source.
    Use(&'a Ident),
    /// The keyword of a step.
    StepKeyword(&'a Step),
    /// A `|` before a step: the table at that point is the one the step consumes.
    Pipe(&'a Step),
    Column(&'a ColumnRef),
    Function(&'a Ident),
    ModelKind(&'a Ident),
    /// A named argument of `train KIND(...)`.
    ModelArg {
        kind: &'a Ident,
        arg: &'a Ident,
    },
    ConfigKey(&'a Ident),
    HintKey(&'a Ident),
    LoadPath(&'a StrLit),
    /// The keyword that starts a statement.
    StatementKeyword(&'a str, Span),
}

fn within(span: Span, offset: usize) -> bool {
    span.start <= offset && offset <= span.end
}

pub fn at(program: &Program, offset: usize) -> Option<Found<'_>> {
    let statement = program.statements.iter().find(|s| within(s.span, offset))?;
    let keyword = |word: &'static str| {
        let span = Span::new(statement.span.start, statement.span.start + word.len());
        within(span, offset).then_some(Found::StatementKeyword(word, span))
    };
    match &statement.kind {
        StmtKind::Config(object) => keyword("config").or_else(|| object_key(object, offset, true)),
        StmtKind::Let { name, value } => keyword("let")
            .or_else(|| within(name.span, offset).then_some(Found::Binding(name)))
            .or_else(|| pipeline(value, offset)),
        StmtKind::Split {
            first,
            second,
            input,
            fraction,
            ..
        } => keyword("let")
            .or_else(|| within(first.span, offset).then_some(Found::Binding(first)))
            .or_else(|| within(second.span, offset).then_some(Found::Binding(second)))
            .or_else(|| pipeline(input, offset))
            .or_else(|| expr(fraction, offset)),
        StmtKind::Save { input, options, .. } => keyword("save")
            .or_else(|| pipeline(input, offset))
            .or_else(|| options.as_ref().and_then(|o| object_key(o, offset, false))),
        StmtKind::Show { input, .. } => keyword("show").or_else(|| pipeline(input, offset)),
    }
}

fn object_key(object: &Object, offset: usize, config: bool) -> Option<Found<'_>> {
    object.entries.iter().find_map(|e| {
        if within(e.key.span, offset) {
            Some(if config {
                Found::ConfigKey(&e.key)
            } else {
                Found::HintKey(&e.key)
            })
        } else {
            expr(&e.value, offset)
        }
    })
}

fn pipeline(p: &Pipeline, offset: usize) -> Option<Found<'_>> {
    if !within(p.span, offset) {
        return None;
    }
    if let Some(found) = source(&p.source, offset) {
        return Some(found);
    }
    let mut previous_end = p.source.span.end;
    for s in &p.steps {
        // The `|` between the previous part and this step.
        if (previous_end..s.span.start).contains(&offset) {
            return Some(Found::Pipe(s));
        }
        if let Some(found) = step(s, offset) {
            return Some(found);
        }
        previous_end = s.span.end;
    }
    None
}

fn source(s: &Source, offset: usize) -> Option<Found<'_>> {
    if !within(s.span, offset) {
        return None;
    }
    match &s.kind {
        SourceKind::Name(name) => Some(Found::Use(name)),
        SourceKind::Load(load) => {
            if within(load.path.span, offset) {
                Some(Found::LoadPath(&load.path))
            } else {
                load.options
                    .as_ref()
                    .and_then(|o| object_key(o, offset, false))
            }
        }
        SourceKind::Sql(_) => None,
        SourceKind::Pipeline(p) => pipeline(p, offset),
    }
}

fn step(s: &Step, offset: usize) -> Option<Found<'_>> {
    if !within(s.span, offset) {
        return None;
    }
    let keyword = Span::new(s.span.start, s.span.start + s.kind.keyword().len());
    if within(keyword, offset) {
        return Some(Found::StepKeyword(s));
    }
    if let Some(hints) = &s.hints
        && within(hints.span, offset)
    {
        return object_key(hints, offset, false);
    }
    match &s.kind {
        StepKind::Filter(e) => expr(e, offset),
        StepKind::Select(items) => first(offset, items.iter().map(|i| &i.expr)),
        StepKind::Derive(assigns) => first(offset, assigns.iter().map(|a| &a.expr)),
        StepKind::Join { right, on, .. } => {
            source(right, offset).or_else(|| first(offset, on.iter()))
        }
        StepKind::Group { keys, aggregates } => first(offset, keys.iter().map(|k| &k.expr))
            .or_else(|| first(offset, aggregates.iter().map(|a| &a.expr))),
        StepKind::Sort(keys) => first(offset, keys.iter().map(|k| &k.expr)),
        StepKind::Distinct(columns) => columns
            .iter()
            .find(|c| within(c.span, offset))
            .map(Found::Column),
        StepKind::Union(right) => source(right, offset),
        StepKind::Train { kind, args } => {
            if within(kind.span, offset) {
                return Some(Found::ModelKind(kind));
            }
            args.iter().find_map(|a| match &a.name {
                Some(name) if within(name.span, offset) => {
                    Some(Found::ModelArg { kind, arg: name })
                }
                _ => expr(&a.value, offset),
            })
        }
        StepKind::Infer { model, .. } => source(model, offset),
        StepKind::Evaluate { label } => within(label.span, offset).then_some(Found::Column(label)),
        StepKind::Take(_) | StepKind::Sql(_) => None,
    }
}

fn first<'a>(offset: usize, list: impl IntoIterator<Item = &'a Expr>) -> Option<Found<'a>> {
    list.into_iter().find_map(|e| expr(e, offset))
}

fn expr(e: &Expr, offset: usize) -> Option<Found<'_>> {
    if !within(e.span, offset) {
        return None;
    }
    match &e.kind {
        ExprKind::Literal(_) => None,
        ExprKind::Column(c) => Some(Found::Column(c)),
        ExprKind::Binary { lhs, rhs, .. } => expr(lhs, offset).or_else(|| expr(rhs, offset)),
        ExprKind::Unary { expr: inner, .. }
        | ExprKind::Cast { expr: inner, .. }
        | ExprKind::IsNull { expr: inner, .. }
        | ExprKind::Like { expr: inner, .. }
        | ExprKind::Paren(inner) => expr(inner, offset),
        ExprKind::Call { name, args } => {
            if within(name.span, offset) {
                Some(Found::Function(name))
            } else {
                args.iter().find_map(|a| expr(&a.value, offset))
            }
        }
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => expr(cond, offset)
            .or_else(|| expr(then, offset))
            .or_else(|| expr(otherwise, offset)),
        ExprKind::InList {
            expr: inner, list, ..
        } => expr(inner, offset).or_else(|| list.iter().find_map(|x| expr(x, offset))),
        ExprKind::List(items) => items.iter().find_map(|x| expr(x, offset)),
    }
}
