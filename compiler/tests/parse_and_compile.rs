//! `parse_and_compile` (checking while parsing, as `flowc check` does) gives the same answer as
//! `parse` followed by `compile`, on good programs, on programs with check errors and on
//! programs with syntax errors.

use flow_compiler::arrow::datatypes::{DataType, Field, Schema};
use flow_compiler::{Format, LoadRequest, ResolvedLoad, SchemaSource};
use std::sync::Arc;

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

fn source() -> Fixed {
    Fixed(Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("kind", DataType::Utf8, true),
    ])))
}

fn program(bindings: usize) -> String {
    let mut src = String::from("let t0 = load \"a.csv\"\n");
    for i in 1..bindings {
        src.push_str(&format!(
            "let t{i} = t{} | filter amount > {i} | derive amount = amount * 2, tag = lower(kind)\n",
            i - 1
        ));
    }
    src.push_str(&format!("show t{}\n", bindings - 1));
    src
}

#[test]
fn the_answer_is_the_same_as_parse_then_compile() {
    let broken_check = program(50).replace("let t7 = t6", "let t7 = nowhere");
    let broken_syntax = program(50).replace("let t9 = t8 | filter", "let t9 = t8 | filter (");
    for src in [program(800), broken_check, broken_syntax, String::new()] {
        let parsed = flow_lang::parse(&src);
        let compiled = flow_compiler::compile(&parsed.program, &source());
        let (streamed, streamed_compiled) = flow_compiler::parse_and_compile(&src, &source());
        assert_eq!(streamed.program, parsed.program);
        assert_eq!(streamed.diagnostics, parsed.diagnostics);
        if parsed.diagnostics.is_empty() {
            assert_eq!(streamed_compiled.diagnostics, compiled.diagnostics);
            assert_eq!(
                streamed_compiled.dag.graph.node_count(),
                compiled.dag.graph.node_count()
            );
        }
    }
}
