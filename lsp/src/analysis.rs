//! One version of a document, parsed and checked, with everything the features read from it.

use crate::schemas::Cached;
use flow_compiler::{Compiled, Facts};
use flow_lang::ast::Program;
use flow_lang::{Code, Diagnostic};

#[derive(Debug)]
pub struct Analysis {
    pub program: Program,
    pub facts: Facts,
    /// The compiled DAG when the program has no errors (the plan preview plans it).
    pub compiled: Option<Compiled>,
    /// Syntax errors, then the checker's findings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

pub fn analyse(text: &str, schemas: &Cached<'_>) -> Analysis {
    let (parsed, mut compiled) = flow_compiler::parse_and_compile(text, schemas);
    let facts = std::mem::take(&mut compiled.facts);
    let syntax_errors = !parsed.diagnostics.is_empty();
    let mut diagnostics = parsed.diagnostics;
    diagnostics.extend(
        compiled
            .diagnostics
            .iter()
            // With statements missing, "not bound" and "never used" may only mean that the
            // statement binding or using the name did not parse.
            .filter(|d| !syntax_errors || !matches!(d.code, Code::E0003 | Code::W0001))
            .cloned(),
    );
    diagnostics.sort_by_key(|d| (d.primary.span.start, d.severity));
    let ok = !flow_lang::diagnostic::has_errors(&diagnostics);
    Analysis {
        program: parsed.program,
        facts,
        compiled: ok.then_some(compiled),
        diagnostics,
    }
}
