//! An open document: its text, its version, and conversions between LSP positions (lines and
//! UTF-16 code units) and byte offsets.

use flow_lang::Span;
use lsp_types::{Position, Range, TextDocumentContentChangeEvent};

#[derive(Debug, Clone)]
pub struct Document {
    pub text: String,
    pub version: i32,
    /// Byte offset where each line starts.
    lines: Vec<usize>,
}

impl Document {
    pub fn new(text: String, version: i32) -> Document {
        let lines = line_starts(&text);
        Document {
            text,
            version,
            lines,
        }
    }

    /// The byte offset of a position, clamped into the text (a client may send any numbers).
    pub fn offset(&self, position: Position) -> usize {
        let Some(&start) = self.lines.get(position.line as usize) else {
            return self.text.len();
        };
        let end = self
            .lines
            .get(position.line as usize + 1)
            .copied()
            .unwrap_or(self.text.len());
        let line = &self.text[start..end];
        let mut units = 0u32;
        for (i, c) in line.char_indices() {
            if units >= position.character || c == '\n' || c == '\r' {
                return start + i;
            }
            units += c.len_utf16() as u32;
        }
        end
    }

    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self
            .lines
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.lines[line];
        let character = self.text[start..floor_char(&self.text, offset)]
            .chars()
            .map(|c| c.len_utf16() as u32)
            .sum();
        Position::new(line as u32, character)
    }

    pub fn range(&self, span: Span) -> Range {
        Range::new(self.position(span.start), self.position(span.end))
    }

    pub fn span(&self, range: Range) -> Span {
        let (a, b) = (self.offset(range.start), self.offset(range.end));
        Span::new(a.min(b), a.max(b))
    }

    /// Applies one change: a whole new text, or a replacement of a range.
    pub fn apply(&mut self, change: TextDocumentContentChangeEvent) {
        match change.range {
            Some(range) => {
                let span = self.span(range);
                self.text.replace_range(span.start..span.end, &change.text);
            }
            None => self.text = change.text,
        }
        self.lines = line_starts(&self.text);
    }

    /// The whole text as a range.
    pub fn full_range(&self) -> Range {
        Range::new(Position::new(0, 0), self.position(self.text.len()))
    }
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

/// The largest char boundary at or before `offset`.
pub(crate) fn floor_char(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_and_round_trip() {
        let d = Document::new("let é = 1\n# 😀 x\nz".into(), 1);
        let x = d.text.find('x').unwrap();
        assert_eq!(d.position(x), Position::new(1, 5));
        assert_eq!(d.offset(Position::new(1, 5)), x);
        assert_eq!(d.offset(Position::new(9, 0)), d.text.len());
        assert_eq!(d.offset(Position::new(0, 99)), d.text.find('\n').unwrap());
    }

    #[test]
    fn incremental_changes_replace_their_range() {
        let mut d = Document::new("let a = x\nshow a\n".into(), 1);
        d.apply(TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(1, 5), Position::new(1, 6))),
            range_length: None,
            text: "b | take 1".into(),
        });
        assert_eq!(d.text, "let a = x\nshow b | take 1\n");
        assert_eq!(d.position(d.text.len()), Position::new(2, 0));
    }
}
