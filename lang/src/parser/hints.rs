//! What flow writes instead: help for syntax errors that come from habits of other languages
//! (SQL's `=` and `group by`, C's `&&`, Python's quotes, `descending`) and from slips
//! (a misspelt step, `split` used as a step, a bracket never closed). Each hint looks at the
//! text around the error only; the grammar stays the one judge of what parses.

use crate::keywords;

/// A better account of a syntax error than "unexpected X": a message when the place itself
/// is wrong (an unclosed bracket is where the problem starts), and the help line.
pub struct Hint {
    /// Where the problem is, when not where the parser stopped: (start, end).
    pub at: Option<(usize, usize)>,
    pub message: Option<String>,
    pub help: String,
    /// What to write instead of the word at the error, for a quick fix.
    pub fix: Option<&'static str>,
}

impl Hint {
    fn help(help: impl Into<String>) -> Option<Hint> {
        Some(Hint {
            at: None,
            message: None,
            help: help.into(),
            fix: None,
        })
    }
}

/// The hint for a syntax error at `at` in `source`, where the statement started at `start`
/// and the parser found `word` (the word or character at `at`).
pub fn hint(source: &str, start: usize, at: usize, word: &str, expected: &[&str]) -> Option<Hint> {
    let before = source[start..at].trim_end();
    let rest = &source[at..];
    let wants_name = expected.iter().any(|e| {
        matches!(
            *e,
            "a name" | "an expression" | "a column or `name = expression`" | "a sort key"
        )
    });
    // A statement word here ends a statement left unfinished; it is not a column.
    if wants_name && keywords::is_reserved(word) && !keywords::STATEMENT.contains(&word) {
        return Some(Hint {
            at: None,
            message: None,
            help: format!(
                "`{word}` is a keyword; write `` `{word}` `` for a column or name called that"
            ),
            fix: None,
        });
    }
    if let Some(open) = unclosed_bracket(&source[start..at]) {
        return Some(Hint {
            at: Some((start + open, start + open + 1)),
            message: Some("syntax error: this `(` is never closed".into()),
            help: "close it with `)` before the statement ends".into(),
            fix: None,
        });
    }
    if rest.starts_with("&&") || rest.starts_with("||") {
        let (theirs, ours) = if rest.starts_with("&&") {
            ("&&", "and")
        } else {
            ("||", "or")
        };
        return Hint::help(format!(
            "flow writes `{ours}` where other languages write `{theirs}`"
        ));
    }
    if rest.starts_with('\'') {
        return Hint::help("strings are written in double quotes: \"north\"");
    }
    for (theirs, ours) in [("=>", ">="), ("=<", "<="), ("<>", "!=")] {
        if rest.starts_with(theirs) {
            return Hint::help(format!("flow writes `{ours}` for `{theirs}`"));
        }
    }
    if rest.starts_with('=') && !rest.starts_with("==") {
        return Hint::help(
            "compare with `==`; a single `=` names a value, as in `derive total = a + b`",
        );
    }
    let after_pipe = before.ends_with('|');
    if after_pipe && word == "split" {
        return Hint::help(
            "`split` is a statement, not a step: `let train_set, test_set = split table 0.8 seed 7`",
        );
    }
    if after_pipe && !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || c == '_') {
        let steps = keywords::STEPS.iter().copied().filter(|s| *s != "split");
        if let Some(close) = crate::diagnostic::suggest::closest(word, steps) {
            return Some(Hint {
                at: None,
                message: None,
                help: format!("did you mean `{close}`?"),
                fix: Some(close),
            });
        }
        return Hint::help(format!(
            "steps are {}",
            keywords::STEPS
                .iter()
                .filter(|s| **s != "split")
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if last_word(before) == "by" && last_word(before[..before.len() - 2].trim_end()) == "group" {
        return Hint::help("write the keys right after `group`: `group store { n = count() }`");
    }
    if matches!(word, "descending" | "ascending") {
        return Hint::help(format!(
            "write `{}` after a sort key",
            if word == "descending" { "desc" } else { "asc" }
        ));
    }
    None
}

/// The offset of the last `(` in `text` that no `)` closes, outside strings and comments.
fn unclosed_bracket(text: &str) -> Option<usize> {
    let mut open: Vec<usize> = Vec::new();
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if in_comment => in_comment = c != '\n',
            _ if in_string => {
                in_string = c != '"' || escaped;
                escaped = c == '\\' && !escaped;
            }
            '"' => in_string = true,
            '#' => in_comment = true,
            '(' => open.push(i),
            ')' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

fn last_word(text: &str) -> &str {
    let start = text
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(source: &str, at_text: &str, word: &str) -> String {
        let at = source.find(at_text).unwrap();
        hint(source, 0, at, word, &[])
            .map(|h| h.help)
            .unwrap_or_default()
    }

    #[test]
    fn habits_of_other_languages_get_what_flow_writes() {
        assert!(help("show t | filter a == 1 && b", "&&", "&").contains("`and`"));
        assert!(help("show t | filter a == 1 || b", "||", "|").contains("`or`"));
        assert!(help("show t | filter s == 'n'", "'", "'").contains("double quotes"));
        assert!(help("show t | filter s = \"n\"", "= ", "=").contains("`==`"));
        assert!(help("show t | filter a => 3", "=>", "=").contains("`>=`"));
        assert!(
            help("show t | group by s { n = count() }", "s {", "s").contains("right after `group`")
        );
        assert!(help("show t | sort q descending", "descending", "descending").contains("`desc`"));
    }

    #[test]
    fn slips_get_named() {
        assert_eq!(
            help("show t | fliter q > 1", "fliter", "fliter"),
            "did you mean `filter`?"
        );
        assert!(help("show t | split 0.8", "split", "split").contains("is a statement"));
        let source = "let b = t | filter (q > 1\nshow b\n";
        let at = source.find("show").unwrap();
        let h = hint(source, 0, at, "show", &[]).unwrap();
        assert_eq!(h.at, Some((19, 20)));
        assert!(h.message.unwrap().contains("never closed"));
        let keyword = hint("show t | select group", 0, 16, "group", &["a name"]).unwrap();
        assert!(keyword.help.contains("`` `group` ``"), "{}", keyword.help);
        // Any text before the error, whatever its characters.
        assert_eq!(last_word("# a comment 😀"), "");
        assert_eq!(last_word("show t 😀by"), "by");
        assert!(hint("# x 😀\nshow t | fliter", 0, 17, "fliter", &[]).is_some());
        // A bracket inside a string or closed later is not unclosed.
        assert_eq!(unclosed_bracket("filter s == \"(\" and (a)"), None);
    }
}
