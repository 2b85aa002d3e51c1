//! Go to definition, find references and rename of bindings, and the document's outline.

use crate::analysis::Analysis;
use flow_compiler::Shape;
use flow_lang::Span;
use flow_lang::ast::StmtKind;

/// The binding named at `offset` (where it is bound or used): its name and where it is bound.
pub fn binding_at(analysis: &Analysis, offset: usize) -> Option<(&str, Span)> {
    let facts = &analysis.facts;
    let at = |span: &Span| span.contains(offset) || span.end == offset;
    let name = facts
        .bindings
        .iter()
        .find(|b| at(&b.span))
        .map(|b| b.name.as_str())
        .or_else(|| {
            facts
                .unchecked
                .iter()
                .find(|(_, span)| at(span))
                .map(|(name, _)| name.as_str())
        })
        .or_else(|| {
            facts
                .uses
                .iter()
                .find(|(span, _)| span.contains(offset) || span.end == offset)
                .map(|(_, name)| name.as_str())
        })?;
    Some((name, facts.definition(name)?))
}

/// Every place that names the binding: where it is bound first, then its uses in order.
pub fn references(analysis: &Analysis, name: &str) -> Vec<Span> {
    let facts = &analysis.facts;
    let mut spans: Vec<Span> = facts.definition(name).into_iter().collect();
    spans.extend(
        facts
            .uses
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(span, _)| *span),
    );
    spans
}

/// Why `new_name` cannot replace `old`, if it cannot.
pub fn rename_problem(analysis: &Analysis, old: &str, new_name: &str) -> Option<String> {
    let mut chars = new_name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Some(format!(
            "`{new_name}` is not a name: names start with a letter or `_` and hold letters, digits and `_`"
        ));
    }
    if flow_lang::keywords::is_reserved(new_name) {
        return Some(format!("`{new_name}` is a keyword of the language"));
    }
    if new_name != old && analysis.facts.binding(new_name).is_some() {
        return Some(format!("`{new_name}` is already bound"));
    }
    None
}

/// One entry of the outline.
pub struct Symbol {
    pub name: String,
    pub detail: String,
    pub kind: lsp_types::SymbolKind,
    pub span: Span,
    pub selection: Span,
}

pub fn symbols(analysis: &Analysis) -> Vec<Symbol> {
    let detail = |name: &str| match analysis.facts.binding(name).map(|b| &b.shape) {
        Some(Shape::Table(schema)) => format!("table, {} columns", schema.fields().len()),
        Some(Shape::Model(_)) => "model".to_string(),
        None => String::new(),
    };
    let mut out = Vec::new();
    for statement in &analysis.program.statements {
        let span = statement.span;
        match &statement.kind {
            StmtKind::Config(_) => out.push(Symbol {
                name: "config".into(),
                detail: "run settings".into(),
                kind: lsp_types::SymbolKind::NAMESPACE,
                span,
                selection: Span::new(span.start, span.start + 6),
            }),
            StmtKind::Let { name, .. } => out.push(Symbol {
                name: name.name.clone(),
                detail: detail(&name.name),
                kind: lsp_types::SymbolKind::VARIABLE,
                span,
                selection: name.span,
            }),
            StmtKind::Split { first, second, .. } => {
                for name in [first, second] {
                    out.push(Symbol {
                        name: name.name.clone(),
                        detail: detail(&name.name),
                        kind: lsp_types::SymbolKind::VARIABLE,
                        span,
                        selection: name.span,
                    });
                }
            }
            StmtKind::Save { target, .. } => out.push(Symbol {
                name: format!("save to {}", target.value),
                detail: String::new(),
                kind: lsp_types::SymbolKind::EVENT,
                span,
                selection: target.span,
            }),
            StmtKind::Show { .. } => out.push(Symbol {
                name: "show".into(),
                detail: String::new(),
                kind: lsp_types::SymbolKind::EVENT,
                span,
                selection: Span::new(span.start, span.start + 4),
            }),
        }
    }
    out
}
