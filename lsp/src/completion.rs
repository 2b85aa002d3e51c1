//! Completion. What fits at the cursor is read from the text before it, so it works while the
//! statement being typed does not parse: keywords and steps after `|`, sources and bound names
//! where a table is expected, model kinds after `train` and their arguments inside it, config
//! and hint keys inside `{ }`, file paths inside `load "..."`, and elsewhere in an expression
//! the columns in scope and the functions. The columns come from the checked program, or — when
//! the statement does not parse — from checking the text up to the last `|` before the cursor.

use crate::analysis::Analysis;
use flow_compiler::Shape;
use flow_compiler::settings::{CONFIG_KEYS, HINT_KEYS, Key};
use flow_compiler::types::display;
use flow_lang::keywords;
use flow_lang::reference::{self, Place};
use lsp_types::{
    CompletionItem, CompletionItemKind, Documentation, InsertTextFormat, MarkupContent, MarkupKind,
};
use std::path::Path;

/// What completion reads besides the document's analysis.
pub struct Context<'a> {
    pub text: &'a str,
    pub offset: usize,
    pub analysis: &'a Analysis,
    /// Checks another text (a prefix of the document) the way the document was checked.
    pub reanalyse: &'a dyn Fn(&str) -> Analysis,
    /// Lists a folder: names, and whether each is a folder.
    pub list: &'a dyn Fn(&Path) -> Vec<(String, bool)>,
    /// The folder the document's relative paths are resolved in.
    pub base: &'a Path,
}

pub fn complete(cx: &Context<'_>) -> Vec<CompletionItem> {
    let offset = crate::document::floor_char(cx.text, cx.offset.min(cx.text.len()));
    let start = statement_start(cx.text, offset);
    let before = strip_comments(&cx.text[start..offset]);
    if let Some(partial) = open_string(&before) {
        let opened = &before[..before.len() - partial.len() - 1];
        return if opened.trim_end().ends_with("load") {
            paths(cx, partial)
        } else {
            Vec::new()
        };
    }
    let word_len = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .map(char::len_utf8)
        .sum::<usize>();
    let word = &before[before.len() - word_len..];
    let head = before[..before.len() - word_len].trim_end();
    let previous = last_word(head);
    let last_char = head.chars().last();

    // A word at the very start of a line starts a statement (the formatter indents the lines
    // that continue one).
    let line = &cx.text[cx.text[..offset].rfind('\n').map_or(0, |n| n + 1)..offset];
    if head.is_empty() || line.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return keywords(Place::Statement).collect();
    }
    if last_char == Some('|') {
        return keywords(Place::Step).collect();
    }
    if let Some(items) = after_word(cx, previous, head) {
        return items;
    }
    if last_char == Some('=') && is_let_head(head) {
        let mut items = sources(cx, false);
        if head.contains(',') {
            items.extend(keywords(Place::Source).filter(|i| i.label == "split"));
        }
        return items;
    }
    if let Some((kind, inside)) = open_train(&before) {
        return train_arguments(cx, offset, kind, inside);
    }
    if let Some(items) = inside_braces(&before, last_char) {
        return items;
    }
    if word.contains('.') {
        let qualifier = word.split('.').next().unwrap_or_default();
        return columns(cx, offset, Some(qualifier));
    }
    let mut items = columns(cx, offset, None);
    items.extend(functions());
    items.extend(simple(
        keywords::EXPRESSION,
        CompletionItemKind::KEYWORD,
        "keyword",
    ));
    items
}

/// What follows a word that decides it: a model kind after `train`, a type after `as`, a
/// join kind or a source after `join`, a source after `union`, `show`, `save`, `infer`.
fn after_word(cx: &Context<'_>, previous: &str, head: &str) -> Option<Vec<CompletionItem>> {
    let after_join_kind = keywords::JOIN_KINDS.contains(&previous)
        && last_word(head[..head.len() - previous.len()].trim_end()) == "join";
    Some(match previous {
        "train" => model_kinds(),
        "as" => simple(
            flow_compiler::types::TYPE_NAMES,
            CompletionItemKind::TYPE_PARAMETER,
            "type",
        ),
        "join" => {
            let mut items = simple(
                keywords::JOIN_KINDS,
                CompletionItemKind::KEYWORD,
                "join kind",
            );
            items.extend(sources(cx, false));
            items
        }
        "union" | "show" | "save" => sources(cx, false),
        "infer" => sources(cx, true),
        _ if after_join_kind => sources(cx, false),
        _ => return None,
    })
}

/// Keys inside `config { ... }` and `with { ... }` (a load's CSV options, or a step's
/// hints); nothing else belongs there.
fn inside_braces(before: &str, last_char: Option<char>) -> Option<Vec<CompletionItem>> {
    let opener = open_brace(before)?;
    let opened = before[..opener].trim_end();
    if matches!(last_char, Some('{') | Some(',')) {
        if opened.ends_with("config") {
            return Some(keys(CONFIG_KEYS));
        }
        if let Some(before_with) = opened.strip_suffix("with") {
            return Some(if with_belongs_to_load(before_with) {
                simple(
                    &["header", "delimiter"],
                    CompletionItemKind::PROPERTY,
                    "csv option",
                )
            } else {
                keys(HINT_KEYS)
            });
        }
    }
    (opened.ends_with("config") || opened.ends_with("with")).then(Vec::new)
}

/// Where the statement holding `offset` starts: the last line before it that begins with a
/// statement keyword.
fn statement_start(text: &str, offset: usize) -> usize {
    let mut start = 0;
    let mut line_start = 0;
    for line in text[..offset].split_inclusive('\n') {
        let trimmed = line.trim_start();
        let word: String = trimmed
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let keyword = reference::find(&word).is_some_and(|e| e.places.contains(&Place::Statement));
        if keyword {
            start = line_start + (line.len() - trimmed.len());
        }
        line_start += line.len();
    }
    start
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut in_comment = false;
    for c in text.chars() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                out.push(c);
            }
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if c == '#' {
            in_comment = true;
            continue;
        }
        out.push(c);
    }
    out
}

/// The text typed so far in a string the cursor is inside.
fn open_string(text: &str) -> Option<&str> {
    let mut open = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (open, c) {
            (Some(_), _) if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(_), '"') => open = None,
            (None, '"') => open = Some(i + 1),
            _ => {}
        }
    }
    open.map(|i| &text[i..])
}

fn last_word(text: &str) -> &str {
    let len = text
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum::<usize>();
    &text[text.len() - len..]
}

/// `let NAME =` or `let A, B = split` with nothing after.
fn is_let_head(head: &str) -> bool {
    let Some(rest) = head.trim_start().strip_prefix("let") else {
        return false;
    };
    rest.trim_end_matches('=')
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == ',' || c.is_whitespace())
}

/// Inside an unclosed `train KIND(`: the kind and the text after the parenthesis.
fn open_train(text: &str) -> Option<(&str, &str)> {
    let at = text.rfind("train")?;
    let rest = &text[at + 5..];
    let kind_len = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .count();
    let kind_start = rest.len() - rest.trim_start().len();
    let kind = &rest[kind_start..kind_start + kind_len];
    let after = rest[kind_start + kind_len..].trim_start();
    let inside = after.strip_prefix('(')?;
    (depth(inside, '(', ')') >= 0).then_some((kind, inside))
}

/// How many more `open` than `close` the text has.
fn depth(text: &str, open: char, close: char) -> i32 {
    let mut d = 0;
    let mut in_string = false;
    for c in text.chars() {
        match c {
            '"' => in_string = !in_string,
            c if c == open && !in_string => d += 1,
            c if c == close && !in_string => d -= 1,
            _ => {}
        }
    }
    d
}

/// The offset of the `{` the text ends inside of, if any.
fn open_brace(text: &str) -> Option<usize> {
    let mut stack = Vec::new();
    let mut in_string = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '{' if !in_string => stack.push(i),
            '}' if !in_string => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

/// Whether a `with` follows a `load "..."` directly (its options), not a step (hints).
fn with_belongs_to_load(text: &str) -> bool {
    let trimmed = text.trim_end();
    let Some(before_string) = trimmed.strip_suffix('"') else {
        return trimmed.ends_with('}') && trimmed.contains("schema");
    };
    before_string
        .rfind('"')
        .is_some_and(|q| before_string[..q].trim_end().ends_with("load"))
}

fn keywords(place: Place) -> impl Iterator<Item = CompletionItem> {
    reference::at(place).map(|entry| CompletionItem {
        label: entry.keyword.to_string(),
        kind: Some(CompletionItemKind::KEYWORD),
        detail: Some(entry.syntax.to_string()),
        documentation: Some(markdown(entry.doc.to_string())),
        ..Default::default()
    })
}

fn model_kinds() -> Vec<CompletionItem> {
    flow_stdlib::MODEL_KINDS
        .iter()
        .map(|kind| CompletionItem {
            label: kind.name.to_string(),
            kind: Some(CompletionItemKind::CLASS),
            detail: Some(format!("{:?} model", kind.task).to_lowercase()),
            documentation: Some(markdown(format!("```\n{}```", kind.explain()))),
            ..Default::default()
        })
        .collect()
}

fn train_arguments(
    cx: &Context<'_>,
    offset: usize,
    kind: &str,
    inside: &str,
) -> Vec<CompletionItem> {
    let Some(model) = flow_stdlib::models::find(kind) else {
        return model_kinds();
    };
    let head = inside.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
    let last = head.trim_end().chars().last();
    if depth(inside, '[', ']') > 0 {
        let mut items = columns(cx, offset, None);
        items.extend(
            flow_stdlib::FEATURE_FUNCTIONS
                .iter()
                .map(|f| CompletionItem {
                    label: f.name.to_string(),
                    kind: Some(CompletionItemKind::FUNCTION),
                    detail: Some(f.signature.to_string()),
                    documentation: Some(markdown(f.doc.to_string())),
                    ..Default::default()
                }),
        );
        return items;
    }
    if matches!(last, Some('(') | Some(',') | None) {
        return model
            .args
            .iter()
            .filter(|a| {
                !inside.contains(&format!("{} =", a.name))
                    && !inside.contains(&format!("{}=", a.name))
            })
            .map(|a| CompletionItem {
                label: a.name.to_string(),
                kind: Some(CompletionItemKind::PROPERTY),
                detail: Some(match a.default {
                    Some(d) => format!("{} (default {d})", a.ty.describe()),
                    None => format!("{} (required)", a.ty.describe()),
                }),
                documentation: Some(markdown(a.doc.to_string())),
                insert_text: Some(format!("{} = ", a.name)),
                ..Default::default()
            })
            .collect();
    }
    let argument = last_word(head.trim_end().trim_end_matches('=').trim_end());
    match model.arg(argument).map(|a| a.ty) {
        Some(flow_stdlib::ArgType::Column) => columns(cx, offset, None),
        Some(flow_stdlib::ArgType::Choice(options)) => options
            .iter()
            .map(|o| CompletionItem {
                label: format!("\"{o}\""),
                kind: Some(CompletionItemKind::ENUM_MEMBER),
                ..Default::default()
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn keys(keys: &[Key]) -> Vec<CompletionItem> {
    keys.iter()
        .map(|k| CompletionItem {
            label: k.name.to_string(),
            kind: Some(CompletionItemKind::PROPERTY),
            detail: Some(k.values.to_string()),
            documentation: Some(markdown(k.doc.to_string())),
            insert_text: Some(format!("{} = ", k.name)),
            ..Default::default()
        })
        .collect()
}

fn simple(words: &[&str], kind: CompletionItemKind, detail: &str) -> Vec<CompletionItem> {
    words
        .iter()
        .map(|w| CompletionItem {
            label: w.to_string(),
            kind: Some(kind),
            detail: Some(detail.to_string()),
            ..Default::default()
        })
        .collect()
}

/// `load`, `sql` and the bound names (models only, or tables only).
fn sources(cx: &Context<'_>, models: bool) -> Vec<CompletionItem> {
    let mut items = if models {
        simple(&["load"], CompletionItemKind::KEYWORD, "a model file")
    } else {
        // `split` makes two tables, so it only follows `let A, B =`.
        keywords(Place::Source)
            .filter(|i| i.label != "split")
            .collect()
    };
    items.extend(
        cx.analysis
            .facts
            .bindings
            .iter()
            .filter(|b| matches!(b.shape, Shape::Model(_)) == models)
            .filter(|b| b.span.end <= cx.offset)
            .map(|b| CompletionItem {
                label: b.name.clone(),
                kind: Some(CompletionItemKind::VARIABLE),
                detail: Some(match &b.shape {
                    Shape::Table(schema) => format!("table, {} columns", schema.fields().len()),
                    Shape::Model(_) => "model".to_string(),
                }),
                documentation: Some(markdown(crate::convert::shape(&b.shape))),
                ..Default::default()
            }),
    );
    items
}

fn functions() -> impl Iterator<Item = CompletionItem> {
    flow_compiler::functions::functions()
        .iter()
        .map(|f| CompletionItem {
            label: f.name.clone(),
            kind: Some(CompletionItemKind::FUNCTION),
            detail: Some(f.syntax.clone()),
            documentation: (!f.description.is_empty()).then(|| markdown(f.description.clone())),
            insert_text: Some(format!("{}($1)", f.name)),
            insert_text_format: Some(InsertTextFormat::SNIPPET),
            ..Default::default()
        })
}

/// The columns in scope at `offset`, all or those of one qualifier.
fn columns(cx: &Context<'_>, offset: usize, qualifier: Option<&str>) -> Vec<CompletionItem> {
    let mut scope: Vec<(Option<String>, String, String)> = Vec::new();
    let mut add = |shape: Option<&Shape>| {
        if let Some(Shape::Table(schema)) = shape {
            for (q, f) in schema.iter() {
                scope.push((
                    q.map(|q| q.table().to_string()),
                    f.name().clone(),
                    display(f.data_type()),
                ));
            }
        }
    };
    match in_checked_step(cx.analysis, offset) {
        Some((input, right)) => {
            add(input);
            add(right);
        }
        None => {
            let (input, right) = by_checking_prefix(cx, offset);
            add(input.as_ref());
            add(right.as_ref());
        }
    }
    let ambiguous = |name: &str| scope.iter().filter(|(_, n, _)| n == name).count() > 1;
    let mut items = Vec::new();
    for (q, name, ty) in &scope {
        match qualifier {
            Some(wanted) if q.as_deref() != Some(wanted) => continue,
            Some(_) => items.push((name.clone(), ty)),
            None if ambiguous(name) => match q {
                Some(q) => items.push((format!("{q}.{name}"), ty)),
                None => items.push((name.clone(), ty)),
            },
            None => items.push((name.clone(), ty)),
        }
    }
    items.dedup_by(|a, b| a.0 == b.0);
    items
        .into_iter()
        .map(|(label, ty)| CompletionItem {
            label,
            kind: Some(CompletionItemKind::FIELD),
            detail: Some(ty.clone()),
            // Columns first: they are what an expression most often needs.
            sort_text: Some("0".into()),
            ..Default::default()
        })
        .collect()
}

/// The table a checked step consumes at `offset`, and for a join the table it joins.
fn in_checked_step(analysis: &Analysis, offset: usize) -> Option<(Option<&Shape>, Option<&Shape>)> {
    let places = &analysis.facts.places;
    let step = places
        .iter()
        .filter(|p| p.input.is_some() && p.span.start < offset && offset <= p.span.end)
        .min_by_key(|p| p.span.len())?;
    let right = places
        .iter()
        .filter(|p| {
            p.input.is_none() && p.span.start > step.span.start && p.span.end <= step.span.end
        })
        .filter(|_| step_is(analysis, step.span.start, "join"))
        .find_map(|p| p.output.as_ref());
    Some((step.input.as_ref(), right))
}

fn step_is(analysis: &Analysis, start: usize, keyword: &str) -> bool {
    crate::locate::at(&analysis.program, start).is_some_and(
        |f| matches!(f, crate::locate::Found::StepKeyword(s) if s.kind.keyword() == keyword),
    )
}

/// For a statement that does not parse: checks the document up to a `|` before the cursor
/// and takes the table there — the last `|` whose left side checks, so one broken step does
/// not hide the columns; after `join NAME`, also NAME's table.
fn by_checking_prefix(cx: &Context<'_>, offset: usize) -> (Option<Shape>, Option<Shape>) {
    let start = statement_start(cx.text, offset);
    let statement = &cx.text[start..offset];
    let pipes = top_level_pipes(statement);
    let Some(&last) = pipes.last() else {
        return (None, None);
    };
    // Each attempt checks the statements the typed part needs and the part itself; a few
    // attempts are enough in practice.
    let input = pipes.iter().rev().take(3).find_map(|&pipe| {
        let typed = cx.text[start..start + pipe].trim_end();
        let program = format!("{}{typed}", slice(cx, typed));
        let analysis = (cx.reanalyse)(&program);
        analysis
            .facts
            .places
            .iter()
            .rev()
            .find(|p| p.span.end == program.len() && p.output.is_some())
            .and_then(|p| p.output.clone())
    });
    let after = statement[last + 1..].trim_start();
    let right = after.strip_prefix("join").and_then(|rest| {
        let mut words = rest.split_whitespace();
        let mut name = words.next()?;
        if keywords::JOIN_KINDS.contains(&name) {
            name = words.next()?;
        }
        cx.analysis.facts.binding(name).map(|b| b.shape.clone())
    });
    (input, right)
}

/// The text of the statements that bind the names `typed` uses, and of the ones those need,
/// in program order: checking them and `typed` gives the table `typed` makes without
/// checking the whole document again.
fn slice(cx: &Context<'_>, typed: &str) -> String {
    let analysis = cx.analysis;
    let mut wanted: Vec<String> = typed
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| analysis.facts.binding(w).is_some())
        .map(str::to_string)
        .collect();
    let mut statements: Vec<flow_lang::Span> = Vec::new();
    while let Some(name) = wanted.pop() {
        let Some(bound) = analysis.facts.binding(&name) else {
            continue;
        };
        let Some(statement) = analysis
            .program
            .statements
            .iter()
            .find(|s| s.span.contains(bound.span.start))
        else {
            continue;
        };
        if statements.contains(&statement.span) {
            continue;
        }
        statements.push(statement.span);
        wanted.extend(
            analysis
                .facts
                .uses
                .iter()
                .filter(|(span, _)| statement.span.contains(span.start))
                .map(|(_, used)| used.clone()),
        );
    }
    statements.sort_by_key(|s| s.start);
    statements
        .iter()
        .filter_map(|s| cx.text.get(s.start..s.end))
        .map(|text| format!("{text}\n"))
        .collect()
}

/// The byte offsets of the `|`s outside strings and brackets.
fn top_level_pipes(text: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut level = 0i32;
    let mut in_string = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '(' | '[' | '{' if !in_string => level += 1,
            ')' | ']' | '}' if !in_string => level -= 1,
            '|' if !in_string && level <= 0 => found.push(i),
            _ => {}
        }
    }
    found
}

/// Files and folders for a path typed inside `load "..."`.
fn paths(cx: &Context<'_>, partial: &str) -> Vec<CompletionItem> {
    let (folder, _) = partial.rsplit_once('/').unwrap_or(("", partial));
    let dir = if Path::new(folder).is_absolute() {
        Path::new(folder).to_path_buf()
    } else {
        cx.base.join(folder)
    };
    (cx.list)(&dir)
        .into_iter()
        .map(|(name, is_dir)| CompletionItem {
            label: if is_dir { format!("{name}/") } else { name },
            kind: Some(if is_dir {
                CompletionItemKind::FOLDER
            } else {
                CompletionItemKind::FILE
            }),
            ..Default::default()
        })
        .collect()
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}
