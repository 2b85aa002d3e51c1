//! Hover and completion on a 2,000-line program, the way an editor asks: after each keystroke
//! the document has a new version, so the answer includes checking the whole program again.
//! Prints p50/p95 over 100 edits of each kind, then criterion's means.

#[path = "../tests/fixture/mod.rs"]
mod fixture;

use criterion::{Criterion, criterion_group, criterion_main};
use lsp_server::{Message, Notification, Request, RequestId};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A program of about 2,000 lines over the examples' data: blocks of load, filter, derive,
/// join, select and show.
fn program() -> String {
    let mut text = String::from(
        "let orders = load \"data/orders.csv\"\nlet customers = load \"data/customers.csv\"\n",
    );
    let mut i = 0;
    while text.lines().count() < 2000 {
        text.push_str(&format!(
            "let t{i} = orders\n  | filter amount > {i}\n  | derive x{i} = amount * 2\n  | join left customers on customer_id\n  | select order_id, customer_id, amount, x{i}, name\nshow t{i} | take 1\n"
        ));
        i += 1;
    }
    text
}

struct Session<'e> {
    server: flow_lsp::Server<'e>,
    uri: String,
    version: i32,
    text: String,
}

impl Session<'_> {
    fn change(&mut self, text: String) {
        self.version += 1;
        self.text = text;
        self.server.handle(Message::Notification(Notification::new(
            "textDocument/didChange".into(),
            json!({
                "textDocument": { "uri": self.uri, "version": self.version },
                "contentChanges": [{ "text": self.text }]
            }),
        )));
    }

    fn ask(&mut self, method: &str, line: usize, character: usize) -> Value {
        let out = self.server.handle(Message::Request(Request {
            id: RequestId::from(1),
            method: method.into(),
            params: json!({
                "textDocument": { "uri": self.uri },
                "position": { "line": line, "character": character }
            }),
        }));
        match out.into_iter().next() {
            Some(Message::Response(r)) => r.response_result.expect("an answer"),
            _ => panic!("no response"),
        }
    }
}

fn session(environment: &fixture::Fixture) -> Session<'_> {
    let uri = format!("file://{}/bench.flow", fixture::examples().display());
    let text = program();
    let mut server = flow_lsp::Server::new(environment);
    server.handle(Message::Request(Request {
        id: RequestId::from(0),
        method: "initialize".into(),
        params: json!({ "capabilities": {} }),
    }));
    server.handle(Message::Notification(Notification::new(
        "textDocument/didOpen".into(),
        json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": text } }),
    )));
    Session {
        server,
        uri,
        version: 1,
        text,
    }
}

/// Hover on a column of the last block, after an edit of the first line.
fn hover_after_edit(s: &mut Session<'_>, n: usize) -> Value {
    let lines = s.text.lines().count();
    let edited = s
        .text
        .replacen("amount > 0\n", &format!("amount > {}\n", n % 7), 1);
    s.change(edited);
    s.ask("textDocument/hover", lines - 5, 14)
}

/// Completion while typing a step at the end (the statement does not parse, so the columns
/// come from checking the text before the last `|`).
fn completion_while_typing(s: &mut Session<'_>, n: usize) -> Value {
    let base = program();
    let typed = format!("{base}show t0 | filter amount > {n} | derive y = ");
    let line = typed.lines().count() - 1;
    let character = typed.lines().last().unwrap().len();
    s.change(typed);
    s.ask("textDocument/completion", line, character)
}

fn percentiles(name: &str, mut run: impl FnMut(usize)) {
    let mut times: Vec<Duration> = (0..100)
        .map(|n| {
            let started = Instant::now();
            run(n);
            started.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{name}: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (100 edits)",
        times[49].as_secs_f64() * 1e3,
        times[94].as_secs_f64() * 1e3,
        times[99].as_secs_f64() * 1e3
    );
}

fn benches(c: &mut Criterion) {
    let environment = fixture::Fixture;
    let mut s = session(&environment);
    assert!(
        hover_after_edit(&mut s, 1)["contents"]["value"]
            .as_str()
            .is_some_and(|v| v.contains("amount"))
    );
    let items = completion_while_typing(&mut s, 1);
    assert!(
        items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["label"] == "amount")
    );

    percentiles("hover after an edit, 2,000 lines", |n| {
        hover_after_edit(&mut s, n);
    });
    percentiles("completion while typing, 2,000 lines", |n| {
        completion_while_typing(&mut s, n);
    });

    let mut group = c.benchmark_group("lsp_2000_lines");
    group.sample_size(20);
    let mut n = 0;
    group.bench_function("hover_after_edit", |b| {
        b.iter(|| {
            n += 1;
            hover_after_edit(&mut s, n)
        })
    });
    group.bench_function("completion_while_typing", |b| {
        b.iter(|| {
            n += 1;
            completion_while_typing(&mut s, n)
        })
    });
    group.bench_function("hover_same_version", |b| {
        let lines = s.text.lines().count();
        b.iter(|| s.ask("textDocument/hover", lines - 5, 14))
    });
    group.finish();
}

criterion_group!(lsp, benches);
criterion_main!(lsp);
