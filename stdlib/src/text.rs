//! Text to token ids for transformer models: a Hugging Face `tokenizer.json` (the format the
//! Python `tokenizers` package saves), run by the Rust `tokenizers` crate, which gives the
//! same ids. A column of text becomes a column of `list<int32>` token ids, cut to a length;
//! padding (and the attention mask that says where it is) is `infer`'s business, which pads
//! each batch only as far as its longest sequence needs.

use arrow::array::{Array, ArrayRef, Int32Builder, ListBuilder, StringArray};
use arrow::array::{LargeStringArray, StringViewArray};
use arrow::datatypes::{DataType, Field};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokenizers::{TruncationParams, TruncationStrategy};

/// The length a sequence is cut to when neither the program nor the tokenizer file says.
pub const DEFAULT_LENGTH: usize = 512;

/// The type of a token column: token ids, one list per row.
pub fn token_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
}

/// Whether `ty` is a column of token ids as [`Tokenizer::encode`] makes them.
pub fn is_token_type(ty: &DataType) -> bool {
    matches!(ty, DataType::List(f) if f.data_type() == &DataType::Int32)
}

/// A tokenizer read from a `tokenizer.json`.
#[derive(Debug)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// The file as read, to ship the tokenizer to workers.
    pub bytes: Arc<Vec<u8>>,
    /// A hash of `bytes`: two tokenizers read from the same file are the same one.
    pub digest: u64,
    /// How many ids it has: every id it gives is below this.
    pub vocab_size: usize,
    /// The length its file truncates to, when it says.
    pub file_length: Option<usize>,
    /// Whether a cut sequence has been reported (once per tokenizer).
    said_cut: AtomicBool,
}

impl Tokenizer {
    /// Reads a `tokenizer.json`; the error is a sentence about the file, named `name`.
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Tokenizer, String> {
        let mut inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
            format!("{name} is not a tokenizer in the Hugging Face `tokenizer.json` format ({e})")
        })?;
        let file_length = inner.get_truncation().map(|t| t.max_length);
        // Cutting is set per call; padding is infer's.
        inner.with_padding(None);
        let vocab_size = inner.get_vocab_size(true);
        if vocab_size == 0 {
            return Err(format!("{name} has an empty vocabulary"));
        }
        let mut hash = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&bytes, &mut hash);
        Ok(Tokenizer {
            inner,
            digest: std::hash::Hasher::finish(&hash),
            bytes: Arc::new(bytes),
            vocab_size,
            file_length,
            said_cut: AtomicBool::new(false),
        })
    }

    /// Token ids of every text in `texts` (with the special tokens the tokenizer adds, such as
    /// `[CLS]` and `[SEP]`), each cut to at most `length` ids; a null text gives a null list.
    /// The first time a text is cut, a warning says so.
    pub fn encode(&self, texts: &dyn Array, length: usize) -> Result<ArrayRef, String> {
        let texts: Vec<Option<&str>> = text_values(texts)?;
        let mut tokenizer = self.inner.clone();
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..Default::default()
            }))
            .map_err(|e| format!("cannot cut sequences to {length} tokens: {e}"))?;
        let mut out = ListBuilder::new(Int32Builder::new());
        let mut cut = None;
        for (row, text) in texts.iter().enumerate() {
            let Some(text) = text else {
                out.append(false);
                continue;
            };
            let encoding = tokenizer
                .encode_fast(*text, true)
                .map_err(|e| format!("row {}: cannot tokenize the text: {e}", row + 1))?;
            if cut.is_none() && !encoding.get_overflowing().is_empty() {
                cut = Some(row);
            }
            for id in encoding.get_ids() {
                let id = i32::try_from(*id)
                    .map_err(|_| format!("row {}: token id {id} is too large", row + 1))?;
                out.values().append_value(id);
            }
            out.append(true);
        }
        if cut.is_some() && !self.said_cut.swap(true, Ordering::Relaxed) {
            eprintln!(
                "warning: texts longer than {length} tokens are cut to their first {length} \
                 (`tokenize(..., length = N)` sets the length)"
            );
        }
        Ok(Arc::new(out.finish()))
    }
}

/// The values of a text column of any of Arrow's string types.
fn text_values(texts: &dyn Array) -> Result<Vec<Option<&str>>, String> {
    let any = texts.as_any();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        return Ok(a.iter().collect());
    }
    if let Some(a) = any.downcast_ref::<LargeStringArray>() {
        return Ok(a.iter().collect());
    }
    if let Some(a) = any.downcast_ref::<StringViewArray>() {
        return Ok(a.iter().collect());
    }
    Err(format!(
        "`tokenize` needs text, but was given {}",
        texts.data_type()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, ListArray};
    use arrow::datatypes::Int32Type;

    const WORDS: &str = r#"{
      "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
      "normalizer": {"type": "Lowercase"},
      "pre_tokenizer": {"type": "Whitespace"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [1], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [2], "tokens": ["[SEP]"]}}},
      "decoder": null,
      "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "good": 3, "film": 4}, "unk_token": "[UNK]"}
    }"#;

    fn ids(list: &ArrayRef) -> Vec<Option<Vec<i32>>> {
        let list: &ListArray = list.as_list();
        list.iter()
            .map(|row| row.map(|r| r.as_primitive::<Int32Type>().values().to_vec()))
            .collect()
    }

    #[test]
    fn texts_become_ids_with_special_tokens_cut_to_length() {
        let tokenizer = Tokenizer::from_bytes(WORDS.as_bytes().to_vec(), "words.json").unwrap();
        assert_eq!(tokenizer.vocab_size, 5);
        let texts = StringArray::from(vec![Some("Good film"), None, Some(""), Some("good bad")]);
        let out = tokenizer.encode(&texts, 16).unwrap();
        assert_eq!(out.data_type(), &token_type());
        assert_eq!(
            ids(&out),
            [
                Some(vec![1, 3, 4, 2]),
                None,
                Some(vec![1, 2]),
                Some(vec![1, 3, 0, 2])
            ]
        );
        let cut = tokenizer.encode(&texts, 3).unwrap();
        assert_eq!(
            ids(&cut)[0],
            Some(vec![1, 3, 2]),
            "cut before the special tokens"
        );
    }

    #[test]
    fn a_file_that_is_not_a_tokenizer_is_refused() {
        let err = Tokenizer::from_bytes(b"{\"vocab\": 1}".to_vec(), "t.json").unwrap_err();
        assert!(err.starts_with("t.json is not a tokenizer"), "{err}");
        let err = Tokenizer::from_bytes(b"\x00\x01".to_vec(), "t.json").unwrap_err();
        assert!(err.starts_with("t.json is not a tokenizer"), "{err}");
    }
}
