//! Parse + check of a generated 10,000-line program (target: under 100 ms), the way `flowc
//! check` does it: checking each statement while the next ones are parsed.

use criterion::{Criterion, criterion_group, criterion_main};
use flow_compiler::arrow::datatypes::{DataType, Field, Schema};
use flow_compiler::{Format, LoadRequest, ResolvedLoad, SchemaSource};
use std::hint::black_box;
use std::sync::Arc;

// The allocator `flowc` ships with, so the figure is the one users get.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Fixed(Arc<Schema>);

impl SchemaSource for Fixed {
    fn resolve(&self, _: &LoadRequest) -> Result<ResolvedLoad, String> {
        Ok(ResolvedLoad {
            schema: self.0.clone(),
            format: Format::Csv,
            files: vec!["/dev/null".into()],
        })
    }
}

/// Five-line bindings in chains of five over two sources, each chain shown at its end.
pub fn program(lines: usize) -> String {
    let mut src =
        String::from("let users = load \"users.csv\"\nlet orders = load \"orders.csv\"\n");
    let mut previous = "orders".to_string();
    let mut i = 0;
    while src.lines().count() < lines {
        let name = format!("t{i}");
        src.push_str(&format!(
            "let {name} = {previous}\n  | filter amount > {i} and kind != \"x{i}\"\n  | derive amount = amount * 1.01 + {i}, tag = lower(kind)\n  | select id, user_id, amount, kind\n  | take {n}\n",
            n = 1000 + i
        ));
        i += 1;
        if i % 5 == 0 {
            src.push_str(&format!("show {name} | join users on user_id | group country {{ n = count(), s = sum({name}.amount) }}\n"));
            previous = "orders".to_string();
        } else {
            previous = name;
        }
    }
    src
}

fn bench(c: &mut Criterion) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("user_id", DataType::Int64, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("kind", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    let source = Fixed(schema);
    let src = program(10_000);
    let parsed = flow_lang::parse(&src);
    assert!(parsed.diagnostics.is_empty());
    let compiled = flow_compiler::compile(&parsed.program, &source);
    assert!(
        !flow_lang::diagnostic::has_errors(&compiled.diagnostics),
        "{:?}",
        compiled.diagnostics.first()
    );
    c.bench_function("parse_check_10k_lines", |b| {
        b.iter(|| {
            let (_, compiled) = flow_compiler::parse_and_compile(black_box(&src), &source);
            black_box(compiled.dag.graph.node_count())
        })
    });
    c.bench_function("parse_10k_lines", |b| {
        b.iter(|| black_box(flow_lang::parse(black_box(&src)).program.statements.len()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
