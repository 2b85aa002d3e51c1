//! What flowc measured of files (row counts, samples' distinct values and filter fractions),
//! remembered in this process and between runs, by what was asked of which files in which
//! state: a file's size and modification time are part of the question, so a file that
//! changes is measured again. Sampling is most of planning's time on large inputs, and a
//! pipeline is usually planned again on the same files (every `flowc run`, every edit in the
//! language server).
//!
//! Between runs the answers live in `statistics-v1.json` under `FLOW_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/flow`, else `~/.cache/flow`; `FLOW_CACHE_DIR=` (empty) keeps them in the
//! process only. The file is a cache: unreadable, it is ignored; unwritable, nothing is kept.
//! A measurement that gave no answer is not kept: it is tried again.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Answers kept at most; past it the file starts again (a cache, not a history).
const MOST_ANSWERS: usize = 10_000;

/// The file's name: its version changes when an answer's meaning does.
const FILE: &str = "statistics-v1.json";

struct Answers {
    known: BTreeMap<String, serde_json::Value>,
    file: Option<PathBuf>,
}

fn answers() -> &'static Mutex<Answers> {
    static ANSWERS: OnceLock<Mutex<Answers>> = OnceLock::new();
    ANSWERS.get_or_init(|| {
        let file = cache_dir().map(|dir| dir.join(FILE));
        let known = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Mutex::new(Answers { known, file })
    })
}

fn cache_dir() -> Option<PathBuf> {
    let nonempty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = std::env::var_os("FLOW_CACHE_DIR") {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    if let Some(dir) = nonempty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("flow"));
    }
    nonempty("HOME").map(|home| PathBuf::from(home).join(".cache").join("flow"))
}

/// The answer to `what` of `files`: remembered, or measured now and remembered.
pub(crate) fn remembered<T: Serialize + DeserializeOwned>(
    files: &[String],
    what: String,
    measure: impl FnOnce() -> T,
) -> T {
    let mut key = what;
    for file in files {
        // Where the file is, not how a program in some folder named it.
        let path = std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file));
        let meta = std::fs::metadata(&path).ok();
        let modified = meta.as_ref().and_then(|m| m.modified().ok());
        let size = meta.map(|m| m.len());
        key.push_str(&format!("|{}:{size:?}:{modified:?}", path.display()));
    }
    if let Ok(answers) = answers().lock()
        && let Some(value) = answers.known.get(&key)
        && let Ok(value) = serde_json::from_value(value.clone())
    {
        return value;
    }
    let value = measure();
    // No answer (a sample that could not be read) is asked again next time: what failed may
    // be fixed, in the file's reader as in the file.
    if let Ok(json) = serde_json::to_value(&value)
        && !json.is_null()
        && let Ok(mut answers) = answers().lock()
    {
        if answers.known.len() >= MOST_ANSWERS {
            answers.known.clear();
        }
        answers.known.insert(key, json);
        keep(&answers);
    }
    value
}

/// Writes the answers whole, through a temporary file renamed over the old one, so a reader
/// never sees half of them.
fn keep(answers: &Answers) {
    let Some(file) = &answers.file else {
        return;
    };
    let Some(dir) = file.parent() else {
        return;
    };
    let written = std::fs::create_dir_all(dir)
        .ok()
        .and_then(|()| tempfile::NamedTempFile::new_in(dir).ok())
        .and_then(|mut tmp| {
            serde_json::to_writer(&mut tmp, &answers.known).ok()?;
            tmp.persist(file).ok()
        });
    if written.is_none() {
        tracing::debug!("cannot keep statistics in {}", file.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_measured_once_until_its_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "a\n1\n").unwrap();
        let files = vec![file.display().to_string()];
        let ask = |measure: &dyn Fn() -> u64| remembered(&files, "rows".into(), measure);
        assert_eq!(ask(&|| 1), 1);
        assert_eq!(ask(&|| panic!("measured again")), 1);
        // Another question of the same file is measured.
        assert_eq!(remembered(&files, "other".into(), || 7u64), 7);
        std::fs::write(&file, "a\n1\n2\n").unwrap();
        assert_eq!(ask(&|| 2), 2);
    }

    #[test]
    fn no_answer_is_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.csv");
        std::fs::write(&file, "a\n1\n").unwrap();
        let files = vec![file.display().to_string()];
        let ask = |measure: &dyn Fn() -> Option<u64>| remembered(&files, "lengths".into(), measure);
        assert_eq!(ask(&|| None), None);
        assert_eq!(ask(&|| Some(3)), Some(3), "measured again after no answer");
        assert_eq!(ask(&|| panic!("measured again")), Some(3));
    }
}
