//! The `config { ... }` block and the `with { ... }` planner hints: which keys exist, what
//! values they take, and the checked result.

use crate::dag::Hints;
use flow_lang::ast::{Expr, ExprKind, Literal, Object};
use flow_lang::diagnostic::suggest::closest;
use flow_lang::{Code, Diagnostic};

/// Run settings from the `config` block (CLI flags override them later).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub target: Option<String>,
    pub objective: Option<String>,
    pub budget_usd: Option<f64>,
    pub deadline_s: Option<f64>,
    pub workers: Option<u32>,
    pub memory_mb: Option<u32>,
    pub region: Option<String>,
    pub bucket: Option<String>,
}

/// A key of `config { ... }` or of `with { ... }` hints, documented for `flowc explain` and
/// editors.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    /// What values it takes.
    pub values: &'static str,
    pub doc: &'static str,
}

pub const CONFIG_KEYS: &[Key] = &[
    Key {
        name: "target",
        values: "\"local\" | \"lambda\"",
        doc: "where the pipeline runs: worker processes on this machine, or AWS Lambda",
    },
    Key {
        name: "objective",
        values: "\"latency\" | \"cost\"",
        doc: "what the planner optimises: the run's time, or its price",
    },
    Key {
        name: "budget_usd",
        values: "a positive number",
        doc: "the fastest plan that costs at most this many dollars",
    },
    Key {
        name: "deadline_s",
        values: "a positive number",
        doc: "the cheapest plan that finishes within this many seconds",
    },
    Key {
        name: "workers",
        values: "an integer from 1 to 10000",
        doc: "the most functions any stage may run on",
    },
    Key {
        name: "memory_mb",
        values: "an integer from 128 to 10240",
        doc: "the memory of every function, in MB (the planner chooses when left out)",
    },
    Key {
        name: "region",
        values: "a string",
        doc: "the AWS region of a `lambda` run",
    },
    Key {
        name: "bucket",
        values: "a string",
        doc: "the S3 bucket a `lambda` run exchanges data through",
    },
];

pub const HINT_KEYS: &[Key] = &[
    Key {
        name: "workers",
        values: "an integer from 1 to 10000",
        doc: "how many functions run this step",
    },
    Key {
        name: "memory_mb",
        values: "an integer from 128 to 10240",
        doc: "the memory of each function that runs this step, in MB",
    },
    Key {
        name: "channel",
        values: "\"direct\" | \"storage\"",
        doc: "how this step's output reaches the next functions: direct TCP, or a storage hop",
    },
];

fn as_str(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Literal(Literal::String(s)) => Some(s),
        _ => None,
    }
}

fn as_int(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Literal(Literal::Int(i)) => Some(*i),
        _ => None,
    }
}

fn as_number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Literal(Literal::Int(i)) => Some(*i as f64),
        ExprKind::Literal(Literal::Float(f)) => Some(*f),
        _ => None,
    }
}

fn choice(e: &Expr, options: &[&str], code: Code, key: &str) -> Result<String, Diagnostic> {
    let list = options
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect::<Vec<_>>()
        .join(" or ");
    match as_str(e) {
        Some(s) if options.contains(&s) => Ok(s.to_string()),
        Some(s) => {
            let diagnostic = Diagnostic::error(
                code,
                format!("`{key}` cannot be \"{s}\""),
                e.span,
                format!("expected {list}"),
            );
            Err(match closest(s, options.iter().copied()) {
                Some(close) => diagnostic
                    .with_help(format!("did you mean `{close}`?"))
                    .with_fix(e.span, flow_lang::format::quote(close)),
                None => diagnostic,
            })
        }
        None => Err(Diagnostic::error(
            code,
            format!("`{key}` takes a string"),
            e.span,
            format!("expected {list}"),
        )),
    }
}

fn positive_int(e: &Expr, code: Code, key: &str, min: i64, max: i64) -> Result<u32, Diagnostic> {
    match as_int(e) {
        Some(i) if (min..=max).contains(&i) => Ok(i as u32),
        _ => Err(Diagnostic::error(
            code,
            format!("`{key}` takes an integer from {min} to {max}"),
            e.span,
            format!("expected an integer from {min} to {max}"),
        )),
    }
}

fn positive_number(e: &Expr, code: Code, key: &str) -> Result<f64, Diagnostic> {
    match as_number(e) {
        Some(f) if f > 0.0 && f.is_finite() => Ok(f),
        _ => Err(Diagnostic::error(
            code,
            format!("`{key}` takes a positive number"),
            e.span,
            "expected a positive number",
        )),
    }
}

fn unknown_key(code: Code, what: &str, key: &flow_lang::ast::Ident, known: &[Key]) -> Diagnostic {
    let names = known.iter().map(|k| k.name);
    Diagnostic::error(
        code,
        format!("unknown {what} `{}`", key.name),
        key.span,
        format!("not a {what}"),
    )
    .suggesting(&key.name, names.clone(), || {
        format!("known {what}s: {}", names.collect::<Vec<_>>().join(", "))
    })
}

pub fn config(object: &Object, diagnostics: &mut Vec<Diagnostic>) -> Settings {
    let mut s = Settings::default();
    let mut seen: Vec<&str> = Vec::new();
    for entry in &object.entries {
        let key = entry.key.name.as_str();
        if seen.contains(&key) {
            diagnostics.push(Diagnostic::error(
                Code::E0015,
                format!("`{key}` is set twice"),
                entry.key.span,
                "second setting",
            ));
            continue;
        }
        seen.push(key);
        let v = &entry.value;
        let result = match key {
            "target" => {
                choice(v, &["local", "lambda"], Code::E0015, key).map(|x| s.target = Some(x))
            }
            "objective" => {
                choice(v, &["latency", "cost"], Code::E0015, key).map(|x| s.objective = Some(x))
            }
            "budget_usd" => positive_number(v, Code::E0015, key).map(|x| s.budget_usd = Some(x)),
            "deadline_s" => positive_number(v, Code::E0015, key).map(|x| s.deadline_s = Some(x)),
            "workers" => positive_int(v, Code::E0015, key, 1, 10_000).map(|x| s.workers = Some(x)),
            "memory_mb" => {
                positive_int(v, Code::E0015, key, 128, 10_240).map(|x| s.memory_mb = Some(x))
            }
            "region" | "bucket" => match as_str(v) {
                Some(text) => {
                    if key == "region" {
                        s.region = Some(text.to_string());
                    } else {
                        s.bucket = Some(text.to_string());
                    }
                    Ok(())
                }
                None => Err(Diagnostic::error(
                    Code::E0015,
                    format!("`{key}` takes a string"),
                    v.span,
                    "expected a string",
                )),
            },
            _ => Err(unknown_key(
                Code::E0015,
                "config key",
                &entry.key,
                CONFIG_KEYS,
            )),
        };
        if let Err(d) = result {
            diagnostics.push(d);
        }
    }
    s
}

pub fn hints(object: &Object, diagnostics: &mut Vec<Diagnostic>) -> Hints {
    let mut h = Hints::default();
    for entry in &object.entries {
        let v = &entry.value;
        let key = entry.key.name.as_str();
        let result = match key {
            "workers" => positive_int(v, Code::E0014, key, 1, 10_000).map(|x| h.workers = Some(x)),
            "memory_mb" => {
                positive_int(v, Code::E0014, key, 128, 10_240).map(|x| h.memory_mb = Some(x))
            }
            "channel" => {
                choice(v, &["direct", "storage"], Code::E0014, key).map(|x| h.channel = Some(x))
            }
            _ => Err(unknown_key(Code::E0014, "hint", &entry.key, HINT_KEYS)),
        };
        if let Err(d) = result {
            diagnostics.push(d);
        }
    }
    h
}

/// Merges hints of several steps of one node; the later step wins.
pub fn merge(into: &mut Hints, from: Hints) {
    into.workers = from.workers.or(into.workers);
    into.memory_mb = from.memory_mb.or(into.memory_mb);
    into.channel = from.channel.or(into.channel.take());
}
