//! Hover: the schema at a binding, a `|` or after a step; the documentation of a step, a
//! function, a model kind or argument, a config or hint key; the explanation of the diagnostic
//! under the cursor.

use crate::analysis::Analysis;
use crate::convert;
use crate::locate::{self, Found};
use flow_compiler::Shape;
use flow_compiler::settings::{CONFIG_KEYS, HINT_KEYS, Key};
use flow_compiler::types::display;
use flow_lang::Span;

/// The hover text at `offset` and the span it is about.
pub fn hover(analysis: &Analysis, offset: usize) -> Option<(String, Span)> {
    let mut parts: Vec<String> = Vec::new();
    let mut span = None;
    if let Some((text, at)) =
        locate::at(&analysis.program, offset).and_then(|found| describe(analysis, found))
    {
        parts.push(text);
        span = Some(at);
    }
    for d in analysis
        .diagnostics
        .iter()
        .filter(|d| d.primary.span.start <= offset && offset <= d.primary.span.end)
    {
        let info = d.code.info();
        parts.push(format!(
            "**{}: {}**\n\n{}",
            info.code, info.title, info.explanation
        ));
        span.get_or_insert(d.primary.span);
    }
    Some((parts.join("\n\n---\n\n"), span?))
}

fn describe(analysis: &Analysis, found: Found<'_>) -> Option<(String, Span)> {
    let facts = &analysis.facts;
    let after = |span: Span| {
        facts
            .places
            .iter()
            .find(|p| p.span == span)
            .and_then(|p| p.output.as_ref())
    };
    Some(match found {
        Found::Binding(name) | Found::Use(name) => {
            let shape = facts.binding(&name.name).map(|b| &b.shape);
            let text = match shape {
                Some(shape) => format!("**{}**: {}", name.name, convert::shape(shape)),
                None => format!("**{}** (not checked)", name.name),
            };
            (text, name.span)
        }
        Found::StepKeyword(step) => {
            let keyword = step.kind.keyword();
            let mut text = flow_lang::reference::find(keyword)
                .map(|e| e.markdown())
                .unwrap_or_default();
            if let Some(shape) = after(step.span) {
                text.push_str(&format!(
                    "\n\n---\n\nafter `{keyword}`: {}",
                    convert::shape(shape)
                ));
            }
            (
                text,
                Span::new(step.span.start, step.span.start + keyword.len()),
            )
        }
        Found::Pipe(step) => {
            let input = facts
                .places
                .iter()
                .find(|p| p.span == step.span)
                .and_then(|p| p.input.as_ref())?;
            let at = Span::new(step.span.start.saturating_sub(2), step.span.start);
            (format!("here: {}", convert::shape(input)), at)
        }
        Found::Column(column) => {
            let place = facts.place_at(column.span.start)?;
            let Some(Shape::Table(schema)) = &place.input else {
                return None;
            };
            let field = schema.iter().find(|(q, f)| {
                f.name() == &column.name.name
                    && column
                        .qualifier
                        .as_ref()
                        .is_none_or(|wanted| q.is_some_and(|q| q.table() == wanted.name))
            });
            let (q, f) = field?;
            let name = match q {
                Some(q) => format!("{}.{}", q.table(), f.name()),
                None => f.name().clone(),
            };
            let nullable = if f.is_nullable() { ", nullable" } else { "" };
            (
                format!("column `{name}`: {}{nullable}", display(f.data_type())),
                column.span,
            )
        }
        Found::Function(name) => {
            let text = if let Some(feature) = flow_stdlib::features::find(&name.name) {
                format!("```flow\n{}\n```\n{}", feature.signature, feature.doc)
            } else {
                let f = flow_compiler::functions::find(&name.name.to_lowercase())?;
                let kind = if f.aggregate { "aggregate" } else { "function" };
                format!("```flow\n{}\n```\n({kind}) {}", f.syntax, f.description)
            };
            (text, name.span)
        }
        Found::ModelKind(kind) => {
            let model = flow_stdlib::models::find(&kind.name)?;
            (format!("```\n{}```", model.explain()), kind.span)
        }
        Found::ModelArg { kind, arg } => {
            let spec = flow_stdlib::models::find(&kind.name)?.arg(&arg.name)?;
            let default = spec
                .default
                .map_or_else(|| "required".to_string(), |d| format!("default {d}"));
            (
                format!(
                    "**{}** — {} ({}, {default})",
                    spec.name,
                    spec.doc,
                    spec.ty.describe()
                ),
                arg.span,
            )
        }
        Found::ConfigKey(key) => (key_doc(CONFIG_KEYS, &key.name)?, key.span),
        Found::HintKey(key) => (key_doc(HINT_KEYS, &key.name)?, key.span),
        Found::LoadPath(path) => {
            let place = facts.place_at(path.span.start)?;
            let shape = place.output.as_ref()?;
            (
                format!("`{}`: {}", path.value, convert::shape(shape)),
                path.span,
            )
        }
        Found::StatementKeyword(word, span) => (flow_lang::reference::find(word)?.markdown(), span),
    })
}

fn key_doc(keys: &[Key], name: &str) -> Option<String> {
    let key = keys.iter().find(|k| k.name == name)?;
    Some(format!("**{}** = {}\n\n{}", key.name, key.values, key.doc))
}
