//! `flowc calibrate`: measures this machine for the `local` profile — loopback TCP latency
//! and bandwidth (the direct channel), pairing through a rendezvous host, a local folder's latency and bandwidth (the storage
//! hop), and the per-row cost of scan, filter, join, aggregate, sort, write, preparing a
//! training table, training and inference on generated data, each on one core, and what
//! loading an ONNX model costs — and, given the `flowc` executable, the fixed costs of
//! a distributed run ([`overheads`]) — and returns the profile the planner reads back.

mod contention;
mod exchanges;
pub mod overheads;
mod pairing;
mod scans;
mod stores;

use datafusion::arrow::array::{
    Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use flow_planner::Profile;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// How long calibration may take: `Quick` for tests, `Full` for a profile worth keeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Quick,
    Full,
}

/// One measured figure, for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub what: &'static str,
    pub value: String,
}

/// Measures the machine. The result is the built-in `local` profile with every measured
/// figure replaced; the fixed costs of a run only when `exe` (the `flowc` executable the
/// workers run) is given; the storage figures of the store `store` names (a folder or an
/// `s3://` URL, as `--store` takes), else of a local folder.
pub fn calibrate(
    effort: Effort,
    exe: Option<&Path>,
    store: Option<&str>,
) -> Result<(Profile, Vec<Measurement>), String> {
    let mut profile = Profile::builtin("local").map_err(|e| e.to_string())?;
    let mut report = Vec::new();
    let mut note = |what: &'static str, value: String| report.push(Measurement { what, value });
    let scale = match effort {
        Effort::Quick => 1,
        Effort::Full => 8,
    };

    let (latency, bandwidth) = loopback(200 * scale, 32 * 1024 * 1024 * scale)
        .map_err(|e| format!("cannot measure loopback TCP: {e}"))?;
    profile.direct.latency_s = latency;
    profile.direct.bandwidth_by_memory = vec![(profile.compute.memory_min_mb, bandwidth)];
    profile.direct.flat_fanout_bytes_per_s = bandwidth;
    note("direct latency (loopback TCP, one way)", seconds(latency));
    note("direct bandwidth (one stream)", rate(bandwidth));
    let pairing = pairing::pairing_s(10 * scale)
        .map_err(|e| format!("cannot measure pairing through a rendezvous host: {e}"))?;
    profile.direct.pairing_s = pairing;
    note(
        "pairing through a rendezvous host (loopback, per pair)",
        seconds(pairing),
    );

    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a scratch folder: {e}"))?;
    let speed = stores::measure(store, dir.path(), 50 * scale, 32 * 1024 * 1024 * scale)?;
    profile.storage.latency_s = speed.latency_s;
    profile.storage.bandwidth_bytes_per_s = speed.write_bytes_per_s;
    profile.storage.read_bandwidth_bytes_per_s = Some(speed.read_bytes_per_s);
    note(
        if store.is_some() {
            "storage latency (the store named, per request)"
        } else {
            "storage latency (local folder, per request)"
        },
        seconds(speed.latency_s),
    );
    note("storage bandwidth (write)", rate(speed.write_bytes_per_s));
    note(
        "storage bandwidth (read back)",
        rate(speed.read_bytes_per_s),
    );

    if let Ok(cores) = std::thread::available_parallelism() {
        profile.compute.shared_vcpus = Some(cores.get() as f64);
        note("cores", cores.get().to_string());
    }
    if let Some(mb) = memory_mb() {
        profile.compute.shared_memory_mb = Some(mb);
        profile.compute.memory_max_mb = mb;
        note("memory", format!("{mb} MB"));
    }

    let rows = 250_000 * scale;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the engine: {e}"))?;
    let k = runtime
        .block_on(kernels(dir.path(), rows))
        .map_err(|e| format!("cannot measure the engine: {e}"))?;
    let ml = ml_kernels(2_500 * scale, 2 + scale / 4)?;
    let kernels = &mut profile.kernels;
    for (what, v, field) in [
        (
            "parse CSV, per byte",
            k.scan.text_s_per_byte,
            &mut kernels.scan_s_per_byte,
        ),
        (
            "decode Parquet, per value",
            k.scan.value_s,
            &mut kernels.parquet_s_per_value,
        ),
        (
            "decode Parquet, per byte of pages",
            k.scan.byte_s,
            &mut kernels.parquet_s_per_byte,
        ),
        (
            "inflate Snappy, per byte it yields",
            k.scan.fast_codec_s_per_byte,
            &mut kernels.fast_codec_s_per_byte,
        ),
        (
            "inflate Zstandard, per byte it yields",
            k.scan.entropy_codec_s_per_byte,
            &mut kernels.entropy_codec_s_per_byte,
        ),
        (
            "compute an expression node, per row",
            k.narrow,
            &mut kernels.narrow_s_per_row,
        ),
        (
            "hash join, per input row",
            k.join,
            &mut kernels.join_s_per_row,
        ),
        (
            "hash join, per output row",
            k.join_output,
            &mut kernels.join_output_s_per_row,
        ),
        (
            "compute a decimal expression node, per row",
            k.decimal,
            &mut kernels.decimal_s_per_row,
        ),
        (
            "filter keeping few rows, per row",
            k.filter,
            &mut kernels.filter_s_per_row,
        ),
        (
            "filter keeping half, scattered, more per row",
            k.filter_mixed,
            &mut kernels.filter_mixed_s_per_row,
        ),
        (
            "hash aggregate into 16 groups, per row",
            k.aggregate,
            &mut kernels.aggregate_s_per_row,
        ),
        (
            "sort, per row and doubling",
            k.sort,
            &mut kernels.sort_s_per_row,
        ),
        (
            "write Parquet, per byte",
            k.write,
            &mut kernels.write_s_per_byte,
        ),
        (
            "deal and encode an exchange, per byte",
            k.encode,
            &mut kernels.encode_s_per_byte,
        ),
        (
            "decode an exchange, per byte",
            k.decode,
            &mut kernels.decode_s_per_byte,
        ),
        (
            "prepare training rows, per row and input",
            ml.prepare,
            &mut kernels.prepare_s_per_value,
        ),
        (
            "train (logistic, Adam), per row and param",
            ml.train,
            &mut kernels.train_s_per_value,
        ),
        (
            "infer, encoding included, per row and param",
            ml.infer,
            &mut kernels.infer_s_per_value,
        ),
        (
            "load an ONNX model, first call included",
            ml.onnx_load,
            &mut kernels.onnx_load_s,
        ),
        (
            "infer with ONNX, per row and byte of model",
            ml.onnx_infer,
            &mut kernels.onnx_infer_s_per_byte,
        ),
    ] {
        *field = v;
        note(what, seconds(v));
    }
    for (groups, v) in &k.aggregate_by_groups {
        note(
            "hash aggregate, per row, into more groups",
            format!("{} at {groups} groups", seconds(*v)),
        );
    }
    profile.kernels.aggregate_by_groups = k.aggregate_by_groups;
    if let Ok(cores) = std::thread::available_parallelism()
        && cores.get() > 1
    {
        let work = table(rows, rows / 10).map_err(|e| e.to_string())?;
        let efficiency = contention::measure(&work, cores.get())?;
        profile.compute.shared_efficiency = Some(efficiency);
        note(
            "speed missing caches when all cores work",
            format!("{:.0}%", efficiency * 100.0),
        );
    }

    if let Some(exe) = exe {
        let o = overheads::measure(exe, dir.path(), 4, scale - 1, k.plan)?;
        let compute = &mut profile.compute;
        for (what, v, field) in [
            (
                "planning a job, per node of its plan",
                k.plan,
                &mut compute.plan_s_per_node,
            ),
            ("worker start-up", o.cold_start_s, &mut compute.cold_start_s),
            (
                "first task of a stage, more than later ones",
                o.first_task_s,
                &mut compute.first_task_s,
            ),
            (
                "task overhead (sent to answered)",
                o.task_overhead_s,
                &mut compute.task_overhead_s,
            ),
            (
                "job overhead (between sinks)",
                o.job_overhead_s,
                &mut compute.job_overhead_s,
            ),
            (
                "teardown (last answer to end)",
                o.teardown_s,
                &mut compute.teardown_s,
            ),
        ] {
            *field = v;
            note(what, seconds(v));
        }
    }

    profile.origin = format!("measured by `flowc calibrate` on {}", today());
    Ok((profile, report))
}

/// The profile as TOML, with a header saying where it came from.
pub fn to_toml(profile: &Profile) -> Result<String, String> {
    let body = toml::to_string(profile).map_err(|e| format!("cannot write the profile: {e}"))?;
    Ok(format!(
        "# The `local` profile, {}.\n# Units and fields as in planner/profiles/local.toml.\n\n{body}",
        profile.origin
    ))
}

fn seconds(s: f64) -> String {
    format!("{s:.3e} s")
}

fn rate(b: f64) -> String {
    format!("{:.0} MB/s", b / 1e6)
}

/// One-way latency (half a round trip of one byte) and one-stream bandwidth over loopback.
fn loopback(round_trips: usize, bytes: usize) -> std::io::Result<(f64, f64)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        for _ in 0..round_trips {
            s.read_exact(&mut b)?;
            s.write_all(&b)?;
        }
        let mut sink = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = s.read(&mut sink)?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        s.write_all(&[1])?;
        Ok(())
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut b = [7u8; 1];
    let start = Instant::now();
    for _ in 0..round_trips {
        c.write_all(&b)?;
        c.read_exact(&mut b)?;
    }
    let latency = start.elapsed().as_secs_f64() / round_trips.max(1) as f64 / 2.0;
    let chunk = vec![42u8; 1 << 20];
    let start = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        let n = chunk.len().min(bytes - sent);
        c.write_all(&chunk[..n])?;
        sent += n;
    }
    c.read_exact(&mut b)?;
    let bandwidth = bytes as f64 / start.elapsed().as_secs_f64().max(1e-9);
    server
        .join()
        .map_err(|_| std::io::Error::other("the loopback peer failed"))??;
    Ok((latency, bandwidth))
}

/// Total memory of the machine, from /proc/meminfo where there is one.
fn memory_mb() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    u32::try_from(kb / 1024).ok()
}

struct Kernels {
    scan: scans::ScanKernels,
    narrow: f64,
    decimal: f64,
    filter: f64,
    filter_mixed: f64,
    join: f64,
    join_output: f64,
    aggregate: f64,
    aggregate_by_groups: Vec<(f64, f64)>,
    sort: f64,
    write: f64,
    encode: f64,
    decode: f64,
    plan: f64,
}

/// A seeded xorshift sequence: generated data that is the same on every machine.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Generated rows: `k` over `keys` values, `v` uniform in [0, 1), a text `s`, `u`, every
/// number below `rows` once in a scattered order (groupings of a known size), and `p`, a
/// price as a decimal.
fn table(rows: usize, keys: usize) -> datafusion::error::Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Float64, false),
        Field::new("s", DataType::Utf8, false),
        Field::new("u", DataType::Int64, false),
        Field::new("p", DataType::Decimal128(15, 2), false),
    ]));
    // 7,919 is prime and divides no calibration size: i ↦ 7,919·i mod rows is a permutation.
    let u = (0..rows as u64).map(|i| (i * 7_919 % rows.max(1) as u64) as i64);
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let k: Vec<i64> = (0..rows).map(|_| (next() % keys as u64) as i64).collect();
    let v: Vec<f64> = (0..rows)
        .map(|_| (next() % 1_000_000) as f64 / 1e6)
        .collect();
    let s: Vec<String> = (0..rows)
        .map(|_| format!("item-{:06}", next() % 1_000_000))
        .collect();
    // Prices below 100,000.00, in cents.
    let p: Vec<i128> = (0..rows).map(|_| i128::from(next() % 10_000_000)).collect();
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(k)),
            Arc::new(Float64Array::from(v)),
            Arc::new(StringArray::from(s)),
            Arc::new(Int64Array::from_iter_values(u)),
            Arc::new(Decimal128Array::from(p).with_precision_and_scale(15, 2)?),
        ],
    )?)
}

/// `batch` cut into batches of the engine's size, as a scan yields them: kernels that
/// stream over one array of millions of rows run out of cache and would be priced several
/// times what they cost in a pipeline.
pub(crate) fn engine_batches(batch: &RecordBatch) -> Vec<RecordBatch> {
    let size = SessionConfig::new().batch_size();
    (0..batch.num_rows())
        .step_by(size)
        .map(|start| batch.slice(start, size.min(batch.num_rows() - start)))
        .collect()
}

/// A table of `batch` in [`engine_batches`].
pub(crate) fn in_batches(batch: &RecordBatch) -> datafusion::error::Result<Arc<MemTable>> {
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![engine_batches(batch)],
    )?))
}

/// Bytes of `batch`'s rows as the planner counts them.
pub(crate) fn row_bytes(batch: &RecordBatch) -> f64 {
    batch.num_rows() as f64 * flow_planner::stats::row_width(batch.schema_ref())
}

/// Median seconds of executing `sql` [`ROUNDS`] times, after one run that warms the caches
/// and the allocator as earlier batches of a pipeline would. Planning is left out: it is
/// priced apart, per node (`planning`), and would weigh on the cheapest kernels. Each round
/// gets a plan of its own: a plan's file scans run once.
async fn timed(ctx: &SessionContext, sql: &str) -> datafusion::error::Result<f64> {
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let start = Instant::now();
        datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
        if round > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(overheads::median(times))
}

/// A hash join's price per input row and per output row: `t` (n rows) joined to `d` (n/10
/// rows on as many keys: each row of `t` matches one of `d` on average), then to `d` with its
/// keys spread fifty times wider (one row of `t` in fifty matches). The inputs are the same;
/// the difference is what is output.
async fn joins(ctx: &SessionContext, n: f64) -> datafusion::error::Result<(f64, f64)> {
    let sparse = ctx
        .sql("SELECT k * 50 AS k, v FROM d")
        .await?
        .collect()
        .await?;
    let schema = sparse
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| datafusion::error::DataFusionError::Internal("no rows in d".into()))?;
    ctx.register_table("e", Arc::new(MemTable::try_new(schema, vec![sparse])?))?;
    let rows = |sql: &'static str| async move {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok::<f64, datafusion::error::DataFusionError>(batches.first().map_or(0.0, |b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map_or(0.0, |a| a.value(0) as f64)
        }))
    };
    let dense_out = rows("SELECT count(*) FROM t JOIN d ON t.k = d.k").await?;
    let sparse_out = rows("SELECT count(*) FROM t JOIN e ON t.k = e.k").await?;
    let dense = timed(ctx, "SELECT t.v, d.v FROM t JOIN d ON t.k = d.k").await?;
    let sparse = timed(ctx, "SELECT t.v, e.v FROM t JOIN e ON t.k = e.k").await?;
    let output = ((dense - sparse) / (dense_out - sparse_out).max(1.0)).max(0.0);
    let input = ((sparse - sparse_out * output) / (n * 1.1)).max(dense / (n * 1.1) / 10.0);
    Ok((input, output))
}

async fn kernels(dir: &Path, rows: usize) -> datafusion::error::Result<Kernels> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let big = table(rows, rows / 10)?;
    let small = table(rows / 10, rows / 10)?;
    ctx.register_table("t", in_batches(&big)?)?;
    ctx.register_table("d", in_batches(&small)?)?;
    let n = rows as f64;
    // Warm the engine once so the first query does not pay for planning caches.
    ctx.sql("SELECT count(*) FROM t").await?.collect().await?;
    // Two computed nodes per row: the product and the sum.
    let narrow = timed(&ctx, "SELECT sum(v * 2) FROM t").await? / n / 2.0;
    // Three decimal nodes: the difference, the product and the sum.
    let decimal = timed(&ctx, "SELECT sum(p * (1 - p)) FROM t").await? / n / 3.0;
    let (filter, filter_mixed) = filters(&ctx, n, narrow).await?;
    let (aggregate, aggregate_by_groups) = groupings(&ctx, rows, narrow).await?;
    let (join, join_output) = joins(&ctx, n).await?;
    let sort = timed(&ctx, "SELECT * FROM t ORDER BY v").await? / (n * n.log2());
    let write = saving(&dir.join("t.parquet"), &big)?;
    let (encode, decode) = exchanges::measure(&big, "k")?;
    let scan = scans::measure(dir, rows).await?;
    let plan = planning(&ctx, 25).await?;
    Ok(Kernels {
        scan,
        narrow,
        decimal,
        filter,
        filter_mixed,
        join,
        join_output,
        aggregate,
        aggregate_by_groups,
        sort,
        write,
        encode,
        decode,
        plan,
    })
}

/// Seconds per byte of rows (as the planner counts them) of saving `batch` as Parquet the
/// way `save` does: the parquet crate's writer with its defaults, batches of the engine's
/// size.
fn saving(path: &Path, batch: &RecordBatch) -> datafusion::error::Result<f64> {
    use parquet::arrow::ArrowWriter;
    let batches = engine_batches(batch);
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let start = Instant::now();
        let out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut writer = ArrowWriter::try_new(out, batch.schema(), None)?;
        for part in &batches {
            writer.write(part)?;
        }
        writer.close()?;
        if round > 0 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(overheads::median(times) / row_bytes(batch).max(1.0))
}

/// A filter's price per row when it keeps few rows (5%, in long runs between them), and
/// what keeping half of them, scattered, adds: `t(s) = base + mixed · 4s(1 − s)`. An
/// operator reads what it keeps, as in a pipeline (a sum; collecting the rows would price
/// materialising them); the predicate's comparison and the sum are priced as any computed
/// node (`narrow`).
async fn filters(
    ctx: &SessionContext,
    n: f64,
    narrow: f64,
) -> datafusion::error::Result<(f64, f64)> {
    let per_row = async |keeps: f64| -> datafusion::error::Result<f64> {
        let sql = format!("SELECT sum(k) FROM t WHERE v < {keeps}");
        Ok(timed(ctx, &sql).await? / n - narrow * (1.0 + keeps))
    };
    let few = per_row(0.05).await?;
    let half = per_row(0.5).await?;
    let mixed = ((half - few) / (1.0 - 4.0 * 0.05 * 0.95)).max(0.0);
    Ok(((half - mixed).max(0.0), mixed))
}

/// A hash aggregation's price per row into 16 groups, and into more: 1,024, 32,768, half
/// the rows (each group of two) and twice the rows (of a table four times as long), as its
/// table outgrows the caches; its two computed nodes (the key and the count) priced as any
/// (`narrow`). The longest table reaches the millions of groups a grouping of a 10 MB to
/// 1 GB input makes, where the price per row keeps climbing.
async fn groupings(
    ctx: &SessionContext,
    rows: usize,
    narrow: f64,
) -> datafusion::error::Result<(f64, Vec<(f64, f64)>)> {
    let long = 4 * rows;
    let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::Int64, false)]));
    let u = (0..long as u64).map(|i| (i * 7_919 % long.max(1) as u64) as i64);
    let column = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(u))])?;
    ctx.register_table("w", in_batches(&column)?)?;
    let per_row = async |table: &str, n: usize, key: &str| -> datafusion::error::Result<f64> {
        let sql = format!("SELECT {key} AS g, count(*) FROM {table} GROUP BY {key}");
        Ok((timed(ctx, &sql).await? / n as f64 - 2.0 * narrow).max(0.0))
    };
    let few = per_row("t", rows, "k % 16").await?;
    let mut curve = Vec::new();
    for (groups, table, n, key) in [
        (1_024.0, "t", rows, "u % 1024"),
        (32_768.0, "t", rows, "u % 32768"),
        ((rows / 2) as f64, "t", rows, "u / 2"),
        ((long / 2) as f64, "w", long, "u / 2"),
    ] {
        if curve.last().is_none_or(|(g, _)| *g < groups) {
            curve.push((groups, per_row(table, n, key).await?));
        }
    }
    ctx.deregister_table("w")?;
    Ok((few, curve))
}

/// Seconds of planning per node of a plan (operator or expression node, counted as the
/// planner counts them): a small query and a large one of the shape pipelines have
/// (derived columns, a join, a filter, a grouping, a sort), each planned `reps` times, the
/// difference of their medians over the difference of their nodes.
async fn planning(ctx: &SessionContext, reps: usize) -> datafusion::error::Result<f64> {
    let columns: Vec<String> = (0..16)
        .map(|i| {
            format!(
                "CASE WHEN t.v > {} THEN t.v * {i} ELSE coalesce(d.v, 0) + {i} END AS c{i}",
                f64::from(i) / 16.0
            )
        })
        .collect();
    let sums: Vec<String> = (0..16).map(|i| format!("sum(c{i}) AS s{i}")).collect();
    let big = format!(
        "SELECT k, {}, count(*) AS n FROM (SELECT t.k AS k, {} FROM t JOIN d ON t.k = d.k \
         WHERE t.v > 0.1 AND t.s <> 'x') GROUP BY k ORDER BY k",
        sums.join(", "),
        columns.join(", ")
    );
    let state = ctx.state();
    let measure = async |sql: &str| -> datafusion::error::Result<(f64, f64)> {
        let plan = ctx.sql(sql).await?.into_unoptimized_plan();
        let nodes = flow_planner::ops::planning_nodes(&plan);
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps + 2 {
            let start = Instant::now();
            state.create_physical_plan(&plan).await?;
            times.push(start.elapsed().as_secs_f64());
        }
        // The first plans warm caches every later job finds warm.
        Ok((f64::from(nodes), overheads::median(times.split_off(2))))
    };
    let (small_nodes, small_s) = measure("SELECT k, v FROM t WHERE v > 0.5").await?;
    let (big_nodes, big_s) = measure(&big).await?;
    Ok(((big_s - small_s) / (big_nodes - small_nodes).max(1.0)).max(0.0))
}

/// What the ML steps cost, measured on the paths a run takes.
struct MlKernels {
    prepare: f64,
    train: f64,
    infer: f64,
    onnx_load: f64,
    onnx_infer: f64,
}

/// The bundled example's ONNX model (a 64 → 32 → 10 digits MLP), the kind of model a
/// pipeline scores with.
const ONNX_MODEL: &[u8] = include_bytes!("../../examples/models/digits.onnx");

/// Words a calibration review is made of, and words per review.
const VOCABULARY: u64 = 5_000;
const WORDS: usize = 20;
/// Numeric columns beside the text, and the buckets the text is hashed into.
const NUMBERS: usize = 16;
const BUCKETS: usize = 2_048;

/// Rounds of each measurement, of which the median is kept.
pub(crate) const ROUNDS: usize = 3;

/// Times the ML steps a run takes on a generated table of `rows` reviews of 20 words hashed
/// into 2,048 buckets beside 16 numbers and a two-class label — wide inputs, where these
/// costs matter: preparing the training table (canonical order, encoding, scaler) per row
/// and input; logistic regression trained with the catalogue's defaults (Adam, 256 rows per
/// step) per row and parameter of each step; scoring with the trained model, encoding
/// included, per row and parameter; and loading the ONNX model with its first call (tract
/// makes a plan for each batch size it is called with), once, as a fresh worker pays it,
/// then scoring with it, per row and byte of the file.
fn ml_kernels(rows: usize, epochs: usize) -> Result<MlKernels, String> {
    use flow_stdlib::ml::train;
    let fail = |e: flow_stdlib::MlError| e.to_string();
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut fields = vec![
        Field::new("label", DataType::Boolean, false),
        Field::new("text", DataType::Utf8, false),
    ];
    let texts: Vec<String> = (0..rows)
        .map(|_| {
            let words: Vec<String> = (0..WORDS)
                .map(|_| format!("w{}", next() % VOCABULARY))
                .collect();
            words.join(" ")
        })
        .collect();
    let mut columns: Vec<datafusion::arrow::array::ArrayRef> = vec![
        Arc::new(datafusion::arrow::array::BooleanArray::from_iter(
            (0..rows).map(|i| Some(i % 3 == 0)),
        )),
        Arc::new(StringArray::from(texts)),
    ];
    let mut features = vec![flow_stdlib::Feature::BagOfWords {
        column: "text".into(),
        buckets: BUCKETS,
        ngrams: 1,
    }];
    for c in 0..NUMBERS {
        let name = format!("x{c}");
        fields.push(Field::new(&name, DataType::Float64, false));
        columns.push(Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|_| (next() % 1000) as f64 / 1000.0),
        )));
        features.push(flow_stdlib::Feature::Numeric { column: name });
    }
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())?;
    let kind = flow_stdlib::models::find("logistic").ok_or("no `logistic` model kind")?;
    let mut spec = flow_stdlib::TrainSpec::new(kind);
    spec.label = Some("label".into());
    spec.features = features;
    spec.epochs = Some(epochs);
    let inputs = (BUCKETS + NUMBERS) as f64;
    let params = inputs + 1.0;
    let n = rows as f64;

    // Each figure is the median of a few rounds: one slow moment of a shared machine
    // would otherwise move every prediction that uses it.
    let (mut prepare_s, mut train_s, mut infer_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let prepared = train::prepare_batches(&spec, std::slice::from_ref(&batch)).map_err(fail)?;
        prepare_s.push(start.elapsed().as_secs_f64() / (n * inputs));
        let start = Instant::now();
        let model = train::fit_prepared(&spec, prepared);
        train_s.push(start.elapsed().as_secs_f64() / (n * epochs as f64 * params));
        let start = Instant::now();
        let scored = model.predict(&batch).map_err(fail)?;
        infer_s.push(start.elapsed().as_secs_f64() / (n * params));
        std::hint::black_box(scored);
    }
    let (prepare, train, infer) = (
        overheads::median(prepare_s),
        overheads::median(train_s),
        overheads::median(infer_s),
    );

    let start = Instant::now();
    let onnx = crate::ml::onnx::from_bytes(ONNX_MODEL.to_vec(), "the calibration model")?;
    let names = onnx
        .inputs
        .clone()
        .ok_or("the calibration model names no inputs")?;
    let pixels = RecordBatch::try_new(
        Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(n, DataType::Int64, false))
                .collect::<Vec<_>>(),
        )),
        names
            .iter()
            .map(|_| {
                Arc::new(Int64Array::from_iter_values(
                    (0..100).map(|_| (next() % 17) as i64),
                )) as datafusion::arrow::array::ArrayRef
            })
            .collect(),
    )
    .map_err(|e| e.to_string())?;
    let scored = onnx.predict(&pixels).map_err(fail)?;
    let onnx_load = start.elapsed().as_secs_f64();
    std::hint::black_box(scored);
    let calls = 10 * rows / 100;
    let start = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(onnx.predict(&pixels).map_err(fail)?);
    }
    let onnx_infer =
        start.elapsed().as_secs_f64() / (calls as f64 * 100.0 * ONNX_MODEL.len() as f64);
    Ok(MlKernels {
        prepare,
        train,
        infer,
        onnx_load,
        onnx_infer,
    })
}

/// Today's date, `YYYY-MM-DD`, from the system clock (UTC).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_calibration_measures_everything_and_round_trips() {
        let (profile, report) = calibrate(Effort::Quick, None, None).unwrap();
        assert!(report.len() >= 15, "{report:?}");
        let k = &profile.kernels;
        for v in [
            k.scan_s_per_byte,
            k.parquet_s_per_value,
            k.narrow_s_per_row,
            k.decimal_s_per_row,
            k.encode_s_per_byte,
            k.decode_s_per_byte,
            k.join_s_per_row,
            k.aggregate_s_per_row,
            k.sort_s_per_row,
            k.train_s_per_value,
            k.prepare_s_per_value,
            k.infer_s_per_value,
            k.onnx_infer_s_per_byte,
            k.write_s_per_byte,
        ] {
            assert!(v > 0.0 && v < 1e-3, "{v}");
        }
        assert!(
            k.onnx_load_s > 0.0 && k.onnx_load_s < 1.0,
            "{}",
            k.onnx_load_s
        );
        assert!(profile.direct.latency_s > 0.0 && profile.direct.latency_s < 0.01);
        let groups: Vec<f64> = k.aggregate_by_groups.iter().map(|(g, _)| *g).collect();
        assert_eq!(groups, [1_024.0, 32_768.0, 125_000.0, 500_000.0]);
        if let Some(e) = profile.compute.shared_efficiency {
            assert!(e > 0.0 && e <= 1.0, "{e}");
        }
        let text = to_toml(&profile).unwrap();
        let back = Profile::from_toml(&text).unwrap();
        assert_eq!(back, profile);
        assert!(profile.origin.contains("calibrate"));
    }

    #[test]
    fn dates_are_civil() {
        let d = today();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }
}
