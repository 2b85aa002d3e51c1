//! The canonical formatter: a [`Program`] (with its comments) back to text. The output depends
//! only on the syntax tree and the comments, so formatting is idempotent, and it parses back to
//! the same tree. Comments are never dropped: one the layout has no place for moves to the line
//! before its statement.

use crate::ast::*;
use crate::span::Span;
use std::fmt::Write as _;

/// Lines longer than this are broken where the layout allows.
const WIDTH: usize = 90;
const INDENT: &str = "  ";

/// Formats a parsed program. `source` is the text it was parsed from (used only to keep the
/// blank lines between statements).
pub fn format_program(source: &str, program: &Program) -> String {
    let mut printer = Printer {
        source,
        comments: &program.comments,
        used: vec![false; program.comments.len()],
        out: String::new(),
    };
    let mut previous_end = 0;
    for stmt in &program.statements {
        printer.gap(previous_end, stmt.span.start);
        let body = printer.statement(stmt);
        printer.leftovers(stmt.span);
        printer.out.push_str(&body);
        printer.trailing(stmt.span.end, usize::MAX);
        printer.out.push('\n');
        previous_end = stmt.span.end;
    }
    printer.gap(previous_end, source.len());
    printer.out
}

struct Printer<'a> {
    source: &'a str,
    comments: &'a [Comment],
    used: Vec<bool>,
    out: String,
}

impl Printer<'_> {
    /// Comments between `from` and `to` on their own lines, keeping one blank line where the
    /// source had at least one.
    fn gap(&mut self, from: usize, to: usize) {
        let mut cursor = from;
        for i in 0..self.comments.len() {
            let comment = &self.comments[i];
            if self.used[i] || comment.span.start < from || comment.span.start >= to {
                continue;
            }
            if self.blank_line_between(cursor, comment.span.start) && !self.out.is_empty() {
                self.out.push('\n');
            }
            self.used[i] = true;
            let _ = writeln!(self.out, "#{}", comment.text.trim_end());
            cursor = comment.span.end;
        }
        if to < self.source.len() && self.blank_line_between(cursor, to) && !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn blank_line_between(&self, from: usize, to: usize) -> bool {
        let text = self.source.get(from..to).unwrap_or("");
        let mut newlines = 0;
        for c in text.chars() {
            match c {
                '\n' => {
                    newlines += 1;
                    if newlines >= 2 {
                        return true;
                    }
                }
                c if c.is_whitespace() => {}
                _ => newlines = 0,
            }
        }
        false
    }

    /// Comments inside `span` that the layout did not place go before the statement.
    fn leftovers(&mut self, span: Span) {
        for i in 0..self.comments.len() {
            if !self.used[i] && span.contains(self.comments[i].span.start) {
                self.used[i] = true;
                let _ = writeln!(self.out, "#{}", self.comments[i].text.trim_end());
            }
        }
    }

    /// A comment on the same source line as `end` (and before `limit`) goes at the end of the
    /// current output line.
    fn trailing(&mut self, end: usize, limit: usize) {
        let line_end = self.source[end.min(self.source.len())..]
            .find('\n')
            .map_or(self.source.len(), |n| end + n);
        for i in 0..self.comments.len() {
            let start = self.comments[i].span.start;
            if !self.used[i] && start >= end && start < line_end && start < limit {
                self.used[i] = true;
                let _ = write!(self.out, "  #{}", self.comments[i].text.trim_end());
            }
        }
    }

    fn statement(&mut self, stmt: &Stmt) -> String {
        match &stmt.kind {
            StmtKind::Config(object) => format!("config {}", object_text(object)),
            StmtKind::Let { name, value } => {
                let head = format!("let {} = ", quoted(&name.name));
                self.pipeline(head, value, "")
            }
            StmtKind::Split {
                first,
                second,
                input,
                fraction,
                seed,
            } => {
                let head = format!(
                    "let {}, {} = split ",
                    quoted(&first.name),
                    quoted(&second.name)
                );
                let mut tail = format!(" {}", expr_text(fraction));
                if let Some(seed) = seed {
                    let _ = write!(tail, " seed {}", seed.value);
                }
                self.pipeline(head, input, &tail)
            }
            StmtKind::Save {
                input,
                target,
                format,
                options,
            } => {
                let mut tail = format!(" to {}", quote(&target.value));
                if let Some(format) = format {
                    let _ = write!(tail, " as {}", format.name);
                }
                if let Some(options) = options {
                    let _ = write!(tail, " with {}", object_text(options));
                }
                self.pipeline("save ".to_string(), input, &tail)
            }
            StmtKind::Show { input, limit } => {
                let tail = limit
                    .as_ref()
                    .map(|l| format!(" limit {}", l.value))
                    .unwrap_or_default();
                self.pipeline("show ".to_string(), input, &tail)
            }
        }
    }

    /// A top-level pipeline: on one line when it has at most one step and fits, otherwise one
    /// step per line.
    fn pipeline(&mut self, head: String, pipeline: &Pipeline, tail: &str) -> String {
        let source = source_text(&pipeline.source);
        let steps: Vec<String> = pipeline.steps.iter().map(step_text).collect();
        let one_line = format!(
            "{head}{source}{}{tail}",
            steps.iter().map(|s| format!(" | {s}")).collect::<String>()
        );
        let has_comment_between = pipeline
            .steps
            .iter()
            .any(|s| self.has_comment_in(Span::new(pipeline.span.start, s.span.start)));
        if steps.len() <= 1 && one_line.len() <= WIDTH && !has_comment_between {
            return one_line;
        }
        // Multi-line: comments between steps stay between them.
        let saved = std::mem::take(&mut self.out);
        self.out.push_str(&head);
        self.out.push_str(&source);
        let mut previous_end = pipeline.source.span.end;
        for (step, text) in pipeline.steps.iter().zip(&steps) {
            self.trailing(previous_end, step.span.start);
            self.out.push('\n');
            for i in 0..self.comments.len() {
                let start = self.comments[i].span.start;
                if !self.used[i] && start >= previous_end && start < step.span.start {
                    self.used[i] = true;
                    let _ = writeln!(self.out, "{INDENT}#{}", self.comments[i].text.trim_end());
                }
            }
            let _ = write!(self.out, "{INDENT}| {text}");
            previous_end = step.span.end;
        }
        self.out.push_str(tail);
        std::mem::replace(&mut self.out, saved)
    }

    fn has_comment_in(&self, span: Span) -> bool {
        self.comments
            .iter()
            .zip(&self.used)
            .any(|(c, used)| !used && span.contains(c.span.start))
    }
}

fn source_text(source: &Source) -> String {
    match &source.kind {
        SourceKind::Name(name) => quoted(&name.name).into_owned(),
        SourceKind::Sql(query) => format!("sql {}", quote(&query.value)),
        SourceKind::Pipeline(p) => format!("({})", inline_pipeline(p)),
        SourceKind::Load(load) => {
            let mut text = format!("load {}", quote(&load.path.value));
            if let Some(format) = &load.format {
                let _ = write!(text, " as {}", format.name);
            }
            if let Some(schema) = &load.schema {
                let fields: Vec<String> = schema
                    .iter()
                    .map(|f| format!("{}: {}", quoted(&f.name.name), type_text(&f.ty)))
                    .collect();
                let _ = write!(text, " schema {{ {} }}", fields.join(", "));
            }
            if let Some(options) = &load.options {
                let _ = write!(text, " with {}", object_text(options));
            }
            text
        }
    }
}

fn inline_pipeline(p: &Pipeline) -> String {
    let mut text = source_text(&p.source);
    for step in &p.steps {
        let _ = write!(text, " | {}", step_text(step));
    }
    text
}

fn step_text(step: &Step) -> String {
    let mut text = match &step.kind {
        StepKind::Filter(e) => format!("filter {}", expr_text(e)),
        StepKind::Select(items) => format!(
            "select {}",
            items
                .iter()
                .map(select_item_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepKind::Derive(assigns) => format!(
            "derive {}",
            assigns
                .iter()
                .map(assign_text)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        StepKind::Join { kind, right, on } => {
            let kind = kind
                .map(|k| format!("{} ", k.keyword()))
                .unwrap_or_default();
            let on: Vec<String> = on.iter().map(expr_text).collect();
            format!("join {kind}{} on {}", source_text(right), on.join(", "))
        }
        StepKind::Group { keys, aggregates } => {
            let keys: Vec<String> = keys.iter().map(select_item_text).collect();
            let aggregates: Vec<String> = aggregates.iter().map(assign_text).collect();
            let keys = if keys.is_empty() {
                String::new()
            } else {
                format!("{} ", keys.join(", "))
            };
            if aggregates.is_empty() {
                format!("group {keys}{{}}")
            } else {
                format!("group {keys}{{ {} }}", aggregates.join(", "))
            }
        }
        StepKind::Sort(keys) => {
            let keys: Vec<String> = keys
                .iter()
                .map(|k| {
                    let dir = match (k.explicit, k.descending) {
                        (_, true) => " desc",
                        (true, false) => " asc",
                        (false, false) => "",
                    };
                    format!("{}{dir}", expr_text(&k.expr))
                })
                .collect();
            format!("sort {}", keys.join(", "))
        }
        StepKind::Take(n) => format!("take {}", n.value),
        StepKind::Distinct(cols) if cols.is_empty() => "distinct".to_string(),
        StepKind::Distinct(cols) => format!(
            "distinct {}",
            cols.iter().map(column_text).collect::<Vec<_>>().join(", ")
        ),
        StepKind::Union(source) => format!("union {}", source_text(source)),
        StepKind::Sql(query) => format!("sql {}", quote(&query.value)),
        StepKind::Train { kind, args } => format!("train {}({})", kind.name, args_text(args)),
        StepKind::Infer { model, batch } => {
            let batch = batch
                .as_ref()
                .map(|b| format!(" batch {}", b.value))
                .unwrap_or_default();
            format!("infer {}{batch}", source_text(model))
        }
        StepKind::Evaluate { label } => format!("evaluate {}", column_text(label)),
    };
    if let Some(hints) = &step.hints {
        let _ = write!(text, " with {}", object_text(hints));
    }
    text
}

fn select_item_text(item: &SelectItem) -> String {
    match &item.name {
        Some(name) => format!("{} = {}", quoted(&name.name), expr_text(&item.expr)),
        None => expr_text(&item.expr),
    }
}

fn assign_text(a: &Assign) -> String {
    format!("{} = {}", quoted(&a.name.name), expr_text(&a.expr))
}

fn args_text(args: &[Arg]) -> String {
    args.iter()
        .map(|a| match &a.name {
            Some(name) => format!("{} = {}", quoted(&name.name), expr_text(&a.value)),
            None => expr_text(&a.value),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn object_text(object: &Object) -> String {
    if object.entries.is_empty() {
        return "{}".to_string();
    }
    let entries: Vec<String> = object
        .entries
        .iter()
        .map(|e| format!("{} = {}", e.key.name, expr_text(&e.value)))
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

fn column_text(c: &ColumnRef) -> String {
    match &c.qualifier {
        Some(q) => format!("{}.{}", quoted(&q.name), quoted(&c.name.name)),
        None => quoted(&c.name.name).into_owned(),
    }
}

fn type_text(ty: &TypeName) -> String {
    match &ty.kind {
        TypeKind::Named(name) => name.clone(),
        TypeKind::Decimal(p, s) => format!("decimal({}, {})", p.value, s.value),
    }
}

/// A string literal with the escapes the grammar knows.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An expression as source text. Parentheses appear exactly where the program wrote them: the
/// tree already encodes precedence, so printing it flat reparses to the same tree.
pub fn expr_text(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn write_expr(out: &mut String, expr: &Expr) {
    match &expr.kind {
        ExprKind::Literal(lit) => match lit {
            Literal::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Literal::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f:?}");
            }
            Literal::Float(_) => out.push_str("1e999"),
            Literal::String(s) => out.push_str(&quote(s)),
            Literal::Bool(b) => {
                let _ = write!(out, "{b}");
            }
            Literal::Null => out.push_str("null"),
        },
        ExprKind::Column(c) => out.push_str(&column_text(c)),
        ExprKind::Binary { op, lhs, rhs } => {
            write_expr(out, lhs);
            let _ = write!(out, " {} ", op.symbol());
            write_expr(out, rhs);
        }
        ExprKind::Unary {
            op: UnaryOp::Not,
            expr,
        } => {
            out.push_str("not ");
            write_expr(out, expr);
        }
        ExprKind::Unary {
            op: UnaryOp::Neg,
            expr,
        } => {
            out.push('-');
            write_expr(out, expr);
        }
        ExprKind::Call { name, args } => {
            let _ = write!(out, "{}({})", name.name, args_text(args));
        }
        ExprKind::If {
            cond,
            then,
            otherwise,
        } => {
            out.push_str("if ");
            write_expr(out, cond);
            out.push_str(" then ");
            write_expr(out, then);
            out.push_str(" else ");
            write_expr(out, otherwise);
        }
        ExprKind::Cast { expr, ty } => {
            write_expr(out, expr);
            let _ = write!(out, " as {}", type_text(ty));
        }
        ExprKind::IsNull { expr, negated } => {
            write_expr(out, expr);
            out.push_str(if *negated { " is not null" } else { " is null" });
        }
        ExprKind::InList {
            expr,
            list,
            negated,
        } => {
            write_expr(out, expr);
            out.push_str(if *negated { " not in [" } else { " in [" });
            for (i, item) in list.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item);
            }
            out.push(']');
        }
        ExprKind::Like {
            expr,
            pattern,
            negated,
        } => {
            write_expr(out, expr);
            let _ = write!(
                out,
                "{} {}",
                if *negated { " not like" } else { " like" },
                quote(&pattern.value)
            );
        }
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item);
            }
            out.push(']');
        }
        ExprKind::Paren(inner) => {
            out.push('(');
            write_expr(out, inner);
            out.push(')');
        }
    }
}

/// A name as the program must write it: in backticks when it is a reserved word or not
/// made of letters, digits and `_` (a column called `group` or `unit price`).
pub fn quoted(name: &str) -> std::borrow::Cow<'_, str> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !crate::keywords::is_reserved(name);
    if plain {
        std::borrow::Cow::Borrowed(name)
    } else {
        std::borrow::Cow::Owned(format!("`{name}`"))
    }
}
