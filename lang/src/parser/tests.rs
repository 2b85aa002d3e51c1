use super::*;

fn ok(src: &str) -> Program {
    let parsed = parse(src);
    assert!(
        parsed.diagnostics.is_empty(),
        "{src}: {:#?}",
        parsed.diagnostics
    );
    parsed.program
}

#[test]
fn parses_the_language_example() {
    let program = ok(r#"
config { target = "local", objective = "latency", workers = 4 }
let customers = load "data/customers.csv"
let events    = load "data/events/*.parquet"
let activity = events
  | filter kind == "purchase" and amount > 0
  | group customer_id { orders = count(), spend = sum(amount) }
let features = customers
  | join left activity on customer_id
  | derive orders = coalesce(orders, 0), spend = coalesce(spend, 0.0)
  | derive per_order = if orders > 0 then spend / orders else 0.0
let train_set, test_set = split features 0.8 seed 7
let model = train_set
  | train logistic(label = churned, features = [tenure, orders, spend, per_order], epochs = 30)
let scored = test_set | infer model batch 500
save scored to "out/scores.parquet"
show scored | evaluate churned
"#);
    assert_eq!(program.statements.len(), 10);
}

#[test]
fn precedence_follows_the_contract() {
    let program = ok("show t | filter not a == 1 or b < 2 and c + 1 * 2 > -d as float64");
    let StmtKind::Show { input, .. } = &program.statements[0].kind else {
        panic!()
    };
    let StepKind::Filter(e) = &input.steps[0].kind else {
        panic!()
    };
    let ExprKind::Binary {
        op: BinaryOp::Or,
        lhs,
        rhs,
    } = &e.kind
    else {
        panic!("{e:?}")
    };
    assert!(matches!(
        lhs.kind,
        ExprKind::Unary {
            op: UnaryOp::Not,
            ..
        }
    ));
    assert!(matches!(
        rhs.kind,
        ExprKind::Binary {
            op: BinaryOp::And,
            ..
        }
    ));
}

#[test]
fn recovers_at_each_statement() {
    let parsed =
        parse("let a = load \"x.csv\" | filter\nlet b = a | select\nshow a\nlet c = = 3\n");
    assert_eq!(parsed.diagnostics.len(), 3, "{:#?}", parsed.diagnostics);
    assert!(parsed.diagnostics.iter().all(|d| d.code == Code::E0001));
    assert_eq!(parsed.program.statements.len(), 1);
}

#[test]
fn deep_nesting_is_a_diagnostic_not_a_crash() {
    let src = format!(
        "show t | filter {}x{}",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    let parsed = parse(&src);
    assert_eq!(parsed.diagnostics[0].code, Code::E0002);
    let src = format!("show t | derive x = {}", "a + ".repeat(45_000) + "a");
    let parsed = parse(&src);
    assert_eq!(parsed.diagnostics[0].code, Code::E0002);
}

#[test]
fn strings_unescape_and_bad_escapes_are_reported() {
    let program = ok(r#"show t | filter s == "a\"b\\c\n""#);
    let StmtKind::Show { input, .. } = &program.statements[0].kind else {
        panic!()
    };
    let StepKind::Filter(Expr {
        kind: ExprKind::Binary { rhs, .. },
        ..
    }) = &input.steps[0].kind
    else {
        panic!()
    };
    assert_eq!(
        rhs.kind,
        ExprKind::Literal(Literal::String("a\"b\\c\n".into()))
    );
    assert_eq!(
        parse(r#"show t | filter s == "\q""#).diagnostics[0].code,
        Code::E0023
    );
}

#[test]
fn context_words_stay_usable_as_columns() {
    ok("show t | select left, limit, seed, batch, to | sort asc desc, desc");
    ok("show t | join left u on left");
}

#[test]
fn empty_and_comment_only_programs_parse() {
    assert!(ok("").statements.is_empty());
    assert_eq!(ok("# just a comment\r\n\r\n# another").statements.len(), 0);
}

#[test]
fn a_large_program_parses_the_same_on_several_threads_as_on_one() {
    let mut src = String::from("let t0 = load \"a.csv\"\n");
    for i in 1..1200 {
        if i % 97 == 0 {
            src.push_str(&format!("let t{i} = t{} | filter (\n", i - 1));
        } else {
            src.push_str(&format!(
                "# step {i}\nlet t{i} = t{} | filter x > {i} | derive y = x * {i}\n",
                i - 1
            ));
        }
    }
    let scan = lexical::scan(&src);
    let mut chunks = Vec::new();
    let mut offset = 0;
    while let Some(end) = scan.next_statement_after(offset + leading_trivia(&src[offset..])) {
        chunks.push(Span::new(offset, end));
        offset = end;
    }
    chunks.push(Span::new(offset, src.len()));
    let one = parse_chunks(&src, &scan, &chunks, 1);
    for threads in [2, 3, 8] {
        assert_eq!(
            parse_chunks(&src, &scan, &chunks, threads),
            one,
            "{threads} threads"
        );
    }
    let parsed = parse(&src);
    assert_eq!(parsed.program.statements.len(), 1200 - 1199 / 97);
    assert_eq!(
        parsed.diagnostics.len(),
        1199 / 97,
        "one error per broken statement"
    );
    assert!(
        parsed
            .diagnostics
            .windows(2)
            .all(|w| w[0].primary.span.start < w[1].primary.span.start),
        "diagnostics in source order"
    );
}

#[test]
fn names_in_backticks_may_be_keywords_or_hold_spaces() {
    let source = "let t = load \"x.csv\"\nshow t | group `group` { n = sum(`unit price`) } | select `group`, n\n";
    let parsed = parse(source);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let formatted = crate::format::format_program(source, &parsed.program);
    assert!(
        formatted.contains("group `group` { n = sum(`unit price`) }"),
        "{formatted}"
    );
    let again = parse(&formatted);
    assert_eq!(
        crate::format::format_program(&formatted, &again.program),
        formatted
    );
    // A statement word inside backticks starts no statement.
    let inside = parse("let t = load \"x.csv\"\nshow t | select `let`\n");
    assert!(inside.diagnostics.is_empty(), "{:?}", inside.diagnostics);
    assert_eq!(crate::format::quoted("group"), "`group`");
    assert_eq!(crate::format::quoted("unit price"), "`unit price`");
    assert_eq!(crate::format::quoted("price"), "price");
}
