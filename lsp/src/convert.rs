//! flow's values as LSP values: diagnostics, and tables and models as Markdown.

use crate::document::Document;
use flow_compiler::types::display;
use flow_compiler::{ModelSignature, Shape};
use flow_lang::{Diagnostic, Severity};
use lsp_types::{
    DiagnosticRelatedInformation, DiagnosticSeverity, DiagnosticTag, Location, NumberOrString, Uri,
};

pub fn diagnostic(uri: &Uri, document: &Document, d: &Diagnostic) -> lsp_types::Diagnostic {
    let mut message = d.message.clone();
    if !d.primary.message.is_empty() {
        message.push_str(&format!(" ({})", d.primary.message));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .secondary
        .iter()
        .map(|label| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), document.range(label.span)),
            message: label.message.clone(),
        })
        .collect();
    lsp_types::Diagnostic {
        range: document.range(d.primary.span),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.as_str().to_string())),
        source: Some("flow".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        tags: (d.code == flow_lang::Code::W0001).then(|| vec![DiagnosticTag::UNNECESSARY]),
        ..Default::default()
    }
}

/// A table's columns or a model's signature, as Markdown.
pub fn shape(shape: &Shape) -> String {
    match shape {
        Shape::Table(schema) => {
            let mut out = format!(
                "table, {} columns\n\n| column | type |\n| --- | --- |\n",
                schema.fields().len()
            );
            for (qualifier, field) in schema.iter() {
                let name = match qualifier {
                    Some(q)
                        if schema
                            .iter()
                            .filter(|(_, f)| f.name() == field.name())
                            .count()
                            > 1 =>
                    {
                        format!("{}.{}", q.table(), field.name())
                    }
                    _ => field.name().clone(),
                };
                let nullable = if field.is_nullable() { "" } else { " not null" };
                out.push_str(&format!(
                    "| `{name}` | {}{nullable} |\n",
                    display(field.data_type())
                ));
            }
            out
        }
        Shape::Model(Some(signature)) => model(signature),
        Shape::Model(None) => "model (its inputs are known when it runs)".to_string(),
    }
}

fn model(signature: &ModelSignature) -> String {
    let task = match signature.task {
        flow_stdlib::Task::Regression => "regression",
        flow_stdlib::Task::Classification => "classification",
        flow_stdlib::Task::Clustering => "clustering",
    };
    let mut out = format!("model `{}` ({task})\n\n", signature.kind);
    if let Some((label, ty)) = &signature.label {
        out.push_str(&format!("label: `{label}` ({})\n\n", display(ty)));
    }
    out.push_str("inputs:\n");
    for (name, ty) in &signature.inputs {
        out.push_str(&format!("- `{name}` ({})\n", display(ty)));
    }
    out
}
