//! The run store's speed: small objects written and read back (what one request costs),
//! then one large object each way (bandwidth). In a local folder by default, or in the store
//! `flowc calibrate --store` names — an S3 bucket, or an S3-compatible server — through the
//! client runs use, so a profile can price the store its runs will use.

use crate::distributed::store::open_store;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::Path;
use std::time::Instant;

/// What a store measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreSpeed {
    /// Seconds per request (a small write or read).
    pub latency_s: f64,
    /// Bytes per second writing one large object.
    pub write_bytes_per_s: f64,
    /// Bytes per second reading it back.
    pub read_bytes_per_s: f64,
}

/// Measures the store `url` names, or the folder `dir` when none is named: `objects` small
/// objects each way, then one of `bytes`. What it writes is removed again.
pub fn measure(
    url: Option<&str>,
    dir: &Path,
    objects: usize,
    bytes: usize,
) -> Result<StoreSpeed, String> {
    let store = match url {
        Some(url) => open_store(url)?,
        None => open_store(&dir.to_string_lossy())?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the store's client: {e}"))?;
    let prefix = format!(
        "flow-calibrate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let measured = runtime.block_on(timed(store.as_ref(), &prefix, objects, bytes));
    runtime.block_on(remove(store.as_ref(), &prefix, objects));
    // A folder keeps the emptied folder of the objects' prefix; an object store has none.
    let folder = match url {
        None => Some(dir.to_path_buf()),
        Some(url) if !url.starts_with("s3://") => {
            Some(Path::new(url.strip_prefix("file://").unwrap_or(url)).to_path_buf())
        }
        Some(_) => None,
    };
    if let Some(folder) = folder {
        let _ = std::fs::remove_dir(folder.join(&prefix));
    }
    measured.map_err(|e| match url {
        Some(url) => format!("cannot measure the store {url}: {e}"),
        None => format!("cannot measure the local folder: {e}"),
    })
}

async fn timed(
    store: &dyn ObjectStore,
    prefix: &str,
    objects: usize,
    bytes: usize,
) -> Result<StoreSpeed, object_store::Error> {
    let start = Instant::now();
    for i in 0..objects {
        let path = ObjectPath::from(format!("{prefix}/small-{i}"));
        store.put(&path, vec![1u8].into()).await?;
        store.get(&path).await?.bytes().await?;
    }
    let latency_s = start.elapsed().as_secs_f64() / (2 * objects.max(1)) as f64;
    let large = ObjectPath::from(format!("{prefix}/large"));
    let data = vec![9u8; bytes];
    let start = Instant::now();
    store.put(&large, data.into()).await?;
    let write = start.elapsed().as_secs_f64().max(1e-9);
    let start = Instant::now();
    let back = store.get(&large).await?.bytes().await?;
    let read = start.elapsed().as_secs_f64().max(1e-9);
    if back.len() != bytes {
        return Err(object_store::Error::Generic {
            store: "calibration",
            source: "the store returned a different object".into(),
        });
    }
    Ok(StoreSpeed {
        latency_s,
        write_bytes_per_s: bytes as f64 / write,
        read_bytes_per_s: bytes as f64 / read,
    })
}

/// Removes what [`timed`] wrote, as far as it got; a failure here changes no figure.
async fn remove(store: &dyn ObjectStore, prefix: &str, objects: usize) {
    let names = (0..objects)
        .map(|i| format!("{prefix}/small-{i}"))
        .chain([format!("{prefix}/large")]);
    for name in names {
        let _ = store.delete(&ObjectPath::from(name)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_measured_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let speed = measure(None, dir.path(), 5, 1 << 20).unwrap();
        assert!(speed.latency_s > 0.0 && speed.latency_s < 1.0, "{speed:?}");
        assert!(speed.write_bytes_per_s > 1e6, "{speed:?}");
        assert!(speed.read_bytes_per_s > 1e6, "{speed:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn a_store_that_cannot_be_named_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = measure(Some("ftp://somewhere"), dir.path(), 1, 1).unwrap_err();
        assert!(e.contains("ftp://somewhere"), "{e}");
    }
}
