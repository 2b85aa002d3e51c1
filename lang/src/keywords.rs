//! The language's words, in one place: the parser's recovery, the formatter, the language
//! server's highlighter and completion, and the editor grammars read them from here. The pest
//! grammar cannot import a Rust list, so its `reserved` rule is checked against [`RESERVED`]
//! by a test, as are the VS Code grammar (`lsp/editors/vscode`) and the lsp crate's uses.

/// Words that can only begin a statement; the parser resynchronises on them.
pub const STATEMENT: &[&str] = &["let", "save", "show", "config"];

/// The steps of a pipeline, as written after `|`.
pub const STEPS: &[&str] = &[
    "filter", "select", "derive", "join", "group", "sort", "take", "distinct", "union", "sql",
    "split", "train", "infer", "evaluate",
];

/// Words of expressions: operators, conditionals and literals.
pub const EXPRESSION: &[&str] = &[
    "and", "or", "not", "if", "then", "else", "is", "null", "true", "false", "in", "like", "as",
];

/// Kinds of join (`join left ...`).
pub const JOIN_KINDS: &[&str] = &["inner", "left", "right", "full", "semi", "anti"];

/// Words that are keywords in one position only and stay usable as column names.
pub const CONTEXTUAL: &[&str] = &[
    "to", "limit", "seed", "batch", "on", "asc", "desc", "inner", "left", "right", "full", "semi",
    "anti", "schema",
];

/// Every word the grammar reserves: these cannot name a binding or a column.
pub const RESERVED: &[&str] = &[
    "let", "save", "show", "config", "load", "sql", "filter", "select", "derive", "join", "group",
    "sort", "take", "distinct", "union", "split", "train", "infer", "evaluate", "and", "or", "not",
    "in", "is", "null", "like", "if", "then", "else", "true", "false", "as", "with",
];

/// Whether `word` is reserved and so cannot be a name.
pub fn is_reserved(word: &str) -> bool {
    RESERVED.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of the grammar's `reserved` rule, read from `grammar.pest`.
    fn grammar_reserved() -> Vec<String> {
        let grammar = include_str!("grammar.pest");
        let start = grammar
            .find("reserved = @{")
            .expect("the grammar has `reserved`");
        let rule = &grammar[start..];
        let rule = &rule[..rule.find('}').expect("the rule ends")];
        rule.split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_grammar_reserves_exactly_these_words() {
        let mut ours: Vec<String> = RESERVED.iter().map(|w| w.to_string()).collect();
        let mut grammar = grammar_reserved();
        ours.sort();
        grammar.sort();
        assert_eq!(ours, grammar);
        for word in RESERVED {
            assert!(crate::parser::grammar_reserves(word), "{word}");
        }
        assert!(!crate::parser::grammar_reserves("lets"));
    }

    #[test]
    fn statement_words_and_steps_are_reserved_and_contextual_ones_are_not() {
        for word in STATEMENT.iter().chain(STEPS).chain(EXPRESSION) {
            assert!(is_reserved(word), "{word}");
        }
        for word in CONTEXTUAL.iter().chain(JOIN_KINDS) {
            assert!(!is_reserved(word), "{word}");
        }
    }
}
