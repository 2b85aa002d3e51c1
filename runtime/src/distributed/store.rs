//! The run's object store, named by a URL: a local folder (the default, or `file:///path`)
//! or an S3 bucket (`s3://bucket/prefix`).

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use std::path::PathBuf;
use std::sync::Arc;

/// Opens the store a `--store` value names.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, String> {
    if url.starts_with("s3://") {
        return Err(format!(
            "`--store {url}`: S3 storage hops are not available in this version of flowc yet; \
             use a local folder"
        ));
    }
    let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the run store {}: {e}", dir.display()))?;
    let store = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|e| format!("cannot open the run store {}: {e}", dir.display()))?;
    Ok(Arc::new(store))
}

/// The default store: a folder under the system's temporary directory.
pub fn default_store() -> String {
    std::env::temp_dir().join("flow-runs").display().to_string()
}
