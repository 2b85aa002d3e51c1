//! Parsing: text → [`Program`]. Parsing never fails and never panics: it returns whatever
//! statements parsed plus a diagnostic for every statement that did not.

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic};
use crate::lexical;
use crate::span::Span;
use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::OnceLock;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct Grammar;

/// How deeply brackets and `if`s may nest inside one statement.
pub const MAX_NESTING: usize = 128;
/// How many operators one statement may hold.
pub const MAX_OPERATORS: usize = 4096;

/// The result of parsing: the statements that parsed and the problems found.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub program: Program,
    pub diagnostics: Vec<Diagnostic>,
}

/// Decodes raw file bytes as flow source text: UTF-8 without NUL bytes.
pub fn decode(bytes: &[u8]) -> Result<&str, Diagnostic> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        Diagnostic::error(
            Code::E0026,
            format!("the file is not valid UTF-8 (invalid byte at offset {at})"),
            Span::new(0, 0),
            "this file",
        )
        .with_help("save the file as UTF-8")
    })?;
    if let Some(at) = text.find('\0') {
        return Err(Diagnostic::error(
            Code::E0026,
            format!("the file contains a NUL byte at offset {at}"),
            Span::new(at, at + 1),
            "NUL byte",
        )
        .with_help("flow programs are plain text; remove the NUL bytes"));
    }
    Ok(text)
}

/// Parses a whole program, recovering at the next statement after each syntax error.
pub fn parse(source: &str) -> Parsed {
    let (scan, chunks) = match prepare(source) {
        Ok(prepared) => prepared,
        Err(refused) => return refused,
    };
    let threads = if chunks.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
    };
    let mut statements = Vec::new();
    let mut diagnostics = Vec::new();
    for (statement, found) in parse_chunks(source, &scan, &chunks, threads) {
        statements.extend(statement);
        diagnostics.extend(found);
    }
    Parsed {
        program: Program {
            statements,
            comments: scan.comments,
        },
        diagnostics,
    }
}

/// Parses a program statement by statement, in order, handing each to `each` as soon as it
/// has parsed, so a consumer (the checker) can work while the rest is still being parsed.
/// The result holds the comments and the diagnostics; its program has no statements (they
/// went to `each`).
pub fn parse_each(source: &str, each: &mut dyn FnMut(Stmt)) -> Parsed {
    let (scan, chunks) = match prepare(source) {
        Ok(prepared) => prepared,
        Err(refused) => return refused,
    };
    let mut diagnostics = Vec::new();
    for chunk in chunks {
        let (statement, found) = parse_chunk(source, &scan, chunk);
        diagnostics.extend(found);
        if let Some(statement) = statement {
            each(statement);
        }
    }
    Parsed {
        program: Program {
            statements: Vec::new(),
            comments: scan.comments,
        },
        diagnostics,
    }
}

/// The lexical scan and the statement chunks of `source`, or the whole answer when the text
/// cannot be parsed at all (a NUL byte).
fn prepare(source: &str) -> Result<(lexical::Scan, Vec<Span>), Parsed> {
    // Bounds the work of one grammar call, so no input makes the parser run away.
    pest::set_call_limit(std::num::NonZeroUsize::new(50_000_000));
    let scan = lexical::scan(source);
    if let Some(at) = source.find('\0') {
        return Err(Parsed {
            program: Program {
                statements: Vec::new(),
                comments: scan.comments,
            },
            diagnostics: vec![
                Diagnostic::error(
                    Code::E0026,
                    "the program contains a NUL byte",
                    Span::new(at, at + 1),
                    "NUL byte",
                )
                .with_help("flow programs are plain text; remove the NUL bytes"),
            ],
        });
    }
    // Statement keywords are reserved, so a statement never reaches past the next one: the
    // chunks between statement starts parse independently, each alone (pest's per-call work
    // stays proportional to the statement), and large programs on several threads.
    let mut chunks = Vec::new();
    let mut offset = 0;
    while offset < source.len() {
        let rest = &source[offset..];
        if leading_trivia(rest) == rest.len() {
            break;
        }
        let chunk_end = scan
            .next_statement_after(offset + leading_trivia(rest))
            .unwrap_or(source.len());
        chunks.push(Span::new(offset, chunk_end));
        offset = chunk_end;
    }
    Ok((scan, chunks))
}

/// Programs with at least this many statements are parsed on several threads.
const PARALLEL_FROM: usize = 512;

/// Each chunk's statement (if it parsed) and diagnostics, in order.
fn parse_chunks(
    source: &str,
    scan: &lexical::Scan,
    chunks: &[Span],
    threads: usize,
) -> Vec<(Option<Stmt>, Vec<Diagnostic>)> {
    if threads < 2 || chunks.is_empty() {
        return chunks
            .iter()
            .map(|c| parse_chunk(source, scan, *c))
            .collect();
    }
    let per_thread = chunks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .chunks(per_thread)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|c| parse_chunk(source, scan, *c))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            // A parser panic is a bug; surface it as the panic it is.
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Parses the statement in `chunk` of `source`.
fn parse_chunk(source: &str, scan: &lexical::Scan, chunk: Span) -> (Option<Stmt>, Vec<Diagnostic>) {
    let (offset, chunk_end) = (chunk.start, chunk.end);
    let mut diagnostics = Vec::new();
    if let Some(at) = scan.too_deep(Span::new(offset, chunk_end), MAX_NESTING) {
        diagnostics.push(
            Diagnostic::error(
                Code::E0002,
                format!("this statement nests more than {MAX_NESTING} levels deep"),
                Span::new(at, at + 1),
                "too deep from here",
            )
            .with_help("split the expression over several `derive` steps or bindings"),
        );
        return (None, diagnostics);
    }
    let mut statement = None;
    match Grammar::parse(Rule::statement_entry, &source[offset..chunk_end]) {
        Ok(mut pairs) => {
            let entry = pairs
                .next()
                .expect("statement_entry always yields one pair");
            let stmt = entry.into_inner().find(|p| p.as_rule() == Rule::statement);
            if let Some(stmt) = stmt {
                let operators = count_operators(&stmt);
                if operators > MAX_OPERATORS {
                    let span = shifted(&stmt, offset);
                    diagnostics.push(
                        Diagnostic::error(
                            Code::E0002,
                            format!("this statement holds {operators} operators, more than the limit of {MAX_OPERATORS}"),
                            Span::new(span.start, span.start + 1),
                            "statement too large",
                        )
                        .with_help("split the computation over several `derive` steps or bindings"),
                    );
                } else {
                    let mut builder = Builder {
                        offset,
                        source,
                        comments: &scan.comments,
                        diagnostics: &mut diagnostics,
                    };
                    statement = Some(builder.statement(stmt));
                }
            }
        }
        // Statement keywords are reserved, so the next one starts the next statement.
        Err(error) => diagnostics.push(syntax_error(source, offset, &error)),
    }
    (statement, diagnostics)
}

/// Bytes of whitespace and comments at the start of `text`.
fn leading_trivia(text: &str) -> usize {
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n', '\u{FEFF}']);
        if let Some(comment) = trimmed.strip_prefix('#') {
            rest = comment.find('\n').map_or("", |n| &comment[n..]);
        } else {
            return text.len() - trimmed.len();
        }
    }
}

fn count_operators(stmt: &Pair<'_, Rule>) -> usize {
    stmt.clone()
        .into_inner()
        .flatten()
        .filter(|p| {
            matches!(
                p.as_rule(),
                Rule::op_or
                    | Rule::op_and
                    | Rule::op_eq
                    | Rule::op_ne
                    | Rule::op_le
                    | Rule::op_ge
                    | Rule::op_lt
                    | Rule::op_gt
                    | Rule::op_add
                    | Rule::op_sub
                    | Rule::op_mul
                    | Rule::op_div
                    | Rule::op_mod
                    | Rule::op_not
                    | Rule::op_neg
                    | Rule::op_cast
                    | Rule::op_is_null
                    | Rule::op_is_not_null
                    | Rule::op_in
                    | Rule::op_not_in
                    | Rule::op_like
                    | Rule::op_not_like
            )
        })
        .count()
}

fn error_offset(base: usize, error: &pest::error::Error<Rule>) -> usize {
    base + match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
}

fn syntax_error(source: &str, base: usize, error: &pest::error::Error<Rule>) -> Diagnostic {
    let at = error_offset(base, error);
    let found = describe_found(&source[at.min(source.len())..]);
    let expected = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort();
            names.dedup();
            // An expression subsumes the literals and names it may start with.
            if names.contains(&"an expression") {
                names.retain(|n| {
                    !matches!(
                        *n,
                        "a name" | "a number" | "a string" | "an integer" | "`null`"
                    )
                });
            }
            names
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let label = match expected.as_slice() {
        [] => "unexpected here".to_string(),
        [one] => format!("expected {one}"),
        many => format!(
            "expected {} or {}",
            many[..many.len() - 1].join(", "),
            many[many.len() - 1]
        ),
    };
    let end = source[at.min(source.len())..]
        .chars()
        .next()
        .map_or(at, |c| at + c.len_utf8());
    if found == "a string" && source[at..].matches('"').count() % 2 == 1 {
        return Diagnostic::error(
            Code::E0001,
            "syntax error: this string is never closed",
            Span::new(at, end),
            "the string starts here",
        )
        .with_help("add the closing `\"`; write `\\\"` for a quote inside a string");
    }
    let word = &source[at.min(source.len())..];
    let word_len = word
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(word.len(), |(i, _)| i);
    if let Some(hint) = hints::hint(source, base, at, &word[..word_len], &expected) {
        let (span, label) = match hint.at {
            Some((s, e)) => (Span::new(s, e), "opened here".to_string()),
            // A whole misspelt word, so a quick fix can replace it.
            None => (Span::new(at, (at + word_len).max(end)), label),
        };
        let message = hint
            .message
            .unwrap_or_else(|| format!("syntax error: unexpected {found}"));
        let diagnostic = Diagnostic::error(Code::E0001, message, span, label).with_help(hint.help);
        return match hint.fix {
            Some(fix) => diagnostic.with_fix(span, fix),
            None => diagnostic,
        };
    }
    let mut diagnostic = Diagnostic::error(
        Code::E0001,
        format!("syntax error: unexpected {found}"),
        Span::new(at, end),
        label,
    );
    if expected.contains(&"a statement") {
        diagnostic = diagnostic.with_help(
            "a program is a sequence of `let`, `save`, `show` and `config` statements; steps of a pipeline are joined with `|`",
        );
    }
    diagnostic
}

fn describe_found(rest: &str) -> String {
    let rest = rest.trim_start_matches(['\r']);
    let Some(c) = rest.chars().next() else {
        return "end of file".to_string();
    };
    if c == '"' {
        return "a string".to_string();
    }
    if c == '\n' {
        return "end of line".to_string();
    }
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .take(40)
        .collect();
    if word.is_empty() {
        format!("`{c}`")
    } else {
        format!("`{word}`")
    }
}

/// A person's name for what a grammar rule stands for, or `None` to leave it out.
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::statement | Rule::statement_entry | Rule::EOI => "a statement",
        Rule::ident | Rule::name_source | Rule::column_ref => "a name",
        Rule::expr | Rule::paren_expr | Rule::if_expr | Rule::call | Rule::list => "an expression",
        Rule::float_lit | Rule::int_lit | Rule::string_lit | Rule::bool_lit | Rule::null_lit => {
            "an expression"
        }
        Rule::string => "a string",
        Rule::int => "an integer",
        Rule::float => "a number",
        Rule::pipeline
        | Rule::source
        | Rule::load_source
        | Rule::sql_source
        | Rule::paren_source => "a table (a name, `load`, `sql` or `( ... )`)",
        Rule::step => "a step",
        Rule::object | Rule::load_schema => "`{`",
        Rule::object_entry | Rule::assign | Rule::named_item => "`name = expression`",
        Rule::kw_to => "`to`",
        Rule::kw_on => "`on`",
        Rule::kw_then => "`then`",
        Rule::kw_else => "`else`",
        Rule::kw_split => "`split`",
        Rule::kw_null => "`null`",
        Rule::type_name | Rule::decimal_type => "a type",
        Rule::select_item | Rule::group_keys => "a column or `name = expression`",
        Rule::sort_key => "a sort key",
        Rule::schema_field => "`name: type`",
        _ => return None,
    })
}

fn shifted(pair: &Pair<'_, Rule>, offset: usize) -> Span {
    let s = pair.as_span();
    Span::new(offset + s.start(), offset + s.end())
}

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_eq, Assoc::Left)
                | Op::infix(Rule::op_ne, Assoc::Left)
                | Op::infix(Rule::op_lt, Assoc::Left)
                | Op::infix(Rule::op_le, Assoc::Left)
                | Op::infix(Rule::op_gt, Assoc::Left)
                | Op::infix(Rule::op_ge, Assoc::Left)
                | Op::postfix(Rule::op_is_null)
                | Op::postfix(Rule::op_is_not_null)
                | Op::postfix(Rule::op_in)
                | Op::postfix(Rule::op_not_in)
                | Op::postfix(Rule::op_like)
                | Op::postfix(Rule::op_not_like))
            .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
            .op(Op::infix(Rule::op_mul, Assoc::Left)
                | Op::infix(Rule::op_div, Assoc::Left)
                | Op::infix(Rule::op_mod, Assoc::Left))
            .op(Op::prefix(Rule::op_neg))
            .op(Op::postfix(Rule::op_cast))
    })
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_filter
            | Rule::kw_select
            | Rule::kw_derive
            | Rule::kw_join
            | Rule::kw_group
            | Rule::kw_sort
            | Rule::kw_take
            | Rule::kw_distinct
            | Rule::kw_union
            | Rule::kw_train
            | Rule::kw_infer
            | Rule::kw_evaluate
            | Rule::kw_let
            | Rule::kw_save
            | Rule::kw_show
            | Rule::kw_config
            | Rule::kw_load
            | Rule::kw_sql
            | Rule::kw_as
            | Rule::kw_with
            | Rule::kw_to
            | Rule::kw_limit
            | Rule::kw_split
            | Rule::kw_seed
            | Rule::kw_schema
            | Rule::kw_on
            | Rule::kw_batch
            | Rule::kw_if
            | Rule::kw_then
            | Rule::kw_else
            | Rule::kw_not
            | Rule::kw_in
            | Rule::kw_is
            | Rule::kw_null
            | Rule::kw_like
    )
}

/// The children of a pair without its keyword tokens.
fn children<'a>(pair: Pair<'a, Rule>) -> impl Iterator<Item = Pair<'a, Rule>> {
    pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
}

/// Turns grammar pairs of one statement into AST nodes with absolute spans.
struct Builder<'d> {
    offset: usize,
    source: &'d str,
    comments: &'d [Comment],
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl Builder<'_> {
    /// The pair's span without the whitespace and comments the grammar let it swallow at
    /// its end, so spans cover exactly the code they stand for.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = shifted(pair, self.offset);
        let mut end = span.end;
        loop {
            let trimmed =
                self.source[span.start..end].trim_end_matches([' ', '\t', '\r', '\n', '\u{FEFF}']);
            end = span.start + trimmed.len();
            match self
                .comments
                .iter()
                .find(|c| c.span.start >= span.start && c.span.start < end && c.span.end >= end)
            {
                Some(comment) => end = comment.span.start,
                None => break,
            }
        }
        Span::new(span.start, end)
    }

    fn statement(&mut self, pair: Pair<'_, Rule>) -> Stmt {
        let span = self.span(&pair);
        let inner = pair
            .into_inner()
            .next()
            .expect("statement has one alternative");
        let rule = inner.as_rule();
        let mut parts = children(inner);
        let kind = match rule {
            Rule::config_stmt => {
                StmtKind::Config(self.object(parts.next().expect("config object")))
            }
            Rule::let_stmt => {
                let name = self.ident(parts.next().expect("let name"));
                let value = self.pipeline(parts.next().expect("let value"));
                StmtKind::Let { name, value }
            }
            Rule::let_split_stmt => {
                let first = self.ident(parts.next().expect("first name"));
                let second = self.ident(parts.next().expect("second name"));
                let input = self.pipeline(parts.next().expect("split input"));
                let fraction_pair = parts.next().expect("split fraction");
                let fraction = self.number_expr(fraction_pair);
                let seed = parts.next().map(|p| self.int(p));
                StmtKind::Split {
                    first,
                    second,
                    input,
                    fraction,
                    seed,
                }
            }
            Rule::save_stmt => {
                let input = self.pipeline(parts.next().expect("save input"));
                let target = self.string(parts.next().expect("save target"));
                let mut format = None;
                let mut options = None;
                for part in parts {
                    match part.as_rule() {
                        Rule::save_format => format = children(part).next().map(|p| self.ident(p)),
                        Rule::save_options => {
                            options = children(part).next().map(|p| self.object(p))
                        }
                        _ => {}
                    }
                }
                StmtKind::Save {
                    input,
                    target,
                    format,
                    options,
                }
            }
            Rule::show_stmt => {
                let input = self.pipeline(parts.next().expect("show input"));
                let limit = parts
                    .next()
                    .and_then(|p| children(p).next())
                    .map(|p| self.int(p));
                StmtKind::Show { input, limit }
            }
            other => unreachable!("statement alternative {other:?}"),
        };
        Stmt { kind, span }
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        let text = pair.as_str();
        let name = text
            .strip_prefix('`')
            .and_then(|t| t.strip_suffix('`'))
            .unwrap_or(text);
        Ident {
            name: name.to_string(),
            span: self.span(&pair),
        }
    }

    fn int(&mut self, pair: Pair<'_, Rule>) -> IntLit {
        let span = self.span(&pair);
        let digits: String = pair.as_str().chars().filter(|c| *c != '_').collect();
        let value = digits.parse::<i64>().unwrap_or_else(|_| {
            self.diagnostics.push(
                Diagnostic::error(
                    Code::E0023,
                    "integer literal out of range",
                    span,
                    "does not fit in 64 bits",
                )
                .with_help(format!(
                    "integers range from {} to {}",
                    i64::MIN,
                    i64::MAX
                )),
            );
            0
        });
        IntLit { value, span }
    }

    fn number_expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let literal = if pair.as_rule() == Rule::float {
            Literal::Float(pair.as_str().parse().unwrap_or(f64::NAN))
        } else {
            Literal::Int(self.int(pair).value)
        };
        Expr {
            kind: ExprKind::Literal(literal),
            span,
        }
    }

    fn string(&mut self, pair: Pair<'_, Rule>) -> StrLit {
        let span = self.span(&pair);
        let raw = pair.as_str();
        let body = &raw[1..raw.len() - 1];
        let mut value = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    let at = span.start + 1 + i;
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::E0023,
                            format!("unknown escape `\\{other}` in a string"),
                            Span::new(at, at + 1 + other.len_utf8()),
                            "unknown escape",
                        )
                        .with_help("strings take the escapes \\\" \\\\ \\n and \\t; write \\\\ for a backslash"),
                    );
                }
                None => {}
            }
        }
        StrLit { value, span }
    }

    fn object(&mut self, pair: Pair<'_, Rule>) -> Object {
        let span = self.span(&pair);
        let entries = children(pair)
            .map(|entry| {
                let span = self.span(&entry);
                let mut parts = children(entry);
                let key = self.ident(parts.next().expect("entry key"));
                let value = self.expr(parts.next().expect("entry value"));
                Entry { key, value, span }
            })
            .collect();
        Object { entries, span }
    }

    fn pipeline(&mut self, pair: Pair<'_, Rule>) -> Pipeline {
        let span = self.span(&pair);
        let mut parts = children(pair);
        let source = self.source(parts.next().expect("pipeline source"));
        let steps = parts.map(|p| self.step(p)).collect();
        Pipeline {
            source,
            steps,
            span,
        }
    }

    fn source(&mut self, pair: Pair<'_, Rule>) -> Source {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("source alternative");
        let kind = match inner.as_rule() {
            Rule::name_source => {
                SourceKind::Name(self.ident(inner.into_inner().next().expect("name")))
            }
            Rule::paren_source => SourceKind::Pipeline(Box::new(
                self.pipeline(inner.into_inner().next().expect("inner pipeline")),
            )),
            Rule::sql_source => {
                SourceKind::Sql(self.string(children(inner).next().expect("sql text")))
            }
            Rule::load_source => {
                let mut parts = children(inner);
                let path = self.string(parts.next().expect("load path"));
                let mut load = Load {
                    path,
                    format: None,
                    schema: None,
                    options: None,
                };
                for option in parts {
                    let option_span = self.span(&option);
                    let (slot_taken, what) = match option.as_rule() {
                        Rule::load_format => (load.format.is_some(), "as"),
                        Rule::load_schema => (load.schema.is_some(), "schema"),
                        _ => (load.options.is_some(), "with"),
                    };
                    if slot_taken {
                        self.diagnostics.push(Diagnostic::error(
                            Code::E0021,
                            format!("`{what}` is given twice for this load"),
                            option_span,
                            "second one",
                        ));
                        continue;
                    }
                    match option.as_rule() {
                        Rule::load_format => {
                            load.format = children(option).next().map(|p| self.ident(p))
                        }
                        Rule::load_schema => {
                            let fields = children(option)
                                .map(|field| {
                                    let span = self.span(&field);
                                    let mut parts = children(field);
                                    let name = self.ident(parts.next().expect("field name"));
                                    let ty = self.type_name(parts.next().expect("field type"));
                                    SchemaField { name, ty, span }
                                })
                                .collect();
                            load.schema = Some(fields);
                        }
                        _ => load.options = children(option).next().map(|p| self.object(p)),
                    }
                }
                SourceKind::Load(load)
            }
            other => unreachable!("source alternative {other:?}"),
        };
        Source { kind, span }
    }

    fn type_name(&mut self, pair: Pair<'_, Rule>) -> TypeName {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("type alternative");
        let kind = if inner.as_rule() == Rule::decimal_type {
            let mut parts = inner.into_inner();
            let precision = self.int(parts.next().expect("precision"));
            let scale = self.int(parts.next().expect("scale"));
            TypeKind::Decimal(precision, scale)
        } else {
            TypeKind::Named(inner.as_str().to_string())
        };
        TypeName { kind, span }
    }

    fn step(&mut self, pair: Pair<'_, Rule>) -> Step {
        let span = self.span(&pair);
        let mut parts = pair.into_inner();
        let body = parts.next().expect("step body");
        let hints = parts
            .next()
            .and_then(|h| children(h).next())
            .map(|o| self.object(o));
        let rule = body.as_rule();
        let mut inner = children(body).peekable();
        let kind = match rule {
            Rule::filter_step => StepKind::Filter(self.expr(inner.next().expect("filter expr"))),
            Rule::select_step => StepKind::Select(inner.map(|p| self.select_item(p)).collect()),
            Rule::derive_step => StepKind::Derive(inner.map(|p| self.assign(p)).collect()),
            Rule::join_step => {
                let kind =
                    inner
                        .next_if(|p| p.as_rule() == Rule::join_kind)
                        .map(|p| match p.as_str() {
                            "left" => JoinKind::Left,
                            "right" => JoinKind::Right,
                            "full" => JoinKind::Full,
                            "semi" => JoinKind::Semi,
                            "anti" => JoinKind::Anti,
                            _ => JoinKind::Inner,
                        });
                let right = self.source(inner.next().expect("join source"));
                let on = inner.map(|p| self.expr(p)).collect();
                StepKind::Join { kind, right, on }
            }
            Rule::group_step => {
                let keys = inner
                    .next_if(|p| p.as_rule() == Rule::group_keys)
                    .map(|keys| children(keys).map(|p| self.select_item(p)).collect())
                    .unwrap_or_default();
                let aggregates = inner.map(|p| self.assign(p)).collect();
                StepKind::Group { keys, aggregates }
            }
            Rule::sort_step => StepKind::Sort(
                inner
                    .map(|key| {
                        let span = self.span(&key);
                        let mut parts = key.into_inner();
                        let expr = self.expr(parts.next().expect("sort expr"));
                        let dir = parts.next();
                        SortKey {
                            expr,
                            descending: dir.as_ref().is_some_and(|d| d.as_str() == "desc"),
                            explicit: dir.is_some(),
                            span,
                        }
                    })
                    .collect(),
            ),
            Rule::take_step => StepKind::Take(self.int(inner.next().expect("take count"))),
            Rule::distinct_step => StepKind::Distinct(inner.map(|p| self.column_ref(p)).collect()),
            Rule::union_step => StepKind::Union(self.source(inner.next().expect("union source"))),
            Rule::sql_step => StepKind::Sql(self.string(inner.next().expect("sql text"))),
            Rule::train_step => {
                let kind = self.ident(inner.next().expect("model kind"));
                let args = inner.map(|p| self.arg(p)).collect();
                StepKind::Train { kind, args }
            }
            Rule::infer_step => {
                let model = self.source(inner.next().expect("model"));
                let batch = inner
                    .next()
                    .and_then(|b| children(b).next())
                    .map(|p| self.int(p));
                StepKind::Infer { model, batch }
            }
            Rule::evaluate_step => StepKind::Evaluate {
                label: self.column_ref(inner.next().expect("label")),
            },
            other => unreachable!("step alternative {other:?}"),
        };
        Step { kind, hints, span }
    }

    fn select_item(&mut self, pair: Pair<'_, Rule>) -> SelectItem {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("select item");
        if inner.as_rule() == Rule::named_item {
            let mut parts = inner.into_inner();
            let name = self.ident(parts.next().expect("name"));
            let expr = self.expr(parts.next().expect("expr"));
            SelectItem {
                name: Some(name),
                expr,
                span,
            }
        } else {
            SelectItem {
                name: None,
                expr: self.expr(inner),
                span,
            }
        }
    }

    fn assign(&mut self, pair: Pair<'_, Rule>) -> Assign {
        let span = self.span(&pair);
        let mut parts = pair.into_inner();
        let name = self.ident(parts.next().expect("name"));
        let expr = self.expr(parts.next().expect("expr"));
        Assign { name, expr, span }
    }

    fn arg(&mut self, pair: Pair<'_, Rule>) -> Arg {
        let span = self.span(&pair);
        let inner = pair.into_inner().next().expect("arg");
        if inner.as_rule() == Rule::named_arg {
            let mut parts = inner.into_inner();
            let name = self.ident(parts.next().expect("name"));
            let value = self.expr(parts.next().expect("value"));
            Arg {
                name: Some(name),
                value,
                span,
            }
        } else {
            Arg {
                name: None,
                value: self.expr(inner),
                span,
            }
        }
    }

    fn column_ref(&self, pair: Pair<'_, Rule>) -> ColumnRef {
        let span = self.span(&pair);
        let mut parts: Vec<Ident> = pair.into_inner().map(|p| self.ident(p)).collect();
        let name = parts.pop().expect("column name");
        ColumnRef {
            qualifier: parts.pop(),
            name,
            span,
        }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let this = std::cell::RefCell::new(self);
        pratt()
            .map_primary(|p| this.borrow_mut().primary(p))
            .map_prefix(|op, e| {
                let start = this.borrow().span(&op).start;
                let op = if op.as_rule() == Rule::op_not {
                    UnaryOp::Not
                } else {
                    UnaryOp::Neg
                };
                let span = Span::new(start, e.span.end);
                Expr {
                    kind: ExprKind::Unary {
                        op,
                        expr: Box::new(e),
                    },
                    span,
                }
            })
            .map_postfix(|e, op| {
                let mut b = this.borrow_mut();
                let span = e.span.to(b.span(&op));
                let rule = op.as_rule();
                let mut parts = children(op);
                let kind = match rule {
                    Rule::op_cast => ExprKind::Cast {
                        expr: Box::new(e),
                        ty: b.type_name(parts.next().expect("type")),
                    },
                    Rule::op_is_null => ExprKind::IsNull {
                        expr: Box::new(e),
                        negated: false,
                    },
                    Rule::op_is_not_null => ExprKind::IsNull {
                        expr: Box::new(e),
                        negated: true,
                    },
                    Rule::op_in | Rule::op_not_in => {
                        let list = children(parts.next().expect("list"))
                            .map(|p| b.expr(p))
                            .collect();
                        ExprKind::InList {
                            expr: Box::new(e),
                            list,
                            negated: rule == Rule::op_not_in,
                        }
                    }
                    _ => {
                        let pattern = b.string(parts.next().expect("pattern"));
                        ExprKind::Like {
                            expr: Box::new(e),
                            pattern,
                            negated: rule == Rule::op_not_like,
                        }
                    }
                };
                Expr { kind, span }
            })
            .map_infix(|lhs, op, rhs| {
                let op = match op.as_rule() {
                    Rule::op_or => BinaryOp::Or,
                    Rule::op_and => BinaryOp::And,
                    Rule::op_eq => BinaryOp::Eq,
                    Rule::op_ne => BinaryOp::Ne,
                    Rule::op_lt => BinaryOp::Lt,
                    Rule::op_le => BinaryOp::Le,
                    Rule::op_gt => BinaryOp::Gt,
                    Rule::op_ge => BinaryOp::Ge,
                    Rule::op_add => BinaryOp::Add,
                    Rule::op_sub => BinaryOp::Sub,
                    Rule::op_mul => BinaryOp::Mul,
                    Rule::op_div => BinaryOp::Div,
                    _ => BinaryOp::Mod,
                };
                let span = lhs.span.to(rhs.span);
                Expr {
                    kind: ExprKind::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    span,
                }
            })
            .parse(pair.into_inner())
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        let kind = match pair.as_rule() {
            Rule::paren_expr => ExprKind::Paren(Box::new(
                self.expr(pair.into_inner().next().expect("inner")),
            )),
            Rule::if_expr => {
                let mut parts = children(pair);
                let cond = self.expr(parts.next().expect("cond"));
                let then = self.expr(parts.next().expect("then"));
                let otherwise = self.expr(parts.next().expect("else"));
                ExprKind::If {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                }
            }
            Rule::call => {
                let mut parts = pair.into_inner();
                let name = self.ident(parts.next().expect("function name"));
                let args = parts.map(|p| self.arg(p)).collect();
                ExprKind::Call { name, args }
            }
            Rule::column_ref => ExprKind::Column(self.column_ref(pair)),
            Rule::list => ExprKind::List(pair.into_inner().map(|p| self.expr(p)).collect()),
            Rule::int_lit => ExprKind::Literal(Literal::Int(
                self.int(pair.into_inner().next().expect("int")).value,
            )),
            Rule::float_lit => {
                ExprKind::Literal(Literal::Float(pair.as_str().parse().unwrap_or(f64::NAN)))
            }
            Rule::string_lit => ExprKind::Literal(Literal::String(
                self.string(pair.into_inner().next().expect("s")).value,
            )),
            Rule::bool_lit => ExprKind::Literal(Literal::Bool(pair.as_str() == "true")),
            Rule::null_lit => ExprKind::Literal(Literal::Null),
            other => unreachable!("primary {other:?}"),
        };
        Expr { kind, span }
    }
}

/// Whether the grammar's `reserved` rule takes all of `word`; [`crate::keywords::RESERVED`]
/// is checked against it.
#[cfg(test)]
pub(crate) fn grammar_reserves(word: &str) -> bool {
    Grammar::parse(Rule::reserved, word)
        .is_ok_and(|mut pairs| pairs.next().is_some_and(|p| p.as_str().len() == word.len()))
}

mod hints;

#[cfg(test)]
mod tests;
