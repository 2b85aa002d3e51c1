//! Every relational construct of the language, run through flow and compared with the same
//! query in DataFusion SQL, on generated data (200,000 facts joined with 1,200 dimensions).

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use flow_runtime::{FileSchemaSource, RunOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FACTS: usize = 200_000;

fn data_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flow-equivalence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut facts = String::from("id,k,g,x,y,note\n");
        let mut state: u64 = 7;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for id in 0..FACTS {
            let k = next() % 1300;
            let g = next() % 50;
            let x = (next() % 100_000) as f64 / 1000.0;
            let y = next() % 1000;
            let note = if next() % 10 == 0 {
                String::new()
            } else {
                format!("n{}", next() % 7)
            };
            facts.push_str(&format!("{id},{k},g{g},{x},{y},{note}\n"));
        }
        std::fs::write(dir.join("facts.csv"), facts).unwrap();
        let mut dims = String::from("k,name,weight\n");
        for k in 100..1300 {
            dims.push_str(&format!("{k},name{},{}\n", k % 37, (k % 11) as f64 / 2.0));
        }
        std::fs::write(dir.join("dims.csv"), dims).unwrap();
        dir
    })
}

fn normalise(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        for r in 0..b.num_rows() {
            let cells: Vec<String> = b
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        return "null".into();
                    }
                    let s = array_value_to_string(c, r).unwrap();
                    match s.parse::<f64>() {
                        Ok(f) if s.contains('.') => format!("{:.6e}", f),
                        _ => s,
                    }
                })
                .collect();
            rows.push(cells.join("|"));
        }
    }
    rows
}

fn flow(program: &str, partitions: usize) -> Vec<RecordBatch> {
    let dir = data_dir();
    let parsed = flow_lang::parse(program);
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let compiled = flow_compiler::compile(&parsed.program, &FileSchemaSource::new(dir));
    assert!(
        !flow_lang::diagnostic::has_errors(&compiled.diagnostics),
        "{program}\n{:#?}",
        compiled.diagnostics
    );
    flow_runtime::collect(
        &compiled,
        &RunOptions {
            partitions: Some(partitions),
            cluster: None,
            watch: None,
        },
        0,
    )
    .unwrap_or_else(|d| panic!("{program}: {d:?}"))
}

fn sql(query: &str) -> Vec<RecordBatch> {
    let dir = data_dir();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let ctx = SessionContext::new();
        ctx.register_csv(
            "facts",
            dir.join("facts.csv").to_str().unwrap(),
            CsvReadOptions::new(),
        )
        .await
        .unwrap();
        ctx.register_csv(
            "dims",
            dir.join("dims.csv").to_str().unwrap(),
            CsvReadOptions::new(),
        )
        .await
        .unwrap();
        ctx.sql(query).await.unwrap().collect().await.unwrap()
    })
}

const PRELUDE: &str = "let facts = load \"facts.csv\"\nlet dims = load \"dims.csv\"\n";

/// Same rows in any order.
fn same_rows(body: &str, query: &str) {
    let program = format!("{PRELUDE}{body}\n");
    let mut a = normalise(&flow(&program, 2));
    let mut b = normalise(&sql(query));
    assert!(!b.is_empty() || a.is_empty());
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len(), "row counts differ for {body}");
    assert_eq!(a, b, "{body}");
}

/// Same rows in the same order.
fn same_ordered(body: &str, query: &str) {
    let program = format!("{PRELUDE}{body}\n");
    assert_eq!(
        normalise(&flow(&program, 2)),
        normalise(&sql(query)),
        "{body}"
    );
}

#[test]
fn filter() {
    same_rows(
        "show facts | filter x > 50.0 and g != \"g1\" or y % 7 == 0",
        "select * from facts where x > 50.0 and g <> 'g1' or y % 7 = 0",
    );
}

#[test]
fn select_and_derive() {
    same_rows(
        "show facts | select id, z = x * 2 + y, g | derive w = z - 1, z = z / 2",
        "select id, (x * 2 + y) / 2 as z, g, (x * 2 + y) - 1 as w from facts",
    );
}

#[test]
fn derive_reads_what_it_wrote_before() {
    same_rows(
        "show facts | select id, x | derive w = x - 1, v = w * 2, x = x + w",
        "select id, x + (x - 1) as x, x - 1 as w, (x - 1) * 2 as v from facts",
    );
}

#[test]
fn expressions() {
    same_rows(
        "show facts | select id, big = if y > 500 then \"big\" else \"small\", inl = k in [1, 2, 3], lk = note like \"n1%\", nn = note is null, c = y as float64, co = coalesce(note, \"none\"), up = upper(g), ab = abs(x - 50.0)",
        "select id, case when y > 500 then 'big' else 'small' end as big, k in (1, 2, 3) as inl, note like 'n1%' as lk, note is null as nn, cast(y as double) as c, coalesce(note, 'none') as co, upper(g) as up, abs(x - 50.0) as ab from facts",
    );
}

#[test]
fn inner_join_on_keys() {
    same_rows(
        "show facts | join dims on k",
        "select f.id, f.k, f.g, f.x, f.y, f.note, d.name, d.weight from facts f join dims d on f.k = d.k",
    );
}

#[test]
fn left_right_full_joins() {
    same_rows(
        "show facts | join left dims on k",
        "select f.id, f.k, f.g, f.x, f.y, f.note, d.name, d.weight from facts f left join dims d on f.k = d.k",
    );
    same_rows(
        "show facts | filter y < 100 | join right dims on k",
        "select f.id, f.g, f.x, f.y, f.note, d.k, d.name, d.weight from (select * from facts where y < 100) f right join dims d on f.k = d.k",
    );
    same_rows(
        "show facts | filter y < 100 | join full dims on k",
        "select f.id, coalesce(f.k, d.k) as k, f.g, f.x, f.y, f.note, d.name, d.weight from (select * from facts where y < 100) f full join dims d on f.k = d.k",
    );
}

#[test]
fn semi_and_anti_joins() {
    same_rows(
        "show facts | join semi dims on k",
        "select * from facts f where f.k in (select k from dims)",
    );
    same_rows(
        "show facts | join anti dims on k",
        "select * from facts f where f.k not in (select k from dims)",
    );
}

#[test]
fn join_on_equalities() {
    same_rows(
        "show facts | join dims on facts.k == dims.k and facts.y == dims.k | select id, facts.k, name",
        "select f.id, f.k, d.name from facts f join dims d on f.k = d.k and f.y = d.k",
    );
}

#[test]
fn group_with_every_aggregate() {
    same_rows(
        "show facts | group g { n = count(), s = sum(x), a = avg(y), lo = min(x), hi = max(y), ks = count_distinct(k), sd = stddev(x) }",
        "select g, count(*) as n, sum(x) as s, avg(y) as a, min(x) as lo, max(y) as hi, count(distinct k) as ks, stddev(x) as sd from facts group by g",
    );
    same_rows(
        "show facts | group { n = count(), s = sum(y) }",
        "select count(*) as n, sum(y) as s from facts",
    );
    same_rows(
        "show facts | join dims on k | group name, bucket = y % 3 { n = count() }",
        "select d.name, f.y % 3 as bucket, count(*) as n from facts f join dims d on f.k = d.k group by d.name, f.y % 3",
    );
}

#[test]
fn sort_and_take() {
    same_ordered(
        "show facts | sort x desc, id | take 100",
        "select * from facts order by x desc nulls last, id limit 100",
    );
    same_ordered(
        "show facts | sort note, id desc | take 50",
        "select * from facts order by note nulls last, id desc limit 50",
    );
}

#[test]
fn distinct() {
    same_rows(
        "show facts | select g, k | distinct",
        "select distinct g, k from facts",
    );
    let program = format!("{PRELUDE}show facts | distinct g\n");
    assert_eq!(normalise(&flow(&program, 2)).len(), 50);
}

#[test]
fn union() {
    same_rows(
        "show (facts | select k, w = y) | union (dims | select w = k, k)",
        "select k, y as w from facts union all select k, k as w from dims",
    );
}

#[test]
fn sql_as_source_and_step() {
    same_rows(
        "show sql \"select g, count(*) as n from facts where y > 10 group by g\"",
        "select g, count(*) as n from facts where y > 10 group by g",
    );
    same_rows(
        "show facts | filter y > 900 | sql \"select id, name from input join dims on input.k = dims.k\"",
        "select f.id, d.name from facts f join dims d on f.k = d.k where f.y > 900",
    );
}

#[test]
fn split_is_independent_of_partitioning() {
    let program = format!("{PRELUDE}let a, b = split facts 0.3 seed 11\nshow a\nshow b\n");
    let mut one = normalise(&flow(&program, 1));
    let mut four = normalise(&flow(&program, 4));
    one.sort();
    four.sort();
    assert_eq!(one, four);
    let share = one.len() as f64 / FACTS as f64;
    assert!((0.28..0.32).contains(&share), "{share}");
}
