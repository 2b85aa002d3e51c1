//! The functions an expression may call, documented: the engine's scalar and aggregate
//! functions (with DataFusion's own documentation) and the ones flow adds. Editors list them in
//! completion and show them on hover.

use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct FunctionDoc {
    pub name: String,
    /// How a call looks, for example `abs(numeric_expression)`.
    pub syntax: String,
    pub description: String,
    /// Whether it aggregates many rows into one (usable in `group { ... }`).
    pub aggregate: bool,
}

/// Every callable function, sorted by name.
pub fn functions() -> &'static [FunctionDoc] {
    static ALL: OnceLock<Vec<FunctionDoc>> = OnceLock::new();
    ALL.get_or_init(|| {
        let state = crate::session_state();
        let mut out: Vec<FunctionDoc> = Vec::new();
        for (name, udf) in state.scalar_functions() {
            let doc = udf.documentation();
            out.push(FunctionDoc {
                name: name.clone(),
                syntax: doc.map_or_else(|| format!("{name}(...)"), |d| d.syntax_example.clone()),
                description: doc.map(|d| d.description.clone()).unwrap_or_default(),
                aggregate: false,
            });
        }
        for (name, udaf) in state.aggregate_functions() {
            let doc = udaf.documentation();
            out.push(FunctionDoc {
                name: name.clone(),
                syntax: doc.map_or_else(|| format!("{name}(...)"), |d| d.syntax_example.clone()),
                description: doc.map(|d| d.description.clone()).unwrap_or_default(),
                aggregate: true,
            });
        }
        for (name, syntax, description, aggregate) in [
            ("date", "date(\"1998-09-02\")", "A date literal.", false),
            (
                "interval",
                "interval(\"90 days\")",
                "A length of time, for date arithmetic.",
                false,
            ),
            (
                "tokenize",
                crate::tokenize::SYNTAX,
                "The token ids of a text, as the tokenizer in a Hugging Face `tokenizer.json` \
                 gives them (with its special tokens), cut to `length` (512 unless the file \
                 says): a `list<int32>` for `infer` with a transformer model.",
                false,
            ),
            (
                "count_distinct",
                "count_distinct(expression)",
                "The number of distinct non-null values.",
                true,
            ),
        ] {
            out.push(FunctionDoc {
                name: name.into(),
                syntax: syntax.into(),
                description: description.into(),
                aggregate,
            });
        }
        // An internal helper of `split`, not for programs.
        out.retain(|f| f.name != "flow_split_hash");
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        out
    })
}

/// The function called `name`.
pub fn find(name: &str) -> Option<&'static FunctionDoc> {
    let all = functions();
    all.binary_search_by(|f| f.name.as_str().cmp(name))
        .ok()
        .map(|i| &all[i])
}
