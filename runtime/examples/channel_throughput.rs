//! Throughput of flow's channels against the plain transport under each, in one run
//! (`bench/channels.sh`): a direct channel (HMAC handshake, Arrow IPC stream over TCP, decoded
//! into batches) against raw loopback TCP moving the same bytes; a storage hop (IPC object
//! put into and read back from a local-folder object store, decoded) against a plain file
//! write and read of the same bytes. Prints a Markdown table; the median of `RUNS` runs.

use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use flow_runtime::distributed::auth::Secret;
use flow_runtime::distributed::channels::{Channels, Compression, Location};
use flow_runtime::distributed::outbox::Outbox;
use flow_runtime::distributed::store::open_store;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROWS_PER_BATCH: usize = 8192;

fn batches(megabytes: usize) -> (SchemaRef, Vec<RecordBatch>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let mut out = Vec::new();
    let mut size = 0;
    let mut next = 0i64;
    while size < megabytes << 20 {
        let ids: Vec<i64> = (next..next + ROWS_PER_BATCH as i64).collect();
        next += ROWS_PER_BATCH as i64;
        let values: Vec<f64> = ids.iter().map(|i| (*i as f64) * 0.37).collect();
        let names: Vec<String> = ids.iter().map(|i| format!("name-{}", i % 9973)).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Float64Array::from(values)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .expect("a valid batch");
        size += batch.get_array_memory_size();
        out.push(batch);
    }
    (schema, out)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn raw_tcp(bytes: &[u8]) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let (mut conn, _) = listener.accept().expect("a connection");
            conn.write_all(bytes).expect("sent");
        });
        // Read into one reused buffer, the most a reader of loopback TCP can take in.
        let mut conn = TcpStream::connect(addr).expect("connected");
        let mut buffer = vec![0u8; 1 << 20];
        let mut got = 0;
        loop {
            match conn.read(&mut buffer).expect("received") {
                0 => break,
                n => got += n,
            }
        }
        assert_eq!(got, bytes.len());
    });
}

fn direct(channels: &Channels, outbox: &Outbox, handle: &tokio::runtime::Handle) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address").to_string();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let (conn, _) = listener.accept().expect("a connection");
            channels.serve(conn, outbox).expect("served");
        });
        let mut rows = 0;
        let location = Location::Direct {
            addr,
            key: "k".into(),
            bucket: 0,
            producer: None,
        };
        channels
            .read(&location, handle, &mut |b| {
                rows += b.num_rows();
                Ok(())
            })
            .expect("read");
        rows
    })
}

fn main() {
    let megabytes: usize = std::env::var("MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let handle = runtime.handle().clone();
    let (schema, data) = batches(megabytes);
    let rows: usize = data.iter().map(RecordBatch::num_rows).sum();
    let folder = tempfile::tempdir().expect("a temporary folder");
    let store_url = folder.path().join("store").display().to_string();
    println!("| measurement | MB/s | ratio |");
    println!("| --- | --- | --- |");
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let channels = Channels {
            secret: Secret::generate().expect("randomness"),
            store: open_store(&store_url).expect("a store"),
            prefix: "bench".into(),
            compression,
            punching: None,
            requests: Default::default(),
        };
        let encoded = channels.encode(&schema, &data).expect("encoded");
        let mb = encoded.len() as f64 / 1e6;
        let name = compression.name();
        let raw = time(runs, || raw_tcp(&encoded));
        let outbox = Outbox::default();
        outbox.keep("k".into(), vec![encoded.clone()]);
        let dir = time(runs, || {
            assert_eq!(direct(&channels, &outbox, &handle), rows)
        });
        let plain_file = folder.path().join("plain.arrow");
        let file = time(runs, || {
            std::fs::write(&plain_file, &encoded).expect("written");
            assert_eq!(
                std::fs::read(&plain_file).expect("read").len(),
                encoded.len()
            );
        });
        let location = Location::Storage {
            path: channels.object_path("k", 0),
        };
        let storage = time(runs, || {
            handle
                .block_on(channels.put("k", 0, encoded.clone()))
                .expect("put");
            let mut got = 0;
            channels
                .read(&location, &handle, &mut |b| {
                    got += b.num_rows();
                    Ok(())
                })
                .expect("read");
            assert_eq!(got, rows);
        });
        let rate = |d: Duration| mb / d.as_secs_f64();
        println!(
            "| raw loopback TCP ({mb:.0} MB, {name}) | {:.0} | 1.00 |",
            rate(raw)
        );
        println!(
            "| direct channel, batches decoded ({name}) | {:.0} | {:.2} |",
            rate(dir),
            raw.as_secs_f64() / dir.as_secs_f64()
        );
        println!(
            "| plain file write + read ({mb:.0} MB, {name}) | {:.0} | 1.00 |",
            rate(file)
        );
        println!(
            "| storage hop, local store, batches decoded ({name}) | {:.0} | {:.2} |",
            rate(storage),
            file.as_secs_f64() / storage.as_secs_f64()
        );
    }
    println!(
        "\n{rows} rows ({megabytes} MB in Arrow memory); MB/s of the encoded stream, median of {runs} runs"
    );
}
