//! The catalogue of diagnostic codes. Every user-facing problem has exactly one code here;
//! `flowc explain CODE` prints the entry. Codes are stable: never renumber, only append.

use super::Severity;
use serde::{Serialize, Serializer};

/// The long-form documentation of one code.
#[derive(Debug)]
pub struct CodeInfo {
    pub code: &'static str,
    pub severity: Severity,
    pub title: &'static str,
    pub explanation: &'static str,
    /// A small program that triggers the diagnostic.
    pub example: &'static str,
}

macro_rules! catalogue {
    ($($name:ident, $sev:ident, $title:literal, $explanation:literal, $example:literal;)*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($name),* }

        /// Every code, in order.
        pub const CODES: &[Code] = &[$(Code::$name),*];

        impl Code {
            pub fn info(self) -> &'static CodeInfo {
                match self {
                    $(Code::$name => &CodeInfo {
                        code: stringify!($name),
                        severity: Severity::$sev,
                        title: $title,
                        explanation: $explanation,
                        example: $example,
                    }),*
                }
            }
        }
    };
}

impl Code {
    pub fn as_str(self) -> &'static str {
        self.info().code
    }

    /// Looks a code up by its name, case-insensitively (`e0003` works).
    pub fn parse(name: &str) -> Option<Code> {
        CODES
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

catalogue! {
    E0001, Error, "syntax error",
    "The text does not follow the grammar of flow. The parser reports what it expected at the \
     first place it could not continue, then skips to the next statement (`let`, `save`, \
     `show` or `config`) so every broken statement is reported in one run.",
    "let x = load \"a.csv\" | filter";

    E0002, Error, "program too deeply nested or too large",
    "Expressions and pipelines may nest at most 128 levels deep (brackets and `if`s), and one \
     expression may hold at most 4,096 operators. Deeper or larger programs are rejected \
     before they are parsed so that no input can exhaust the compiler's stack. Split the \
     computation over several `derive` steps or bindings.",
    "show t | filter ((((((((((((((((x))))))))))))))))  # but 129 levels deep";

    E0003, Error, "unknown name",
    "A pipeline starts from a name that no `let` binds before it. Names are bound in order: a \
     binding can only use the names bound above it.",
    "let a = load \"a.csv\"\nshow b";

    E0004, Error, "unknown column",
    "A column is used that the table at this point of the pipeline does not have. The help \
     lists the columns in scope; remember that `select` drops every column it does not name \
     and `group` keeps only its keys and aggregates.",
    "let t = load \"people.csv\"   # columns: name, age\nshow t | filter agee > 3";

    E0005, Error, "ambiguous column",
    "After a join, a column name that exists on both sides must be qualified with the name of \
     its side (`users.id`). A join on same-named keys (`on id`) keeps one copy of each key, \
     which can be used unqualified.",
    "let j = orders | join users on orders.user == users.id\nshow j | select id";

    E0006, Error, "type mismatch",
    "An operator or function was applied to values of types it does not accept, such as \
     adding a string to a number or comparing a date with a boolean. Convert one side with \
     `as TYPE` when a conversion is meant.",
    "show t | derive x = name + 1";

    E0007, Error, "condition is not a boolean",
    "`filter`, `if`, `and`, `or` and `not` need a boolean (true/false) value. Compare the value \
     with something (`x > 0`, `s == \"a\"`) to get one.",
    "show t | filter amount";

    E0008, Error, "name bound twice",
    "Names are immutable: a second `let` of the same name is an error. Choose a new name for \
     the new table.",
    "let t = load \"a.csv\"\nlet t = t | take 1";

    E0009, Error, "unknown function",
    "A call names a function that is neither one of the engine's scalar or aggregate functions \
     nor one of the standard library's.",
    "show t | derive y = lowr(name)";

    E0010, Error, "wrong arguments to a function",
    "A function was called with the wrong number or types of arguments.",
    "show t | derive y = abs(1, 2)";

    E0011, Error, "aggregate used in the wrong place",
    "Aggregate functions (`count`, `sum`, `avg`, `min`, `max`, ...) may only appear inside the \
     `{ ... }` of a `group` step, and every entry of that block must be an aggregate; \
     row-level functions belong in `derive` or `select`.",
    "show t | derive n = count()";

    E0012, Error, "union of tables with different columns",
    "`union` appends rows, so both tables must have the same columns, by name and type. The \
     message lists the columns that differ; use `select` on either side to align them.",
    "show a | union b   # a has (id, x), b has (id)";

    E0013, Error, "invalid join",
    "A join condition must be a list of key columns present on both sides (`on a, b`) or \
     equalities between a column of each side joined by `and` \
     (`on l.a == r.b and l.c == r.d`). Both keys of a pair must have comparable types.",
    "show a | join b on a.x > b.y";

    E0014, Error, "invalid hint",
    "Steps accept the planner hints `workers` (a positive integer), `memory_mb` (an integer \
     between 128 and 10240) and `channel` (\"direct\" or \"storage\"). Unknown hints and \
     values of the wrong type are rejected.",
    "show t | filter x > 1 with { workres = 4 }";

    E0015, Error, "invalid configuration",
    "The `config` block takes `target` (\"local\" or \"lambda\"), `objective` (\"latency\" or \
     \"cost\"), `budget_usd` and `deadline_s` (positive numbers), `workers` (a positive \
     integer), `memory_mb` (128 to 10240), and the target keys `region` and `bucket` (strings). \
     A program may have at most one `config` block.",
    "config { objetive = \"cost\" }";

    E0016, Error, "unknown model kind",
    "`train` takes one of the model kinds of the standard library: `linear`, `logistic`, \
     `softmax`, `mlp` or `kmeans`. `flowc explain train` lists them with their arguments.",
    "let m = t | train logistc(label = y, features = [x])";

    E0017, Error, "invalid model argument",
    "A model kind was given an argument it does not take, an argument of the wrong type, or \
     was not given an argument it requires. `flowc explain KIND` lists the arguments, their \
     types and defaults.",
    "let m = t | train logistic(features = [x])   # no label";

    E0018, Error, "model used as a table, or table used as a model",
    "Bindings hold either a table or a model. Relational steps, `save ... as csv` and `show` \
     need a table; `infer` needs a model (a binding made by `train` or a `load` of a \
     `.model` or `.onnx` file).",
    "let m = t | train linear(label = y, features = [x])\nshow m";

    E0019, Error, "table lacks the model's input columns",
    "`infer` needs every input column of the model in the table, with a numeric (or, for text \
     features, string) type. The message lists the missing columns.",
    "let s = other | infer model";

    E0020, Error, "cannot read the schema of a source",
    "flow learns the columns of every `load` before anything runs: from Parquet and Arrow \
     metadata, from a sample of CSV and JSON files, or from a declared `schema { ... }`. This \
     error says why that failed: the path does not exist, no file matches the glob, or the \
     file cannot be read in the given format.",
    "let t = load \"missing.csv\"";

    E0021, Error, "invalid source or sink options",
    "The format (`as csv|parquet|json|arrow`) must be known or derivable from the file \
     extension, and the `with { ... }` options must be ones the format takes: csv takes \
     `header` (bool) and `delimiter` (a one-character string). `save` writes parquet, csv \
     or json.",
    "let t = load \"a.txt\"";

    E0022, Error, "error in an sql query",
    "The query of an `sql` source or step did not plan. In a step, the table on the left of \
     the `|` is called `input`; every bound table name can be used too.",
    "show t | sql \"select nope from input\"";

    E0023, Error, "invalid literal",
    "A literal is out of range (an integer beyond 64 bits), has an unknown escape (strings \
     take `\\\"`, `\\\\`, `\\n` and `\\t`), or names an unknown type in `as TYPE` or \
     `schema { ... }`.",
    "show t | derive x = 99999999999999999999";

    E0024, Error, "invalid split",
    "`split T F seed S` needs a fraction strictly between 0 and 1 and binds two distinct names.",
    "let a, b = split t 1.5";

    E0025, Error, "duplicate column",
    "A step would produce two columns with the same name. Rename one with `name = expr`.",
    "show t | select a, a";

    E0026, Error, "source is not valid text",
    "A `.flow` file must be UTF-8 text without NUL bytes. The message gives the byte offset \
     of the first invalid byte.",
    "(a file saved as UTF-16)";

    E0027, Error, "bad data",
    "A file did not match its schema while the pipeline ran: a value that does not parse as \
     the column's type, a row with the wrong number of fields. The message names the file, \
     the row and the column.",
    "let t = load \"a.csv\" schema { id: int64 }   # but a row holds \"x\"";

    E0028, Error, "step not available yet (retired)",
    "No longer reported: every step that checks can run. Earlier versions reported it for \
     `train`, `infer`, `evaluate` and model files before the ML standard library landed. The \
     code stays so it keeps its meaning.",
    "save (t | train linear(label = y, features = [x])) to \"m.model\"   # before ML landed";

    E0029, Error, "run failed",
    "The engine failed while executing a step: an I/O error while reading or writing, or an \
     error raised by a function on some value (such as a division by zero or a failed cast). \
     The label points at the step that was running; nothing was saved.",
    "show t | derive y = (x as int64)   # where x holds \"abc\"";

    E0030, Error, "invalid evaluate",
    "`evaluate LABEL` needs the label column, the `prediction` column that `infer` adds, and \
     for classifiers the `probability` column.",
    "show t | evaluate y   # t was not made by infer";

    E0031, Error, "no plan meets the constraints",
    "The planner found no way to run the program within the target's limits (memory and \
     run time of one function, functions alive at once) or within the `budget_usd` or \
     `deadline_s` the program or the command line sets. The message names the limit and the \
     closest plan found; raise the budget or deadline, allow more workers, or pick another \
     target.",
    "config { target = \"lambda\", deadline_s = 0.001 }";

    E0032, Error, "hint cannot be honoured",
    "A planner hint (`with { workers = ..., memory_mb = ..., channel = ... }`) or the matching \
     command-line flag asks for something the plan cannot do: more functions for a step that \
     reads all its rows in one place, memory outside the target's range, a direct channel \
     where producers and consumers cannot be alive at once. Change or remove the hint.",
    "show t | sort x with { workers = 8 }   # a global sort runs in one function";

    E0033, Error, "a model cannot learn from or score this data",
    "Training or inference met data the model cannot use: a null label or feature value, a \
     label with a single class (or more than two for `logistic`), a class `evaluate` finds \
     that the model never saw in training, or a model file that is damaged, is not a model, \
     or was written by a newer flow. The message names the column and row or the file.",
    "save (t | train logistic(label = y, features = [x])) to \"m.model\"   # y has a null";

    E0034, Error, "saved plan does not belong to the program",
    "`flowc run FILE --plan PLAN.json` runs a plan saved by `flowc plan FILE --format json` \
     only with the program and data it was made for. The plan records a fingerprint of the \
     compiled program and the schema of every input; when the program changed, an input's \
     columns or types changed, an input was added or removed, or the plan was written by a \
     flowc with another plan format, the run is refused before anything is read or written, \
     and the message says what differs. Make the plan again. Editing a plan's functions, \
     memory or channels is fine: those are what a saved plan is for.",
    "flowc run pipeline.flow --plan plan.json   # pipeline.flow was edited after the plan";

    E0035, Error, "key is a constant",
    "A `group` or `sort` key that is a constant (a string, a number) is the same for every \
     row: grouping by it makes one group, sorting by it changes nothing. Usually a column was \
     meant and written in quotes, or its name is a keyword: write a column as a name, and a \
     name that is a keyword in backticks (`` `group` ``).",
    "show t | group \"store\" { n = count() }   # one row: \"store\" is a string";

    E0036, Error, "cannot use a tokenizer",
    "`tokenize(text, \"tokenizer.json\")` reads the tokenizer file when the program is \
     checked: the file must exist and hold a tokenizer in the format Hugging Face's \
     `tokenizers` saves (`tokenizer.save(\"tokenizer.json\")` in Python, or the \
     `tokenizer.json` beside a model on the Hub). A relative path is relative to the `.flow` \
     file's folder.",
    "show t | derive tokens = tokenize(review, \"missing.json\")";

    W0001, Warning, "unused binding",
    "A `let` binds a table or model that no `save`, `show` or other binding uses. It is not \
     computed. Remove it, or prefix the name with `_` to keep it quietly.",
    "let unused = load \"a.csv\"";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_in_order() {
        let names: Vec<&str> = CODES.iter().map(|c| c.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names.len(), sorted.len());
        for code in CODES {
            let info = code.info();
            assert!(
                !info.title.is_empty() && !info.explanation.is_empty() && !info.example.is_empty()
            );
            assert_eq!(Code::parse(&info.code.to_lowercase()), Some(*code));
        }
    }
}
