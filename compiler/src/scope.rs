//! Columns in scope at a point of a pipeline, and resolving names against them with the
//! diagnostics a person needs: what is in scope, what they probably meant.

use crate::types::display;
use datafusion::common::{Column, DFSchema};
use flow_lang::ast::ColumnRef;
use flow_lang::diagnostic::suggest::closest;
use flow_lang::{Code, Diagnostic};

/// "columns in scope: a (int64), b (string), ..." for help lines.
pub fn columns_in_scope(schema: &DFSchema) -> String {
    let mut cols: Vec<String> = schema
        .iter()
        .take(24)
        .map(|(q, f)| match q {
            Some(q) if is_ambiguous(schema, f.name()) => {
                format!("{}.{} ({})", q.table(), f.name(), display(f.data_type()))
            }
            _ => format!("{} ({})", f.name(), display(f.data_type())),
        })
        .collect();
    if schema.fields().len() > 24 {
        cols.push(format!("and {} more", schema.fields().len() - 24));
    }
    if cols.is_empty() {
        "the table has no columns".to_string()
    } else {
        format!("columns in scope: {}", cols.join(", "))
    }
}

fn is_ambiguous(schema: &DFSchema, name: &str) -> bool {
    schema.iter().filter(|(_, f)| f.name() == name).count() > 1
}

/// Resolves a column reference against a schema.
pub fn resolve(schema: &DFSchema, column: &ColumnRef) -> Result<Column, Diagnostic> {
    let name = &column.name.name;
    if let Some(qualifier) = &column.qualifier {
        let found = schema
            .iter()
            .find(|(q, f)| q.is_some_and(|q| q.table() == qualifier.name) && f.name() == name);
        if let Some((q, f)) = found {
            return Ok(Column::new(q.cloned(), f.name()));
        }
        let qualifiers: Vec<&str> = schema
            .iter()
            .filter_map(|(q, _)| q.map(|q| q.table()))
            .collect();
        if !qualifiers.contains(&qualifier.name.as_str()) {
            // `x.y` where `x` is not a table: maybe the user meant the plain column.
            let mut unique = qualifiers.clone();
            unique.dedup();
            return Err(Diagnostic::error(
                Code::E0004,
                format!("no table named `{}` is in scope here", qualifier.name),
                qualifier.span,
                "unknown table",
            )
            .suggesting(&qualifier.name, unique.iter().copied(), || {
                format!(
                    "tables in scope: {}",
                    if unique.is_empty() {
                        "none".into()
                    } else {
                        unique.join(", ")
                    }
                )
            }));
        }
        let names: Vec<&str> = schema
            .iter()
            .filter(|(q, _)| q.is_some_and(|q| q.table() == qualifier.name))
            .map(|(_, f)| f.name().as_str())
            .collect();
        let diagnostic = Diagnostic::error(
            Code::E0004,
            format!("table `{}` has no column `{name}`", qualifier.name),
            column.span,
            "unknown column",
        );
        return Err(match closest(name, names.iter().copied()) {
            Some(close) => diagnostic
                .with_help(format!("did you mean `{close}`?"))
                .with_fix(column.name.span, close),
            None => diagnostic.with_help(columns_in_scope(schema)),
        });
    }
    let matches: Vec<_> = schema.iter().filter(|(_, f)| f.name() == name).collect();
    match matches.as_slice() {
        [(q, f)] => Ok(Column::new(q.cloned(), f.name())),
        [] => {
            let names: Vec<&str> = schema.iter().map(|(_, f)| f.name().as_str()).collect();
            let diagnostic = Diagnostic::error(
                Code::E0004,
                format!("no column named `{name}` here"),
                column.span,
                "unknown column",
            );
            Err(match closest(name, names.iter().copied()) {
                Some(close) => diagnostic
                    .with_help(format!(
                        "did you mean `{close}`? {}",
                        columns_in_scope(schema)
                    ))
                    .with_fix(column.name.span, close),
                None => diagnostic.with_help(columns_in_scope(schema)),
            })
        }
        many => {
            let qualified: Vec<String> = many
                .iter()
                .filter_map(|(q, f)| Some(format!("{}.{}", (*q)?.table(), f.name())))
                .collect();
            let candidates: Vec<String> = qualified.iter().map(|c| format!("`{c}`")).collect();
            let mut diagnostic = Diagnostic::error(
                Code::E0005,
                format!("column `{name}` is ambiguous: both sides of the join have it"),
                column.span,
                "ambiguous column",
            )
            .with_help(format!("qualify it: {}", candidates.join(" or ")));
            for c in qualified {
                diagnostic = diagnostic.with_fix(column.span, c);
            }
            Err(diagnostic)
        }
    }
}
