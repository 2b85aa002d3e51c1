//! Semantic tokens: a lexer over the text (so a document that does not parse is still
//! coloured), with names told apart by what checking learnt: bindings, columns, functions.

use crate::analysis::Analysis;
use crate::document::Document;
use flow_lang::keywords;
use lsp_types::{SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokensLegend};

pub const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::KEYWORD,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::COMMENT,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::TYPE,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::CLASS,
];
const KEYWORD: u32 = 0;
const STRING: u32 = 1;
const NUMBER: u32 = 2;
const COMMENT: u32 = 3;
const VARIABLE: u32 = 4;
const PROPERTY: u32 = 5;
const FUNCTION: u32 = 6;
const TYPE: u32 = 7;
const OPERATOR: u32 = 8;
const CLASS: u32 = 9;

const DECLARATION: u32 = 1;

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: vec![SemanticTokenModifier::DECLARATION],
    }
}

/// (start, end, type, modifiers) of every token, in order.
fn classify(text: &str, analysis: &Analysis) -> Vec<(usize, usize, u32, u32)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut previous_word = "";
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            out.push((start, i, COMMENT, 0));
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
            out.push((start, i, STRING, 0));
        } else if c.is_ascii_digit() {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'_'))
            {
                i += 1;
            }
            out.push((start, i, NUMBER, 0));
        } else if c == b'`' {
            // A name in backticks: a binding or a column, whatever its text.
            i += 1;
            while i < bytes.len() && !matches!(bytes[i], b'`' | b'\n') {
                i += 1;
            }
            i = (i + 1).min(bytes.len());
            let facts = &analysis.facts;
            let kind = if facts.bindings.iter().any(|b| b.span.start == start) {
                (VARIABLE, DECLARATION)
            } else if facts.uses.iter().any(|(s, _)| s.start == start) {
                (VARIABLE, 0)
            } else {
                (PROPERTY, 0)
            };
            out.push((start, i, kind.0, kind.1));
            previous_word = "";
            continue;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &text[start..i];
            let next = text[i..].trim_start().chars().next();
            let facts = &analysis.facts;
            let kind = if keywords::is_reserved(word) || keywords::CONTEXTUAL.contains(&word) {
                (KEYWORD, 0)
            } else if facts.bindings.iter().any(|b| b.span.start == start) {
                (VARIABLE, DECLARATION)
            } else if facts.uses.iter().any(|(s, _)| s.start == start) {
                (VARIABLE, 0)
            } else if previous_word == "train" {
                (CLASS, 0)
            } else if previous_word == "as" {
                (TYPE, 0)
            } else if next == Some('(') {
                (FUNCTION, 0)
            } else {
                (PROPERTY, 0)
            };
            out.push((start, i, kind.0, kind.1));
            previous_word = word;
            continue;
        } else if b"|=!<>+-*/%".contains(&c) {
            i += 1;
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
            }
            out.push((start, i, OPERATOR, 0));
        } else {
            // Any other character, UTF-8 continuation bytes included, is skipped whole.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        previous_word = "";
    }
    out
}

/// The tokens in LSP's relative encoding.
pub fn tokens(document: &Document, analysis: &Analysis) -> Vec<SemanticToken> {
    let mut out = Vec::new();
    let (mut line, mut column) = (0u32, 0u32);
    for (start, end, kind, modifiers) in classify(&document.text, analysis) {
        let from = document.position(start);
        let to = document.position(end);
        let length = if to.line == from.line {
            to.character - from.character
        } else {
            // A string left open at the end of a line: colour up to the line's end.
            document
                .position(document.text[start..].find('\n').map_or(end, |n| start + n))
                .character
                - from.character
        };
        out.push(SemanticToken {
            delta_line: from.line - line,
            delta_start: if from.line == line {
                from.character - column
            } else {
                from.character
            },
            length,
            token_type: kind,
            token_modifiers_bitset: modifiers,
        });
        line = from.line;
        column = from.character;
    }
    out
}

#[cfg(test)]
mod tests {
    use flow_lang::keywords;

    /// The VS Code grammar highlights every word the language server does: both read
    /// `flow_lang::keywords`, the extension through this check.
    #[test]
    fn the_vscode_grammar_knows_every_keyword() {
        let grammar = include_str!("../editors/vscode/syntaxes/flow.tmLanguage.json");
        let words: Vec<&str> = grammar
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        for word in keywords::RESERVED.iter().chain(keywords::CONTEXTUAL) {
            assert!(words.contains(word), "the VS Code grammar misses `{word}`");
        }
    }
}
