//! The run's object store, named by a URL: a local folder (the default, or `file:///path`)
//! or an S3 bucket (`s3://bucket/prefix`), whose endpoint, region and credentials come from
//! the standard AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_DEFAULT_REGION`,
//! `AWS_ACCESS_KEY_ID`, ...), so an S3-compatible server works as well as AWS itself.

use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::PathBuf;
use std::sync::Arc;

/// Opens the store a `--store` value names. Nothing is contacted yet: a wrong bucket or
/// missing credentials show up at the first write, with the store's own message.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, String> {
    if let Some(rest) = url.strip_prefix("s3://") {
        return open_s3(url, rest);
    }
    if url.contains("://") && !url.starts_with("file://") {
        return Err(format!(
            "`--store {url}`: a run store is a folder, a file:// URL or an s3://bucket/prefix URL"
        ));
    }
    let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the run store {}: {e}", dir.display()))?;
    let store = LocalFileSystem::new_with_prefix(&dir)
        .map_err(|e| format!("cannot open the run store {}: {e}", dir.display()))?;
    Ok(Arc::new(store))
}

fn open_s3(url: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!(
            "`--store {url}` names no bucket; write it as s3://bucket or s3://bucket/prefix"
        ));
    }
    let s3 =
        open_bucket(bucket, None).map_err(|e| format!("cannot open the run store {url}: {e}"))?;
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        Ok(s3)
    } else {
        Ok(Arc::new(PrefixStore::new(s3, prefix)))
    }
}

/// An S3 bucket, with endpoint, credentials and (unless `region` is given) region from the
/// standard AWS variables. Nothing is contacted yet.
pub fn open_bucket(bucket: &str, region: Option<&str>) -> Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(region) = region {
        builder = builder.with_region(region);
    }
    // A local S3-compatible server speaks plain HTTP; saying the endpoint is enough.
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    if endpoint.is_some_and(|e| e.starts_with("http://")) {
        builder = builder.with_allow_http(true);
    }
    Ok(Arc::new(builder.build().map_err(|e| e.to_string())?))
}

/// The default store: a folder under the system's temporary directory.
pub fn default_store() -> String {
    std::env::temp_dir().join("flow-runs").display().to_string()
}

/// Deletes every object under `prefix`, and for a local store the emptied folder too.
/// Returns the first error, after trying every object.
pub async fn remove_prefix(store: &dyn ObjectStore, url: &str, prefix: &str) -> Result<(), String> {
    let mut first = None;
    for path in list_prefix(store, prefix).await? {
        match store.delete(&ObjectPath::from(path)).await {
            // Someone else (an interrupted run's handler) removed it first.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if !url.starts_with("s3://") {
        let dir = PathBuf::from(url.strip_prefix("file://").unwrap_or(url)).join(prefix);
        let _ = std::fs::remove_dir_all(dir);
    }
    first.map_or(Ok(()), Err)
}

/// Every object under `prefix`, for tests and reports.
pub async fn list_prefix(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>, String> {
    let root = ObjectPath::from(prefix);
    let mut listed = store.list(Some(&root));
    let mut out = Vec::new();
    while let Some(meta) = listed.next().await {
        out.push(meta.map_err(|e| e.to_string())?.location.to_string());
    }
    Ok(out)
}
