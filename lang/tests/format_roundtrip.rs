//! The formatter's laws: on every example and test program, and on generated programs,
//! formatting is idempotent and the formatted text parses back to the same syntax tree.

use flow_lang::format::format_program;
use flow_lang::parse;
use proptest::prelude::*;
use std::path::{Path, PathBuf};

/// The tree without spans, so trees parsed from differently laid-out text compare equal.
fn shape(src: &str) -> String {
    let parsed = parse(src);
    let text = format!("{:?}", parsed.program.statements);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("span: Span {") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let close = after.find('}').unwrap();
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

fn check_laws(src: &str) -> Result<(), String> {
    let parsed = parse(src);
    if !parsed
        .diagnostics
        .iter()
        .all(|d| d.code != flow_lang::Code::E0001 && d.code != flow_lang::Code::E0002)
    {
        return Ok(());
    }
    let once = format_program(src, &parsed.program);
    let reparsed = parse(&once);
    if !reparsed.diagnostics.is_empty() {
        return Err(format!(
            "formatted text does not parse: {:?}\n{once}",
            reparsed.diagnostics
        ));
    }
    if shape(src) != shape(&once) {
        return Err(format!("formatting changed the tree:\n{src}\n---\n{once}"));
    }
    let twice = format_program(&once, &reparsed.program);
    if once != twice {
        return Err(format!(
            "formatting is not idempotent:\n{once}\n---\n{twice}"
        ));
    }
    let comments = |s: &str| {
        parse(s)
            .program
            .comments
            .iter()
            .map(|c| c.text.trim().to_string())
            .collect::<Vec<_>>()
    };
    let (mut before, mut after) = (comments(src), comments(&once));
    before.sort();
    after.sort();
    if before != after {
        return Err(format!(
            "formatting lost or changed comments:\n{src}\n---\n{once}"
        ));
    }
    Ok(())
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in [
        "examples",
        "examples/data",
        "cli/tests/ui",
        "cli/tests/ui-run",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "flow") {
                files.push(entry.path());
            }
        }
    }
    assert!(files.len() > 40);
    files
}

#[test]
fn laws_hold_on_every_example_and_test_program() {
    for file in corpus() {
        let src = std::fs::read_to_string(&file).unwrap();
        check_laws(&src).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}

/// Random layouts of the corpus: whitespace is insignificant, so the tree must not change.
fn relayout(src: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    let mut k = 0;
    let mut in_string = false;
    let mut in_comment = false;
    for c in src.chars() {
        match c {
            '"' if !in_comment => in_string = !in_string,
            '#' if !in_string => in_comment = true,
            '\n' => in_comment = false,
            _ => {}
        }
        if c == ' ' && !in_string && !in_comment {
            let pick = choices.get(k % choices.len().max(1)).copied().unwrap_or(0);
            k += 1;
            out.push_str(match pick % 4 {
                0 => " ",
                1 => "   ",
                2 => "\n  ",
                _ => " \t",
            });
        } else {
            out.push(c);
        }
    }
    out
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_string()),
        Just("t.y".to_string()),
        (0i64..1000).prop_map(|i| i.to_string()),
        Just("2.5".to_string()),
        Just("\"a \\\"q\\\" b\"".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"
                ]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("{a} as float64")),
            inner.clone().prop_map(|a| format!("{a} is not null")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} in [{b}, 1]")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("if {a} then {b} else {c}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("coalesce({a}, {b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn laws_hold_on_relaid_out_programs(index in 0usize..1000, choices in prop::collection::vec(any::<u8>(), 1..64)) {
        let files = corpus();
        let src = std::fs::read_to_string(&files[index % files.len()]).unwrap();
        let moved = relayout(&src, &choices);
        prop_assert_eq!(shape(&src), shape(&moved));
        check_laws(&moved).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn laws_hold_on_generated_expressions(e in expr(), steps in 0usize..4) {
        let mut src = format!("# generated\nlet t = load \"t.csv\"  # source\nshow t | derive z = {e}");
        for i in 0..steps {
            src.push_str(&format!("\n  # step {i}\n  | filter {e} with {{ workers = {} }}", i + 1));
        }
        src.push('\n');
        prop_assert!(parse(&src).diagnostics.is_empty(), "{}", src);
        check_laws(&src).map_err(TestCaseError::fail)?;
    }
}

/// Pieces of programs, right and wrong, that syntax errors and their hints meet: keywords,
/// operators other languages use, quotes of every kind, brackets, multibyte characters.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "let ",
        "t",
        " = ",
        "load \"a.csv\"",
        "\n",
        "show ",
        "| ",
        "filter ",
        "group ",
        "by ",
        "sort ",
        "desc",
        "descending",
        "fliter ",
        "split ",
        "0.8",
        "(",
        ")",
        "&&",
        "||",
        "'",
        "`",
        "`group`",
        "=>",
        "=",
        "==",
        " ",
        "😀",
        "é",
        "#",
        "x",
        "{ n = count() }",
        "select ",
        "\"",
        "union ",
        "join ",
        "on ",
        "take 3",
        "# note 😀\n",
        "# é\n",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Parsing never fails: any text gets a program and diagnostics, never a panic, and every
    /// diagnostic's span lies on character boundaries of the text.
    #[test]
    fn any_text_parses_to_diagnostics_without_panicking(
        pieces in prop::collection::vec(piece(), 0..24)
    ) {
        let src: String = pieces.concat();
        let parsed = parse(&src);
        for d in &parsed.diagnostics {
            let span = d.primary.span;
            prop_assert!(span.start <= span.end && span.end <= src.len(), "{d:?}");
            prop_assert!(src.is_char_boundary(span.start) && src.is_char_boundary(span.end), "{d:?} in {src:?}");
        }
    }
}
