//! Rendering diagnostics for people (miette) and for tools (JSON).

use flow_lang::span::line_col;
use flow_lang::{Diagnostic, Severity};
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};
use serde_json::json;

/// Whether to use colour: not when `NO_COLOR` is set or stderr is not a terminal.
pub fn color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// A diagnostic as miette draws it, with the source excerpt.
pub fn human(file: &str, source: &str, d: &Diagnostic, color: bool) -> String {
    let clamp = |s: flow_lang::Span| {
        let start = s.start.min(source.len());
        let end = s.end.clamp(start, source.len());
        (start, end - start)
    };
    let mut labels = vec![LabeledSpan::new_primary_with_span(
        Some(d.primary.message.clone()),
        clamp(d.primary.span),
    )];
    for l in &d.secondary {
        labels.push(LabeledSpan::new_with_span(
            Some(l.message.clone()),
            clamp(l.span),
        ));
    }
    let mut m = MietteDiagnostic::new(d.message.clone())
        .with_code(d.code.as_str())
        .with_labels(labels)
        .with_severity(match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        });
    if let Some(help) = &d.help {
        m = m.with_help(help.clone());
    }
    let report = Report::new(m).with_source_code(NamedSource::new(file, source.to_string()));
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(100)
        .with_links(false);
    if handler.render_report(&mut out, report.as_ref()).is_err() {
        out = format!(
            "{}[{}]: {}\n",
            if d.is_error() { "error" } else { "warning" },
            d.code,
            d.message
        );
    }
    out
}

/// A diagnostic as one JSON object (for `--format json`).
pub fn json(file: &str, source: &str, d: &Diagnostic) -> serde_json::Value {
    let (line, column) = line_col(source, d.primary.span.start);
    json!({
        "file": file,
        "code": d.code.as_str(),
        "severity": d.severity,
        "message": d.message,
        "line": line,
        "column": column,
        "span": { "start": d.primary.span.start, "end": d.primary.span.end },
        "label": d.primary.message,
        "help": d.help,
        "secondary": d.secondary.iter().map(|l| json!({
            "span": { "start": l.span.start, "end": l.span.end },
            "label": l.message,
        })).collect::<Vec<_>>(),
    })
}
