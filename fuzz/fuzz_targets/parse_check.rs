//! Fuzzes the front end: any bytes through decode, parse, format and check must come back as
//! diagnostics, never as a panic, a stack overflow or a hang.
#![no_main]

use flow_compiler::{Format, LoadRequest, ResolvedLoad, SchemaSource};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// Every `load` is a small CSV table, so checking goes deep without touching files.
struct FakeSource;

impl SchemaSource for FakeSource {
    fn resolve(&self, request: &LoadRequest) -> Result<ResolvedLoad, String> {
        if request.path.contains("missing") {
            return Err("does not exist".into());
        }
        let schema = request.declared.clone().unwrap_or_else(|| {
            use flow_compiler::arrow::datatypes::{DataType, Field, Schema};
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
                Field::new("c", DataType::Float64, true),
                Field::new("d", DataType::Date32, true),
            ]))
        });
        Ok(ResolvedLoad { schema, format: request.format.unwrap_or(Format::Csv), files: vec!["/dev/null".into()] })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = flow_lang::decode(data) else { return };
    let parsed = flow_lang::parse(text);
    if parsed.diagnostics.iter().any(|d| d.is_error()) {
        return;
    }
    let formatted = flow_lang::format::format_program(text, &parsed.program);
    assert!(flow_lang::parse(&formatted).diagnostics.iter().all(|d| !d.is_error()), "formatted text must parse");
    let _ = flow_compiler::compile(&parsed.program, &FakeSource);
});
