//! The server survives any text: random edits of the example programs go through its
//! handlers (as incremental changes, the way editors send them), and after each one every
//! feature is asked something at a random place. No handler may panic — a caught panic
//! would come back as an internal error, which this test refuses too.

mod fixture;

use lsp_server::{Message, Notification, Request, RequestId};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Bits of flow and of noise that edits insert.
const FRAGMENTS: &[&str] = &[
    "|",
    " | filter ",
    " | join ",
    " left ",
    " on ",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "\\",
    "x",
    "amount",
    "orders",
    ".",
    ",",
    "=",
    "==",
    " and ",
    "train logistic(",
    "label = ",
    "features = [",
    " with { workers = 2 }",
    "let ",
    "show ",
    "save ",
    "\n",
    "#",
    "é",
    "😀",
    "0.5",
    "-",
    "select ",
    "group k { n = count() }",
    "infer ",
    "sql \"select 1\"",
    "\u{0}",
];

#[derive(Debug, Clone)]
struct Edit {
    at: f64,
    delete: usize,
    insert: String,
    ask_at: f64,
}

fn edit() -> impl Strategy<Value = Edit> {
    (
        0.0..=1.0f64,
        0usize..12,
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..4),
        0.0..=1.0f64,
    )
        .prop_map(|(at, delete, insert, ask_at)| Edit {
            at,
            delete,
            insert: insert.concat(),
            ask_at,
        })
}

/// The LSP position (line, UTF-16 column) of a char boundary.
fn position(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let column: usize = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .map(char::len_utf16)
        .sum();
    json!({ "line": line, "character": column })
}

fn boundary(text: &str, fraction: f64) -> usize {
    let mut at = ((text.len() as f64) * fraction) as usize;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn examples() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixture::examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "flow") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((format!("file://{}", path.display()), text));
        }
    }
    out.sort();
    out
}

fn request(server: &mut flow_lsp::Server<'_>, id: i32, method: &str, params: Value) {
    let out = server.handle(Message::Request(Request {
        id: RequestId::from(id),
        method: method.into(),
        params,
    }));
    for message in out {
        if let Message::Response(r) = message
            && let Err(e) = &r.response_result
        {
            // Requests about a place may fail politely (a refused rename); never internally.
            assert_ne!(e.code, -32603, "{method} failed: {}", e.message);
        }
    }
}

/// Refuses the error a caught panic leaves in the client's log.
fn no_failure(out: Vec<Message>) {
    for message in out {
        if let Message::Notification(n) = message {
            assert_ne!(n.method, "window/logMessage", "{}", n.params);
        }
    }
}

fn notify(server: &mut flow_lsp::Server<'_>, method: &str, params: Value) {
    no_failure(server.handle(Message::Notification(Notification::new(
        method.into(),
        params,
    ))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_of_the_examples_never_break_a_handler(
        which in 0usize..64,
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let corpus = examples();
        let (uri, mut text) = corpus[which % corpus.len()].clone();
        let environment = fixture::Fixture;
        let mut server = flow_lsp::Server::new(&environment);
        request(&mut server, 0, "initialize", json!({ "capabilities": {} }));
        notify(&mut server, "textDocument/didOpen", json!({
            "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": text }
        }));
        for (version, e) in edits.iter().enumerate() {
            let start = boundary(&text, e.at);
            let mut end = (start + e.delete).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            let range = json!({ "start": position(&text, start), "end": position(&text, end) });
            text.replace_range(start..end, &e.insert);
            notify(&mut server, "textDocument/didChange", json!({
                "textDocument": { "uri": uri, "version": version as i32 + 2 },
                "contentChanges": [{ "range": range, "text": e.insert }]
            }));
            no_failure(server.publish_pending());
            let at = position(&text, boundary(&text, e.ask_at));
            let doc = json!({ "uri": uri });
            let point = json!({ "textDocument": doc, "position": at });
            for method in [
                "textDocument/hover",
                "textDocument/completion",
                "textDocument/definition",
                "textDocument/prepareRename",
            ] {
                request(&mut server, 1, method, point.clone());
            }
            request(&mut server, 2, "textDocument/references", json!({
                "textDocument": doc, "position": at, "context": { "includeDeclaration": true }
            }));
            request(&mut server, 3, "textDocument/rename", json!({
                "textDocument": doc, "position": at, "newName": "renamed"
            }));
            request(&mut server, 4, "textDocument/codeAction", json!({
                "textDocument": doc, "range": { "start": at, "end": at }, "context": { "diagnostics": [] }
            }));
            for method in ["textDocument/documentSymbol", "textDocument/semanticTokens/full", "flow/plan"] {
                request(&mut server, 5, method, json!({ "textDocument": doc }));
            }
            request(&mut server, 6, "textDocument/formatting", json!({
                "textDocument": doc, "options": { "tabSize": 2, "insertSpaces": true }
            }));
        }
    }
}
