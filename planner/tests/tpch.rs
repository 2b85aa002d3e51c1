//! Plans of TPC-H Q3 and Q18 (`bench/tpch/*.flow`) at scale factor 1 on both profiles,
//! snapshotted. The schemas and sizes are a fixture, so the test needs no data files.

use flow_compiler::arrow::datatypes::{DataType, Field, Schema};
use flow_compiler::{CsvOptions, Format, LoadRequest, ResolvedLoad, SchemaSource};
use flow_planner::{Options, Profile, SourceStats, Statistics};
use std::sync::Arc;

/// TPC-H at scale factor 1: the tables Q3 and Q18 read, as tpchgen-cli writes them.
struct Tpch;

fn table(name: &str) -> Option<(Vec<(&'static str, DataType)>, SourceStats)> {
    use DataType::{Date32, Float64, Int32, Int64, Utf8};
    let (columns, rows, bytes) = match name {
        "customer" => (
            vec![
                ("c_custkey", Int64),
                ("c_name", Utf8),
                ("c_address", Utf8),
                ("c_nationkey", Int32),
                ("c_phone", Utf8),
                ("c_acctbal", Float64),
                ("c_mktsegment", Utf8),
                ("c_comment", Utf8),
            ],
            150_000,
            12_000_000,
        ),
        "orders" => (
            vec![
                ("o_orderkey", Int64),
                ("o_custkey", Int64),
                ("o_orderstatus", Utf8),
                ("o_totalprice", Float64),
                ("o_orderdate", Date32),
                ("o_orderpriority", Utf8),
                ("o_clerk", Utf8),
                ("o_shippriority", Int32),
                ("o_comment", Utf8),
            ],
            1_500_000,
            55_000_000,
        ),
        // 231,672,087 bytes as tpchgen-cli 2 writes it (measured); the others are scaled.
        "lineitem" => (
            vec![
                ("l_orderkey", Int64),
                ("l_partkey", Int64),
                ("l_suppkey", Int64),
                ("l_linenumber", Int32),
                ("l_quantity", Float64),
                ("l_extendedprice", Float64),
                ("l_discount", Float64),
                ("l_tax", Float64),
                ("l_returnflag", Utf8),
                ("l_linestatus", Utf8),
                ("l_shipdate", Date32),
                ("l_commitdate", Date32),
                ("l_receiptdate", Date32),
                ("l_shipinstruct", Utf8),
                ("l_shipmode", Utf8),
                ("l_comment", Utf8),
            ],
            6_001_215,
            231_672_087,
        ),
        _ => return None,
    };
    Some((
        columns,
        SourceStats {
            bytes,
            rows,
            exact: true,
        },
    ))
}

fn name_of(path: &str) -> &str {
    path.rsplit('/')
        .next()
        .unwrap_or(path)
        .trim_end_matches(".parquet")
}

impl SchemaSource for Tpch {
    fn resolve(&self, request: &LoadRequest) -> Result<ResolvedLoad, String> {
        let (columns, _) = table(name_of(&request.path)).ok_or("not a TPC-H table")?;
        let fields: Vec<Field> = columns
            .into_iter()
            .map(|(n, t)| Field::new(n, t, false))
            .collect();
        Ok(ResolvedLoad {
            schema: Arc::new(Schema::new(fields)),
            format: Format::Parquet,
            files: vec![format!("/tpch/{}", request.path)],
        })
    }
}

impl Statistics for Tpch {
    fn source(&self, load: &ResolvedLoad, _csv: &CsvOptions) -> Option<SourceStats> {
        table(name_of(&load.files[0])).map(|(_, s)| s)
    }

    fn model_bytes(&self, _path: &str) -> Option<u64> {
        None
    }
}

fn plan(query: &str, profile: &str) -> String {
    let path = format!("{}/../bench/tpch/{query}.flow", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let parsed = flow_lang::parse(&text);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let compiled = flow_compiler::compile(&parsed.program, &Tpch);
    assert!(
        !flow_lang::diagnostic::has_errors(&compiled.diagnostics),
        "{:?}",
        compiled.diagnostics
    );
    let profile = Profile::builtin(profile).unwrap();
    let plan = flow_planner::plan(&compiled.dag, &Tpch, &profile, &Options::default()).unwrap();
    plan.to_text()
}

#[test]
fn q3_plans() {
    insta::assert_snapshot!("q3_aws", plan("q3", "aws"));
    insta::assert_snapshot!("q3_local", plan("q3", "local"));
}

#[test]
fn q18_plans() {
    insta::assert_snapshot!("q18_aws", plan("q18", "aws"));
    insta::assert_snapshot!("q18_local", plan("q18", "local"));
}
