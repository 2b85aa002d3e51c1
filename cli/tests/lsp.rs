//! The language server over stdio, against the real `flowc lsp`: one test or more per feature.
//! Test sources mark the cursor with `$0`; responses are compared as snapshots, with the
//! repository's path replaced by `ROOT`.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> String {
    std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .unwrap()
        .display()
        .to_string()
}

/// A document in the examples folder, so its loads find the examples' data.
fn uri(name: &str) -> String {
    format!("file://{}/examples/{name}", root())
}

struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: i64,
    /// Notifications read while waiting for a response.
    notifications: Vec<Value>,
}

impl Client {
    fn start() -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowc"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("flowc lsp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut client = Client {
            child,
            stdin,
            stdout,
            next_id: 0,
            notifications: Vec::new(),
        };
        let init = client.request("initialize", json!({ "capabilities": {} }));
        assert!(init["result"]["capabilities"]["hoverProvider"] == json!(true));
        client.notify("initialized", json!({}));
        client
    }

    fn send_raw(&mut self, body: &[u8]) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        self.stdin.write_all(body).unwrap();
        self.stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        self.send_raw(message.to_string().as_bytes());
    }

    fn read(&mut self) -> Value {
        let mut length = None;
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "server closed its output"
            );
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                length = Some(v.parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; length.expect("a Content-Length header")];
        self.stdout.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        self.response(json!(id))
    }

    fn response(&mut self, id: Value) -> Value {
        loop {
            let message = self.read();
            if message.get("id") == Some(&id) && message.get("method").is_none() {
                return message;
            }
            self.notifications.push(message);
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// The next diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Value {
        let started = Instant::now();
        loop {
            if let Some(i) = self.notifications.iter().position(|n| {
                n["method"] == "textDocument/publishDiagnostics" && n["params"]["uri"] == uri
            }) {
                return self.notifications.remove(i)["params"]["diagnostics"].clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no diagnostics"
            );
            let message = self.read();
            self.notifications.push(message);
        }
    }

    fn open(&mut self, name: &str, text: &str) -> Value {
        let uri = uri(name);
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "flow", "version": 1, "text": text } }),
        );
        self.diagnostics(&uri)
    }

    fn at(&mut self, method: &str, name: &str, position: Value) -> Value {
        self.request(
            method,
            json!({ "textDocument": { "uri": uri(name) }, "position": position }),
        )
    }

    fn shutdown(mut self) {
        let answer = self.request("shutdown", Value::Null);
        assert_eq!(answer["result"], Value::Null);
        self.notify("exit", Value::Null);
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "a clean shutdown exits 0");
    }
}

/// The text without its `$0` marker and the marker's LSP position.
fn marked(text: &str) -> (String, Value) {
    let at = text.find("$0").expect("a $0 cursor marker");
    let before = &text[..at];
    let line = before.matches('\n').count();
    let character: usize = before
        .rsplit('\n')
        .next()
        .unwrap()
        .chars()
        .map(char::len_utf16)
        .sum();
    (
        text.replacen("$0", "", 1),
        json!({ "line": line, "character": character }),
    )
}

fn clean(value: &Value) -> String {
    serde_json::to_string_pretty(value)
        .unwrap()
        .replace(&root(), "ROOT")
}

/// Opens a marked document and asks `method` at the marker.
fn ask(client: &mut Client, name: &str, marked_text: &str, method: &str) -> Value {
    let (text, position) = marked(marked_text);
    client.open(name, &text);
    client.at(method, name, position)
}

fn hover_text(client: &mut Client, name: &str, marked_text: &str) -> String {
    let answer = ask(client, name, marked_text, "textDocument/hover");
    answer["result"]["contents"]["value"]
        .as_str()
        .unwrap_or("(no hover)")
        .to_string()
}

/// Completion labels, without the engine's hundreds of functions unless asked.
fn labels(client: &mut Client, name: &str, marked_text: &str, functions: bool) -> Vec<String> {
    let answer = ask(client, name, marked_text, "textDocument/completion");
    answer["result"]
        .as_array()
        .expect("a completion list")
        .iter()
        .filter(|item| functions || item["kind"] != json!(3))
        .map(|item| item["label"].as_str().unwrap().to_string())
        .collect()
}

const QUICKSTART: &str = "let orders = load \"data/orders.csv\"\n\nlet purchases = orders\n  | filter kind == \"purchase\" and amount > 100\n  | derive amount_with_tax = amount * 1.2\n\nshow purchases limit 10\n";

#[test]
fn diagnostics_are_published_on_open_updated_on_change_and_cleared_when_fixed() {
    let mut client = Client::start();
    let broken = QUICKSTART.replace("amount > 100", "amout > 100");
    let diagnostics = client.open("lsp_diagnostics.flow", &broken);
    insta::assert_snapshot!("diagnostics_on_open", clean(&diagnostics));

    // An incremental change fixing the typo clears the error (after the debounce).
    let (line, character) = (3, broken.lines().nth(3).unwrap().find("amout").unwrap());
    client.notify(
        "textDocument/didChange",
        json!({
            "textDocument": { "uri": uri("lsp_diagnostics.flow"), "version": 2 },
            "contentChanges": [{
                "range": { "start": { "line": line, "character": character },
                           "end": { "line": line, "character": character + 5 } },
                "text": "amount"
            }]
        }),
    );
    assert_eq!(client.diagnostics(&uri("lsp_diagnostics.flow")), json!([]));

    // An unused binding is a warning marked unnecessary.
    let unused = format!("{QUICKSTART}let spare = orders | take 1\n");
    let diagnostics = client.open("lsp_unused.flow", &unused);
    insta::assert_snapshot!("diagnostics_unused_binding", clean(&diagnostics));
    client.shutdown();
}

#[test]
fn a_document_that_does_not_parse_gets_diagnostics_and_completion() {
    let mut client = Client::start();
    let text = "let orders = load \"data/orders.csv\"\nlet big = orders | filter amount > | derive x = $0\nshow big\n";
    let (plain, _) = marked(text);
    let diagnostics = client.open("lsp_broken.flow", &plain);
    assert_eq!(diagnostics[0]["code"], "E0001", "{diagnostics}");
    let labels = labels(&mut client, "lsp_broken.flow", text, false);
    assert!(labels.contains(&"amount".to_string()), "{labels:?}");
    client.shutdown();
}

#[test]
fn hover_shows_the_schema_of_bindings_and_after_steps() {
    let mut client = Client::start();
    let on_binding = QUICKSTART.replacen("let purchases", "let purch$0ases", 1);
    insta::assert_snapshot!(
        "hover_binding",
        hover_text(&mut client, "lsp_hover.flow", &on_binding)
    );
    let on_step = QUICKSTART.replacen("| derive", "| der$0ive", 1);
    insta::assert_snapshot!(
        "hover_step",
        hover_text(&mut client, "lsp_hover.flow", &on_step)
    );
    // On a `|`: the table that flows into the next step.
    let on_pipe = QUICKSTART.replacen("  | derive", "  $0| derive", 1);
    let at_pipe = hover_text(&mut client, "lsp_hover.flow", &on_pipe);
    assert!(at_pipe.starts_with("here: table, 5 columns"), "{at_pipe}");
    let on_column = QUICKSTART.replacen("amount > 100", "amo$0unt > 100", 1);
    insta::assert_snapshot!(
        "hover_column",
        hover_text(&mut client, "lsp_hover.flow", &on_column)
    );
    client.shutdown();
}

#[test]
fn hover_documents_functions_model_kinds_arguments_keys_and_codes() {
    let mut client = Client::start();
    let program = "config { work$0ers = 4 }\nlet c = load \"data/customers.csv\"\nlet m = c | train logistic(label = churned, features = [tenure], epochs = 3)\nshow c | derive t = abs(tenure)\nsave m to \"out/m.model\"\n";
    let hovers: Vec<String> = [
        program.to_string(),
        program
            .replace("work$0ers", "workers")
            .replace("logistic", "logi$0stic"),
        program
            .replace("work$0ers", "workers")
            .replace("epochs", "epo$0chs"),
        program
            .replace("work$0ers", "workers")
            .replace("abs(", "a$0bs("),
        program
            .replace("work$0ers", "workers")
            .replace("abs(tenure)", "abs(tenur$0e_x)"),
    ]
    .iter()
    .map(|text| hover_text(&mut client, "lsp_docs.flow", text))
    .collect();
    insta::assert_snapshot!("hover_documentation", hovers.join("\n\n=====\n\n"));
    client.shutdown();
}

#[test]
fn completion_offers_steps_after_a_pipe_and_columns_in_scope() {
    let mut client = Client::start();
    let after_pipe = "let orders = load \"data/orders.csv\"\nshow orders | $0\n";
    insta::assert_snapshot!(
        "completion_steps",
        labels(&mut client, "lsp_complete.flow", after_pipe, false).join("\n")
    );
    let statement = labels(
        &mut client,
        "lsp_complete.flow",
        "let orders = load \"data/orders.csv\"\n$0\n",
        false,
    );
    assert_eq!(statement, ["config", "let", "save", "show"]);
    let in_filter = "let orders = load \"data/orders.csv\"\nshow orders | filter $0\n";
    let found = labels(&mut client, "lsp_complete.flow", in_filter, false);
    insta::assert_snapshot!("completion_columns", found.join("\n"));
    let with_functions = labels(&mut client, "lsp_complete.flow", in_filter, true);
    assert!(with_functions.contains(&"coalesce".to_string()));
    // Functions come with their signature.
    let (text, position) = marked(in_filter);
    client.open("lsp_complete.flow", &text);
    let answer = client.at("textDocument/completion", "lsp_complete.flow", position);
    let abs = answer["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "abs")
        .unwrap()
        .clone();
    assert_eq!(abs["detail"], "abs(numeric_expression)");
    client.shutdown();
}

#[test]
fn completion_after_a_join_qualifies_the_columns_both_sides_have() {
    let mut client = Client::start();
    let text = "let customers = load \"data/customers.csv\"\nlet orders = load \"data/orders.csv\"\nshow orders | join customers on customer_id | select $0\n";
    insta::assert_snapshot!(
        "completion_after_join",
        labels(&mut client, "lsp_join.flow", text, false).join("\n")
    );
    let qualified = "let customers = load \"data/customers.csv\"\nlet orders = load \"data/orders.csv\"\nshow orders | join customers on orders.customer_id == customers.$0\n";
    insta::assert_snapshot!(
        "completion_qualified",
        labels(&mut client, "lsp_join.flow", qualified, false).join("\n")
    );
    client.shutdown();
}

#[test]
fn completion_inside_train_offers_kinds_arguments_and_features() {
    let mut client = Client::start();
    let base = "let c = load \"data/customers.csv\"\nlet m = c | train ";
    let kinds = labels(&mut client, "lsp_train.flow", &format!("{base}$0"), false);
    assert_eq!(kinds, ["linear", "logistic", "softmax", "mlp", "kmeans"]);
    let arguments = labels(
        &mut client,
        "lsp_train.flow",
        &format!("{base}logistic(label = churned, $0"),
        false,
    );
    insta::assert_snapshot!("completion_train_arguments", arguments.join("\n"));
    let features = labels(
        &mut client,
        "lsp_train.flow",
        &format!("{base}logistic(label = churned, features = [$0"),
        false,
    );
    assert!(features.contains(&"tenure".to_string()), "{features:?}");
    let with_functions = labels(
        &mut client,
        "lsp_train.flow",
        &format!("{base}logistic(label = churned, features = [$0"),
        true,
    );
    assert!(with_functions.contains(&"bag_of_words".to_string()));
    client.shutdown();
}

#[test]
fn completion_offers_config_keys_hints_bound_names_and_paths() {
    let mut client = Client::start();
    let config = labels(&mut client, "lsp_keys.flow", "config { $0 }\n", false);
    assert_eq!(
        config,
        [
            "target",
            "objective",
            "budget_usd",
            "deadline_s",
            "workers",
            "memory_mb",
            "region",
            "bucket"
        ]
    );
    let hints = labels(
        &mut client,
        "lsp_keys.flow",
        "let o = load \"data/orders.csv\"\nshow o | filter amount > 1 with { $0 }\n",
        false,
    );
    assert_eq!(hints, ["workers", "memory_mb", "channel"]);
    let names = labels(
        &mut client,
        "lsp_keys.flow",
        "let o = load \"data/orders.csv\"\nlet p = o | take 3\nshow $0\n",
        false,
    );
    assert_eq!(names, ["load", "sql", "o", "p"]);
    let paths = labels(
        &mut client,
        "lsp_keys.flow",
        "let o = load \"data/ord$0\n",
        false,
    );
    assert!(paths.contains(&"orders.csv".to_string()), "{paths:?}");
    assert!(paths.contains(&"events/".to_string()), "{paths:?}");
    client.shutdown();
}

#[test]
fn definition_references_and_rename_of_a_binding() {
    let mut client = Client::start();
    let text = "let orders = load \"data/orders.csv\"\nlet big = ord$0ers | filter amount > 100\nshow big | join orders on order_id\n";
    let definition = ask(&mut client, "lsp_nav.flow", text, "textDocument/definition");
    insta::assert_snapshot!("definition", clean(&definition["result"]));
    let (plain, position) = marked(text);
    let references = client.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": uri("lsp_nav.flow") }, "position": position,
                "context": { "includeDeclaration": true } }),
    );
    assert_eq!(references["result"].as_array().unwrap().len(), 3);
    let rename = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri("lsp_nav.flow") }, "position": position, "newName": "sales" }),
    );
    insta::assert_snapshot!("rename", clean(&rename["result"]));
    let refused = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri("lsp_nav.flow") }, "position": position, "newName": "filter" }),
    );
    assert_eq!(refused["error"]["code"], -32803, "{refused}");
    let taken = client.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri("lsp_nav.flow") }, "position": position, "newName": "big" }),
    );
    assert!(
        taken["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already bound"),
        "{taken}"
    );
    drop(plain);
    client.shutdown();
}

#[test]
fn a_binding_whose_pipeline_has_an_error_can_still_be_navigated_to() {
    let mut client = Client::start();
    // `big`'s filter compares a number with a string: its pipeline does not check.
    let text = "let orders = load \"data/orders.csv\"\nlet big = orders | filter amount > \"x\"\nshow b$0ig | take 3\nsave big to \"out/big.csv\"\n";
    let definition = ask(
        &mut client,
        "lsp_broken.flow",
        text,
        "textDocument/definition",
    );
    let range = &definition["result"]["range"];
    assert_eq!(range["start"]["line"], 1, "{definition}");
    assert_eq!(range["start"]["character"], 4, "{definition}");
    let (_, position) = marked(text);
    let references = client.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": uri("lsp_broken.flow") }, "position": position,
                "context": { "includeDeclaration": true } }),
    );
    assert_eq!(
        references["result"].as_array().unwrap().len(),
        3,
        "the let and both uses: {references}"
    );
    client.shutdown();
}

#[test]
fn document_symbols_semantic_tokens_and_formatting() {
    let mut client = Client::start();
    let text = "config { workers = 2 }\nlet orders = load \"data/orders.csv\"   # all of them\nlet a, b = split orders 0.5 seed 1\nshow a|take 2\nsave b to \"out/b.csv\"\n";
    client.open("lsp_outline.flow", text);
    let doc = json!({ "textDocument": { "uri": uri("lsp_outline.flow") } });
    let symbols = client.request("textDocument/documentSymbol", doc.clone());
    insta::assert_snapshot!("document_symbols", clean(&symbols["result"]));
    let tokens = client.request("textDocument/semanticTokens/full", doc.clone());
    let data = tokens["result"]["data"].as_array().unwrap();
    let rows: Vec<String> = data
        .chunks(5)
        .map(|t| format!("{} {} {} {} {}", t[0], t[1], t[2], t[3], t[4]))
        .collect();
    insta::assert_snapshot!("semantic_tokens", rows.join("\n"));
    let mut formatting = doc.clone();
    formatting["options"] = json!({ "tabSize": 2, "insertSpaces": true });
    let edits = client.request("textDocument/formatting", formatting);
    insta::assert_snapshot!(
        "formatting",
        edits["result"][0]["newText"].as_str().unwrap()
    );
    client.shutdown();
}

#[test]
fn code_actions_apply_suggestions_and_qualify_ambiguous_columns() {
    let mut client = Client::start();
    let typo = "let orders = load \"data/orders.csv\"\nshow orders | filter amout > 1\n";
    client.open("lsp_actions.flow", typo);
    let range =
        json!({ "start": { "line": 1, "character": 21 }, "end": { "line": 1, "character": 21 } });
    let actions = client.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri("lsp_actions.flow") }, "range": range,
                "context": { "diagnostics": [] } }),
    );
    insta::assert_snapshot!("code_action_did_you_mean", clean(&actions["result"]));

    let ambiguous = "let customers = load \"data/customers.csv\"\nlet orders = load \"data/orders.csv\"\nshow orders | join customers on orders.customer_id == customers.customer_id | select customer_id\n";
    client.open("lsp_actions.flow", ambiguous);
    let at = ambiguous
        .lines()
        .nth(2)
        .unwrap()
        .rfind("customer_id")
        .unwrap();
    let range =
        json!({ "start": { "line": 2, "character": at }, "end": { "line": 2, "character": at } });
    let actions = client.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri("lsp_actions.flow") }, "range": range,
                "context": { "diagnostics": [] } }),
    );
    let titles: Vec<&str> = actions["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "replace with `orders.customer_id`",
            "replace with `customers.customer_id`"
        ]
    );
    client.shutdown();
}

#[test]
fn the_plan_preview_returns_the_physical_plan() {
    let mut client = Client::start();
    client.open("lsp_plan.flow", QUICKSTART);
    let answer = client.request(
        "flow/plan",
        json!({ "textDocument": { "uri": uri("lsp_plan.flow") }, "target": "lambda" }),
    );
    let plan = answer["result"]["plan"].as_str().expect("a plan");
    assert!(plan.starts_with("plan for `aws`"), "{plan}");
    assert!(plan.contains("scan data/orders.csv"), "{plan}");
    let broken = QUICKSTART.replace("amount > 100", "nope > 100");
    client.open("lsp_plan.flow", &broken);
    let answer = client.request(
        "flow/plan",
        json!({ "textDocument": { "uri": uri("lsp_plan.flow") } }),
    );
    assert!(
        answer["result"]["error"]
            .as_str()
            .unwrap()
            .contains("E0004"),
        "{answer}"
    );
    client.shutdown();
}

#[test]
fn malformed_requests_get_json_rpc_errors_and_the_server_lives_on() {
    let mut client = Client::start();
    client.send_raw(b"{not json");
    let parse_error = client.read();
    assert_eq!(parse_error["error"]["code"], -32700, "{parse_error}");
    assert_eq!(parse_error["id"], Value::Null);

    let unknown = client.request("flow/nothing", json!({}));
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    let bad_params = client.request("textDocument/hover", json!({ "position": "here" }));
    assert_eq!(bad_params["error"]["code"], -32602, "{bad_params}");
    let closed = client.at(
        "textDocument/hover",
        "never_opened.flow",
        json!({ "line": 0, "character": 0 }),
    );
    assert_eq!(closed["result"], Value::Null);

    // Any text: binary noise, deep nesting, positions far outside the document.
    let noise =
        "let x = ((((((((((\u{0}\u{7f}é😀 | | | filter \"unterminated\nshow x | select a.b.c.d";
    client.open("lsp_noise.flow", noise);
    for (line, character) in [(0, 0), (0, 12), (1, 5), (1, 99), (99, 99)] {
        for method in [
            "textDocument/hover",
            "textDocument/completion",
            "textDocument/definition",
            "textDocument/prepareRename",
        ] {
            let answer = client.at(
                method,
                "lsp_noise.flow",
                json!({ "line": line, "character": character }),
            );
            assert!(answer.get("error").is_none(), "{method}: {answer}");
        }
    }
    let still = client.request(
        "textDocument/documentSymbol",
        json!({ "textDocument": { "uri": uri("lsp_noise.flow") } }),
    );
    assert!(still.get("result").is_some());
    client.shutdown();
}

#[test]
fn leaving_without_shutdown_exits_with_an_error_code() {
    let mut client = Client::start();
    client.notify("exit", Value::Null);
    let status = client.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
}
