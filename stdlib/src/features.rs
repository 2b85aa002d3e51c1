//! Feature functions usable inside `features = [...]` of `train`.

/// A feature function and its signature.
#[derive(Debug)]
pub struct FeatureFunction {
    pub name: &'static str,
    pub signature: &'static str,
    /// Whether its column argument must be text (otherwise any type with equality).
    pub text_input: bool,
    pub doc: &'static str,
}

pub const FEATURE_FUNCTIONS: &[FeatureFunction] = &[
    FeatureFunction {
        name: "one_hot",
        signature: "one_hot(column)",
        text_input: false,
        doc: "one indicator feature per distinct value seen in training; unseen values encode as all zeros",
    },
    FeatureFunction {
        name: "bag_of_words",
        signature: "bag_of_words(column, buckets = 4096, ngrams = 1)",
        text_input: true,
        doc: "hashed counts of lower-cased words (and word n-grams up to `ngrams`) of a text column",
    },
];

pub fn find(name: &str) -> Option<&'static FeatureFunction> {
    FEATURE_FUNCTIONS.iter().find(|f| f.name == name)
}

impl FeatureFunction {
    pub fn explain(&self) -> String {
        format!("{} — {}\n", self.signature, self.doc)
    }
}
