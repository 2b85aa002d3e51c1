//! The language's reference: every keyword that starts a statement, a source or a step, with
//! its syntax and what it does. `flowc explain KEYWORD` prints an entry; editors show it on
//! hover and in completion.

/// Where a keyword may stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Starts a statement.
    Statement,
    /// Starts a pipeline.
    Source,
    /// Follows `|`.
    Step,
}

/// One documented keyword.
#[derive(Debug)]
pub struct Entry {
    pub keyword: &'static str,
    pub places: &'static [Place],
    pub syntax: &'static str,
    pub doc: &'static str,
    pub example: &'static str,
}

impl Entry {
    /// The entry as Markdown, for hovers.
    pub fn markdown(&self) -> String {
        format!(
            "```flow\n{}\n```\n{}\n\nExample: `{}`",
            self.syntax, self.doc, self.example
        )
    }

    /// The entry as plain text, for `flowc explain`.
    pub fn text(&self) -> String {
        format!(
            "{}\n\n{}\n\nExample:\n\n    {}\n",
            self.syntax, self.doc, self.example
        )
    }
}

/// The entry of `keyword`.
pub fn find(keyword: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.keyword == keyword)
}

/// The keywords that may stand at `place`, in the order the language documents them.
pub fn at(place: Place) -> impl Iterator<Item = &'static Entry> {
    ENTRIES.iter().filter(move |e| e.places.contains(&place))
}

pub const ENTRIES: &[Entry] = &[
    Entry {
        keyword: "config",
        places: &[Place::Statement],
        syntax: "config { key = value, ... }",
        doc: "Run settings for this pipeline (at most one block; command-line flags override it).",
        example: "config { target = \"local\", workers = 4 }",
    },
    Entry {
        keyword: "let",
        places: &[Place::Statement],
        syntax: "let NAME = PIPELINE",
        doc: "Binds a table or a model to a name. Names are immutable; bindings nothing uses are reported and not computed.",
        example: "let buyers = events | filter kind == \"buy\"",
    },
    Entry {
        keyword: "split",
        places: &[Place::Source],
        syntax: "let A, B = split PIPELINE FRACTION [seed INT]",
        doc: "Splits a table in two by a seeded hash of each row's contents, so the split does not depend on partitioning or on the number of workers.",
        example: "let train_set, test_set = split features 0.8 seed 42",
    },
    Entry {
        keyword: "save",
        places: &[Place::Statement],
        syntax: "save PIPELINE to \"URI\" [as FORMAT] [with { ... }]",
        doc: "Writes a table to a file, a folder or an object-store URI (format from the extension unless given), or a model to a `.model` file. A failed run leaves no half-written output.",
        example: "save scored to \"out/scores.parquet\"",
    },
    Entry {
        keyword: "show",
        places: &[Place::Statement],
        syntax: "show PIPELINE [limit INT]",
        doc: "Prints a table to standard output (20 rows unless a limit is given).",
        example: "show totals limit 5",
    },
    Entry {
        keyword: "load",
        places: &[Place::Source],
        syntax: "load \"PATH\" [as FORMAT] [schema { name: type, ... }] [with { ... }]",
        doc: "Reads files as one table: csv, parquet, json (newline-delimited) or arrow, by extension unless given; a glob or a folder reads every matching file. Relative paths are resolved against the .flow file's folder. `load \"x.model\"` or `\"x.onnx\"` reads a model.",
        example: "load \"data/users.csv\" with { delimiter = \";\" }",
    },
    Entry {
        keyword: "sql",
        places: &[Place::Source, Place::Step],
        syntax: "sql \"QUERY\"",
        doc: "A SQL query as a source (bound names are tables) or as a step (`input` is the table on the left).",
        example: "sql \"select id, count(*) as n from events group by id\"",
    },
    Entry {
        keyword: "filter",
        places: &[Place::Step],
        syntax: "filter CONDITION",
        doc: "Keeps the rows where the condition is true.",
        example: "filter amount > 0 and kind == \"buy\"",
    },
    Entry {
        keyword: "select",
        places: &[Place::Step],
        syntax: "select ITEM, ...",
        doc: "Keeps or computes exactly these columns, in this order (`name = expr` names a computed one).",
        example: "select id, total = price * qty",
    },
    Entry {
        keyword: "derive",
        places: &[Place::Step],
        syntax: "derive NAME = EXPR, ...",
        doc: "Adds columns, or replaces the ones of the same name; each assignment sees the ones before it.",
        example: "derive margin = revenue - cost",
    },
    Entry {
        keyword: "join",
        places: &[Place::Step],
        syntax: "join [inner|left|right|full|semi|anti] SOURCE on KEYS",
        doc: "Joins with another table. `on a, b` joins on same-named keys and keeps one copy of each; `on EXPR` takes equalities joined by `and`. Afterwards a column both sides have must be qualified (`users.id`).",
        example: "join left users on user_id",
    },
    Entry {
        keyword: "group",
        places: &[Place::Step],
        syntax: "group KEY, ... { NAME = AGGREGATE, ... }",
        doc: "One row per distinct key with the aggregates computed over its rows; `group { ... }` with no key makes one row.",
        example: "group country { n = count(), spend = sum(amount) }",
    },
    Entry {
        keyword: "sort",
        places: &[Place::Step],
        syntax: "sort KEY [asc|desc], ...",
        doc: "Orders the rows totally; nulls last.",
        example: "sort spend desc, id",
    },
    Entry {
        keyword: "take",
        places: &[Place::Step],
        syntax: "take N",
        doc: "Keeps the first N rows of the current order.",
        example: "take 10",
    },
    Entry {
        keyword: "distinct",
        places: &[Place::Step],
        syntax: "distinct [COLUMN, ...]",
        doc: "Drops duplicate rows, or rows duplicate on the given columns.",
        example: "distinct customer_id",
    },
    Entry {
        keyword: "union",
        places: &[Place::Step],
        syntax: "union SOURCE",
        doc: "Appends the rows of another table; the schemas must match by name and type.",
        example: "union (load \"more.csv\")",
    },
    Entry {
        keyword: "train",
        places: &[Place::Step],
        syntax: "train KIND(label = COLUMN, features = [...], ...)",
        doc: "Trains a model on the table: linear, logistic, softmax, mlp or kmeans. `flowc explain KIND` lists a kind's arguments and defaults.",
        example: "train logistic(label = churned, features = [tenure, spend], epochs = 20)",
    },
    Entry {
        keyword: "infer",
        places: &[Place::Step],
        syntax: "infer MODEL [batch N]",
        doc: "Scores the table with a model, adding `prediction` (and `probability` for classifiers, `distance` for clustering); `batch` is the number of rows per inference call.",
        example: "infer model batch 500",
    },
    Entry {
        keyword: "evaluate",
        places: &[Place::Step],
        syntax: "evaluate LABEL",
        doc: "One row of metrics comparing `prediction` with the label column: accuracy, precision, recall, f1, auc, log_loss for classifiers; rmse, mae, r2 for regression; inertia for clustering (`evaluate prediction`).",
        example: "evaluate churned",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_and_statement_is_documented() {
        for step in crate::keywords::STEPS
            .iter()
            .chain(crate::keywords::STATEMENT)
        {
            assert!(find(step).is_some(), "{step} has no reference entry");
        }
    }
}
