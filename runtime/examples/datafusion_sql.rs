//! The baseline of `bench/tpch.sh`: plain DataFusion (the same version flow embeds) running a
//! SQL file over every `*.parquet` of a folder, each registered under its file stem.
//!
//! Usage: cargo run --release -p flow-runtime --example datafusion_sql -- DATA_DIR QUERY.sql

use datafusion::prelude::{ParquetReadOptions, SessionContext};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> datafusion::error::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(query)) = (args.next(), args.next()) else {
        eprintln!("usage: datafusion_sql DATA_DIR QUERY.sql");
        std::process::exit(2);
    };
    let ctx = SessionContext::new();
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            ctx.register_parquet(&name, path.to_str().unwrap(), ParquetReadOptions::default())
                .await?;
        }
    }
    let sql = std::fs::read_to_string(&query)?;
    ctx.sql(&sql).await?.show().await
}
