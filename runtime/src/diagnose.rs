//! Turning a failure while reading data into a message that names the file, the row and the
//! column. The engine's own error does not know which file it came from, so on that (rare)
//! path the sources are re-read one file at a time to find the culprit.

use arrow::csv::ReaderBuilder;
use flow_compiler::{Dag, Format, NodeId, NodeKind};
use flow_lang::{Code, Diagnostic};
use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;

pub use flow_compiler::clean_error as clean;

/// Finds the first file among `sources` that does not read under its schema.
pub fn bad_data(dag: &Dag, sources: &[NodeId]) -> Option<Diagnostic> {
    for source in sources {
        let node = dag.node(*source);
        let NodeKind::Source { load, csv, .. } = &node.kind else {
            continue;
        };
        for file in &load.files {
            let Ok(handle) = File::open(file) else {
                continue;
            };
            let result = match load.format {
                Format::Csv => drain(
                    ReaderBuilder::new(load.schema.clone())
                        .with_header(csv.header)
                        .with_delimiter(csv.delimiter)
                        .build(BufReader::new(handle)),
                ),
                Format::Json => drain(
                    arrow::json::ReaderBuilder::new(load.schema.clone())
                        .build(BufReader::new(handle)),
                ),
                _ => Ok(()),
            };
            if let Err(message) = result {
                let message = describe(&clean(&message), &load.schema);
                return Some(
                    Diagnostic::error(
                        Code::E0027,
                        format!("bad data in {file}: {message}"),
                        node.span,
                        "while reading this source",
                    )
                    .with_help(
                        "fix the file, or declare the column's real type with `schema { ... }`",
                    ),
                );
            }
        }
    }
    None
}

/// Reads every batch, keeping only the first error.
fn drain<R, B>(reader: Result<R, arrow::error::ArrowError>) -> Result<(), String>
where
    R: Iterator<Item = Result<B, arrow::error::ArrowError>>,
{
    reader
        .and_then(|mut r| r.try_for_each(|b| b.map(|_| ())))
        .map_err(|e| e.to_string())
}

/// Replaces "column 3" in the reader's message with the column's name.
fn describe(message: &str, schema: &Arc<arrow::datatypes::Schema>) -> String {
    let Some(at) = message.find("for column ") else {
        return message.to_string();
    };
    let rest = &message[at + "for column ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let Ok(index) = digits.parse::<usize>() else {
        return message.to_string();
    };
    let Some(field) = schema.fields().get(index) else {
        return message.to_string();
    };
    let message = message.split(". Row data").next().unwrap_or(message);
    let line = message
        .rsplit("at line ")
        .next()
        .filter(|_| message.contains("at line "))
        .map(|l| format!(", row {l}"))
        .unwrap_or_default();
    let before = &message[..at];
    format!("{before}in column `{}`{line}", field.name())
}
