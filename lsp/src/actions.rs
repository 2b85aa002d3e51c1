//! Code actions: the fixes the checker attached to its diagnostics — a "did you mean"
//! replacement, each qualification of an ambiguous column — offered where they apply.

use crate::analysis::Analysis;
use crate::document::Document;
use flow_lang::Span;
use lsp_types::{CodeAction, CodeActionKind, TextEdit, Uri, WorkspaceEdit};
use std::collections::HashMap;

pub fn actions(
    uri: &Uri,
    document: &Document,
    analysis: &Analysis,
    range: Span,
) -> Vec<CodeAction> {
    let mut out = Vec::new();
    for d in &analysis.diagnostics {
        let span = d.primary.span;
        if span.end < range.start || span.start > range.end {
            continue;
        }
        let diagnostic = crate::convert::diagnostic(uri, document, d);
        for fix in &d.fixes {
            let edit = TextEdit::new(document.range(fix.span), fix.replacement.clone());
            out.push(CodeAction {
                title: fix.title.clone(),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![diagnostic.clone()]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                    ..Default::default()
                }),
                // One obvious fix is preferred; a choice between several is not.
                is_preferred: Some(d.fixes.len() == 1),
                ..Default::default()
            });
        }
    }
    out
}
