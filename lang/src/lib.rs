//! The flow language: its grammar, the syntax tree with spans, the parser (which never fails
//! and recovers at the next statement), the canonical formatter, and the one diagnostic model
//! with its catalogue of codes that every other crate reports through.
//!
//! This crate is pure: no file system, network or environment access.

pub mod ast;
pub mod diagnostic;
pub mod format;
pub mod keywords;
mod lexical;
pub mod parser;
pub mod reference;
pub mod span;

pub use diagnostic::{Code, Diagnostic, Fix, Label, Severity};
pub use parser::{Parsed, decode, parse, parse_each};
pub use span::Span;
