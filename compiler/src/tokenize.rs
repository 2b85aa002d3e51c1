//! `tokenize(text, "tokenizer.json", length = N)`: text to the token ids a transformer reads.
//! The call is checked here — the text's type, the file (read through the
//! [`crate::SchemaSource`], so a missing or malformed file is reported before anything runs)
//! and the length — and lowered to a scalar function that holds the tokenizer itself, so a
//! plan shipped to a worker carries it (the runtime's codec writes its bytes).

use crate::expr::ExprCx;
use crate::types::{Family, display, family};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_datafusion_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use flow_lang::ast::{self, ExprKind, Literal};
use flow_lang::{Code, Diagnostic, Span};
use flow_stdlib::text::{DEFAULT_LENGTH, Tokenizer, token_type};
use std::sync::Arc;

/// How a call is written, for help lines.
pub const SYNTAX: &str = "tokenize(text, \"tokenizer.json\", length = 512)";

/// The longest sequence a program may ask for: far beyond any transformer's positions, and
/// small enough that a mistake (a length in characters) is caught.
const MAX_LENGTH: i64 = 65_536;

/// The scalar function `tokenize` lowers to: the tokenizer and the length are part of it.
#[derive(Debug)]
pub struct Tokenize {
    pub tokenizer: Arc<Tokenizer>,
    pub length: usize,
    signature: Signature,
}

impl Tokenize {
    pub const NAME: &str = "tokenize";

    /// The `tokenize` that `expr` calls, if it is a call of it.
    pub fn called(expr: &Expr) -> Option<&Tokenize> {
        let Expr::ScalarFunction(call) = expr else {
            return None;
        };
        (call.func.inner().as_ref() as &dyn std::any::Any).downcast_ref::<Tokenize>()
    }

    pub fn udf(tokenizer: Arc<Tokenizer>, length: usize) -> ScalarUDF {
        ScalarUDF::new_from_impl(Tokenize {
            tokenizer,
            length,
            signature: Signature::string(1, Volatility::Immutable),
        })
    }
}

impl PartialEq for Tokenize {
    fn eq(&self, other: &Self) -> bool {
        self.length == other.length && self.tokenizer.bytes == other.tokenizer.bytes
    }
}

impl Eq for Tokenize {}

impl std::hash::Hash for Tokenize {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.length.hash(state);
        self.tokenizer.digest.hash(state);
    }
}

impl ScalarUDFImpl for Tokenize {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(token_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [text] = args.args.as_slice() else {
            return Err(exec_datafusion_err!("tokenize takes one text argument"));
        };
        let texts = text.to_array(rows)?;
        let ids = self
            .tokenizer
            .encode(texts.as_ref(), self.length)
            .map_err(|e| exec_datafusion_err!("{e}"))?;
        Ok(ColumnarValue::Array(ids))
    }
}

impl ExprCx<'_> {
    /// Checks and lowers a call of `tokenize`.
    pub(crate) fn tokenize(
        &self,
        name: &ast::Ident,
        args: &[ast::Arg],
        span: Span,
    ) -> Result<Expr, Diagnostic> {
        let wrong = |message: String, at: Span, label: &str| {
            Diagnostic::error(Code::E0010, message, at, label.to_string())
                .with_help(format!("`tokenize` is called as `{SYNTAX}`"))
        };
        let positional: Vec<&ast::Arg> = args.iter().filter(|a| a.name.is_none()).collect();
        let [text, file] = positional.as_slice() else {
            return Err(wrong(
                format!(
                    "`{}` takes a text and a tokenizer file, but {} unnamed argument{} were given",
                    name.name,
                    positional.len(),
                    if positional.len() == 1 { "" } else { "s" }
                ),
                span,
                "wrong number of arguments",
            ));
        };
        let mut length = None;
        for arg in args.iter().filter(|a| a.name.is_some()) {
            let named = arg.name.as_ref().map(|n| n.name.as_str());
            match (named, &arg.value.kind) {
                (Some("length"), ExprKind::Literal(Literal::Int(n)))
                    if (1..=MAX_LENGTH).contains(n) && length.is_none() =>
                {
                    length = usize::try_from(*n).ok();
                }
                (Some("length"), _) => {
                    return Err(wrong(
                        format!(
                            "`length` is a number of tokens from 1 to {MAX_LENGTH}, given once"
                        ),
                        arg.value.span,
                        "not a length",
                    ));
                }
                (Some(other), _) => {
                    return Err(wrong(
                        format!("`{}` takes no argument `{other}`", name.name),
                        arg.span,
                        "unknown argument",
                    ));
                }
                (None, _) => {}
            }
        }
        let lowered = self.lower(&text.value)?;
        let ty = self.type_of(&lowered, text.value.span)?;
        if !matches!(family(&ty), Family::Text | Family::Null) {
            return Err(Diagnostic::error(
                Code::E0010,
                format!("`tokenize` needs text, but this is {}", display(&ty)),
                text.value.span,
                format!("this is {}", display(&ty)),
            )
            .with_help(
                "turn it into text first with `as string`, if its digits are what the model reads",
            ));
        }
        let ExprKind::Literal(Literal::String(path)) = &file.value.kind else {
            return Err(wrong(
                "the tokenizer is named by its file, as a string".into(),
                file.value.span,
                "not a file name",
            ));
        };
        let tokenizer = self.source.tokenizer(path).map_err(|message| {
            Diagnostic::error(
                Code::E0036,
                message,
                file.value.span,
                "cannot use this tokenizer",
            )
            .with_help(
                "a tokenizer is the `tokenizer.json` a Hugging Face tokenizer saves \
                     (`tokenizer.save(\"tokenizer.json\")` in Python's `tokenizers`)",
            )
        })?;
        let length = length.or(tokenizer.file_length).unwrap_or(DEFAULT_LENGTH);
        let expr = Tokenize::udf(tokenizer, length).call(vec![lowered]);
        // The function's own signature takes every string type; typing it checks that.
        expr.get_type(self.schema).map_err(|e| {
            wrong(
                crate::expr::clean_error(&e.to_string()),
                span,
                "these arguments do not fit",
            )
        })?;
        Ok(expr)
    }
}

/// The length the token column `column` of `plan`'s output was cut to, when a `tokenize` in
/// the plan made it: what a transformer reading it costs depends on it.
pub fn cut_length(plan: &datafusion::logical_expr::LogicalPlan, column: &str) -> Option<usize> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;
    let mut found = None;
    let _ = plan.apply(|node| {
        if let LogicalPlan::Projection(projection) = node {
            // `derive NAME = ...` names what it computes with an alias.
            for expr in &projection.expr {
                let Expr::Alias(alias) = expr else { continue };
                if alias.name != column {
                    continue;
                }
                if let Some(tokenize) = Tokenize::called(&alias.expr) {
                    found = Some(tokenize.length);
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
