//! The one diagnostic model of flow. Every crate reports problems as [`Diagnostic`]s carrying a
//! [`Code`] from the [catalogue](catalogue); the CLI renders them with miette, the language
//! server as LSP diagnostics.

mod catalogue;
pub mod suggest;

pub use catalogue::{CODES, Code, CodeInfo};

use crate::span::Span;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A span of the source with a short message shown under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a program, at check time or at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    /// One sentence saying what is wrong.
    pub message: String,
    /// Where it is wrong.
    pub primary: Label,
    /// Other places that explain it (the earlier definition, the other join side...).
    pub secondary: Vec<Label>,
    /// What the user can do about it.
    pub help: Option<String>,
    /// Edits that would fix it, which editors offer as quick fixes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
}

/// Text to write over a span of the source to fix a diagnostic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fix {
    /// What the fix does, in a few words ("replace with `spend`").
    pub title: String,
    pub span: Span,
    pub replacement: String,
}

impl Diagnostic {
    /// An error with the given code, message and primary label.
    pub fn error(
        code: Code,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: code.info().severity,
            message: message.into(),
            primary: Label {
                span,
                message: label.into(),
            },
            secondary: Vec::new(),
            help: None,
            fixes: Vec::new(),
        }
    }

    /// Offers writing `replacement` over `span`.
    pub fn with_fix(mut self, span: Span, replacement: impl Into<String>) -> Self {
        let replacement = replacement.into();
        self.fixes.push(Fix {
            title: format!("replace with `{replacement}`"),
            span,
            replacement,
        });
        self
    }

    /// When a candidate is close to `name` (a likely typo): the help "did you mean `x`?" and a
    /// fix writing `x` over the primary span. Otherwise `otherwise()` is the help.
    pub fn suggesting<'a>(
        self,
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
        otherwise: impl FnOnce() -> String,
    ) -> Self {
        match suggest::closest(name, candidates) {
            Some(close) => {
                let span = self.primary.span;
                self.with_help(format!("did you mean `{close}`?"))
                    .with_fix(span, close)
            }
            None => self.with_help(otherwise()),
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: label.into(),
        });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// True when any of the diagnostics is an error (warnings do not stop a run).
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}
