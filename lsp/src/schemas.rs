//! Schema reads cached across keystrokes: checking a program on every change would otherwise
//! read the headers of its data files each time. Entries expire after a few seconds, and all
//! of them when the client says files changed, so edits to data outside the editor show up.

use flow_compiler::{LoadRequest, ModelSignature, ResolvedLoad, SchemaSource};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a schema read is trusted.
const FRESH_FOR: Duration = Duration::from_secs(10);

type Answer<T> = (Instant, Result<T, String>);
/// Answers by the program's folder and the question asked.
type Answers<T> = RefCell<HashMap<(PathBuf, String), Answer<T>>>;

#[derive(Default)]
pub struct SchemaCache {
    loads: Answers<ResolvedLoad>,
    models: Answers<Option<ModelSignature>>,
    tokenizers: Answers<Arc<flow_stdlib::text::Tokenizer>>,
}

impl SchemaCache {
    pub fn clear(&self) {
        self.loads.borrow_mut().clear();
        self.models.borrow_mut().clear();
        self.tokenizers.borrow_mut().clear();
    }

    /// A schema source for programs in `base` that asks `inner` only what it does not know.
    pub fn source<'a>(&'a self, base: &Path, inner: Box<dyn SchemaSource + 'a>) -> Cached<'a> {
        Cached {
            cache: self,
            base: base.to_path_buf(),
            inner,
        }
    }
}

pub struct Cached<'a> {
    cache: &'a SchemaCache,
    base: PathBuf,
    inner: Box<dyn SchemaSource + 'a>,
}

fn remembered<T: Clone>(
    map: &Answers<T>,
    key: (PathBuf, String),
    read: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    if let Some((at, answer)) = map.borrow().get(&key)
        && at.elapsed() < FRESH_FOR
    {
        return answer.clone();
    }
    let answer = read();
    map.borrow_mut()
        .insert(key, (Instant::now(), answer.clone()));
    answer
}

impl SchemaSource for Cached<'_> {
    fn resolve(&self, request: &LoadRequest) -> Result<ResolvedLoad, String> {
        let key = (self.base.clone(), format!("{request:?}"));
        remembered(&self.cache.loads, key, || self.inner.resolve(request))
    }

    fn resolve_model(&self, path: &str) -> Result<Option<ModelSignature>, String> {
        let key = (self.base.clone(), path.to_string());
        remembered(&self.cache.models, key, || self.inner.resolve_model(path))
    }

    fn tokenizer(&self, path: &str) -> Result<Arc<flow_stdlib::text::Tokenizer>, String> {
        let key = (self.base.clone(), path.to_string());
        remembered(&self.cache.tokenizers, key, || self.inner.tokenizer(path))
    }

    fn locate(&self, path: &str) -> String {
        self.inner.locate(path)
    }

    fn neighbours(&self, path: &str) -> Vec<String> {
        self.inner.neighbours(path)
    }
}
