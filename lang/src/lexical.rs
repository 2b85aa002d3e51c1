//! A lexical pre-scan of the source, run before the grammar: it finds comments, the places
//! where statements start (for error recovery) and how deeply each statement nests (so that
//! no input can drive the recursive-descent parser into a stack overflow).

use crate::ast::Comment;
use crate::span::Span;

/// What the pre-scan learned about a source.
pub struct Scan {
    pub comments: Vec<Comment>,
    /// Byte offsets of statement keywords outside strings and comments.
    pub statement_starts: Vec<usize>,
    /// For each byte offset where nesting grows: (offset, depth after it).
    nesting: Vec<(usize, usize)>,
}

impl Scan {
    /// The first offset in `range` where nesting exceeds `limit`, if any.
    pub fn too_deep(&self, range: Span, limit: usize) -> Option<usize> {
        let from = self.nesting.partition_point(|(at, _)| *at < range.start);
        let mut base = None;
        for &(at, depth) in &self.nesting[from..] {
            if at >= range.end {
                break;
            }
            let base = *base.get_or_insert(depth.saturating_sub(1));
            // Brackets left open by an earlier broken statement do not count against this one.
            if depth.saturating_sub(base) > limit {
                return Some(at);
            }
        }
        None
    }

    /// The first statement keyword strictly after `offset`.
    pub fn next_statement_after(&self, offset: usize) -> Option<usize> {
        let i = self.statement_starts.partition_point(|s| *s <= offset);
        self.statement_starts.get(i).copied()
    }
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub fn scan(source: &str) -> Scan {
    let bytes = source.as_bytes();
    let mut comments = Vec::new();
    let mut statement_starts = Vec::new();
    let mut nesting = Vec::new();
    let mut depth: usize = 0;
    // `if` nests like a bracket in the grammar but has no closing token; counting every `if`
    // of the statement is a conservative bound that keeps chains of `else if` bounded too.
    let mut ifs: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                let end = source[i..].find('\n').map_or(bytes.len(), |n| i + n);
                let text = source[i + 1..end].trim_end_matches('\r').to_string();
                comments.push(Comment {
                    text,
                    span: Span::new(i, end),
                });
                i = end;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            // A quoted name: a statement word inside it starts nothing.
            b'`' => {
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'`' | b'\n') {
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                nesting.push((i, depth + ifs));
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b if is_ident_byte(b) => {
                let start = i;
                while i < bytes.len() && is_ident_byte(bytes[i]) {
                    i += 1;
                }
                let word = &source[start..i];
                let after_dot = start > 0 && bytes[start - 1] == b'.';
                if !after_dot && crate::keywords::STATEMENT.contains(&word) {
                    statement_starts.push(start);
                    ifs = 0;
                }
                if word == "if" {
                    ifs += 1;
                    nesting.push((start, depth + ifs));
                }
            }
            _ => i += 1,
        }
    }
    Scan {
        comments,
        statement_starts,
        nesting,
    }
}
